"""Small progress bars on stderr for long work (bytes or frames), silent when not a terminal.

``Progress``: one bar. ``PartsProgress``: a total line plus one line per part of a job whose parts run at
once (the modalities of a conversion), each with its frames done / total and its ETA.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import TypeVar


def _human(n: float, unit: str) -> str:
    if unit != "B":
        return f"{n:.0f}"
    for suffix in ("B", "KB", "MB", "GB"):
        if abs(n) < 1000 or suffix == "GB":
            return f"{n:.0f}{suffix}" if suffix == "B" else f"{n:.1f}{suffix}"
        n /= 1000
    return f"{n:.1f}GB"


def _bar(frac: float, width: int) -> str:
    filled = int(min(max(frac, 0.0), 1.0) * width)
    return "#" * filled + "-" * (width - filled)


def _clock(seconds: float) -> str:
    seconds = int(seconds + 0.5)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


_B = TypeVar("_B", bound="_Bar")


class _Bar:
    """What both bars share: where and whether they draw, at most ten redraws a second, the closing line."""

    def __init__(self, label: str, unit: str, enabled: bool, force: bool, stream) -> None:
        self.label = label
        self.unit = unit
        self.stream = stream or sys.stderr
        self.enabled = enabled and (force or self.stream.isatty())
        self._lock = threading.Lock()
        self._start = time.monotonic()
        self._last_draw = 0.0

    def __enter__(self: _B) -> _B:
        with self._lock:
            self._draw(force=True)
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _due(self, force: bool) -> float | None:
        """The time to draw at, or None: the bar is off, or drew less than 0.1 s ago."""
        if not self.enabled:
            return None
        now = time.monotonic()
        if not force and now - self._last_draw < 0.1:
            return None
        self._last_draw = now
        return now

    def _draw(self, force: bool = False) -> None:
        raise NotImplementedError

    def close(self) -> None:
        with self._lock:
            if self.enabled:
                self._draw(force=True)
                self.stream.write("\n")
                self.stream.flush()
                self.enabled = False


class Progress(_Bar):
    """``with Progress(total, "upload", unit="B") as bar: bar.update(n)``.

    Shows done/total, the average rate since the start and the time left at that rate. Callers count
    what the other side has (bytes the box wrote, bytes received here), so both stay honest on a slow
    link. Several streams of one transfer update the same bar from their threads: one total, one rate, one
    ETA. Draws at most ten times a second on stderr when stderr is a terminal (or ``force=True``);
    ``enabled=False`` (e.g. ``--quiet``) draws nothing.
    """

    def __init__(self, total: int, label: str, unit: str = "", enabled: bool = True, force: bool = False,
                 stream=None) -> None:
        super().__init__(label, unit, enabled, force, stream)
        self.total = max(int(total), 0)
        self.done = 0

    def update(self, n: int) -> None:
        with self._lock:
            self.done += n
            self._draw()

    def _draw(self, force: bool = False) -> None:
        now = self._due(force)
        if now is None:
            return
        elapsed = max(now - self._start, 1e-6)
        frac = min(self.done / self.total, 1.0) if self.total else 1.0
        bar = _bar(frac, 24)
        speed = self.done / elapsed
        rate = _human(speed, self.unit) + ("/s" if self.unit == "B" else f" {self.unit}/s")
        text = f"\r{self.label} [{bar}] {_human(self.done, self.unit)}/{_human(self.total, self.unit)} {rate}"
        if speed > 0 and self.done < self.total:
            text += f" ETA {_clock((self.total - self.done) / speed)}"
        self.stream.write(text + "\x1b[K")
        self.stream.flush()


class PartsProgress(_Bar):
    """``with PartsProgress("convert", {"color": (121, 1), "depth": (121, 2)}, unit="frames") as bars:
    bars.update("depth", n)``: parts given as (total, passes over it), updated from any thread.

    Draws the total line (the parts' last passes: what is finished) and under it one line per part: its
    bar over all its passes, done / total of the pass it is in, its rate and its ETA. At most ten redraws a
    second, on stderr when it is a terminal (or ``force=True``); ``enabled=False`` draws nothing.
    """

    def __init__(self, label: str, parts: dict[str, tuple[int, int]], unit: str = "", enabled: bool = True,
                 force: bool = False, stream=None) -> None:
        super().__init__(label, unit, enabled, force, stream)
        self.parts = {name: (max(int(total), 0), max(int(passes), 1)) for name, (total, passes) in parts.items()}
        self.done = dict.fromkeys(self.parts, 0)
        self._lines_drawn = 0

    def update(self, part: str, n: int) -> None:
        with self._lock:
            self.done[part] += n
            self._draw()

    def _eta(self, done: int, units: int, elapsed: float) -> float | None:
        """Seconds left at the part's own rate so far; None before its first unit."""
        if done >= units:
            return 0.0
        return (units - done) * elapsed / done if done else None

    def lines(self, now: float | None = None) -> list[str]:
        """The text of the total line and of each part's line."""
        elapsed = max((time.monotonic() if now is None else now) - self._start, 1e-6)
        rows, etas, finished, total = [], [], 0, 0
        width = max(len(name) for name in self.parts) if self.parts else 0
        for name, (count, passes) in self.parts.items():
            done = min(self.done[name], count * passes)
            in_pass = min(done // count, passes - 1) if count else 0
            shown = done - in_pass * count
            finished += shown if in_pass == passes - 1 else 0
            total += count
            eta = self._eta(done, count * passes, elapsed)
            etas.append(eta)
            pass_text = f" pass {in_pass + 1}/{passes}" if passes > 1 else ""
            state = "done" if done >= count * passes else f"ETA {'--:--' if eta is None else _clock(eta)}"
            rows.append(f"  {name:<{width}} [{_bar(done / (count * passes) if count else 1.0, 20)}] "
                        f"{shown}/{count}{pass_text} {done / elapsed:.0f} {self.unit}/s {state}")
        known = [eta for eta in etas if eta is not None]
        eta_text = "--:--" if len(known) < len(etas) else _clock(max(known, default=0.0))
        head = (f"{self.label} [{_bar(finished / total if total else 1.0, 24)}] {finished}/{total} "
                f"{finished / elapsed:.0f} {self.unit}/s ETA {eta_text}")
        return [head, *rows]

    def _draw(self, force: bool = False) -> None:
        now = self._due(force)
        if now is None:
            return
        up = f"\x1b[{self._lines_drawn - 1}A" if self._lines_drawn > 1 else ""
        lines = self.lines(now)
        self.stream.write(up + "\r" + "\n".join(line + "\x1b[K" for line in lines))
        self.stream.flush()
        self._lines_drawn = len(lines)
