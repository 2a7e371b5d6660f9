"""SSH to the GPU box: reach it (through its jump hosts, the route ``ssh_config`` resolves), run the key
exchange and check the host key of each host on the way, log in, and work over one paramiko connection
(``SSHTransport``: commands on session channels, files over one SFTP session); plus the OpenSSH
``ssh`` argv with the same settings for ``cosmos-tools ssh``. Host keys are judged by ``hostkeys``.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import select
import shlex
import shutil
import socket
import stat
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol, TypeVar, cast

from . import transport
from .config import Config
from .errors import LocalError, RemoteError, UserError
from .fsutil import write_text_atomic
from .hashed_copy import receive_hashing
from .hostkeys import KnownHosts, check_host_key, load_known_hosts
from .ssh_config import Endpoint, Route, resolve, user_config_path
from .streams import (
    IN_FLIGHT,
    LONG_LINK_SECONDS,
    STREAMS,
    WINDOW,
    Piece,
    WindowedWrites,
    get_piece,
    put_piece,
    run_pieces,
    stream_session,
    windowed_reads,
)
from .transport import (
    NO_FOLDER,
    PARTS_RECORD,
    Completed,
    ConnectionLost,
    LocalSink,
    Resume,
    Started,
    Transport,
)

if TYPE_CHECKING:
    import paramiko

    from .sftp_session import SFTPSession

T = TypeVar("T")

SURE_LONG_SECONDS = 0.04  # half a login this slow is a long link's round trip (loopback at load 12: up to 73 ms)
KEEPALIVES_PER_LIMIT = 4  # a quiet link is asked for a reply this often within SSH_ALIVE_TIMEOUT
QUICKACK = getattr(socket, "TCP_QUICKACK", None)  # Linux only
READ_AHEAD = 256 * 1024  # bytes HeardSocket asks the kernel for at once (several 32 KB packets)
FAST_CIPHERS = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com", "aes128-ctr", "aes256-ctr")


def alive_limit(route: Route) -> float:
    """SSH_ALIVE_TIMEOUT (or the alias's ServerAliveInterval): seconds of silence after which the link is lost."""
    if route.alive <= 0:
        raise UserError(f"SSH_ALIVE_TIMEOUT must be more than 0 seconds (it is {route.alive:g}); fix it in config.sh")
    return route.alive


class ReadAhead:
    """What one read of up to READ_AHEAD bytes brought, into a buffer kept for the connection: ``take`` hands it
    out in the sizes asked for. Paramiko asks for each packet's first block, then for the rest, two reads a
    packet; one read now serves several packets (and through a jump host, the channel's buffer is emptied whole
    instead of moved down on every read). A new ``bytes`` of READ_AHEAD for every read, as ``recv`` makes, is
    above glibc's mmap threshold: each read mapped and unmapped it (16 us more per small read, and a download
    faulted in every page), hence the one buffer."""

    def __init__(self) -> None:
        self.view = memoryview(bytearray(READ_AHEAD))
        self.at = self.end = 0

    def take(self, bufsize: int, read_into: Callable[[memoryview], int]) -> bytes:
        """At most ``bufsize`` bytes: what is left of the last read, else what a new ``read_into`` the buffer
        brings (b"" at the end)."""
        if self.at == self.end:
            self.at, self.end = 0, read_into(self.view)
        start = self.at
        self.at = min(start + bufsize, self.end)
        return bytes(self.view[start:self.at])


class HeardSocket(socket.socket):
    """A socket that notes when it last received anything (``LinkWatchdog`` reads it), reads ahead
    (``ReadAhead``) and acknowledges at once.

    sshd leaves Nagle on for commands without a terminal, so its second small write waits for our
    acknowledgement of the first, which Linux delays by 40 ms: the first command on every connection took
    48 ms instead of 5. TCP_QUICKACK, set again after each read (Linux clears it), acknowledges at once."""

    last_heard = 0.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.ahead = ReadAhead()

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        if flags:  # paramiko passes none; anything else reads the socket itself
            return super().recv(bufsize, flags)
        return self.ahead.take(bufsize, self._read_into)

    def _read_into(self, buffer: memoryview) -> int:
        size = super().recv_into(buffer)
        self.last_heard = time.monotonic()
        if QUICKACK is not None:
            with contextlib.suppress(OSError):  # closed meanwhile by the watchdog: the next read reports it
                self.setsockopt(socket.IPPROTO_TCP, QUICKACK, 1)
        return size


class HeardChannel:
    """A ``direct-tcpip`` channel through a jump host, used as the next host's socket; notes when it last received
    and reads ahead (``ReadAhead``)."""

    last_heard = 0.0

    def __init__(self, chan: paramiko.Channel) -> None:
        self.chan = chan
        self.ahead = ReadAhead()

    def recv(self, bufsize: int) -> bytes:
        return self.ahead.take(bufsize, self._read_into)

    def _read_into(self, buffer: memoryview) -> int:
        data = self.chan.recv(len(buffer))
        self.last_heard = time.monotonic()
        buffer[:len(data)] = data
        return len(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.chan, name)


def _interruptible(on_bytes: Callable[[int], None]) -> Callable[[int], None]:
    """``on_bytes``, then a held Ctrl-C raised (``transport.raise_held_interrupt``): after each block, in our code."""
    def counted(n: int) -> None:
        on_bytes(n)
        transport.raise_held_interrupt()

    return counted


def open_socket(host: str, port: int, timeout: float, alive: float, hop: str = "") -> HeardSocket:
    """A TCP connection with TCP_NODELAY, or one clear line saying why the box (or jump host ``hop``, a label)
    cannot be reached. Unacknowledged data older than ``alive`` seconds ends it (TCP_USER_TIMEOUT, Linux).
    """
    where = f"{host}:{port}" + (f" ({hop})" if hop else "")
    fix = "check ProxyJump and that host's HostName and Port in ~/.ssh/config" if hop else ""
    try:
        raw = socket.create_connection((host, port), timeout=timeout or None)
    except socket.gaierror as exc:
        raise RemoteError(f"cannot resolve {hop or 'REMOTE_HOST'} {host!r} ({exc.strerror}); "
                          f"{fix or 'check REMOTE_HOST in config.sh'}") from None
    except ConnectionRefusedError:
        raise RemoteError(f"{where} refused the connection: "
                          f"{fix or 'is the box up, sshd running, REMOTE_PORT right?'}") from None
    except TimeoutError:
        raise RemoteError(f"timed out after {timeout:g} s connecting to {where}: is the box up and the address "
                          "right? (SSH_TIMEOUT sets the wait)") from None
    except OSError as exc:
        raise RemoteError(f"cannot reach {where}: {exc.strerror or exc}; "
                          f"{fix or 'check REMOTE_HOST/REMOTE_PORT and your network'}") from None
    sock = HeardSocket(raw.family, raw.type, raw.proto, fileno=raw.detach())
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if hasattr(socket, "TCP_USER_TIMEOUT"):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, max(1, round(alive * 1000)))
    return sock


