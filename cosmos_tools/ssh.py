"""SSH to the GPU box: reach it, run the key exchange, log in, and work over one paramiko connection
(``SSHTransport``: commands on session channels, files over one SFTP session); plus the OpenSSH
``ssh`` argv with the same settings for ``cosmos-tools ssh``. Host keys are judged by ``hostkeys``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import shlex
import shutil
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import IO, TYPE_CHECKING, TypeVar

from . import transport
from .config import Config
from .errors import LocalError, RemoteError, UserError
from .hostkeys import check_host_key, host_id, load_known_hosts, user_known_hosts
from .streams import LONG_LINK_SECONDS, STREAMS, WINDOW, Piece, get_piece, put_piece, run_pieces
from .transport import NO_FOLDER, PARTS_RECORD, Completed, ConnectionLost, LocalSink, Resume, Transport, copy_hashing

if TYPE_CHECKING:
    import paramiko

T = TypeVar("T")

DELAYED_ACK_SECONDS = 0.06  # a first answer slower than a delayed ACK can make it comes over a long link
KEEPALIVES_PER_LIMIT = 4  # a quiet link is asked for a reply this often within SSH_ALIVE_TIMEOUT
CHUNK = 128 * 1024  # SFTP request size: pipelined writes and prefetched reads (OpenSSH allows 261120)
FAST_CIPHERS = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com", "aes128-ctr", "aes256-ctr")


def _settings(cfg: Config) -> tuple[str, str, int, float]:
    cfg.require("REMOTE_HOST")
    return cfg["REMOTE_USER"], cfg["REMOTE_HOST"], cfg.int("REMOTE_PORT"), cfg.float("SSH_TIMEOUT")


def alive_limit(cfg: Config) -> float:
    """SSH_ALIVE_TIMEOUT: seconds of silence after which the link counts as lost."""
    limit = cfg.float("SSH_ALIVE_TIMEOUT")
    if limit <= 0:
        raise UserError(f"SSH_ALIVE_TIMEOUT must be more than 0 seconds (it is {limit:g}); fix it in config.sh")
    return limit


class HeardSocket(socket.socket):
    """A socket that notes when it last received anything (``LinkWatchdog`` reads it)."""

    last_heard = 0.0

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        data = super().recv(bufsize, flags)
        self.last_heard = time.monotonic()
        return data


def open_socket(host: str, port: int, timeout: float, alive: float) -> HeardSocket:
    """A TCP connection with TCP_NODELAY, or one clear line saying why the box cannot be reached.

    Unacknowledged data older than ``alive`` seconds ends it (TCP_USER_TIMEOUT, Linux).
    """
    where = f"{host}:{port}"
    try:
        raw = socket.create_connection((host, port), timeout=timeout or None)
    except socket.gaierror as exc:
        raise RemoteError(f"cannot resolve REMOTE_HOST {host!r} ({exc.strerror}); check REMOTE_HOST in config.sh"
                          ) from None
    except ConnectionRefusedError:
        raise RemoteError(f"{where} refused the connection: is the box up, sshd running, REMOTE_PORT right?"
                          ) from None
    except TimeoutError:
        raise RemoteError(f"timed out after {timeout:g} s connecting to {where}: is the box up and the address "
                          "right? (SSH_TIMEOUT sets the wait)") from None
    except OSError as exc:
        raise RemoteError(f"cannot reach {where}: {exc.strerror or exc}; check REMOTE_HOST/REMOTE_PORT and "
                          "your network") from None
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

    def __init__(self, conn: paramiko.Transport, sock: HeardSocket, limit: float) -> None:
        self.conn, self.sock, self.limit = conn, sock, limit
        self.interval = limit / KEEPALIVES_PER_LIMIT
        self.silent: float | None = None  # seconds of silence that made it shut the link
        self._stop = threading.Event()
        sock.last_heard = time.monotonic()
        for job, name in ((self._watch, "cosmos-link-watch"), (self._ask, "cosmos-link-keepalive")):
            threading.Thread(target=job, name=name, daemon=True).start()

    def quiet(self) -> float:
        return time.monotonic() - self.sock.last_heard

    def _ask(self) -> None:
        """Keep one keepalive request in flight while the link is quiet (it blocks until answered or shut)."""
        while not self._stop.wait(self.interval):
            if self.quiet() >= self.interval:
                with contextlib.suppress(Exception):
                    self.conn.global_request("keepalive@openssh.com", wait=True)

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


def _quiet_prefetch_hook(previous: Callable[[threading.ExceptHookArgs], object]
                         ) -> Callable[[threading.ExceptHookArgs], None]:
    """Keep paramiko's download prefetch thread quiet when the connection drops: the reader reports it."""
    import paramiko

    def hook(args: threading.ExceptHookArgs) -> None:
        if "_prefetch_thread" in (args.thread.name if args.thread else "") and issubclass(
                args.exc_type, (EOFError, OSError, paramiko.SSHException)):
            return
        previous(args)

    return hook


