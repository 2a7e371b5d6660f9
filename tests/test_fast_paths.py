"""The pieces that make one-stream transfers fast: the channel buffer, the socket's read-ahead, the copy loops with
the local side in a helper thread, and write requests that fill whole SSH packets. Each keeps the behaviour of what
it replaced; the transfers through them are tested against the rehearsal sshd in test_sync and test_link_faults."""

from __future__ import annotations

import errno
import hashlib
import io
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import paramiko
import pytest
from paramiko.buffered_pipe import PipeTimeout

from cosmos_tools import hashed_copy, sftp_wire, transport
from cosmos_tools.channel_buffer import ByteQueue
from cosmos_tools.errors import LocalError, RemoteError
from cosmos_tools.sftp_session import SFTPSession
from cosmos_tools.sftp_wire import write_size
from cosmos_tools.ssh import HeardSocket
from cosmos_tools.streams import windowed_reads
from cosmos_tools.transport import Resume


def test_byte_queue_reads_what_was_fed_in_order_in_any_sizes():
    pipe = ByteQueue()
    pipe.feed(b"abc")
    pipe.feed(b"defgh")
    assert len(pipe) == 8 and pipe.read_ready()
    assert pipe.read(2) == b"ab"
    assert pipe.read(4) == b"cdef"
    assert pipe.read(100) == b"gh"
    assert not pipe.read_ready() and len(pipe) == 0


def test_byte_queue_waits_times_out_and_ends_like_paramikos():
    pipe = ByteQueue()
    with pytest.raises(PipeTimeout):
        pipe.read(4, timeout=0.05)
    threading.Timer(0.05, pipe.feed, args=(b"late",)).start()
    assert pipe.read(10, timeout=5) == b"late"
    pipe.feed(b"rest")
    assert pipe.empty() == b"rest" and len(pipe) == 0
    pipe.feed(b"tail")
    pipe.close()
    assert pipe.read(10) == b"tail" and pipe.read(10) == b""  # what came before the close, then EOF


def test_byte_queue_keeps_packets_as_they_came_and_copies_only_what_a_read_returns():
    pipe, packets = ByteQueue(), [os.urandom(32768) for _ in range(8)]
    for packet in packets:
        pipe.feed(packet)
    assert pipe.read(32768) is packets[0]  # a whole packet: handed out as it came
    assert pipe.read(4) == packets[1][:4]
    assert pipe.read(100_000) == b"".join(packets[1:])[4:100_004]  # across packets, from inside one
    rest = b"".join(packets)[32768 + 100_004:]
    assert len(pipe) == len(rest) and pipe.empty() == rest and len(pipe) == 0
    pipe.feed(b"")
    assert not pipe.read_ready()


def test_a_session_channel_gets_byte_queues(rehearsal_host, project):
    from cosmos_tools.config import load_config

    with transport.connect(load_config()) as t:
        chan = t._session("testing")  # type: ignore[attr-defined]  # the one place SSH makes channels
        assert isinstance(chan.in_buffer, ByteQueue) and isinstance(chan.in_stderr_buffer, ByteQueue)
        chan.close()
        assert t.run(["head", "-c", "3000000", "/dev/zero"]).stdout == bytes(3_000_000)  # more than a window


def test_the_socket_reads_ahead_and_hands_out_at_most_what_is_asked():
    ours, theirs = socket.socketpair()
    heard = HeardSocket(ours.family, ours.type, ours.proto, fileno=ours.detach())
    data = bytes(range(256)) * 2000  # 512,000 bytes: more than one read-ahead

    def send() -> None:
        theirs.sendall(data)
        theirs.close()

    threading.Thread(target=send, daemon=True).start()
    time.sleep(0.2)  # the sender has filled the socket's buffer
    got = heard.recv(16)
    assert len(got) == 16 and heard.ahead.end > 16  # one read of up to READ_AHEAD serves the next calls
    while chunk := heard.recv(5000):
        assert len(chunk) <= 5000
        got += chunk
    assert got == data and heard.last_heard > 0
    heard.close()