class LinkWatchdog:
    """Notices a silent link in every phase: when nothing has come from the box for a quarter of ``limit``
    seconds it asks for a reply (``keepalive@openssh.com`` with want_reply, which any OpenSSH answers);
    when nothing at all has come for ``limit`` seconds it shuts the socket, so every blocked read and
    write wakes up and the caller reports ConnectionLost. A job printing nothing does not count: the
    keepalive answers keep the link heard.
    """

    def __init__(self, conn: paramiko.Transport, sock: HeardSocket | HeardChannel, limit: float) -> None:
        self.conn, self.sock, self.limit = conn, sock, limit
        self.interval = limit / KEEPALIVES_PER_LIMIT
        self.silent: float | None = None  # seconds of silence that made it shut the link
        self._stop = threading.Event()
        self._requests = threading.Lock()
        sock.last_heard = time.monotonic()
        for job, name in ((self._watch, "cosmos-link-watch"), (self._ask, "cosmos-link-keepalive")):
            threading.Thread(target=job, name=name, daemon=True).start()

    def quiet(self) -> float:
        return time.monotonic() - self.sock.last_heard

    def round_trip(self) -> None:
        """One ``keepalive@openssh.com`` with want_reply, answered (or the link gone). paramiko keeps a single
        pending global request per connection (one event, one answer): two at once lose an answer and one
        caller waits for ever, so the watchdog's requests and a caller's (timing the link) take turns here."""
        with self._requests:
            self.conn.global_request("keepalive@openssh.com", wait=True)

    def _ask(self) -> None:
        """Keep one keepalive request in flight while the link is quiet (it blocks until answered or shut)."""
        while not self._stop.wait(self.interval):
            if self.quiet() >= self.interval:
                with contextlib.suppress(Exception):
                    self.round_trip()

    def _watch(self) -> None:
        while not self._stop.wait(min(self.interval, 0.5)):
            quiet = self.quiet()
            if quiet >= self.limit:
                self.silent = quiet
                with contextlib.suppress(OSError):
                    self.sock.shutdown(socket.SHUT_RDWR)
                self._stop.set()

    def stop(self) -> None:
        self._stop.set()


