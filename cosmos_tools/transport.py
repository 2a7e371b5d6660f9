"""The way to the GPU box: one verified SSH connection (paramiko), or the local machine itself.

``connect(cfg)`` returns a Transport that runs argv lists (quoted with ``shlex.join``, never
pasted into a shell string) and moves files. One connection serves every step of a cycle.
Host keys are checked against ~/.ssh/known_hosts and the project's KNOWN_HOSTS; an unknown or
changed key is refused with one line saying how to trust it (``cosmos-tools trust``).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import logging
import os
import posixpath
import select
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .config import Config
from .errors import RemoteError, UserError

CONNECTIONS_OPENED = 0  # SSH connections this process opened (the benchmark counts them)
KEEPALIVE_SECONDS = 15
NO_FOLDER = 97  # exit status of a remote command whose working folder is missing
DEAD_AFTER_SECONDS = 60  # data unacknowledged this long: the connection is gone (TCP_USER_TIMEOUT)
CHUNK = 128 * 1024  # SFTP request size: pipelined writes and prefetched reads (OpenSSH allows 261120)
FAST_CIPHERS = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com", "aes128-ctr", "aes256-ctr")
KEY_TYPE_NAMES = {"ssh-ed25519": "ED25519", "ssh-rsa": "RSA", "ssh-dss": "DSA"}


class ConnectionLost(RemoteError):
    """The SSH connection dropped while a command or a transfer was running."""


@dataclass
class Completed:
    rc: int
    stdout: bytes
    stderr: bytes


def user_known_hosts() -> Path:
    return Path(os.path.expanduser("~/.ssh/known_hosts"))


def host_id(host: str, port: int) -> str:
    """The name OpenSSH files a host key under: ``host``, or ``[host]:port`` off port 22."""
    return host if port == 22 else f"[{host}]:{port}"


def fingerprint(key) -> str:
    """``ED25519 SHA256:...``, as ``ssh-keygen -l`` prints it."""
    digest = base64.b64encode(hashlib.sha256(key.asbytes()).digest()).decode().rstrip("=")
    name = key.get_name()
    kind = "ECDSA" if name.startswith("ecdsa-") else KEY_TYPE_NAMES.get(name, name)
    return f"{kind} SHA256:{digest}"


def _settings(cfg: Config) -> tuple[str, str, int, float]:
    cfg.require("REMOTE_HOST")
    return cfg["REMOTE_USER"], cfg["REMOTE_HOST"], cfg.int("REMOTE_PORT"), cfg.float("SSH_TIMEOUT")


def open_socket(host: str, port: int, timeout: float) -> socket.socket:
    """A TCP connection with TCP_NODELAY, or one clear line saying why the box cannot be reached."""
    where = f"{host}:{port}"
    try:
        sock = socket.create_connection((host, port), timeout=timeout or None)
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
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if hasattr(socket, "TCP_USER_TIMEOUT"):  # Linux: with the keepalives, a silent network cut ends the connection
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, DEAD_AFTER_SECONDS * 1000)
    return sock


def load_known_hosts(cfg: Config):
    """(user HostKeys, project HostKeys), each empty when its file is missing."""
    return read_known_hosts(user_known_hosts()), read_known_hosts(cfg.local_path("KNOWN_HOSTS"))


def read_known_hosts(path: Path):
    """The keys of a known_hosts file, line by line: lines paramiko cannot read (markers such as
    @cert-authority, key types it lacks, damaged lines) are skipped instead of losing the whole file."""
    import paramiko
    from paramiko.hostkeys import HostKeyEntry

    keys = paramiko.HostKeys()
    try:
        text = path.read_text(encoding="utf-8", errors="replace") if path.is_file() else ""
    except OSError as exc:
        raise UserError(f"{path}: cannot read known_hosts ({exc.strerror}); check its permissions") from None
    for lineno, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith(("#", "@")):
            continue
        try:
            entry = HostKeyEntry.from_line(line, lineno)
        except Exception:  # noqa: S112 (paramiko raises several types for one bad line: skip it)
            continue
        if entry is not None and entry.key is not None:
            for name in entry.hostnames:
                keys.add(name, entry.key.get_name(), entry.key)
    return keys


def _quiet_prefetch_hook(previous):
    """Keep paramiko's download prefetch thread quiet when the connection drops: the reader reports it."""
    import paramiko

    def hook(args) -> None:
        if "_prefetch_thread" in (args.thread.name if args.thread else "") and issubclass(
                args.exc_type, (EOFError, OSError, paramiko.SSHException)):
            return
        previous(args)

    return hook


