"""An SFTP session that learns, with its greeting, how much the server returns for one read.

OpenSSH's sftp-server answers a read with at most 261,120 bytes in the releases that have the
``limits@openssh.com`` extension (2021 on; 9.x has both), and with at most 64 KiB before. A read asked for
more than the server returns comes back short and its rest must be asked again (``streams.windowed_reads``).
The session sends the limits request right behind its INIT, so both answers come back in the round trip the
greeting takes anyway; a server without the extension answers "unsupported" and gets 64 KiB reads.
"""

from __future__ import annotations

import struct

import paramiko
from paramiko.message import Message
from paramiko.sftp import CMD_EXTENDED, CMD_EXTENDED_REPLY, CMD_INIT, CMD_VERSION, SFTPError

OLD_READ_LIMIT = 64 * 1024  # OpenSSH before limits@openssh.com, and servers that do not say
MAX_READ = 261120  # what we ask for at most (OpenSSH's SFTP_MAX_READ_LENGTH)
_LIMITS_ID = 0  # paramiko numbers its requests from 1


def send_greeting(client: paramiko.SFTPClient) -> None:
    """Send SFTP's INIT (version 3), the first packet of every session."""
    greeting = Message()
    greeting.add_int(3)
    client._send_packet(CMD_INIT, greeting)  # type: ignore[attr-defined]  # paramiko's, not in its stubs


class SFTPSession(paramiko.SFTPClient):
    """``paramiko.SFTPClient`` whose ``read_size`` is the largest read the server answers in full."""

    read_size = OLD_READ_LIMIT

    def _send_version(self) -> int:
        send_greeting(self)
        ask = Message()
        ask.add_int(_LIMITS_ID)
        ask.add_string("limits@openssh.com")
        self._send_packet(CMD_EXTENDED, ask)  # type: ignore[attr-defined]
        kind, data = self._read_packet()  # type: ignore[attr-defined]
        if kind != CMD_VERSION:
            raise SFTPError("Incompatible sftp protocol")
        answer, limits = self._read_packet()  # type: ignore[attr-defined]  # the limits, or "unsupported"
        if answer == CMD_EXTENDED_REPLY and len(limits) >= 20:
            _, _, max_read = struct.unpack(">IQQ", limits[:20])
            self.read_size = min(max_read, MAX_READ) if max_read else OLD_READ_LIMIT
        return int(struct.unpack(">I", data[:4])[0])