def start_transport(sock: HeardSocket | HeardChannel, timeout: float, known_types: list[str], where: str
                    ) -> paramiko.Transport:
    """An SSH transport over ``sock`` (to ``where``, for messages) with fast ciphers and the host key types
    we already know first."""
    import paramiko

    log = logging.getLogger("paramiko")
    if not log.handlers:
        log.addHandler(logging.NullHandler())  # our errors are one line, not paramiko's log on stderr
    # types-paramiko lists socket, Channel and ProxyCommand; paramiko takes any socket-like object
    conn = paramiko.Transport(sock)  # type: ignore[arg-type]
    opts = conn.get_security_options()
    opts.ciphers = [c for c in FAST_CIPHERS if c in opts.ciphers] + [c for c in opts.ciphers if c not in FAST_CIPHERS]
    wanted = []
    for kind in known_types:
        wanted += ["rsa-sha2-512", "rsa-sha2-256", kind] if kind == "ssh-rsa" else [kind]
    opts.key_types = [k for k in wanted if k in opts.key_types] + [k for k in opts.key_types if k not in wanted]
    try:
        conn.start_client(timeout=timeout or None)  # returns at the timeout even if unfinished
        why = None if conn.host_key is not None else f"no answer within {timeout:g} s"
    except (paramiko.SSHException, EOFError, OSError) as exc:
        why = str(exc)
    if why:
        conn.close()
        raise RemoteError(f"{where} did not complete the SSH handshake ({why}); is it an SSH server? "
                          "(SSH_TIMEOUT sets the wait)")
    return conn


@dataclass
class Hop:
    """One host of the route, connected: its endpoint, its SSH transport and the watchdog of its link."""

    end: Endpoint
    conn: paramiko.Transport
    watchdog: LinkWatchdog
    login_seconds: float = 0.0  # the accepted login: two round trips plus signing (an upper bound of the link's)


def _forward(prev: Hop, end: Endpoint) -> HeardChannel:
    """A ``direct-tcpip`` channel from the previous host to ``end``: the socket of ``end``'s SSH session."""
    import paramiko

    try:
        chan = prev.conn.open_channel("direct-tcpip", (end.hostname, end.port), ("127.0.0.1", 0),
                                      timeout=end.timeout or None)
    except paramiko.ChannelException as exc:
        raise RemoteError(f"{prev.end.label} could not connect to {end.hostname}:{end.port} for {end.label} "
                          f"({exc.text}); check its HostName and Port, and that {prev.end.name} allows TCP "
                          "forwarding (AllowTcpForwarding)") from None
    except (paramiko.SSHException, EOFError, OSError) as exc:
        why = f"silent for {prev.watchdog.silent:.0f} s" if prev.watchdog.silent is not None else str(exc)
        raise RemoteError(f"{prev.end.label} dropped the connection while reaching {end.label} ({why})") from None
    return HeardChannel(chan)


def reach(cfg: Config, route: Route, on_key: Callable[[Endpoint, paramiko.PKey, KnownHosts], None],
          login_box: bool = True) -> list[Hop]:
    """Connect through every jump host to the box, each over a channel of the one before (one process, no
    ``ssh``): key exchange, ``on_key`` judges the host key (raises to refuse), login (the box only when
    ``login_box``). Every host's link has its own watchdog. Returns the hops, the box last; closes all on failure.
    """
    global_alive = alive_limit(route)
    knowns = [load_known_hosts(cfg, end.known_hosts) for end in route.endpoints]  # a bad file: before connecting
    hops: list[Hop] = []
    try:
        for end, known in zip(route.endpoints, knowns, strict=True):
            where = f"{end.hostname}:{end.port}" + (f" ({end.label})" if end.hop else "")
            if hops:
                sock: HeardSocket | HeardChannel = _forward(hops[-1], end)
            else:
                sock = open_socket(end.hostname, end.port, end.timeout, global_alive,
                                   end.label if end.hop else "")
                transport.CONNECTIONS_OPENED += 1
            known_types = [t for _, hk in known for t in (hk.lookup(end.key_name) or {}).keys()]
            conn = start_transport(sock, end.timeout, known_types, where)
            hops.append(Hop(end, conn, LinkWatchdog(conn, sock, global_alive)))
            on_key(end, conn.get_remote_server_key(), known)
            if end.hop or login_box:
                _authenticate(hops[-1])
    except BaseException:
        close_hops(hops)
        raise
    return hops


def close_hops(hops: list[Hop]) -> None:
    """Close the route from the box back to the first jump host."""
    for hop in reversed(hops):
        hop.watchdog.stop()
        hop.conn.close()


def check_key(end: Endpoint, key: paramiko.PKey, known: KnownHosts) -> None:
    """``reach``'s judge for every command: only keys a known_hosts file holds (``hostkeys.check_host_key``)."""
    check_host_key(end.key_name, key, known, end.label if end.hop else "")


class _ChannelTransport(Protocol):
    """paramiko's Transport method that sends one message (private: not in its stubs)."""

    def _send_user_message(self, data: paramiko.Message) -> None: ...


def send_request(conn: paramiko.Transport, chan: paramiko.Channel, kind: str, value: str) -> None:
    """Ask for ``exec`` or ``subsystem`` on a session channel without waiting for the answer (paramiko's own
    calls wait: a round trip each). The answer arrives before the command's first output; a refusal closes
    the channel (paramiko does that), which the reader then sees."""
    from paramiko.common import cMSG_CHANNEL_REQUEST
    from paramiko.message import Message

    msg = Message()
    msg.add_byte(cMSG_CHANNEL_REQUEST)
    msg.add_int(chan.remote_chanid)
    msg.add_string(kind)
    msg.add_boolean(True)
    msg.add_string(value)
    cast(_ChannelTransport, conn)._send_user_message(msg)


