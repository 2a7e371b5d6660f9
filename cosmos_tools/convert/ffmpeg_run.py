"""Run one ffmpeg process: argv only, progress from ``-progress pipe:N``, stderr kept for the error line."""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO

from ..errors import UserError

FFMPEG = "ffmpeg"
QUIET = ["-hide_banner", "-nostdin", "-loglevel", "error"]


class FfmpegFailed(UserError):
    """ffmpeg exited non-zero; ``detail`` is its last error line."""

    def __init__(self, what: str, detail: str) -> None:
        super().__init__(f"{what}: ffmpeg failed ({detail})")
        self.detail = detail


class FfmpegProcess:
    """``ffmpeg <args>`` with ``-progress`` on a pipe of its own; ``on_frames(n)`` gets each batch of new frames.

    ``stdin``: False (none), True (we write raw frames) or another process's stdout; ``stdout``: True
    when ffmpeg writes data there (raw frames, or a stream for another process); ``cwd``: where relative
    output names land (used to keep user paths out of ffmpeg's escaped option syntax).
    """

    def __init__(self, args: list[str], what: str, on_frames: Callable[[int], None] | None = None,
                 stdin=False, stdout: bool = False, cwd: Path | None = None) -> None:
        self.what = what
        progress_read, progress_write = os.pipe()
        argv = [FFMPEG, *QUIET, "-progress", f"pipe:{progress_write}", "-nostats", *args]
        source = subprocess.PIPE if stdin is True else (stdin or subprocess.DEVNULL)
        try:
            self.proc = subprocess.Popen(argv, stdin=source, stdout=subprocess.PIPE if stdout else subprocess.DEVNULL,
                                         stderr=subprocess.PIPE, pass_fds=(progress_write,), cwd=cwd)
        except FileNotFoundError:
            os.close(progress_read)
            raise UserError("ffmpeg not found; install it (sudo apt-get install ffmpeg)") from None
        finally:
            os.close(progress_write)
        self._stderr: list[bytes] = []
        self._threads = [threading.Thread(target=self._read_stderr, daemon=True),
                         threading.Thread(target=self._read_progress, args=(progress_read, on_frames), daemon=True)]
        for thread in self._threads:
            thread.start()

    @property
    def stdin(self) -> IO[bytes]:
        """Where raw frames go (started with ``stdin=True``)."""
        assert self.proc.stdin is not None, "started without stdin=True"
        return self.proc.stdin

    @property
    def stdout(self) -> IO[bytes]:
        """What ffmpeg writes (started with ``stdout=True``)."""
        assert self.proc.stdout is not None, "started without stdout=True"
        return self.proc.stdout

    def _read_stderr(self) -> None:
        stderr = self.proc.stderr
        assert stderr is not None, "always started with stderr=PIPE"
        for line in stderr:
            self._stderr.append(line)
            del self._stderr[:-20]

    def _read_progress(self, fd: int, on_frames: Callable[[int], None] | None) -> None:
        done = 0
        with open(fd, "rb") as progress:
            for line in progress:
                if line.startswith(b"frame="):
                    frame = int(line[6:].strip() or 0)
                    if on_frames and frame > done:
                        on_frames(frame - done)
                    done = max(done, frame)

    def error_line(self) -> str:
        lines = [ln.decode("utf-8", "replace").strip() for ln in self._stderr]
        lines = [ln for ln in lines if ln]
        return lines[-1] if lines else f"exit code {self.proc.returncode}"

    def wait(self) -> None:
        """Wait for the end; raise ``FfmpegFailed`` with ffmpeg's last error line on failure."""
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc.wait()
        for thread in self._threads:
            thread.join()
        if self.proc.returncode != 0:
            raise FfmpegFailed(self.what, self.error_line())

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


class ProcessGroup:
    """Every ffmpeg started for one conversion, so a failure or Ctrl-C stops them all."""

    def __init__(self) -> None:
        self._procs: list[FfmpegProcess] = []
        self._lock = threading.Lock()
        self.cancelled = threading.Event()

    def start(self, *args, **kwargs) -> FfmpegProcess:
        with self._lock:
            if self.cancelled.is_set():
                raise UserError("conversion cancelled")
            proc = FfmpegProcess(*args, **kwargs)
            self._procs.append(proc)
            return proc

    def kill_all(self) -> None:
        with self._lock:
            self.cancelled.set()
            procs = list(self._procs)
        for proc in procs:
            proc.kill()
