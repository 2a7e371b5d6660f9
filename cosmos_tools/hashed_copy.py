"""Copy loops that hash what passes: the sha256 a transfer is verified with (continuing a resumed one's digest).

The local side of a copy, its file and the hash, runs in a helper thread; the caller's thread keeps the
box's side, where paramiko does its packet work under the GIL. Reading, writing and hashing a block release
the GIL, so on two cores they overlap the SFTP side instead of adding to it: an upload reads and hashes
ahead of what it sends, a download hashes and writes behind what it receives (docs/transfers.md, "Loopback").
"""

from __future__ import annotations

import contextlib
import hashlib
import queue
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from .transport import Resume

DEPTH = 16  # blocks queued between the two threads (2 MiB at 128 KiB)
_END = object()


class Readable(Protocol):
    """A file open for reading bytes: a local file or an SFTP file."""

    def read(self, size: int, /) -> bytes: ...


class Writable(Protocol):
    """A file open for writing bytes: a local file or an SFTP file."""

    def write(self, data: bytes, /) -> object: ...


def send_hashing(src: Readable, dst: Writable, on_bytes: Callable[[int], None], chunk: int,
                 resume: Resume | None = None) -> str:
    """Copy the local file ``src`` to ``dst`` in ``chunk``-sized blocks, read and hashed ahead in a helper thread;
    return the sha256 of what passed."""
    digest = resume.digest if resume else hashlib.sha256()

    def read() -> Iterator[bytes]:
        while block := src.read(chunk):
            digest.update(block)
            yield block

    for block in _ahead(read()):
        dst.write(block)
        on_bytes(len(block))
    return digest.hexdigest()


def receive_hashing(src: Readable, dst: Writable, on_bytes: Callable[[int], None], chunk: int,
                    resume: Resume | None = None) -> str:
    """Copy ``src`` to the local file ``dst`` in ``chunk``-sized blocks, hashed and written behind in two helper
    threads (one after the other in one helper, they were the slower side); return the sha256 of what passed.
    ``on_bytes`` counts what arrived."""
    digest = resume.digest if resume else hashlib.sha256()
    with _behind(digest.update) as hash_behind, _behind(dst.write) as write_behind:
        while block := src.read(chunk):
            hash_behind(block)
            write_behind(block)
            on_bytes(len(block))
    return digest.hexdigest()


def _start(target: Callable[[], None], name: str) -> threading.Thread:
    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    return thread


def _ahead(blocks: Iterator[bytes]) -> Iterator[bytes]:
    """``blocks``, produced in a helper thread up to DEPTH ahead; its error is raised here. Leaving early stops it."""
    handoff: queue.Queue[object] = queue.Queue(DEPTH)
    stop = threading.Event()

    def produce() -> None:
        try:
            for block in blocks:
                handoff.put(block)
                if stop.is_set():
                    return
            handoff.put(_END)
        except BaseException as exc:  # handed to the consumer
            handoff.put(exc)

    helper = _start(produce, "cosmos-read-ahead")
    try:
        while (item := handoff.get()) is not _END:
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]  # only bytes, _END and errors are put
    finally:
        stop.set()
        while helper.is_alive():  # a helper waiting on a full queue needs room to see the stop
            with contextlib.suppress(queue.Empty):
                handoff.get_nowait()
            helper.join(0.01)


@contextlib.contextmanager
def _behind(work: Callable[[bytes], object]) -> Iterator[Callable[[bytes], None]]:
    """A ``put`` that hands each block to ``work`` in a helper thread, up to DEPTH behind; the helper's first error
    is raised by the next ``put`` or on leaving. Leaving waits for the blocks already put."""
    handoff: queue.Queue[bytes | None] = queue.Queue(DEPTH)
    failed: list[BaseException] = []

    def consume() -> None:
        while (block := handoff.get()) is not None:
            if not failed:  # after a failure it only drains, so a put never waits forever
                try:
                    work(block)
                except BaseException as exc:  # handed to the producer
                    failed.append(exc)

    def put(block: bytes) -> None:
        if failed:
            raise failed[0]
        handoff.put(block)

    helper = _start(consume, "cosmos-write-behind")
    try:
        yield put
    finally:
        handoff.put(None)
        helper.join()
    if failed:
        raise failed[0]
