"""Output size of a shot: even sizes for H.264, or a Cosmos resolution bucket with ``--fit``.

Cosmos-Transfer1 resizes every input to the bucket whose aspect ratio is closest (without cropping),
so a shot already at a bucket size is used pixel for pixel. Padding repeats the edge pixels
(ffmpeg ``fillborders=mode=smear``): no new colour enters a segmentation mask, no new depth enters
the depth pass, and no hard black edge appears for Cosmos's edge detector.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..constants import CHUNK_FRAMES, RESOLUTION_BUCKETS

BUCKETS = tuple(RESOLUTION_BUCKETS.values())
FAR_ASPECT = math.log(1.1)  # warn when the closest bucket's aspect ratio is more than 10% off


@dataclass(frozen=True)
class Geometry:
    """Scale ``(src_w, src_h)`` to ``(scaled_w, scaled_h)``, then pad to ``(width, height)`` (centred)."""

    src_w: int
    src_h: int
    scaled_w: int
    scaled_h: int
    width: int
    height: int

    @property
    def is_identity(self) -> bool:
        return (self.src_w, self.src_h) == (self.width, self.height)

    def filters(self, scale_flags: str) -> list[str]:
        """ffmpeg filters for one modality (``scale_flags``: neighbor for labels and depth)."""
        out: list[str] = []
        if (self.scaled_w, self.scaled_h) != (self.src_w, self.src_h):
            out.append(f"scale={self.scaled_w}:{self.scaled_h}:flags={scale_flags}")
        if (self.scaled_w, self.scaled_h) != (self.width, self.height):
            left = (self.width - self.scaled_w) // 2
            top = (self.height - self.scaled_h) // 2
            right = self.width - self.scaled_w - left
            bottom = self.height - self.scaled_h - top
            out.append(f"pad={self.width}:{self.height}:{left}:{top}")
            out.append(f"fillborders=left={left}:right={right}:top={top}:bottom={bottom}:mode=smear")
        return out


def closest_bucket(width: int, height: int) -> tuple[tuple[int, int], float]:
    """The bucket Cosmos would pick, and how far its aspect ratio is (|log ratio|)."""
    aspect = math.log(width / height)
    best = min(BUCKETS, key=lambda b: abs(math.log(b[0] / b[1]) - aspect))
    return best, abs(math.log(best[0] / best[1]) - aspect)


def plan_geometry(width: int, height: int, fit: bool) -> Geometry:
    """Without ``fit``: pad odd sizes by one pixel. With ``fit``: scale into the closest bucket and pad."""
    if not fit:
        return Geometry(width, height, width, height, width + width % 2, height + height % 2)
    (bw, bh), _ = closest_bucket(width, height)
    scale = min(bw / width, bh / height)
    scaled_w = min(bw, max(1, round(width * scale)))
    scaled_h = min(bh, max(1, round(height * scale)))
    return Geometry(width, height, scaled_w, scaled_h, bw, bh)


def geometry_notes(width: int, height: int, frames: int, fit: bool) -> list[str]:
    """Warnings a user should read before spending GPU time on this shot."""
    notes: list[str] = []
    (bw, bh), off = closest_bucket(width, height)
    if off > FAR_ASPECT:
        action = "padded" if fit else "stretched by Cosmos"
        notes.append(f"warning: {width}x{height} (aspect {width / height:.2f}) is far from every Cosmos bucket; "
                     f"the closest is {bw}x{bh} ({bw / bh:.2f}), so the shot will be {action}")
    elif not fit and (width, height) not in BUCKETS:
        notes.append(f"note: {width}x{height} is not a Cosmos bucket; Cosmos will resize it to {bw}x{bh} "
                     "(use --fit to do it here, with nearest-neighbour for the masks)")
    if frames < CHUNK_FRAMES:
        notes.append(f"note: {frames} frames is shorter than Cosmos's 121-frame chunk; cosmos-transfer1 pads "
                     "it by repeating the last frame and the output gets noisy (render 121 or more)")
    return notes
