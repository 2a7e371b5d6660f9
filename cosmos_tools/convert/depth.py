"""Depth: one normalisation for the whole shot, in Cosmos's convention (brighter is nearer).

Renders usually store distance (bigger = farther), so values are inverted by default; renders that
are already brighter-is-nearer (disparity-like) keep their direction (``near_bright``).

Background: a PNG cannot hold infinity, so renderers write "no hit" as 0 or as the largest code
(65535 / 255). A value at either extreme is background when a gap of more than 1/64 of the code
range separates it from every other value in the shot (real, normalised depth runs continuously up
to its extremes; a sentinel stands alone). Background is drawn as 0 (farthest) and left out of the
range, so the scene's own depths use all 256 output codes. In ``near_bright`` mode only 0 can be
background (the top code is simply the nearest value).

The range comes from every frame's min/max (exact and cheap). The mapping is one lookup table
(``DepthRange.lut``), applied by ffmpeg's ``lut`` filter while it encodes (``DepthRange.ffmpeg_filters``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DepthRange:
    """How source codes map to output codes for the whole shot."""

    lo: int
    hi: int
    code_max: int
    near_bright: bool
    zero_is_background: bool
    max_is_background: bool

    def as_json(self) -> dict:
        return {"range": [self.lo, self.hi], "source_code_max": self.code_max,
                "convention": "near-bright (kept)" if self.near_bright else "distance (inverted)",
                "background": [name for name, on in (("0", self.zero_is_background),
                                                     (str(self.code_max), self.max_is_background)) if on]}

    def ideal(self, values):
        """Unrounded output (0..255 floats) for source codes: what the encoded video should hold."""
        import numpy as np

        values = np.asarray(values, dtype=np.float64)
        span = max(self.hi - self.lo, 1)
        t = np.clip((values - self.lo) / span, 0.0, 1.0)
        out = 255.0 * (t if self.near_bright else 1.0 - t)
        if self.hi == self.lo:
            out = np.full_like(values, 255.0)
        background = np.zeros(values.shape, bool)
        if self.zero_is_background:
            background |= values == 0
        if self.max_is_background:
            background |= values == self.code_max
        out[background] = 0.0
        return out

    def lut(self):
        """uint8 lookup table indexed by source code."""
        import numpy as np

        return np.round(self.ideal(np.arange(self.code_max + 1))).astype(np.uint8)

    def ffmpeg_filters(self) -> list[str]:
        """ffmpeg filters that turn raw gray (8-bit source) or gray16le (16-bit) frames into ``lut()``'s codes.

        The table is a step function of the source code, written as a binary search over the codes where
        the output changes, so the filter holds the table exactly (not a formula rounded another way).
        ffmpeg 5.1 clamps a 16-bit ``lut`` result at 65280 (255 x 256), so 16-bit frames get code x 256
        and swscale drops the low byte; its default dither would change 3 values in 4, hence ``sws_dither=none``.
        """
        import numpy as np

        lut = self.lut()
        table = lut.tolist()
        starts = [0, *(np.flatnonzero(np.diff(lut)) + 1).tolist()]  # uint8 differences wrap, but stay non-zero
        step = 256 if self.code_max > 255 else 1

        def search(first: int, end: int) -> str:  # the runs starts[first:end]
            if end - first == 1:
                return str(table[starts[first]] * step)
            middle = (first + end) // 2
            return f"if(lt(val,{starts[middle]}),{search(first, middle)},{search(middle, end)})"

        mapped = f"lut=c0='{search(0, len(starts))}'"
        return [mapped, "scale=sws_dither=none", "format=gray"] if step > 1 else [mapped]


class DepthStats:
    """What the range needs from the whole shot, gathered frame by frame (min/max are cheap in numpy)."""

    def __init__(self, code_max: int) -> None:
        self.code_max = code_max
        self.has_zero = False
        self.has_top = False
        self.inner_min: int | None = None  # smallest value strictly between 0 and code_max
        self.inner_max: int | None = None

    def add(self, frame) -> None:
        low, high = int(frame.min()), int(frame.max())
        if low == 0 or high == self.code_max:
            self.has_zero |= low == 0
            self.has_top |= high == self.code_max
            inner = frame[(frame > 0) & (frame < self.code_max)]
            if inner.size == 0:
                return
            low, high = int(inner.min()), int(inner.max())
        self.inner_min = low if self.inner_min is None else min(self.inner_min, low)
        self.inner_max = high if self.inner_max is None else max(self.inner_max, high)

    def mapping(self, near_bright: bool) -> DepthRange:
        """Pick the background codes (see the module docstring) and the range of the rest."""
        gap = max(self.code_max // 64, 2)
        inner = self.inner_min is not None and self.inner_max is not None
        inner_min, inner_max = self.inner_min or 0, self.inner_max or 0
        zero_bg = self.has_zero and (not inner or inner_min >= gap)
        max_bg = (not near_bright) and self.has_top and (not inner or inner_max <= self.code_max - gap)
        lows = [v for v, on in ((0, self.has_zero and not zero_bg), (inner_min, inner),
                                (self.code_max, self.has_top and not max_bg)) if on]
        if not lows:
            return DepthRange(0, 0, self.code_max, near_bright, zero_bg, max_bg)
        highs = [v for v, on in ((self.code_max, self.has_top and not max_bg), (inner_max, inner),
                                 (0, self.has_zero and not zero_bg)) if on]
        return DepthRange(min(lows), max(highs), self.code_max, near_bright, zero_bg, max_bg)