@pytest.mark.skipif(not hasattr(socket, "TCP_QUICKACK"), reason="TCP_QUICKACK is Linux's")
def test_the_socket_acknowledges_at_once_after_each_read():
    with socket.create_server(("127.0.0.1", 0)) as server:
        raw = socket.create_connection(server.getsockname())
        peer, _ = server.accept()
    heard = HeardSocket(raw.family, raw.type, raw.proto, fileno=raw.detach())
    for word in (b"first", b"second"):
        heard.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 0)  # as Linux leaves it after a while
        peer.sendall(word)
        assert heard.recv(100) == word
        assert heard.getsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK) == 1
    heard.close()
    peer.close()


def test_write_size_fills_whole_packets():
    class Channel:
        out_max_packet_size = 32768  # OpenSSH's session channels

    class Client:
        sock = Channel()

    class File:
        sftp = Client()
        handle = b"\0\0\0\1"  # OpenSSH's sftp-server: 4 bytes

    size = write_size(File())  # type: ignore[arg-type]
    assert size == 4 * (32768 - 64) - 29 and size < 128 * 1024 + 29


def test_receive_hashing_copies_and_hashes_everything():
    data = bytes(range(256)) * 5000
    out, counted = io.BytesIO(), list[int]()
    blocks = [data[at:at + 4096] for at in range(0, len(data), 4096)]
    digest = hashed_copy.receive_hashing(blocks, out, counted.append)
    assert out.getvalue() == data and sum(counted) == len(data)
    assert digest == hashlib.sha256(data).hexdigest()


def test_a_resumed_copy_continues_the_prefix_digest():
    data = b"0123456789" * 10_000
    resume = Resume(30_000, hashlib.sha256(data[:30_000]))
    out = io.BytesIO()
    assert hashed_copy.receive_hashing([data[30_000:60_000], data[60_000:]], out, lambda n: None, resume) == \
        hashlib.sha256(data).hexdigest()


def test_a_failed_receive_ends_the_helpers():
    def broken():
        yield b"x" * 20_000
        raise paramiko.SSHException("channel closed")

    before = threading.active_count()
    with pytest.raises(paramiko.SSHException):
        hashed_copy.receive_hashing(broken(), io.BytesIO(), lambda n: None)
    assert _settles(before)


def test_a_local_write_error_reaches_the_receiver_and_the_helper_ends():
    class Full(io.BytesIO):
        def write(self, data) -> int:
            raise LocalError("cannot write out.mp4: No space left on device (on this machine)")

    before = threading.active_count()
    with pytest.raises(LocalError, match="No space left"):
        hashed_copy.receive_hashing([b"z" * 4096] * 250, Full(), lambda n: None)
    assert _settles(before)


def _settles(threads: int) -> bool:
    """The helper thread has ended (within a second)."""
    deadline = time.monotonic() + 1
    while threading.active_count() > threads and time.monotonic() < deadline:
        time.sleep(0.01)
    return threading.active_count() <= threads


SFTP_SERVER = "/usr/lib/openssh/sftp-server"


class Recorder:
    """A channel that keeps what each send was given: an OpenSSH session channel's packet size, one packet per
    send; answers are queued with ``answer``."""

    out_max_packet_size = 32768

    def __init__(self, window: int = 1 << 30) -> None:
        self.sent: list[bytes] = []
        self.window, self.answers = window, ByteQueue()

    def send(self, data: bytes) -> int:
        taken = data[:min(self.window, self.out_max_packet_size - 64)]
        self.sent.append(bytes(taken))
        return len(taken)

    def recv(self, size: int) -> bytes:
        return self.answers.read(size, timeout=1)

    def answer(self, kind: int, number: int, body: bytes) -> None:
        self.answers.feed(struct.pack(">IBI", 5 + len(body), kind, number) + body)


class WireClient:
    """What ``sftp_wire`` uses of an SFTPClient: its lock, its request counter, its channel, its status reading."""

    def __init__(self, chan: Recorder) -> None:
        self._lock, self.request_number, self.sock = threading.Lock(), 7, chan

    _convert_status = paramiko.SFTPClient._convert_status  # type: ignore[attr-defined]


def _status(code: int, text: str = "") -> bytes:
    return struct.pack(">II", code, len(text)) + text.encode() + struct.pack(">I", 0)


