"""A channel's receive buffer that keeps what arrived as the packets it came in (imported with paramiko, when SSH
is used).

paramiko's ``BufferedPipe`` copies each packet into an ``array`` and drops each read from the front with
``del buffer[:n]``, which moves everything queued behind it (up to a window, 2 MB; 16 MB of reads are
outstanding in a download): an SFTP download reads a 4-byte length, then a block, and moved the queue twice
per block. A ``bytearray`` is no cure: CPython drops its front by moving its start, but copies the whole queue
into a new allocation whenever it grows after that, or falls below half its allocation; that copying took a
fifth of the GIL's time in a loopback download. Here the packets stay as they came, in a deque: a read copies
only what it returns, once, and a read of exactly one packet returns it without copying. Only the storage
changes: locking, waits, timeouts and close stay paramiko's.
"""

from __future__ import annotations

from collections import deque
from itertools import islice

import paramiko
from paramiko.buffered_pipe import BufferedPipe


class Chunks:
    """Bytes queued as the objects they were added as; ``BufferedPipe`` needs only ``len`` and ``del [:n]`` of
    its buffer, besides the two methods ``ByteQueue`` replaces."""

    def __init__(self) -> None:
        self._chunks: deque[bytes] = deque()
        self._skip = 0  # bytes of the first chunk already taken
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def append(self, data: bytes) -> None:
        if data:
            self._chunks.append(data)
            self._size += len(data)

    def front(self, limit: int | None) -> bytes:
        """The first ``limit`` bytes (all when None), copied once at most."""
        want = self._size if limit is None else min(limit, self._size)
        if not want:
            return b""
        first = self._chunks[0]
        if self._skip == 0 and len(first) == want:
            return first
        if len(first) - self._skip >= want:
            return first[self._skip:self._skip + want]
        parts, need = [memoryview(first)[self._skip:]], want - (len(first) - self._skip)
        for chunk in islice(self._chunks, 1, None):
            parts.append(memoryview(chunk)[:need])
            need -= len(parts[-1])
            if not need:
                break
        return b"".join(parts)

    def __delitem__(self, front: slice) -> None:
        """Drop the first ``front.stop`` bytes (all when None): the only deletion ``BufferedPipe`` makes."""
        if front.start or front.step:
            raise ValueError("only the front of a Chunks can be deleted")
        drop = self._size if front.stop is None else min(front.stop, self._size)
        self._size -= drop
        while drop:
            left = len(self._chunks[0]) - self._skip
            if drop < left:
                self._skip += drop
                return
            self._chunks.popleft()
            self._skip, drop = 0, drop - left


class ByteQueue(BufferedPipe):
    """``BufferedPipe`` over ``Chunks``: a packet is queued without copying and a read copies only what it
    returns."""

    def __init__(self) -> None:
        super().__init__()
        self._buffer = Chunks()

    def _buffer_frombytes(self, data: bytes) -> None:
        self._buffer.append(data)

    def _buffer_tobytes(self, limit: int | None = None) -> bytes:
        return self._buffer.front(limit)


def use_byte_queues(chan: paramiko.Channel) -> paramiko.Channel:
    """Give a new session channel ``ByteQueue`` receive buffers for its output and its stderr (nothing arrives on
    a session before its first request: no data is in the old buffers)."""
    chan.in_buffer = ByteQueue()
    chan.in_stderr_buffer = ByteQueue()
    return chan
