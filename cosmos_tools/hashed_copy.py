"""The download's copy loop: it hashes what arrives (the sha256 the file is verified with, continuing a resumed
one's digest).

The local side, the hash and the file, runs in two helper threads; the caller's thread keeps the box's side,
where paramiko does its packet work under the GIL. Hashing and writing a block release the GIL, so on two cores
they overlap the SFTP side instead of adding to it (docs/transfers.md, "Loopback"). An upload needs no such loop:
its local file is hashed by a thread of its own while it is sent (sync.py).
"""

from __future__ import annotations

import contextlib
import hashlib
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from .transport import Resume

DEPTH = 16  # blocks queued for each helper (4 MiB at 255 KiB)


class Writable(Protocol):
    """A local file open for writing bytes."""

    def write(self, data: bytes, /) -> object: ...


def receive_hashing(blocks: Iterable[bytes], dst: Writable, on_bytes: Callable[[int], None],
                    resume: Resume | None = None) -> str:
    """Write ``blocks`` to the local file ``dst``, hashed and written behind in two helper threads (one after the
    other in one helper, they were the slower side); return the sha256 of what passed. ``on_bytes`` counts what
    arrived."""
    digest = resume.digest if resume else hashlib.sha256()
    with _behind(digest.update) as hash_behind, _behind(dst.write) as write_behind:
        for block in blocks:
            hash_behind(block)
            write_behind(block)
            on_bytes(len(block))
    return digest.hexdigest()


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

    helper = threading.Thread(target=consume, name="cosmos-write-behind", daemon=True)
    helper.start()
    try:
        yield put
    finally:
        handoff.put(None)
        helper.join()
    if failed:
        raise failed[0]