def test_a_write_request_fills_whole_packets_and_takes_the_next_request_number():
    chan = Recorder()
    client = WireClient(chan)
    data = os.urandom(4 * (32768 - 64) - 29)  # write_size's for a 4-byte handle
    assert sftp_wire.send_write(client, b"\0\0\0\1", 5, data) == 7 and client.request_number == 8
    assert [len(p) for p in chan.sent] == [32768 - 64] * 4
    wire = b"".join(chan.sent)
    assert wire[:29] == struct.pack(">IBII4sQI", 25 + len(data), 6, 7, 4, b"\0\0\0\1", 5, len(data))
    assert wire[29:] == data


def test_a_request_cut_short_by_the_window_is_sent_whole():
    chan = Recorder(window=1000)
    sftp_wire.send_write(WireClient(chan), b"h", 0, b"x" * 5000)
    assert b"".join(chan.sent)[-5000:] == b"x" * 5000 and max(map(len, chan.sent)) == 1000


def test_answers_are_read_in_order_skipping_a_greeting_and_earlier_unawaited_ones():
    chan = Recorder()
    client = WireClient(chan)
    chan.answers.feed(struct.pack(">IBI", 5 + 6, 2, 3) + b"extras")  # a stream session's VERSION (3)
    chan.answer(101, 5, _status(0))  # an unawaited close from before
    chan.answer(103, 7, struct.pack(">I", 3) + b"abc")
    chan.answer(101, 8, _status(1, "End of file"))
    chan.answer(101, 9, _status(0))
    chan.answer(101, 10, _status(3, "Permission denied"))
    assert sftp_wire.read_answer(client, 7) == b"abc"
    with pytest.raises(EOFError):
        sftp_wire.read_answer(client, 8)
    sftp_wire.write_answer(client, 9)
    with pytest.raises(OSError) as refused:
        sftp_wire.write_answer(client, 10)
    assert refused.value.errno == errno.EACCES and len(chan.answers) == 0


def test_an_answer_out_of_order_or_of_the_wrong_kind_is_an_error():
    chan = Recorder()
    chan.answer(101, 9, _status(0))
    with pytest.raises(OSError, match="answered request 9 before request 8"):
        sftp_wire.write_answer(WireClient(chan), 8)
    chan = Recorder()
    chan.answer(101, 8, _status(0))
    with pytest.raises(OSError, match="answered a read with no data"):
        sftp_wire.read_answer(WireClient(chan), 8)
    chan = Recorder()
    chan.answer(103, 8, struct.pack(">I", 1) + b"x")
    with pytest.raises(OSError, match="answered a write with no status"):
        sftp_wire.write_answer(WireClient(chan), 8)


def test_a_packet_too_short_to_be_an_answer_is_an_error():
    chan = Recorder()
    chan.answers.feed(struct.pack(">IBI", 3, 101, 7))
    with pytest.raises(OSError, match="packet of 3 bytes, too short"):
        sftp_wire.write_answer(WireClient(chan), 7)


def test_a_channel_that_closes_mid_answer_is_a_dropped_connection():
    chan = Recorder()
    chan.answers.feed(struct.pack(">IBI", 40, 103, 7))
    chan.answers.close()
    with pytest.raises(paramiko.SSHException, match="connection dropped"):
        sftp_wire.read_answer(WireClient(chan), 7)


def test_a_socket_gone_under_the_channel_is_a_dropped_connection_not_the_end_of_a_file():
    """paramiko's channel raises EOFError when the window adjustment a read sends, or a send, finds the socket
    gone; an EOFError from ``read_answer`` means the file ended (a download would blame the file)."""

    class Gone(Recorder):
        def send(self, data: bytes) -> int:
            raise EOFError

        def recv(self, size: int) -> bytes:
            raise EOFError

    for call in (lambda: sftp_wire.read_answer(WireClient(Gone()), 7),
                 lambda: sftp_wire.send_write(WireClient(Gone()), b"h", 0, b"data")):
        with pytest.raises(paramiko.SSHException, match="connection dropped"):
            call()


def test_ctrl_c_is_held_inside_the_sftp_framing_as_inside_paramiko():
    seen = []

    class Peek(Recorder):
        def send(self, data: bytes) -> int:
            seen.append(transport._inside_paramiko(sys._getframe(1)))  # the frame of sftp_wire that called
            return super().send(data)

    sftp_wire.send_read(WireClient(Peek()), b"h", 0, 10)
    assert seen == [True] and not transport._inside_paramiko(sys._getframe())


