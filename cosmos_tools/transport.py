"""The way to the GPU box, whatever carries it: the ``Transport`` the toolkit uses, the local one
(the toolkit running on the box itself), and ``connect(cfg)``, which picks SSH (``ssh.py``) or local.

Commands are argv lists (quoted with ``shlex.join``, never pasted into a shell string); one
connection serves every step of a cycle. Also the Ctrl-C guard callers wrap around remote work.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import posixpath
import shlex
import signal
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO, TYPE_CHECKING, cast

from .config import Config
from .errors import LocalError, RemoteError
from .hashed_copy import receive_hashing

if TYPE_CHECKING:
    from .streams import Piece

CONNECTIONS_OPENED = 0  # SSH connections this process opened (ssh.py counts them, the benchmark reads them)
NO_FOLDER = 97  # exit status of a remote command whose working folder is missing
PARTS_RECORD = ".cosmos/upload-parts"  # under the project: the box's temporary files of this project's uploads


class ConnectionLost(RemoteError):
    """The SSH connection dropped while a command or a transfer was running."""


@dataclass
class Resume:
    """Where an interrupted transfer goes on: the length of the verified prefix and the sha256 of it so far."""

    offset: int
    digest: hashlib._Hash


class LocalSink:
    """A local file being written by a download: a failed write is the local machine's fault (LocalError)."""

    def __init__(self, handle: IO[bytes], path: Path) -> None:
        self.handle, self.path = handle, path

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        try:
            while view:
                view = view[self.handle.write(view) or 0:]
        except OSError as exc:
            raise LocalError(f"cannot write {self.path}: {exc.strerror or exc} (on this machine); free space or fix "
                             "permissions there, then download again") from None


@dataclass
class Completed:
    rc: int
    stdout: bytes
    stderr: bytes


class Started:
    """A command started before all its input is known (``Transport.start``): ``write`` sends input as it becomes
    known, ``finish`` the rest and EOF, and returns the first output lines; ``cancel`` ends its input there. Here
    the command only runs at ``finish``, with all its input; SSH starts it at once and sends input as it comes."""

    def __init__(self, t: Transport, argv: list[str]) -> None:
        self.t, self.argv = t, argv
        self.input = b""

    def write(self, data: bytes) -> None:
        self.input += data

    def finish(self, data: bytes, lines: int) -> list[str]:
        """Send ``data`` and EOF; return the first ``lines`` lines of output (fewer if it ends before), without
        waiting for the command's end once they are there. A failed command raises RemoteError."""
        out = self.t.run(self.argv, input=self.input + data).stdout.decode()
        return out.splitlines()[:lines]

    def cancel(self) -> None:
        """Best effort, never raises: the command's input ends here."""