def start_transport(sock: HeardSocket, timeout: float, known_types: list[str]) -> paramiko.Transport:
    """An SSH transport over ``sock`` with fast ciphers and the host key types we already know first."""
    import paramiko

    log = logging.getLogger("paramiko")
    if not log.handlers:
        log.addHandler(logging.NullHandler())  # our errors are one line, not paramiko's log on stderr
        threading.excepthook = _quiet_prefetch_hook(threading.excepthook)
    conn = paramiko.Transport(sock)
    opts = conn.get_security_options()
    opts.ciphers = [c for c in FAST_CIPHERS if c in opts.ciphers] + [c for c in opts.ciphers if c not in FAST_CIPHERS]
    wanted = []
    for kind in known_types:
        wanted += ["rsa-sha2-512", "rsa-sha2-256", kind] if kind == "ssh-rsa" else [kind]
    opts.key_types = [k for k in wanted if k in opts.key_types] + [k for k in opts.key_types if k not in wanted]
    host, port = sock.getpeername()[:2]
    try:
        conn.start_client(timeout=timeout or None)  # returns at the timeout even if unfinished
        why = None if conn.host_key is not None else f"no answer within {timeout:g} s"
    except (paramiko.SSHException, EOFError, OSError) as exc:
        why = str(exc)
    if why:
        conn.close()
        raise RemoteError(f"{host}:{port} did not complete the SSH handshake ({why}); is it an SSH server? "
                          "(SSH_TIMEOUT sets the wait)")
    return conn


def handshake(cfg: Config) -> tuple[str, paramiko.Transport, HeardSocket, paramiko.HostKeys, paramiko.HostKeys]:
    """Connect and run the key exchange, no login: (host name as known_hosts files it, paramiko transport, its
    socket, user HostKeys, project HostKeys). The host key is not checked yet."""
    _user, host, port, timeout = _settings(cfg)
    name = host_id(host, port)
    user_keys, project_keys = load_known_hosts(cfg)
    known_types = [t for hk in (user_keys, project_keys) for t in (hk.lookup(name) or {}).keys()]
    sock = open_socket(host, port, timeout, alive_limit(cfg))
    transport.CONNECTIONS_OPENED += 1
    return name, start_transport(sock, timeout, known_types), sock, user_keys, project_keys


def scan_host_key(cfg: Config) -> tuple[str, paramiko.PKey, paramiko.HostKeys, paramiko.HostKeys]:
    """(host name as known_hosts files it, the key the box presents, user HostKeys, project HostKeys)."""
    name, ssh, _sock, user_keys, project_keys = handshake(cfg)
    try:
        return name, ssh.get_remote_server_key(), user_keys, project_keys
    finally:
        ssh.close()


def _auth_keys(cfg: Config) -> list[tuple[str, paramiko.PKey]]:
    """The private keys to offer: SSH_KEY alone, else the agent's and ~/.ssh/id_*."""
    import paramiko

    if cfg["SSH_KEY"]:
        path = cfg.local_path("SSH_KEY")
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
    found: list[tuple[str, paramiko.PKey]] = []
    with contextlib.suppress(paramiko.SSHException):
        found += [(f"agent key {k.fingerprint}", k) for k in paramiko.Agent().get_keys()]
    for name in ("id_ed25519", "id_ecdsa", "id_rsa"):
        path = Path(os.path.expanduser(f"~/.ssh/{name}"))
        if path.is_file():
            with contextlib.suppress(paramiko.SSHException, OSError, ValueError, TypeError):  # TypeError: locked
                found.append((str(path), paramiko.PKey.from_path(path)))
    return found