def start_transport(sock: socket.socket, timeout: float, known_types: list[str]):
    """An SSH transport over ``sock`` with fast ciphers and the host key types we already know first."""
    import paramiko

    log = logging.getLogger("paramiko")
    if not log.handlers:
        log.addHandler(logging.NullHandler())  # our errors are one line, not paramiko's log on stderr
        threading.excepthook = _quiet_prefetch_hook(threading.excepthook)
    transport = paramiko.Transport(sock)
    opts = transport.get_security_options()
    opts.ciphers = [c for c in FAST_CIPHERS if c in opts.ciphers] + [c for c in opts.ciphers if c not in FAST_CIPHERS]
    wanted = []
    for kind in known_types:
        wanted += ["rsa-sha2-512", "rsa-sha2-256", kind] if kind == "ssh-rsa" else [kind]
    opts.key_types = [k for k in wanted if k in opts.key_types] + [k for k in opts.key_types if k not in wanted]
    host, port = sock.getpeername()[:2]
    try:
        transport.start_client(timeout=timeout or None)  # returns at the timeout even if unfinished
        why = None if transport.host_key is not None else f"no answer within {timeout:g} s"
    except (paramiko.SSHException, EOFError, OSError) as exc:
        why = str(exc)
    if why:
        transport.close()
        raise RemoteError(f"{host}:{port} did not complete the SSH handshake ({why}); is it an SSH server? "
                          "(SSH_TIMEOUT sets the wait)")
    return transport


def classify_host_key(cfg: Config, name: str, key, user_keys, project_keys) -> tuple[str, Path | None, object]:
    """("known", file, key) | ("changed", file, old key) | ("unknown", None, None) for a host's key."""
    files = ((user_known_hosts(), user_keys), (cfg.local_path("KNOWN_HOSTS"), project_keys))
    same_type = [(path, entries[key.get_name()]) for path, hk in files
                 if (entries := hk.lookup(name)) and key.get_name() in entries]
    for path, old in same_type:
        if old == key:
            return "known", path, old
    if same_type:
        return "changed", *same_type[0]
    return "unknown", None, None


def check_host_key(cfg: Config, name: str, key, user_keys, project_keys) -> None:
    """Refuse a host key that neither known_hosts file vouches for; accept one that matches."""
    status, path, old = classify_host_key(cfg, name, key, user_keys, project_keys)
    if status == "changed":
        fix = (f"run: ssh-keygen -R '{name}' -f '{path}'" if path == user_known_hosts()
               else "run: cosmos-tools trust --replace")
        raise RemoteError(f"HOST KEY OF {name} HAS CHANGED (now {fingerprint(key)}, {path} has {fingerprint(old)}): "
                          "someone may be intercepting the connection; check the key with your provider "
                          f"before trusting it, then remove the old line from {path} ({fix})")
    if status == "unknown":
        raise RemoteError(f"host key of {name} is not known ({fingerprint(key)}); "
                          "if this is your GPU box, run: cosmos-tools trust")


def handshake(cfg: Config):
    """Connect and run the key exchange, no login: (host name as known_hosts files it, paramiko transport,
    user HostKeys, project HostKeys). The host key is not checked yet."""
    global CONNECTIONS_OPENED
    _user, host, port, timeout = _settings(cfg)
    name = host_id(host, port)
    user_keys, project_keys = load_known_hosts(cfg)
    known_types = [t for hk in (user_keys, project_keys) for t in (hk.lookup(name) or {}).keys()]
    sock = open_socket(host, port, timeout)
    CONNECTIONS_OPENED += 1
    return name, start_transport(sock, timeout, known_types), user_keys, project_keys


def scan_host_key(cfg: Config):
    """(host name as known_hosts files it, the key the box presents, user HostKeys, project HostKeys)."""
    name, ssh, user_keys, project_keys = handshake(cfg)
    try:
        return name, ssh.get_remote_server_key(), user_keys, project_keys
    finally:
        ssh.close()


def _auth_keys(cfg: Config):
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
    found = []
    with contextlib.suppress(paramiko.SSHException):
        found += [(f"agent key {k.fingerprint}", k) for k in paramiko.Agent().get_keys()]
    for name in ("id_ed25519", "id_ecdsa", "id_rsa"):
        path = Path(os.path.expanduser(f"~/.ssh/{name}"))
        if path.is_file():
            with contextlib.suppress(paramiko.SSHException, OSError, ValueError, TypeError):  # TypeError: locked
                found.append((str(path), paramiko.PKey.from_path(path)))
    return found