class Transport:
    """What the rest of the toolkit uses to reach the box (see SSHTransport and LocalTransport)."""

    remote_dir: str
    parts_dir: Path  # records the box's temporary files of this project's uploads (sync.py)

    def __enter__(self) -> Transport:
        return self

    def __exit__(self, *exc: object) -> None:
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
        return self.checked(argv, done) if check else done

    def checked(self, argv: list[str], done: Completed) -> Completed:
        """``done``, unless its exit status is not 0: then RemoteError with its last stderr lines."""
        if done.rc != 0:
            tail = " | ".join(done.stderr.decode("utf-8", "replace").strip().splitlines()[-3:])
            raise RemoteError(f"{argv[0]} failed on {self.describe()} (exit {done.rc}): {tail or 'no error output'}")
        return done

    def _run(self, argv: list[str], cwd: str | None, input: bytes | None, timeout: float | None) -> Completed:
        raise NotImplementedError

    def stream(self, argv: list[str], *, cwd: str | None = None, on_output: Callable[[bytes], None]) -> int:
        """Run ``argv`` and hand stdout+stderr to ``on_output`` as they arrive; return the exit status."""
        raise NotImplementedError

    def start(self, argv: list[str]) -> Started:
        """Start ``argv`` (in REMOTE_DIR) ahead of its input, so that finishing it costs only the answer's round
        trip; the command must read its input to the end."""
        return Started(self, argv)

    # File operations used by sync.py; paths are absolute (see abspath).
    def makedirs(self, path: str) -> None:
        raise NotImplementedError

    def put(self, local: Path, remote: str, on_bytes: Callable[[int], None], offset: int = 0) -> None:
        """Copy ``local`` to ``remote`` (from ``offset`` on, into the existing file). The caller hashes the local
        file meanwhile (in another thread) and checks the box's hash of what arrived against it."""
        raise NotImplementedError

    def get(self, remote: str, local: Path, size: int, on_bytes: Callable[[int], None],
            resume: Resume | None = None) -> str:
        """Copy the first ``size`` bytes of ``remote`` (its size when listed) to ``local`` (from ``resume.offset`` on,
        into the existing file); return the sha256 of the whole file (the resumed prefix's digest continued with the
        bytes received)."""
        raise NotImplementedError

    def streams(self) -> int:
        """How many transfer streams run at once (``put_pieces``/``get_pieces``); 1: use ``put``/``get``."""
        return 1

    def open_streams(self) -> None:
        """Start opening what ``put_pieces``/``get_pieces`` use, in the background (they wait for it)."""

    def put_pieces(self, files: list[tuple[Path, str]], pieces: list[Piece], on_acked: Callable[[int], None]) -> None:
        """Write the pieces of local files (``piece.key`` indexes ``files``: (local, remote)) into the remote files
        at their offsets, several at once; ``on_acked`` and ``piece.done`` count what the box acknowledged."""
        raise NotImplementedError

    def get_pieces(self, remote: str, local: Path, pieces: list[Piece], on_bytes: Callable[[int], None]) -> None:
        """Read the pieces of one remote file into ``local`` (created if missing, never truncated) at their offsets,
        several at once; ``on_bytes`` and ``piece.done`` count what arrived here."""
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


def _blocks(src: IO[bytes], at: int, end: int) -> Iterator[bytes]:
    """A local file's bytes from ``at`` (where it is) to ``end``, 1 MiB at a time."""
    while at < end and (block := src.read(min(1024 * 1024, end - at))):
        at += len(block)
        yield block


class LocalTransport(Transport):
    """The toolkit running on the GPU box itself: REMOTE_DIR is a local folder."""

    def __init__(self, cfg: Config) -> None:
        self.remote_dir = os.path.join(os.path.expanduser("~"), cfg["REMOTE_DIR"])  # relative: to home, as over SSH
        self.parts_dir = cfg.root / PARTS_RECORD

    def describe(self) -> str:
        return f"local:{self.remote_dir}"

    def _cwd(self, cwd: str | None) -> str:
        folder = self.abspath(cwd or ".")
        if not os.path.isdir(folder):
            raise self.no_folder(cwd)
        return folder

    def _run(self, argv: list[str], cwd: str | None, input: bytes | None, timeout: float | None) -> Completed:
        try:
            done = subprocess.run(argv, cwd=self._cwd(cwd), input=input or b"", capture_output=True,
                                  timeout=timeout)
        except FileNotFoundError:
            return Completed(127, b"", f"{argv[0]}: command not found\n".encode())
        except subprocess.TimeoutExpired:
            raise RemoteError(f"running {argv[0]} on {self.describe()} did not finish in time") from None
        return Completed(done.returncode, done.stdout, done.stderr)

    def stream(self, argv: list[str], *, cwd: str | None = None, on_output: Callable[[bytes], None]) -> int:
        try:
            proc = subprocess.Popen(argv, cwd=self._cwd(cwd), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT)
        except FileNotFoundError:
            on_output(f"{argv[0]}: command not found\n".encode())
            return 127
        stdout = cast(io.BufferedReader, proc.stdout)  # stdout=PIPE, default buffering
        with proc:
            while block := stdout.read1(65536):
                on_output(block)
        return proc.returncode

    def makedirs(self, path: str) -> None:
        try:
            os.makedirs(path, exist_ok=True)
        except OSError as exc:
            raise RemoteError(f"creating {path}: {exc.strerror}") from None

    def put(self, local: Path, remote: str, on_bytes: Callable[[int], None], offset: int = 0) -> None:
        try:
            with open(local, "rb") as fin, open(remote, "r+b" if offset else "wb") as fout:
                fin.seek(offset)
                fout.seek(offset)
                while block := fin.read(1024 * 1024):
                    fout.write(block)
                    on_bytes(len(block))
        except OSError as exc:
            raise RemoteError(f"copying {local} to {remote}: {exc.strerror or exc}") from None

    def get(self, remote: str, local: Path, size: int, on_bytes: Callable[[int], None],
            resume: Resume | None = None) -> str:
        try:
            with open(remote, "rb") as fin, open(local, "r+b" if resume else "wb") as fout:
                if resume:
                    fin.seek(resume.offset)
                    fout.seek(resume.offset)
                return receive_hashing(_blocks(fin, fin.tell(), size), fout, on_bytes, resume)
        except OSError as exc:
            raise RemoteError(f"copying {remote} to {local}: {exc.strerror or exc}") from None

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
    if cfg["TRANSPORT"] == "local":
        return LocalTransport(cfg)
    from .ssh import SSHTransport

    return SSHTransport(cfg)