class _AgentConnect(Protocol):
    """paramiko's AgentSSH method that adopts a connected agent socket (private: not in its stubs)."""

    def _connect(self, conn: socket.socket) -> None: ...


def _agent_keys(socket_path: str | None) -> list[paramiko.PKey]:
    """The agent's keys: $SSH_AUTH_SOCK's (None), none (""), or the agent at IdentityAgent's socket."""
    import paramiko
    from paramiko.agent import AgentSSH

    if socket_path == "":
        return []
    with contextlib.suppress(paramiko.SSHException, OSError):
        if socket_path is None:
            return list(paramiko.Agent().get_keys())
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.connect(socket_path)
        agent = paramiko.Agent.__new__(paramiko.Agent)  # paramiko.Agent() only knows $SSH_AUTH_SOCK
        AgentSSH.__init__(agent)
        cast(_AgentConnect, agent)._connect(conn)
        return list(agent.get_keys())
    return []


def _read_key(path: Path) -> paramiko.PKey | None:
    """A private key file, or None when it is missing, locked or unreadable (the next key is tried)."""
    import paramiko

    with contextlib.suppress(paramiko.SSHException, OSError, ValueError, TypeError):  # TypeError: locked
        return paramiko.PKey.from_path(path)
    return None


def _ssh_key(path: Path) -> list[tuple[str, paramiko.PKey]]:
    """SSH_KEY, alone: missing, locked or unreadable is one line."""
    import paramiko

    if not path.is_file():
        raise UserError(f"SSH_KEY {path} does not exist; fix SSH_KEY in config.sh or leave it empty to use "
                        "ssh-agent and ~/.ssh/id_*")
    try:
        return [(str(path), paramiko.PKey.from_path(path))]
    except (paramiko.PasswordRequiredException, TypeError):  # TypeError: cryptography's "password-protected"
        raise UserError(f"SSH_KEY {path} is protected by a passphrase: load it into ssh-agent "
                        f"(ssh-add '{path}') and leave SSH_KEY empty") from None
    except (paramiko.SSHException, OSError, ValueError) as exc:
        raise UserError(f"SSH_KEY {path} is not a private key paramiko can read ({exc})") from None


def _auth_keys(end: Endpoint) -> list[tuple[str, paramiko.PKey]]:
    """The private keys to offer, as ssh would: SSH_KEY alone; else the IdentityFiles of ~/.ssh/config (a
    locked one through the agent's copy), then, unless IdentitiesOnly, the agent's keys and ~/.ssh/id_*."""
    if end.keys_from == "SSH_KEY":
        return _ssh_key(end.keys[0])
    agent = _agent_keys(end.agent)
    found: list[tuple[str, paramiko.PKey]] = []
    for path in end.keys:
        key = _read_key(path)
        pub = path.with_name(path.name + ".pub")
        blob = pub.read_text(errors="replace").split()[1:2] if key is None and pub.is_file() else []
        key = key or next((k for k in agent if blob and k.get_base64() == blob[0]), None)
        if key is not None:
            found.append((str(path), key))
    if not end.identities_only:
        found += [(f"agent key {k.fingerprint}", k) for k in agent]
    if not end.identities_only or not end.keys:
        for name in ("id_ed25519", "id_ecdsa", "id_rsa"):
            path = Path(os.path.expanduser(f"~/.ssh/{name}"))
            key = _read_key(path) if path.is_file() else None
            if key is not None:
                found.append((str(path), key))
    unique: dict[bytes, tuple[str, paramiko.PKey]] = {}
    for label, key in found:
        unique.setdefault(key.asbytes(), (label, key))
    return list(unique.values())


def _authenticate(hop: Hop) -> None:
    import paramiko

    end, conn, watchdog = hop.end, hop.conn, hop.watchdog
    where = f"{end.hostname}:{end.port}" + (f" ({end.label})" if end.hop else "")
    keys = _auth_keys(end)
    if end.hop:
        fix = f"check the User and IdentityFile of {end.name} in ~/.ssh/config"
    elif end.keys_from and end.keys_from != "SSH_KEY":
        fix = f"check REMOTE_USER and the IdentityFile at {end.keys_from} (or set SSH_KEY in config.sh)"
    else:
        fix = "check REMOTE_USER and SSH_KEY"
    if not keys:
        raise RemoteError(f"no SSH key to offer {end.user}@{where}: set SSH_KEY in config.sh (or IdentityFile in "
                          "~/.ssh/config), or start ssh-agent and ssh-add your key")
    for _label, key in keys:
        try:
            begun = time.monotonic()
            conn.auth_publickey(end.user, key)
            hop.login_seconds = time.monotonic() - begun
            return
        except paramiko.AuthenticationException:
            continue
        except (paramiko.SSHException, EOFError, OSError) as exc:
            why = f"silent for {watchdog.silent:.0f} s" if watchdog.silent is not None else str(exc)
            raise RemoteError(f"{where} dropped the connection during login ({why})") from None
    labels = ", ".join(label for label, _ in keys)
    raise RemoteError(f"{end.user}@{where} refused our key ({labels}): {fix}, and that the public key is in "
                      "~/.ssh/authorized_keys there")