def _authenticate(transport, cfg: Config, user: str, where: str) -> None:
    import paramiko

    keys = _auth_keys(cfg)
    if not keys:
        raise RemoteError(f"no SSH key to offer {user}@{where}: set SSH_KEY in config.sh, or start ssh-agent and "
                          "ssh-add your key")
    for _label, key in keys:
        try:
            transport.auth_publickey(user, key)
            return
        except paramiko.AuthenticationException:
            continue
        except (paramiko.SSHException, EOFError, OSError) as exc:
            raise RemoteError(f"{where} dropped the connection during login ({exc})") from None
    labels = ", ".join(label for label, _ in keys)
    raise RemoteError(f"{user}@{where} refused our key ({labels}): check REMOTE_USER and SSH_KEY, and that the "
                      "public key is in ~/.ssh/authorized_keys on the box")


class Transport:
    """What the rest of the toolkit uses to reach the box (see SSHTransport and LocalTransport)."""

    remote_dir: str

    def __enter__(self) -> Transport:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Release the connection (idempotent)."""

    def describe(self) -> str:
        raise NotImplementedError

    def abspath(self, path: str) -> str:
        """``path`` relative to REMOTE_DIR (absolute paths stay as they are)."""
        return posixpath.join(self.remote_dir, path)

    def _command(self, argv: list[str], cwd: str | None) -> str:
        if not argv:
            raise ValueError("empty command")
        line = shlex.join(argv)
        return f"cd -- {shlex.quote(self.abspath(cwd or '.'))} || exit {NO_FOLDER}; {line}"

    def no_folder(self, cwd: str | None) -> RemoteError:
        folder = self.abspath(cwd) if cwd else self.remote_dir
        return RemoteError(f"folder {folder} does not exist on {self.describe()}; check REMOTE_DIR in config.sh")

    def run(self, argv: list[str], *, cwd: str | None = None, input: bytes | None = None,
            timeout: float | None = None, check: bool = True) -> Completed:
        """Run ``argv`` on the box; with ``check`` a non-zero exit raises RemoteError with its last stderr lines."""
        done = self._run(argv, cwd, input, timeout)
        if check and done.rc != 0:
            tail = " | ".join(done.stderr.decode("utf-8", "replace").strip().splitlines()[-3:])
            raise RemoteError(f"{argv[0]} failed on {self.describe()} (exit {done.rc}): {tail or 'no error output'}")
        return done

    def _run(self, argv, cwd, input, timeout) -> Completed:
        raise NotImplementedError

    def stream(self, argv: list[str], *, cwd: str | None = None, on_output: Callable[[bytes], None]) -> int:
        """Run ``argv`` and hand stdout+stderr to ``on_output`` as they arrive; return the exit status."""
        raise NotImplementedError

    # File operations used by sync.py; paths are absolute (see abspath).
    def makedirs(self, path: str) -> None:
        raise NotImplementedError

    def put(self, local: Path, remote: str, on_bytes: Callable[[int], None]) -> str:
        """Copy ``local`` to ``remote``; return the sha256 of the bytes sent."""
        raise NotImplementedError

    def get(self, remote: str, local: Path, on_bytes: Callable[[int], None]) -> str:
        """Copy ``remote`` to ``local``; return the sha256 of the bytes received."""
        raise NotImplementedError

    def rename(self, src: str, dst: str) -> None:
        """Move ``src`` over ``dst`` atomically."""
        raise NotImplementedError

    def remove(self, path: str) -> None:
        """Delete a file if it exists."""
        raise NotImplementedError

    def size(self, path: str) -> int | None:
        """A file's size, None if it does not exist."""
        raise NotImplementedError


def copy_hashing(src, dst, on_bytes, chunk: int) -> str:
    """Copy one open file to another in ``chunk``-sized blocks; return the sha256 of what passed."""
    digest = hashlib.sha256()
    while block := src.read(chunk):
        digest.update(block)
        dst.write(block)
        on_bytes(len(block))
    return digest.hexdigest()


