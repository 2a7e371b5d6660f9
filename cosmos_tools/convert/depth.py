"""Depth: one normalisation for the whole shot, in Cosmos's convention (brighter is nearer).

Renders usually store distance (bigger = farther), so values are inverted by default; renders that
are already brighter-is-nearer (disparity-like) keep their direction (``near_bright``).

Background: a PNG cannot hold infinity, so renderers write "no hit" as 0 or as the largest code
(65535 / 255). A value at either extreme is background when a gap of more than 1/64 of the code
range separates it from every other value in the shot (real, normalised depth runs continuously up
to its extremes; a sentinel stands alone). Background is drawn as 0 (farthest) and left out of the
range, so the scene's own depths use all 256 output codes. In ``near_bright`` mode only 0 can be
background (the top code is simply the nearest value).

The range is taken from a histogram of every frame (exact, cheap), and the mapping is a lookup table
applied in numpy: ffmpeg 5.1's lut filters clamp 16-bit values at 65280.
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


def depth_range(histogram, code_max: int, near_bright: bool) -> DepthRange:
    """Pick the background codes and the range of the rest from the shot's histogram."""
    import numpy as np

    present = np.flatnonzero(histogram)
    if present.size == 0:
        return DepthRange(0, 0, code_max, near_bright, False, False)
    gap = max(code_max // 64, 2)
    inner = present[(present > 0) & (present < code_max)]
    zero_bg = bool(histogram[0]) and (inner.size == 0 or inner[0] >= gap)
    max_bg = (not near_bright) and bool(histogram[code_max]) and (inner.size == 0 or inner[-1] <= code_max - gap)
    real = present
    if zero_bg:
        real = real[real != 0]
    if max_bg:
        real = real[real != code_max]
    if real.size == 0:
        return DepthRange(0, 0, code_max, near_bright, zero_bg, max_bg)
    return DepthRange(int(real[0]), int(real[-1]), code_max, near_bright, zero_bg, max_bg)