def _open_local(path: Path, mode: str) -> IO[bytes]:
    try:
        return open(path, mode)  # closed by the transfer that uses it
    except OSError as exc:
        raise UserError(f"{path}: {exc.strerror}; check the file and its folder") from None


class SSHTransport(Transport):
    """One paramiko connection to the box: commands on session channels, files over one SFTP session."""

    def __init__(self, cfg: Config) -> None:
        import paramiko

        route = resolve(cfg)
        self.user, self.host, self.port = route.box.user, route.box.hostname, route.box.port
        self.remote_dir = cfg["REMOTE_DIR"]
        self.parts_dir = cfg.root / PARTS_RECORD
        self._hops = reach(cfg, route, check_key)
        self._transport, self._watchdog = self._hops[-1].conn, self._hops[-1].watchdog
        self._login_seconds = self._hops[-1].login_seconds
        self._sftp: SFTPSession | None = None
        self._streams: Future[list[paramiko.SFTPClient]] | None = None
        self._streams_lock = threading.Lock()
        self._round_trip: float | None = None
        self._paramiko = paramiko

    def describe(self) -> str:
        return f"{self.user}@{self.host}:{self.port}"

    def close(self) -> None:
        streams, self._streams = self._streams, None
        if streams is not None and not streams.done():
            self._transport.close()  # first: a stream session still opening then fails at once
        opened = streams.result() if streams is not None and not streams.exception() else []
        for sftp in [self._sftp, *opened]:
            if sftp is not None:
                with contextlib.suppress(Exception):
                    sftp.close()
        self._sftp = None
        close_hops(self._hops)

    def dropped(self) -> bool:
        """True if the connection is gone (paramiko closes the channels just before its thread ends)."""
        self._transport.join(2)
        return not self._transport.is_alive()

    def lost(self, doing: str) -> ConnectionLost:
        quiet = next((hop for hop in self._hops if hop.watchdog.silent is not None), None)
        how = "lost" if quiet is None else (f"silent for {quiet.watchdog.silent:.0f} s "
                                            f"{'at ' + quiet.end.label + ' ' if quiet.end.hop else ''}(no answer to "
                                            f"keepalives; SSH_ALIVE_TIMEOUT {quiet.watchdog.limit:g} s)")
        return ConnectionLost(f"connection to {self.describe()} {how} while {doing}; run the same command again "
                              "(finished work is kept)")

    def _session(self, doing: str, window: int | None = None) -> paramiko.Channel:
        from .channel_buffer import use_byte_queues

        try:
            return use_byte_queues(self._transport.open_session(window_size=window, timeout=30))
        except self._paramiko.ChannelException as exc:  # the box said no, the connection is fine
            if self.dropped():
                raise self.lost(doing) from None
            raise RemoteError(f"{self.describe()} refused a new SSH session while {doing} ({exc}); raise MaxSessions "
                              "in the box's sshd_config (OpenSSH's default is 10)") from None
        except (self._paramiko.SSHException, EOFError, OSError):
            raise self.lost(doing) from None

    def _pump(self, chan: paramiko.Channel, on_out: Callable[[bytes], None], on_err: Callable[[bytes], None],
              deadline: float | None, doing: str, enough: Callable[[], bool] | None = None) -> int:
        """Read a channel until EOF, or until ``enough`` says so (then 0: the command is left to end by itself);
        return its exit status."""
        while True:
            eof = chan.eof_received or chan.closed  # read first: data before EOF is then all buffered
            while chan.recv_ready():
                on_out(chan.recv(65536))
            while chan.recv_stderr_ready():
                on_err(chan.recv_stderr(65536))
            if enough is not None and enough():
                chan.close()
                return 0
            if eof:
                break
            if not self._transport.is_active():
                raise self.lost(doing)
            if deadline is not None and time.monotonic() > deadline:
                chan.close()
                raise RemoteError(f"{doing} on {self.describe()} did not finish in time")
            select.select([chan], [], [], 1.0)
        chan.status_event.wait(30)
        rc = chan.exit_status  # -1: no exit status came (killed by a signal, or the connection dropped)
        if rc == -1 and self.dropped():
            raise self.lost(doing)
        chan.close()
        return rc

    def _run(self, argv: list[str], cwd: str | None, input: bytes | None, timeout: float | None) -> Completed:
        doing = f"running {argv[0]}"
        chan = self._session(doing)
        out: list[bytes] = []
        err: list[bytes] = []
        try:
            # EOF races the command's end: a command that exits before reading its stdin can have its channel
            # closed and freed by sshd before our EOF arrives, and an EOF for a freed channel makes sshd drop the
            # whole connection. So a command without input reads /dev/null (we send no EOF), and one with input
            # must read it to the end (remote/write.sh drains stdin), so it cannot end before our EOF.
            send_request(self._transport, chan, "exec", self._command(argv, cwd) + ("" if input else " </dev/null"))
            if input:
                chan.sendall(input)
                chan.shutdown_write()
            deadline = time.monotonic() + timeout if timeout else None
            rc = self._pump(chan, out.append, err.append, deadline, doing)
        except (self._paramiko.SSHException, EOFError, OSError):
            raise self.lost(doing) from None
        self._check_folder(rc, cwd)
        return Completed(rc, b"".join(out), b"".join(err))

    def _check_folder(self, rc: int, cwd: str | None) -> None:
        """Turn the exit status of a failed ``cd`` into one line naming the missing folder."""
        if rc == NO_FOLDER and self.size(self.abspath(cwd or ".")) is None:
            raise self.no_folder(cwd)

    def stream(self, argv: list[str], *, cwd: str | None = None, on_output: Callable[[bytes], None]) -> int:
        doing = f"running {argv[0]}"
        chan = self._session(doing)
        try:
            send_request(self._transport, chan, "exec", self._command(argv, cwd) + " </dev/null")  # no EOF: see _run
            rc = self._pump(chan, on_output, on_output, None, doing)
        except (self._paramiko.SSHException, EOFError, OSError):
            raise self.lost(doing) from None
        self._check_folder(rc, cwd)
        return rc

    def start(self, argv: list[str]) -> Started:
        doing = f"running {argv[0]}"
        chan = self._session(doing)
        try:
            send_request(self._transport, chan, "exec", self._command(argv, None))
        except (self._paramiko.SSHException, EOFError, OSError):
            raise self.lost(doing) from None
        return _StartedOverSSH(self, argv, chan)

    def sftp(self) -> SFTPSession:
        """The connection's SFTP session (opened once)."""
        if self._sftp is None:
            self._sftp = cast("SFTPSession", self._open_sftp())
        return self._sftp

    def _open_sftp(self, window: int | None = None, quick: bool = False) -> paramiko.SFTPClient:
        """An SFTP session: the channel, then the subsystem request and SFTP's greeting sent together (paramiko's
        ``from_transport`` waits for the subsystem's answer in between); ``quick`` (stream sessions) does not wait
        for the server's greeting either (``streams.stream_session``)."""
        from .sftp_session import SFTPSession

        chan = self._session("opening SFTP", window)
        try:
            send_request(self._transport, chan, "subsystem", "sftp")
            return stream_session(chan) if quick else SFTPSession(chan)
        except (self._paramiko.SSHException, EOFError, OSError) as exc:
            if self.dropped():
                raise self.lost("opening SFTP") from None
            raise RemoteError(f"{self.describe()} has no SFTP service ({exc}); enable the sftp subsystem in "
                              "sshd_config") from None

    def streams(self) -> int:
        """STREAMS on a long link (a round trip of LONG_LINK_SECONDS or more), else 1: on loopback and LANs one
        stream is as fast, and pieces cost the box a second pass to verify them.

        The login took two round trips plus signing: half of it bounds the round trip from above, so a fast
        login settles it at once (on loopback it takes 7-20 ms). Otherwise keepalives time it, once per
        connection; after a login slow enough that the link is most likely long (SURE_LONG_SECONDS), the
        stream sessions start opening meanwhile. The first answer after login can wait for a delayed ACK
        (about 40 ms, even on loopback), so a slow first one is timed again.
        """
        if self._round_trip is None:
            estimate = self._login_seconds / 2
            if estimate >= SURE_LONG_SECONDS:
                self.open_streams()
            if estimate >= LONG_LINK_SECONDS:
                estimate = min(estimate, self._time_round_trip())
                if estimate >= LONG_LINK_SECONDS:
                    estimate = min(estimate, self._time_round_trip())
            self._round_trip = estimate
        return STREAMS if self._round_trip >= LONG_LINK_SECONDS else 1

    def _time_round_trip(self) -> float:
        begun = time.monotonic()
        try:
            self._watchdog.round_trip()
        except (self._paramiko.SSHException, EOFError, OSError):
            raise self.lost("timing a round trip") from None
        return time.monotonic() - begun

    def open_streams(self) -> None:
        with self._streams_lock:
            if self._streams is None:
                self._streams = Future()
                threading.Thread(target=self._open_streams, args=(self._streams,), name="cosmos-open-streams",
                                 daemon=True).start()

    def _open_streams(self, result: Future[list[paramiko.SFTPClient]]) -> None:
        """STREAMS SFTP sessions with a WINDOW-sized receive window each, opened at once."""
        with ThreadPoolExecutor(STREAMS) as pool:
            opening = [pool.submit(self._open_sftp, WINDOW, True) for _ in range(STREAMS)]
            failed = [future.exception() for future in opening if future.exception()]
        if failed:
            for future in opening:
                if not future.exception():
                    future.result().close()
            result.set_exception(failed[0])
        else:
            result.set_result([future.result() for future in opening])

    def _stream_sessions(self) -> list[paramiko.SFTPClient]:
        self.open_streams()
        assert self._streams is not None
        return self._streams.result()

    def put_pieces(self, files: list[tuple[Path, str]], pieces: list[Piece], on_acked: Callable[[int], None]) -> None:
        sessions = self._stream_sessions()
        self._file_op(f"uploading {files[0][1]}" + (f" and {len(files) - 1} more" if len(files) > 1 else ""),
                      lambda: run_pieces(sessions, pieces, lambda sftp, piece, stop: put_piece(
                          sftp, files[piece.key][1], files[piece.key][0], piece, on_acked, stop)))

    def get_pieces(self, remote: str, local: Path, pieces: list[Piece], on_bytes: Callable[[int], None]) -> None:
        sessions = self._stream_sessions()
        try:
            fd = os.open(local, os.O_WRONLY | os.O_CREAT, 0o644)
        except OSError as exc:
            raise LocalError(f"cannot write {local}: {exc.strerror or exc} (on this machine); free space or fix "
                             "permissions there, then download again") from None
        try:
            self._file_op(f"downloading {remote}", lambda: run_pieces(
                sessions, pieces, lambda sftp, piece, stop: get_piece(sftp, remote, local, fd, piece, on_bytes, stop)))
        finally:
            os.close(fd)

    def _file_op(self, doing: str, op: Callable[[], T]) -> T:
        try:
            return op()
        except (OSError, self._paramiko.SSHException, EOFError) as exc:
            if isinstance(exc, OSError) and exc.errno:  # the SFTP server answered: a real file error
                raise RemoteError(f"{doing} on {self.describe()}: {exc.strerror or exc}") from None
            if self.dropped():
                raise self.lost(doing) from None
            raise RemoteError(f"{doing} on {self.describe()}: {exc}") from None

    def makedirs(self, path: str) -> None:
        """One command (``mkdir -p``): no SFTP session to open, no round trip per folder level, and a folder
        another client makes meanwhile is no error."""
        self.run(["mkdir", "-p", "--", path])

    def put(self, local: Path, remote: str, on_bytes: Callable[[int], None], offset: int = 0) -> None:
        from .sftp_wire import write_size

        sftp = self.sftp()
        src = _open_local(local, "rb")

        def send() -> None:
            with src, sftp.open(remote, "r+b" if offset else "wb", bufsize=0) as dst:
                src.seek(offset)
                writes = WindowedWrites(sftp, cast(bytes, dst.handle), offset, IN_FLIGHT, lambda n: None)
                size, sent = write_size(dst), _interruptible(on_bytes)
                while block := src.read(size):
                    writes.write(block)
                    sent(len(block))
                writes.finish()

        self._file_op(f"uploading {remote}", send)

    def get(self, remote: str, local: Path, size: int, on_bytes: Callable[[int], None],
            resume: Resume | None = None) -> str:
        sftp = self.sftp()
        dst = _open_local(local, "r+b" if resume else "wb")

        def fetch() -> str:
            with dst, sftp.open(remote, "rb") as src:
                offset = resume.offset if resume else 0
                dst.seek(offset)
                blocks = windowed_reads(sftp, cast(bytes, src.handle), remote, offset, size, sftp.read_size)
                return receive_hashing(blocks, LocalSink(dst, local), _interruptible(on_bytes), resume)

        return self._file_op(f"downloading {remote}", fetch)

    def rename(self, src: str, dst: str) -> None:
        self._file_op(f"renaming {src}", lambda: self.sftp().posix_rename(src, dst))

    def remove(self, path: str) -> None:
        def remove() -> None:
            with contextlib.suppress(FileNotFoundError):
                self.sftp().remove(path)

        self._file_op(f"removing {path}", remove)

    def size(self, path: str) -> int | None:
        def size() -> int | None:
            try:
                return self.sftp().stat(path).st_size
            except FileNotFoundError:
                return None

        return self._file_op(f"checking {path}", size)