def _open_local(path: Path, mode: str):
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
        name, self._transport, user_keys, project_keys = handshake(cfg)
        self._sftp = None
        try:
            check_host_key(cfg, name, self._transport.get_remote_server_key(), user_keys, project_keys)
            _authenticate(self._transport, cfg, self.user, f"{self.host}:{self.port}")
        except BaseException:
            self._transport.close()
            raise
        self._transport.set_keepalive(KEEPALIVE_SECONDS)
        self._paramiko = paramiko

    def describe(self) -> str:
        return f"{self.user}@{self.host}:{self.port}"

    def close(self) -> None:
        if self._sftp is not None:
            with contextlib.suppress(Exception):
                self._sftp.close()
            self._sftp = None
        self._transport.close()

    def dropped(self) -> bool:
        """True if the connection is gone (paramiko closes the channels just before its thread ends)."""
        self._transport.join(2)
        return not self._transport.is_alive()

    def lost(self, doing: str) -> ConnectionLost:
        return ConnectionLost(f"connection to {self.describe()} lost while {doing}; run the same command again "
                              "(finished work is kept)")

    def _session(self, doing: str):
        try:
            return self._transport.open_session(timeout=30)
        except (self._paramiko.SSHException, EOFError, OSError):
            raise self.lost(doing) from None

    def _pump(self, chan, on_out, on_err, deadline: float | None, doing: str) -> int:
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

    def _run(self, argv, cwd, input, timeout) -> Completed:
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

    def stream(self, argv, *, cwd=None, on_output) -> int:
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

    def sftp(self):
        """The connection's SFTP session (opened once)."""
        if self._sftp is None:
            try:
                self._sftp = self._paramiko.SFTPClient.from_transport(self._transport)
            except (self._paramiko.SSHException, EOFError, OSError) as exc:
                if self.dropped():
                    raise self.lost("opening SFTP") from None
                raise RemoteError(f"{self.describe()} has no SFTP service ({exc}); enable the sftp subsystem in "
                                  "sshd_config") from None
        return self._sftp

    def _file_op(self, doing: str, op):
        try:
            return op()
        except (OSError, self._paramiko.SSHException, EOFError) as exc:
            if getattr(exc, "errno", None):  # the SFTP server answered: a real file error
                raise RemoteError(f"{doing} on {self.describe()}: {exc.strerror or exc}") from None
            if self.dropped():
                raise self.lost(doing) from None
            raise RemoteError(f"{doing} on {self.describe()}: {exc}") from None

    def makedirs(self, path: str) -> None:
        sftp = self.sftp()

        def make() -> None:
            todo = []
            folder = path
            while folder not in ("", "/"):
                try:
                    sftp.stat(folder)
                    break
                except FileNotFoundError:
                    todo.append(folder)
                    folder = posixpath.dirname(folder)
            for folder in reversed(todo):
                try:
                    sftp.mkdir(folder)
                except OSError as exc:
                    # another client may have made it meanwhile (SFTP says only "Failure"): fine if it exists now
                    try:
                        made = stat.S_ISDIR(sftp.stat(folder).st_mode)
                    except OSError:
                        made = False
                    if not made:
                        raise exc from None

        self._file_op(f"creating {path}", make)

    def put(self, local: Path, remote: str, on_bytes) -> str:
        sftp = self.sftp()
        src = _open_local(local, "rb")

        def send() -> str:
            with src, sftp.open(remote, "wb", bufsize=0) as dst:
                dst.MAX_REQUEST_SIZE = CHUNK
                dst.set_pipelined(True)
                return copy_hashing(src, dst, on_bytes, CHUNK)

        return self._file_op(f"uploading {remote}", send)

    def get(self, remote: str, local: Path, on_bytes) -> str:
        sftp = self.sftp()
        dst = _open_local(local, "wb")

        def fetch() -> str:
            with dst, sftp.open(remote, "rb") as src:
                src.MAX_REQUEST_SIZE = CHUNK
                src.prefetch()
                return copy_hashing(src, dst, on_bytes, CHUNK)

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


