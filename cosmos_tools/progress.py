"""A small progress bar on stderr for long work (bytes or frames), silent when not a terminal."""

from __future__ import annotations

import sys
import time


def _human(n: float, unit: str) -> str:
    if unit != "B":
        return f"{n:.0f}"
    for suffix in ("B", "KB", "MB", "GB"):
        if abs(n) < 1000 or suffix == "GB":
            return f"{n:.0f}{suffix}" if suffix == "B" else f"{n:.1f}{suffix}"
        n /= 1000
    return f"{n:.1f}GB"


class Progress:
    """``with Progress(total, "upload", unit="B") as bar: bar.update(n)``.

    Shows done/total, the average rate since the start and the time left at that rate. Callers count
    what the other side has (bytes the box wrote, bytes received here), so both stay honest on a slow
    link. Draws at most ten times a second on stderr when stderr is a terminal (or ``force=True``);
    ``enabled=False`` (e.g. ``--quiet``) draws nothing. Thread-safe enough for one writer.
    """

    def __init__(self, total: int, label: str, unit: str = "", enabled: bool = True, force: bool = False,
                 stream=None) -> None:
        self.total = max(int(total), 0)
        self.label = label
        self.unit = unit
        self.done = 0
        self.stream = stream or sys.stderr
        self.enabled = enabled and (force or self.stream.isatty())
        self._start = time.monotonic()
        self._last_draw = 0.0

    def __enter__(self) -> Progress:
        self._draw(force=True)
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def update(self, n: int) -> None:
        self.done += n
        self._draw()

    def _draw(self, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._last_draw < 0.1:
            return
        self._last_draw = now
        elapsed = max(now - self._start, 1e-6)
        frac = min(self.done / self.total, 1.0) if self.total else 1.0
        width = 24
        bar = "#" * int(frac * width) + "-" * (width - int(frac * width))
        speed = self.done / elapsed
        rate = _human(speed, self.unit) + ("/s" if self.unit == "B" else f" {self.unit}/s")
        text = f"\r{self.label} [{bar}] {_human(self.done, self.unit)}/{_human(self.total, self.unit)} {rate}"
        if speed > 0 and self.done < self.total:
            left = round((self.total - self.done) / speed)
            text += f" ETA {left // 60}:{left % 60:02d}"
        self.stream.write(text + "\x1b[K")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self._draw(force=True)
            self.stream.write("\n")
            self.stream.flush()
            self.enabled = False