class _StartedOverSSH(Started):
    """A command already running on its own session channel, reading its input as it comes."""

    def __init__(self, t: SSHTransport, argv: list[str], chan: paramiko.Channel) -> None:
        super().__init__(t, argv)
        self.ssh, self.chan = t, chan

    def write(self, data: bytes) -> None:
        self._guarded(lambda: self.chan.sendall(data))

    def finish(self, data: bytes, lines: int) -> list[str]:
        out: list[bytes] = []
        err: list[bytes] = []

        def enough() -> bool:
            return b"".join(out).count(b"\n") >= lines

        def finish() -> int:
            self.chan.sendall(data)
            self.chan.shutdown_write()
            return self.ssh._pump(self.chan, out.append, err.append, None, f"running {self.argv[0]}", enough)

        rc = self._guarded(finish)
        self.ssh.checked(self.argv, Completed(rc, b"", b"".join(err)))
        return b"".join(out).decode().splitlines()[:lines]

    def _guarded(self, op: Callable[[], T]) -> T:
        try:
            return op()
        except (self.ssh._paramiko.SSHException, EOFError, OSError):
            raise self.ssh.lost(f"running {self.argv[0]}") from None

    def cancel(self) -> None:
        with contextlib.suppress(Exception):
            self.chan.shutdown_write()  # it reads its input to the end, so it cannot have ended before this EOF
            self.chan.close()