def _inside_paramiko(frame: FrameType | None) -> bool:
    """Whether ``frame`` runs in paramiko, or in our SFTP framing, which an exception must not cut mid-packet
    either (the session would read the rest of a packet as the next one)."""
    while frame is not None:
        name = frame.f_code.co_filename
        if f"{os.sep}paramiko{os.sep}" in name or name.endswith(f"{os.sep}sftp_wire.py"):
            return True
        frame = frame.f_back
    return False


@contextlib.contextmanager
def paramiko_safe_sigint() -> Iterator[None]:
    """Ctrl-C never lands inside paramiko (or our SFTP framing, ``sftp_wire``): it is raised as soon as the main
    thread is back in our other code.

    A KeyboardInterrupt between paramiko's acquire of its send lock and the ``try`` that releases it
    leaves the lock held: every later call on the connection (the ``docker stop`` of Ctrl-C, even the
    keepalive) then waits forever. So a Ctrl-C that arrives inside paramiko is re-checked every 50 ms.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(_signum: int, frame: FrameType | None) -> None:
        if _inside_paramiko(frame):
            signal.setitimer(signal.ITIMER_REAL, 0.05)
            return
        signal.setitimer(signal.ITIMER_REAL, 0)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, handler), signal.signal(signal.SIGALRM, handler)
    try:
        yield
    finally:
        held = take_held_interrupt()
        signal.signal(signal.SIGINT, previous[0])
        signal.signal(signal.SIGALRM, previous[1])
        if held:  # the block ended while a Ctrl-C waited to land outside paramiko: it is not lost
            raise KeyboardInterrupt


def take_held_interrupt() -> bool:
    """Take the Ctrl-C that ``paramiko_safe_sigint`` holds (its 50 ms re-check timer is armed), disarming the
    re-check; whether there was one."""
    if signal.getitimer(signal.ITIMER_REAL)[0] <= 0:
        return False
    signal.setitimer(signal.ITIMER_REAL, 0)
    return True


def raise_held_interrupt() -> None:
    """Raise here, in our code, a Ctrl-C that ``paramiko_safe_sigint`` holds because it came while paramiko ran.
    A one-stream transfer calls it after each block: its main thread is in paramiko nearly all the time, so the
    50 ms re-check could miss our code until the transfer ended."""
    if threading.current_thread() is threading.main_thread() and take_held_interrupt():
        raise KeyboardInterrupt
