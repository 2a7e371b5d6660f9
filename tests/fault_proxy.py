"""A TCP relay for tests, put between the client and the rehearsal sshd: it passes, delays, blackholes or cuts.

``blackhole()`` keeps every TCP connection open (new ones are accepted too) and forwards nothing, as a wifi that
drops without a word, a hung sshd or a NAT that forgot the flow would; ``restore()`` ends that for new
connections (the bytes dropped meanwhile leave the old ones broken, as they would be). ``cut()`` closes every
connection. ``forwarded(direction, since=)`` counts the bytes forwarded to the server ("upstream") or back to
the client ("downstream") on the connections accepted after ``since`` (a ``mark()``), so what an old,
blackholed connection still moves is not counted for a new one. The relay reads no faster than the far side
takes: a connection holds at most a socket buffer in flight.
"""

from __future__ import annotations

import asyncio
import threading


class FaultRelay:
    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.blackholed = False
        self._counts: list[dict[str, int]] = []  # bytes forwarded each way, per connection, in accepted order
        self._writers: set[asyncio.StreamWriter] = set()
        self._loop = asyncio.new_event_loop()
        ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(ready,), name="fault-relay", daemon=True)
        self._thread.start()
        ready.wait(10)

    def _serve(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(asyncio.start_server(self._accept, "127.0.0.1", 0))
        self.port = self._server.sockets[0].getsockname()[1]
        ready.set()
        self._loop.run_forever()

    async def _accept(self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter) -> None:
        try:
            server_in, server_out = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            client_out.close()
            return
        self._writers |= {client_out, server_out}
        counts = {"upstream": 0, "downstream": 0}
        self._counts.append(counts)
        pumps = [asyncio.ensure_future(self._pump(client_in, server_out, counts, "upstream")),
                 asyncio.ensure_future(self._pump(server_in, client_out, counts, "downstream"))]
        await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)  # one side closed: the connection is over
        for writer in (client_out, server_out):
            self._writers.discard(writer)
            writer.transport.abort()
        await asyncio.gather(*pumps, return_exceptions=True)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, counts: dict[str, int],
                    direction: str) -> None:
        while (data := await reader.read(65536)) and not writer.is_closing():
            if not self.blackholed:
                writer.write(data)
                await writer.drain()
                counts[direction] += len(data)

    def mark(self) -> int:
        """A point to count from: the connections accepted so far."""
        return len(self._counts)

    def forwarded(self, direction: str, since: int = 0) -> int:
        """Bytes forwarded ``direction`` ("upstream" or "downstream") on the connections accepted after ``since``."""
        return sum(counts[direction] for counts in self._counts[since:])

    def blackhole(self) -> None:
        self.blackholed = True

    def restore(self) -> None:
        self.blackholed = False

    def cut(self) -> None:
        def close_all() -> None:
            for writer in list(self._writers):
                writer.transport.abort()

        self._loop.call_soon_threadsafe(close_all)

    def close(self) -> None:
        async def shut() -> None:
            self._server.close()
            for writer in list(self._writers):
                writer.transport.abort()
            tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._loop.stop()

        asyncio.run_coroutine_threadsafe(shut(), self._loop)
        self._thread.join(10)
        self._loop.close()