def interactive_argv(cfg: Config, command: list[str] | None = None) -> list[str]:
    """OpenSSH ``ssh`` argv that opens the box the way the toolkit does: ssh reads ~/.ssh/config itself (alias,
    ProxyJump, IdentityFile...); our options add the project's known_hosts, strict checking and no agent
    forwarding, and give config.sh's values where config.sh sets them. With jump hosts, ``-F`` a generated file
    that gives every jump host the same checks, then includes your own config (the jump ``ssh`` gets ``-F`` too).
    """
    route = resolve(cfg)
    box = route.box
    if shutil.which("ssh") is None:
        raise UserError("ssh (OpenSSH client) is not installed; install openssh-client")
    argv = ["ssh"]
    if route.hops:
        argv += ["-F", str(write_jump_config(cfg, route))]
    argv += ["-p", str(box.port), "-o", f"UserKnownHostsFile={_known_hosts_words(cfg, box)}",
             "-o", "StrictHostKeyChecking=yes", "-o", "ForwardAgent=no",
             "-o", f"ConnectTimeout={max(1, round(box.timeout))}"]
    if not route.alive_from_ssh_config:
        argv += ["-o", f"ServerAliveInterval={max(1, round(alive_limit(route) / KEEPALIVES_PER_LIMIT))}",
                 "-o", f"ServerAliveCountMax={KEEPALIVES_PER_LIMIT - 1}"]
    if box.keys_from == "SSH_KEY":
        # -o, not -i: ssh stats an -i path before expanding its %-tokens, so no spelling of a literal % works there
        argv += ["-o", f"IdentityFile={ssh_config_word(str(box.keys[0]))}", "-o", "IdentitiesOnly=yes"]
    argv += ["-l", box.user, "--", box.name]
    if command:
        argv.append(shlex.join(command))
    return argv