def _authenticate(conn: paramiko.Transport, cfg: Config, user: str, where: str, watchdog: LinkWatchdog) -> None:
    import paramiko

    keys = _auth_keys(cfg)
    if not keys:
        raise RemoteError(f"no SSH key to offer {user}@{where}: set SSH_KEY in config.sh, or start ssh-agent and "
                          "ssh-add your key")
    for _label, key in keys:
        try:
            conn.auth_publickey(user, key)
            return
        except paramiko.AuthenticationException:
            continue
        except (paramiko.SSHException, EOFError, OSError) as exc:
            why = f"silent for {watchdog.silent:.0f} s" if watchdog.silent is not None else str(exc)
            raise RemoteError(f"{where} dropped the connection during login ({why})") from None
    labels = ", ".join(label for label, _ in keys)
    raise RemoteError(f"{user}@{where} refused our key ({labels}): check REMOTE_USER and SSH_KEY, and that the "
                      "public key is in ~/.ssh/authorized_keys on the box")


def _open_local(path: Path, mode: str) -> IO[bytes]:
    try:
        return open(path, mode)  # closed by the transfer that uses it
    except OSError as exc:
        raise UserError(f"{path}: {exc.strerror}; check the file and its folder") from None


class SSHTransport(Transport):
    """One paramiko connection to the box: commands on session channels, files over one SFTP session."""

    def __init__(self, cfg: Config) -> None:
        import paramiko

        self.user, self.host, self.port, _timeout = _settings(cfg)
        self.remote_dir = cfg["REMOTE_DIR"]
        self.parts_dir = cfg.root / PARTS_RECORD
        name, self._transport, sock, user_keys, project_keys = handshake(cfg)
        self._watchdog = LinkWatchdog(self._transport, sock, alive_limit(cfg))
        self._sftp: paramiko.SFTPClient | None = None
        self._streams: Future[list[paramiko.SFTPClient]] | None = None
        self._streams_lock = threading.Lock()
        self._round_trip: float | None = None
        try:
            check_host_key(cfg, name, self._transport.get_remote_server_key(), user_keys, project_keys)
            _authenticate(self._transport, cfg, self.user, f"{self.host}:{self.port}", self._watchdog)
        except BaseException:
            self.close()
            raise
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
        self._watchdog.stop()
        self._transport.close()

    def dropped(self) -> bool:
        """True if the connection is gone (paramiko closes the channels just before its thread ends)."""
        self._transport.join(2)
        return not self._transport.is_alive()

    def lost(self, doing: str) -> ConnectionLost:
        silent = self._watchdog.silent
        how = "lost" if silent is None else \
            f"silent for {silent:.0f} s (no answer to keepalives; SSH_ALIVE_TIMEOUT {self._watchdog.limit:g} s)"
        return ConnectionLost(f"connection to {self.describe()} {how} while {doing}; run the same command again "
                              "(finished work is kept)")

    def _session(self, doing: str) -> paramiko.Channel:
        try:
            return self._transport.open_session(timeout=30)
        except (self._paramiko.SSHException, EOFError, OSError):
            raise self.lost(doing) from None

    def _pump(self, chan: paramiko.Channel, on_out: Callable[[bytes], None], on_err: Callable[[bytes], None],
              deadline: float | None, doing: str) -> int:
        """Read a channel until EOF; return its exit status."""
        while True:
            eof = chan.eof_received or chan.closed  # read first: data before EOF is then all buffered
            while chan.recv_ready():
                on_out(chan.recv(65536))
            while chan.recv_stderr_ready():
                on_err(chan.recv_stderr(65536))
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
            chan.exec_command(self._command(argv, cwd))
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
            chan.exec_command(self._command(argv, cwd))
            chan.shutdown_write()
            rc = self._pump(chan, on_output, on_output, None, doing)
        except (self._paramiko.SSHException, EOFError, OSError):
            raise self.lost(doing) from None
        self._check_folder(rc, cwd)
        return rc

    def sftp(self) -> paramiko.SFTPClient:
        """The connection's SFTP session (opened once)."""
        if self._sftp is None:
            self._sftp = self._open_sftp()
        return self._sftp

    def _open_sftp(self, window: int | None = None) -> paramiko.SFTPClient:
        try:
            sftp = self._paramiko.SFTPClient.from_transport(self._transport, window_size=window)
        except (self._paramiko.SSHException, EOFError, OSError) as exc:
            if self.dropped():
                raise self.lost("opening SFTP") from None
            raise RemoteError(f"{self.describe()} has no SFTP service ({exc}); enable the sftp subsystem in "
                              "sshd_config") from None
        if sftp is None:  # paramiko's answer when the connection could not open a channel
            raise self.lost("opening SFTP")
        return sftp

    def streams(self) -> int:
        """STREAMS on a long link (a round trip of LONG_LINK_SECONDS or more), else 1: on loopback and LANs one
        stream is as fast, and pieces cost the box a second pass to verify them.

        The round trip is timed once per connection with keepalives. The first answer after login can wait
        for a delayed ACK (about 40 ms, even on loopback), so a slow first one is timed again; when it is
        slower than that, the stream sessions start opening meanwhile.
        """
        if self._round_trip is None:
            first = self._time_round_trip()
            if first >= LONG_LINK_SECONDS:
                if first >= DELAYED_ACK_SECONDS:
                    self.open_streams()
                first = min(first, self._time_round_trip())
            self._round_trip = first
        return STREAMS if self._round_trip >= LONG_LINK_SECONDS else 1

    def _time_round_trip(self) -> float:
        begun = time.monotonic()
        try:
            self._transport.global_request("keepalive@openssh.com", wait=True)
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
            opening = [pool.submit(self._open_sftp, WINDOW) for _ in range(STREAMS)]
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

    def put(self, local: Path, remote: str, on_bytes: Callable[[int], None], resume: Resume | None = None) -> str:
        sftp = self.sftp()
        src = _open_local(local, "rb")

        def send() -> str:
            with src, sftp.open(remote, "r+b" if resume else "wb", bufsize=0) as dst:
                if resume:
                    src.seek(resume.offset)
                    dst.seek(resume.offset)
                dst.MAX_REQUEST_SIZE = CHUNK
                dst.set_pipelined(True)
                return copy_hashing(src, dst, on_bytes, CHUNK, resume)

        return self._file_op(f"uploading {remote}", send)

    def get(self, remote: str, local: Path, on_bytes: Callable[[int], None], resume: Resume | None = None) -> str:
        sftp = self.sftp()
        dst = _open_local(local, "r+b" if resume else "wb")

        def fetch() -> str:
            with dst, sftp.open(remote, "rb") as src:
                if resume:
                    src.seek(resume.offset)
                    dst.seek(resume.offset)
                src.MAX_REQUEST_SIZE = CHUNK
                src.prefetch()
                return copy_hashing(src, LocalSink(dst, local), on_bytes, CHUNK, resume)

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


