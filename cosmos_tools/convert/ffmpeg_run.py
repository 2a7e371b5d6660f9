"""Run one ffmpeg process: argv only, progress from ``-progress pipe:1``, stderr kept for the error line."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Callable

from ..errors import UserError

FFMPEG = "ffmpeg"
QUIET = ["-hide_banner", "-nostdin", "-loglevel", "error"]


class FfmpegFailed(UserError):
    """ffmpeg exited non-zero; ``detail`` is its last error line."""

    def __init__(self, what: str, detail: str) -> None:
        super().__init__(f"{what}: ffmpeg failed ({detail})")
        self.detail = detail


class FfmpegProcess:
    """``ffmpeg <args> -progress pipe:1``; ``on_frames(n)`` is called with each batch of new frames."""

    def __init__(self, args: list[str], what: str, on_frames: Callable[[int], None] | None = None,
                 stdin: bool = False, raw_stdout: bool = False) -> None:
        self.what = what
        progress = [] if raw_stdout else ["-progress", "pipe:1", "-nostats"]
        argv = [FFMPEG, *QUIET, *progress, *args]
        try:
            self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        except FileNotFoundError:
            raise UserError("ffmpeg not found; install it (sudo apt-get install ffmpeg)") from None
        self._stderr: list[bytes] = []
        self._threads = [threading.Thread(target=self._read_stderr, daemon=True)]
        if not raw_stdout:
            self._threads.append(threading.Thread(target=self._read_progress, args=(on_frames,), daemon=True))
        for thread in self._threads:
            thread.start()

    def _read_stderr(self) -> None:
        for line in self.proc.stderr:
            self._stderr.append(line)
            del self._stderr[:-20]

    def _read_progress(self, on_frames: Callable[[int], None] | None) -> None:
        done = 0
        for line in self.proc.stdout:
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