class LocalTransport(Transport):
    """The toolkit running on the GPU box itself: REMOTE_DIR is a local folder."""

    def __init__(self, cfg: Config) -> None:
        self.remote_dir = os.path.join(os.path.expanduser("~"), cfg["REMOTE_DIR"])  # relative: to home, as over SSH

    def describe(self) -> str:
        return f"local:{self.remote_dir}"

    def _cwd(self, cwd: str | None) -> str:
        folder = self.abspath(cwd or ".")
        if not os.path.isdir(folder):
            raise self.no_folder(cwd)
        return folder

    def _run(self, argv, cwd, input, timeout) -> Completed:
        try:
            done = subprocess.run(argv, cwd=self._cwd(cwd), input=input or b"", capture_output=True,
                                  timeout=timeout)
        except FileNotFoundError:
            return Completed(127, b"", f"{argv[0]}: command not found\n".encode())
        except subprocess.TimeoutExpired:
            raise RemoteError(f"running {argv[0]} on {self.describe()} did not finish in time") from None
        return Completed(done.returncode, done.stdout, done.stderr)

    def stream(self, argv, *, cwd=None, on_output) -> int:
        try:
            proc = subprocess.Popen(argv, cwd=self._cwd(cwd), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT)
        except FileNotFoundError:
            on_output(f"{argv[0]}: command not found\n".encode())
            return 127
        with proc:
            while block := proc.stdout.read1(65536):
                on_output(block)
        return proc.returncode

    def makedirs(self, path: str) -> None:
        try:
            os.makedirs(path, exist_ok=True)
        except OSError as exc:
            raise RemoteError(f"creating {path}: {exc.strerror}") from None

    def _copy(self, src, dst, on_bytes, doing: str) -> str:
        try:
            with open(src, "rb") as fin, open(dst, "wb") as fout:
                return copy_hashing(fin, fout, on_bytes, 1024 * 1024)
        except OSError as exc:
            raise RemoteError(f"{doing}: {exc.strerror or exc}") from None

    def put(self, local: Path, remote: str, on_bytes) -> str:
        return self._copy(local, remote, on_bytes, f"copying {local} to {remote}")

    def get(self, remote: str, local: Path, on_bytes) -> str:
        return self._copy(remote, local, on_bytes, f"copying {remote} to {local}")

    def rename(self, src: str, dst: str) -> None:
        try:
            os.replace(src, dst)
        except OSError as exc:
            raise RemoteError(f"renaming {src}: {exc.strerror}") from None

    def remove(self, path: str) -> None:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise RemoteError(f"removing {path}: {exc.strerror}") from None

    def size(self, path: str) -> int | None:
        try:
            return os.stat(path).st_size
        except FileNotFoundError:
            return None


def connect(cfg: Config) -> Transport:
    """The transport TRANSPORT names: ssh (the default) or local."""
    return LocalTransport(cfg) if cfg["TRANSPORT"] == "local" else SSHTransport(cfg)


def interactive_argv(cfg: Config, command: list[str] | None = None) -> list[str]:
    """OpenSSH ``ssh`` argv with the settings paramiko uses (key, known_hosts, strict checking, no forwarding)."""
    user, host, port, timeout = _settings(cfg)
    if shutil.which("ssh") is None:
        raise UserError("ssh (OpenSSH client) is not installed; install openssh-client")
    files = " ".join(ssh_config_word(str(p)) for p in (user_known_hosts(), cfg.local_path("KNOWN_HOSTS")))
    argv = ["ssh", "-p", str(port), "-o", f"UserKnownHostsFile={files}", "-o", "StrictHostKeyChecking=yes",
            "-o", "ForwardAgent=no", "-o", f"ConnectTimeout={max(1, round(timeout))}",
            "-o", f"ServerAliveInterval={KEEPALIVE_SECONDS}"]
    if cfg["SSH_KEY"]:
        # -o, not -i: ssh stats an -i path before expanding its %-tokens, so no spelling of a literal % works there
        argv += ["-o", f"IdentityFile={ssh_config_word(str(cfg.local_path('SSH_KEY')))}", "-o", "IdentitiesOnly=yes"]
    argv += ["-l", user, "--", host]
    if command:
        argv.append(shlex.join(command))
    return argv


def ssh_config_word(path, percent: bool = True) -> str:
    """A path as one word of an ssh/sshd config value: double-quoted and escaped; ``percent`` doubles %
    for keywords that expand %-tokens (IdentityFile, UserKnownHostsFile, AuthorizedKeysFile)."""
    text = str(path).replace("\\", "\\\\").replace('"', '\\"')
    return '"' + (text.replace("%", "%%") if percent else text) + '"'


def _inside_paramiko(frame) -> bool:
    while frame is not None:
        if f"{os.sep}paramiko{os.sep}" in frame.f_code.co_filename:
            return True
        frame = frame.f_back
    return False


@contextlib.contextmanager
def paramiko_safe_sigint():
    """Ctrl-C never lands inside paramiko: it is raised as soon as the main thread is back in our code.

    A KeyboardInterrupt between paramiko's acquire of its send lock and the ``try`` that releases it
    leaves the lock held: every later call on the connection (the ``docker stop`` of Ctrl-C, even the
    keepalive) then waits forever. So a Ctrl-C that arrives inside paramiko is re-checked every 50 ms.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(_signum, frame) -> None:
        if _inside_paramiko(frame):
            signal.setitimer(signal.ITIMER_REAL, 0.05)
            return
        signal.setitimer(signal.ITIMER_REAL, 0)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, handler), signal.signal(signal.SIGALRM, handler)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGINT, previous[0])
        signal.signal(signal.SIGALRM, previous[1])
