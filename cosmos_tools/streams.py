"""Several SFTP sessions on the one SSH connection, moving byte ranges ("pieces") of files at the same time.

One SSH channel moves at most one window per round trip: about 2 MB, so 20 MB/s at 100 ms whatever the link
could carry. Each SFTP session is a channel of its own with its own window, so N sessions move N windows per
round trip. ``run_pieces`` hands the pieces of one transfer to one worker per session. An upload piece keeps
``IN_FLIGHT`` write requests outstanding and counts a byte only when the box has acknowledged its write; a
download piece keeps READ_AHEAD bytes of read requests outstanding (``windowed_reads``) and writes each block at
its offset here.
Callers verify the whole file afterwards (docs/transfers.md, "Long links").
"""

from __future__ import annotations

import os
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, cast

from .errors import LocalError, RemoteError, UserError

if TYPE_CHECKING:
    import paramiko


class _SFTPRequests(Protocol):
    """The request primitives of paramiko's SFTPClient that opening and closing a piece's file use (private: not in
    its stubs)."""

    def _request(self, t: int, *args: object) -> tuple[int, paramiko.Message]: ...
    def _async_request(self, fileobj: object, t: int, *args: object) -> int: ...


class _SFTPFileClose(Protocol):
    """paramiko's SFTPFile close that need not wait for the answer (private: not in its stubs)."""

    def _close(self, async_: bool = False) -> None: ...

# SFTP sessions a transfer uses at once on a long link. OpenSSH allows 10 sessions per connection (MaxSessions):
# 6 leaves room for the main SFTP session and the commands that run beside a transfer (hashing, following).
STREAMS = 6
LONG_LINK_SECONDS = 0.01  # a round trip this long or longer makes a long link
CHUNK = 128 * 1024  # bytes per SFTP request (OpenSSH allows 261120)
IN_FLIGHT = 32  # write requests outstanding per session: 4 MB, more than the box's 2 MB channel window
WINDOW = 8 * 1024 * 1024  # receive window of each extra SFTP channel (what downloads can have in flight)
READ_AHEAD = 2 * WINDOW  # bytes of read requests a download keeps outstanding per session
PIECE_MIN = 4 * 1024 * 1024  # a file is split into pieces no smaller than this
FIRST_REQUEST = 1 << 16  # a stream session's first request id: the server's greeting (version 3) is never taken
                         # for an answer


@dataclass
class Piece:
    """Bytes ``start`` to ``end`` of one file; ``done`` of them (from ``start``) have arrived."""

    key: int  # which file of the transfer
    start: int
    end: int
    done: int = 0

    @property
    def left(self) -> int:
        return self.end - self.start - self.done


def stream_session(chan: paramiko.Channel) -> paramiko.SFTPClient:
    """An SFTP client on a channel whose ``sftp`` subsystem was requested, that sends its greeting (INIT) and does not
    wait for the server's (VERSION): the first request goes with it, a round trip earlier. The VERSION is then read
    as an answer to no request and dropped (request ids start at FIRST_REQUEST); a channel the server closed
    instead fails at the first request."""
    import paramiko

    from .sftp_session import send_greeting

    class StreamSession(paramiko.SFTPClient):
        def _send_version(self) -> int:
            send_greeting(self)
            self.request_number = FIRST_REQUEST
            return 3

    return StreamSession(chan)


