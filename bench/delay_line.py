"""A TCP delay line for the long-link benchmark: every byte is held DELAY seconds in each direction, bandwidth
unbounded, so a round trip through it costs 2 x DELAY more than loopback.

``python bench/delay_line.py TARGET_PORT DELAY`` listens on a free port of 127.0.0.1, prints that port on one
line and relays to 127.0.0.1:TARGET_PORT until its stdin closes. It runs as a process of its own so that
relaying does not compete with the client under test for the Python interpreter.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    """Forward ``reader`` to ``writer``, each block ``delay`` seconds after it arrived, in order."""
    loop = asyncio.get_running_loop()
    blocks: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def forward() -> None:
        while (item := await blocks.get())[1]:
            await asyncio.sleep(max(0.0, item[0] - loop.time()))
            writer.write(item[1])
            await writer.drain()

    sender = asyncio.ensure_future(forward())
    try:
        while data := await reader.read(262144):
            blocks.put_nowait((loop.time() + delay, data))
    finally:
        blocks.put_nowait((0.0, b""))
        await asyncio.gather(sender, return_exceptions=True)
        writer.close()


async def _serve(target_port: int, delay: float) -> None:
    async def accept(client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter) -> None:
        try:
            server_in, server_out = await asyncio.open_connection("127.0.0.1", target_port)
        except OSError:
            client_out.close()
            return
        with contextlib.suppress(asyncio.CancelledError):  # the benchmark is over
            await asyncio.gather(_pump(client_in, server_out, delay), _pump(server_in, client_out, delay),
                                 return_exceptions=True)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until the benchmark closes stdin


def main() -> int:
    if len(sys.argv) != 3:
        print("usage: delay_line.py TARGET_PORT DELAY_SECONDS", file=sys.stderr)
        return 2
    asyncio.run(_serve(int(sys.argv[1]), float(sys.argv[2])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
