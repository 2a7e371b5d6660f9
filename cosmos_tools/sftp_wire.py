"""SFTP reads and writes framed here, and their answers read straight off the channel, in the order asked
(imported with paramiko, when SSH is used).

paramiko's SFTPClient builds each request in a ``Message`` and reads each answer into one: a 128 KiB write was
copied five times before the channel copied it into its packets, and a read's data three times after the channel
buffer handed it out. The transfers (``streams.WindowedWrites``, ``streams.windowed_reads``) keep their requests
in order on a session nobody else uses meanwhile, so they frame READ and WRITE here: a write's data goes to the
channel cut at the packet size, and a read's data is copied once, out of the channel's buffer. Request
numbers come from the session's own counter, so they never clash with paramiko's requests; opening, closing and
renaming stay paramiko's.
"""

from __future__ import annotations

import struct
from typing import cast

import paramiko
from paramiko.message import Message
from paramiko.sftp import CMD_DATA, CMD_READ, CMD_STATUS, CMD_VERSION, CMD_WRITE

from .streams import CHUNK

_HEAD = struct.Struct(">IBI")  # length, type, request number (or, in a VERSION, the version)


def _number(sftp: paramiko.SFTPClient) -> int:
    """The session's next request number, taken as paramiko takes its own."""
    with sftp._lock:  # type: ignore[attr-defined]  # paramiko's, not in its stubs
        number: int = sftp.request_number
        sftp.request_number = number + 1
    return number


_DROPPED = "Server connection dropped: the SFTP channel closed"


def _send(chan: paramiko.Channel, data: bytes) -> None:
    while data:
        try:
            sent = chan.send(data)  # one packet at most: the window, or the box's packet size less 64
        except EOFError:  # paramiko's, when the socket is gone: not the end of a file
            raise paramiko.SSHException(_DROPPED) from None
        if sent <= 0:
            raise paramiko.SSHException(_DROPPED)
        data = data[sent:]


def _packet_size(chan: paramiko.Channel) -> int:
    """The data paramiko puts in one SSH packet on this channel: the box's maximum less 64 bytes."""
    return int(chan.out_max_packet_size) - 64


def _header(kind: int, number: int, handle: bytes, offset: int, tail: bytes, size: int) -> bytes:
    """A READ or WRITE request up to its ``size`` bytes of data: length, type, number, handle, offset, ``tail``."""
    body = struct.pack(">I", len(handle)) + handle + struct.pack(">Q", offset) + tail
    return _HEAD.pack(1 + 4 + len(body) + size, kind, number) + body


def write_size(dst: paramiko.SFTPFile) -> int:
    """The SFTP write size, near CHUNK, whose requests fill whole SSH packets. 128 KiB writes took four full packets
    and a fifth of 29 bytes (the header, with OpenSSH's 4-byte handles); these take four (a fifth fewer packets to
    build, encrypt and send)."""
    packet = _packet_size(dst.sftp.sock)
    header = len(_header(CMD_WRITE, 0, cast(bytes, dst.handle), 0, bytes(4), 0))  # the stubs say str; it is bytes
    return max(1, (CHUNK + header) // packet) * packet - header


def _request(sftp: paramiko.SFTPClient, kind: int, handle: bytes, offset: int, tail: bytes, data: bytes = b"") -> int:
    """Send one request, its data cut into whole packets: the first one carries the header. (A slice of bytes
    costs less than paramiko's handling of a view, which tries two conversions that fail.)"""
    number = _number(sftp)
    head = _header(kind, number, handle, offset, tail, len(data))
    chan = sftp.sock
    packet = _packet_size(chan)
    first = packet - len(head)
    _send(chan, head + data[:first])
    for at in range(first, len(data), packet):
        _send(chan, data[at:at + packet])
    return number


def send_write(sftp: paramiko.SFTPClient, handle: bytes, offset: int, data: bytes) -> int:
    """Ask the box to write ``data`` at ``offset``; return the request's number."""
    return _request(sftp, CMD_WRITE, handle, offset, struct.pack(">I", len(data)), data)


def send_read(sftp: paramiko.SFTPClient, handle: bytes, offset: int, length: int) -> int:
    """Ask the box for ``length`` bytes at ``offset``; return the request's number."""
    return _request(sftp, CMD_READ, handle, offset, struct.pack(">I", length))


def _exactly(chan: paramiko.Channel, size: int) -> bytes:
    parts = []
    while size:
        try:
            part = chan.recv(size)  # sends a window adjustment now and then: paramiko's EOFError if the socket is gone
        except EOFError:
            raise paramiko.SSHException(_DROPPED) from None
        if not part:
            raise paramiko.SSHException(_DROPPED)
        parts.append(part)
        size -= len(part)
    return parts[0] if len(parts) == 1 else b"".join(parts)


def _answer(sftp: paramiko.SFTPClient, number: int) -> tuple[int, int]:
    """Read up to the answer to request ``number``; return its type and the length of the rest of it.

    Skipped on the way: a stream session's greeting (VERSION), which it does not wait for, and the answers to
    earlier requests nobody waits for (an unawaited close, the rest of a window given up after a failure)."""
    chan = sftp.sock
    while True:
        length, kind, got = _HEAD.unpack(_exactly(chan, _HEAD.size))
        rest = length - 5
        if rest < 0:
            raise OSError(0, f"the SFTP server sent a packet of {length} bytes, too short for an answer")
        if kind != CMD_VERSION and got == number:
            return kind, rest
        if kind != CMD_VERSION and got > number:
            raise OSError(0, f"the SFTP server answered request {got} before request {number}")
        _exactly(chan, rest)


def _status(sftp: paramiko.SFTPClient, rest: int) -> None:
    """Raise what a STATUS says (EOFError at the end of a file, OSError for a refusal), or nothing for OK."""
    sftp._convert_status(Message(_exactly(sftp.sock, rest)))  # type: ignore[attr-defined]


def read_answer(sftp: paramiko.SFTPClient, number: int) -> bytes:
    """The data answering read request ``number``; EOFError if the file ends where it was asked."""
    kind, rest = _answer(sftp, number)
    if kind == CMD_DATA:
        (size,) = struct.unpack(">I", _exactly(sftp.sock, 4))
        return _exactly(sftp.sock, size)
    if kind == CMD_STATUS:
        _status(sftp, rest)
    raise OSError(0, "the SFTP server answered a read with no data")


def write_answer(sftp: paramiko.SFTPClient, number: int) -> None:
    """Wait for the answer to write request ``number``; OSError if the box refused the write."""
    kind, rest = _answer(sftp, number)
    if kind != CMD_STATUS:
        raise OSError(0, "the SFTP server answered a write with no status")
    _status(sftp, rest)