def _known_hosts_words(cfg: Config, end: Endpoint) -> str:
    return " ".join(ssh_config_word(str(p)) for p in (*end.known_hosts, cfg.local_path("KNOWN_HOSTS")))


def write_jump_config(cfg: Config, route: Route) -> Path:
    """An ssh config for ``ssh -F``: each jump host gets our known_hosts files, every host strict checking and no
    agent forwarding, then ~/.ssh/config and /etc/ssh/ssh_config apply. ssh runs the jump ``ssh`` through a shell
    with the ``-F`` path unquoted, so the file lives in a private folder whose path has no spaces."""
    folder = Path(tempfile.gettempdir()) / f"cosmos-tools-{os.getuid()}"
    with contextlib.suppress(FileExistsError):
        folder.mkdir(mode=0o700)
    info = folder.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise UserError(f"{folder} is not a private folder of yours; remove it (or set TMPDIR) and try again")
    target = folder / f"ssh_config-{hashlib.sha256(str(cfg.root).encode()).hexdigest()[:12]}"
    if not re.fullmatch(r"[A-Za-z0-9_./-]+", str(target)):
        raise UserError(f"{target}: the temporary folder's path has characters ssh's ProxyJump cannot pass on; "
                        "set TMPDIR to a plain path such as /tmp")
    lines = ["# Written by cosmos-tools ssh (ProxyJump): the toolkit's host key checks for every jump host,",
             "# then your own config.", ""]
    for hop in route.hops:
        lines += [f"Host {ssh_config_word(hop.name, percent=False)}",
                  f"    UserKnownHostsFile {_known_hosts_words(cfg, hop)}"]
    lines += ["Host *", "    StrictHostKeyChecking yes", "    ForwardAgent no"]
    lines += [f"    Include {ssh_config_word(path, percent=False)}"  # Include expands no %-tokens
              for path in (user_config_path(), Path("/etc/ssh/ssh_config")) if path.is_file()]
    write_text_atomic(target, "\n".join(lines) + "\n")
    return target


def ssh_config_word(path: str | os.PathLike[str], percent: bool = True) -> str:
    """A path as one word of an ssh/sshd config value: double-quoted and escaped; ``percent`` doubles %
    for keywords that expand %-tokens (IdentityFile, UserKnownHostsFile, AuthorizedKeysFile)."""
    text = str(path).replace("\\", "\\\\").replace('"', '\\"')
    return '"' + (text.replace("%", "%%") if percent else text) + '"'
