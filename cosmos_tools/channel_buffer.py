"""A channel's receive buffer that hands out its front in constant time (imported with paramiko, when SSH is used).

paramiko's ``BufferedPipe`` keeps what arrived in an ``array`` and drops each read from the front with
``del buffer[:n]``, which moves everything behind it. An SFTP download keeps a window of data (2 MB, more on
a long link) queued there and reads it as a 4-byte length, then a 128 KiB block: every read moved the
whole queue. That copying, under the GIL the packet thread needs too, held a loopback download to about
0.6 of scp. A ``bytearray`` drops its front by moving its start (CPython does not copy), so the same reads
cost what they return. Only the storage changes: locking, waits, timeouts and close stay paramiko's.
"""

from __future__ import annotations

import paramiko
from paramiko.buffered_pipe import BufferedPipe


class ByteQueue(BufferedPipe):
    """``BufferedPipe`` over a ``bytearray``: appends at the end, drops the front without moving the rest."""

    def __init__(self) -> None:
        super().__init__()
        self._buffer = bytearray()

    def _buffer_frombytes(self, data: bytes) -> None:
        self._buffer.extend(data)

    def _buffer_tobytes(self, limit: int | None = None) -> bytes:
        return bytes(self._buffer[:limit])


def use_byte_queues(chan: paramiko.Channel) -> paramiko.Channel:
    """Give a new session channel ``ByteQueue`` receive buffers for its output and its stderr (nothing arrives on
    a session before its first request: no data is in the old buffers)."""
    chan.in_buffer = ByteQueue()
    chan.in_stderr_buffer = ByteQueue()
    return chan