class NamedSocket(socket.socket):
    """A socket paramiko's SFTP client takes for a channel (it logs the channel's name); requests framed by
    ``sftp_wire`` fill packets of an OpenSSH session channel's size."""

    out_max_packet_size = 32768

    def get_name(self) -> str:
        return "sftp-server"


@pytest.fixture
def sftp_server():
    """OpenSSH's sftp-server on a socket pair (its own options), as sshd runs it for the ``sftp`` subsystem."""
    started = []

    def start(*options: str) -> SFTPSession:
        ours, theirs = socket.socketpair()
        started.append(subprocess.Popen([SFTP_SERVER, *options], stdin=theirs.fileno(), stdout=theirs.fileno()))
        theirs.close()
        return SFTPSession(NamedSocket(ours.family, ours.type, ours.proto, fileno=ours.detach()))  # type: ignore[arg-type]

    yield start
    for server in started:
        server.kill()
        server.wait()


@pytest.mark.skipif(not Path(SFTP_SERVER).exists(), reason="needs OpenSSH's sftp-server")
@pytest.mark.parametrize(("options", "read_size"), [((), 261120), (("-P", "limits"), 64 * 1024)])
def test_the_session_reads_what_the_server_answers_in_full(sftp_server, tmp_path, options, read_size):
    """OpenSSH says its limit when asked; one that refuses the question (as before 8.7) gets 64 KiB reads."""
    data = bytes(range(256)) * 4000
    (tmp_path / "f").write_bytes(data)
    session = sftp_server(*options)
    assert session.read_size == read_size
    with session.open(str(tmp_path / "f"), "rb") as src:
        blocks = windowed_reads(session, src.handle, "f", 0, len(data), session.read_size)
        assert hashed_copy.receive_hashing(blocks, io.BytesIO(), lambda n: None) == hashlib.sha256(data).hexdigest()
    session.close()


@pytest.mark.skipif(not Path(SFTP_SERVER).exists(), reason="needs OpenSSH's sftp-server")
def test_windowed_reads_ask_again_for_what_the_server_left_out(sftp_server, tmp_path):
    """Reads larger than the server answers (OpenSSH: 261,120 bytes) come back short: the rest is asked again, the
    bytes come out whole and in order, and the requests shrink to what the server gives."""
    data = os.urandom(3_000_000)
    (tmp_path / "f").write_bytes(data)
    session = sftp_server()
    with session.open(str(tmp_path / "f"), "rb") as src:
        blocks = list(windowed_reads(session, src.handle, "f", 1000, len(data), 400_000))
    assert b"".join(blocks) == data[1000:]
    assert blocks[0] == data[1000:262_120] and max(map(len, blocks)) == 261_120
    session.close()


@pytest.mark.skipif(not Path(SFTP_SERVER).exists(), reason="needs OpenSSH's sftp-server")
def test_windowed_reads_of_a_file_that_became_shorter_say_so(sftp_server, tmp_path):
    (tmp_path / "f").write_bytes(b"v" * 500_000)
    session = sftp_server()
    with session.open(str(tmp_path / "f"), "rb") as src, \
            pytest.raises(RemoteError, match="f ended at byte 500000 on the box, before the 900000 bytes"):
        list(windowed_reads(session, src.handle, "f", 0, 900_000, 65536))
    session.close()


def test_a_held_ctrl_c_is_raised_in_our_code_and_never_lost():
    """paramiko_safe_sigint holds a Ctrl-C that came inside paramiko as an armed 50 ms timer (see transport.py)."""
    transport.raise_held_interrupt()  # nothing held: nothing raised
    with pytest.raises(KeyboardInterrupt), transport.paramiko_safe_sigint():
        signal.setitimer(signal.ITIMER_REAL, 30)  # held (far off, so only the call below can raise it)
        transport.raise_held_interrupt()
    assert signal.getitimer(signal.ITIMER_REAL)[0] == 0
    with pytest.raises(KeyboardInterrupt), transport.paramiko_safe_sigint():
        signal.setitimer(signal.ITIMER_REAL, 30)  # still held when the block ends
    assert signal.getitimer(signal.ITIMER_REAL)[0] == 0