def interactive_argv(cfg: Config, command: list[str] | None = None) -> list[str]:
    """OpenSSH ``ssh`` argv with the settings paramiko uses (key, known_hosts, strict checking, no forwarding)."""
    user, host, port, timeout = _settings(cfg)
    if shutil.which("ssh") is None:
        raise UserError("ssh (OpenSSH client) is not installed; install openssh-client")
    files = " ".join(ssh_config_word(str(p)) for p in (user_known_hosts(), cfg.local_path("KNOWN_HOSTS")))
    argv = ["ssh", "-p", str(port), "-o", f"UserKnownHostsFile={files}", "-o", "StrictHostKeyChecking=yes",
            "-o", "ForwardAgent=no", "-o", f"ConnectTimeout={max(1, round(timeout))}",
            "-o", f"ServerAliveInterval={max(1, round(alive_limit(cfg) / KEEPALIVES_PER_LIMIT))}",
            "-o", f"ServerAliveCountMax={KEEPALIVES_PER_LIMIT - 1}"]
    if cfg["SSH_KEY"]:
        # -o, not -i: ssh stats an -i path before expanding its %-tokens, so no spelling of a literal % works there
        argv += ["-o", f"IdentityFile={ssh_config_word(str(cfg.local_path('SSH_KEY')))}", "-o", "IdentitiesOnly=yes"]
    argv += ["-l", user, "--", host]
    if command:
        argv.append(shlex.join(command))
    return argv


def ssh_config_word(path: str | os.PathLike[str], percent: bool = True) -> str:
    """A path as one word of an ssh/sshd config value: double-quoted and escaped; ``percent`` doubles %
    for keywords that expand %-tokens (IdentityFile, UserKnownHostsFile, AuthorizedKeysFile)."""
    text = str(path).replace("\\", "\\\\").replace('"', '\\"')
    return '"' + (text.replace("%", "%%") if percent else text) + '"'