def split(key: int, size: int, streams: int, start: int = 0) -> list[Piece]:
    """Pieces covering bytes ``start`` to ``size`` of a file: ``streams`` of them when there are enough bytes,
    CHUNK-aligned."""
    count = max(1, min(streams, (size - start) // PIECE_MIN))
    step = max(CHUNK, -(-(size - start) // count // CHUNK) * CHUNK)
    return [Piece(key, at, min(at + step, size)) for at in range(start, size, step)] or [Piece(key, start, size)]


def landed(path: Path, pieces: list[Piece]) -> None:
    """Set each piece's ``done`` to the bytes a local file holds from the piece's start on without a gap (found
    with SEEK_HOLE, in whole CHUNKs unless it reaches the piece's end): what an earlier transfer left there."""
    with open(path, "rb") as handle:
        for piece in pieces:
            try:
                hole = os.lseek(handle.fileno(), piece.start, os.SEEK_HOLE)
            except OSError:  # the file ends before the piece starts
                hole = piece.start
            length = piece.end - piece.start
            piece.done = length if hole >= piece.end else max(0, hole - piece.start) // CHUNK * CHUNK


class Stopped(Exception):
    """Another worker failed: this one gave up its piece."""


def run_pieces(sessions: list[paramiko.SFTPClient], pieces: list[Piece],
               work: Callable[[paramiko.SFTPClient, Piece, threading.Event], None]) -> None:
    """Run ``work`` on every piece, one worker per session taking the next piece when done; the first failure
    stops the others (at their next request) and is raised once they have all stopped."""
    todo: queue.SimpleQueue[Piece] = queue.SimpleQueue()
    for piece in sorted(pieces, key=lambda p: -p.left):
        if piece.left:
            todo.put(piece)
    stop = threading.Event()
    failures: list[BaseException] = []

    def worker(sftp: paramiko.SFTPClient) -> None:
        while not stop.is_set():
            try:
                piece = todo.get_nowait()
            except queue.Empty:
                return
            try:
                work(sftp, piece, stop)
            except BaseException as exc:  # handed to the caller's thread
                if not isinstance(exc, Stopped):
                    failures.append(exc)
                stop.set()

    threads = [threading.Thread(target=worker, args=(s,), name="cosmos-stream", daemon=True) for s in sessions[1:]]
    for thread in threads:
        thread.start()
    try:
        worker(sessions[0])
    finally:
        for thread in threads:
            thread.join()
    if failures:
        raise failures[0]


class WindowedWrites:
    """Write requests at consecutive offsets of an open SFTP handle, ``depth`` of them outstanding; ``on_acked``
    counts the bytes of each write the box has acknowledged, in order. paramiko's own pipelined writes stop and
    wait for every answer once 100 are queued (the pipe runs dry each time) and do not say which bytes landed:
    hence requests framed here (``sftp_wire``)."""

    def __init__(self, sftp: paramiko.SFTPClient, handle: bytes, offset: int, depth: int,
                 on_acked: Callable[[int], None]) -> None:
        self.sftp, self.handle, self.offset, self.depth, self.on_acked = sftp, handle, offset, depth, on_acked
        self.pending: deque[tuple[int, int]] = deque()  # (request number, bytes)

    def write(self, data: bytes) -> None:
        """Send ``data`` at the next offset; wait for the oldest answers while more than ``depth`` are awaited."""
        from .sftp_wire import send_write

        self.pending.append((send_write(self.sftp, self.handle, self.offset, data), len(data)))
        self.offset += len(data)
        while len(self.pending) > self.depth:
            self.ack_oldest()

    def finish(self) -> None:
        """Wait for every answer."""
        while self.pending:
            self.ack_oldest()

    def ack_oldest(self) -> None:
        from .sftp_wire import write_answer

        number, size = self.pending.popleft()
        write_answer(self.sftp, number)  # raises OSError when the box refused the write
        self.on_acked(size)


def put_piece(sftp: paramiko.SFTPClient, remote: str, local: Path, piece: Piece, on_acked: Callable[[int], None],
              stop: threading.Event) -> None:
    """Write a piece of ``local`` into ``remote`` (created if missing, never truncated) at its offsets, keeping
    IN_FLIGHT requests outstanding (``WindowedWrites``); ``piece.done`` and ``on_acked`` count only bytes whose
    write the box has acknowledged. paramiko's ``open`` cannot create a file without truncating it: hence its
    request primitives here too."""
    from paramiko.sftp import CMD_CLOSE, CMD_HANDLE, CMD_OPEN, SFTP_FLAG_CREATE, SFTP_FLAG_WRITE
    from paramiko.sftp_attr import SFTPAttributes

    requests = cast(_SFTPRequests, sftp)
    kind, msg = requests._request(CMD_OPEN, remote, SFTP_FLAG_WRITE | SFTP_FLAG_CREATE, SFTPAttributes())
    if kind != CMD_HANDLE:
        raise OSError(0, "the SFTP server answered an open with no handle")
    handle = msg.get_binary()

    def acked(n: int) -> None:
        piece.done += n
        on_acked(n)

    pos = piece.start + piece.done
    writes = WindowedWrites(sftp, handle, pos, IN_FLIGHT, acked)
    with open(local, "rb") as src:
        src.seek(pos)
        while pos < piece.end:
            if stop.is_set():
                raise Stopped
            data = src.read(min(CHUNK, piece.end - pos))
            if not data:
                raise UserError(f"{local} became shorter while it was being uploaded; upload it again")
            writes.write(data)
            pos += len(data)
        writes.finish()
    requests._async_request(type(None), CMD_CLOSE, handle)  # every write is acknowledged: no need to wait for this


def get_piece(sftp: paramiko.SFTPClient, remote: str, local: Path, fd: int, piece: Piece,
              on_bytes: Callable[[int], None], stop: threading.Event) -> None:
    """Read a piece of ``remote`` with read requests queued ahead (``windowed_reads``) and write it at its offsets
    into ``fd``; ``piece.done`` and ``on_bytes`` count the bytes written here."""
    src = sftp.open(remote, "rb")
    try:
        offset = piece.start + piece.done
        for data in windowed_reads(sftp, cast(bytes, src.handle), remote, offset, piece.end, CHUNK):
            if stop.is_set():
                raise Stopped
            _write_at(fd, data, offset, local)
            offset += len(data)
            piece.done += len(data)
            on_bytes(len(data))
    finally:
        cast(_SFTPFileClose, src)._close(async_=True)  # nothing to wait for: a round trip saved


def windowed_reads(sftp: paramiko.SFTPClient, handle: bytes, remote: str, start: int, end: int,
                   size: int) -> Iterator[bytes]:
    """Bytes ``start`` to ``end`` of an open SFTP handle, in order, read ``size`` at a time with READ_AHEAD bytes of
    requests outstanding. A server that answers less than asked gets the rest asked again and smaller requests
    from then on (answers that came meanwhile wait here, at most READ_AHEAD of them).

    paramiko's prefetch takes itself for finished whenever every request it sent is answered, even while its thread
    has more to send; the reader then asks for the rest one round trip at a time while that thread asks for the same
    bytes again (a resumed download in pieces moved up to 87 MB twice): hence requests framed here too."""
    from .sftp_wire import read_answer, send_read

    pending: deque[tuple[int, int, int]] = deque()  # (request number, offset, length), in the order sent
    early: dict[int, bytes] = {}  # answers past a gap being asked again, by offset
    asked = given = start

    def ask(offset: int, length: int) -> None:
        pending.append((send_read(sftp, handle, offset, length), offset, length))

    while given < end:
        while asked < end and len(pending) * size < READ_AHEAD:
            ask(asked, min(size, end - asked))
            asked += pending[-1][2]
        number, offset, length = pending.popleft()
        try:
            data = read_answer(sftp, number)
        except EOFError:  # the server's answer: end of file
            data = b""
        if not data:
            raise RemoteError(f"{remote} ended at byte {given} on the box, before the {end} bytes it had when the "
                              "transfer began; was it still being written? run the transfer again")
        if len(data) < length:
            size = max(1, len(data))
            ask(offset + len(data), length - len(data))
        early[offset] = data
        while given in early:
            block = early.pop(given)
            given += len(block)
            yield block


def _write_at(fd: int, data: bytes, offset: int, local: Path) -> None:
    view = memoryview(data)
    try:
        while view:
            written = os.pwrite(fd, view, offset)
            view, offset = view[written:], offset + written
    except OSError as exc:
        raise LocalError(f"cannot write {local}: {exc.strerror or exc} (on this machine); free space or fix "
                         "permissions there, then download again") from None
