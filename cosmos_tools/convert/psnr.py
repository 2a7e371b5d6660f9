"""Colour PSNR against the source PNGs, with ffmpeg's psnr filter.

The per-frame lines of the filter's stats file are read, not its summary: at the end of the streams
ffmpeg 5.1's filter compares one extra, mismatched pair of frames (a summary of 25.6 dB for frames that
were all 37-40 dB). The figure is the PSNR of the mean squared error over the frames compared (RGB).
"""

from __future__ import annotations

import math
import subprocess
import tempfile
from pathlib import Path

from ..errors import UserError
from .ffmpeg_run import FFMPEG, QUIET
from .geometry import Geometry
from .sequences import Sequence

PSNR_FRAMES = 8  # the converter's spot check; bench/convert.py measures every frame
# Source pixels the spot check decodes and scales at most: 8 frames of 1280x704. Its cost is the PNG decode
# and scaling, so a 3840x2160 render compares 1 frame (8 cost 1.9 CPU s there, an eighth of the conversion).
PSNR_PIXELS = PSNR_FRAMES * 1280 * 704
STATS = "psnr-stats.log"  # written in the process's working folder (keeps user paths out of filter syntax)


def spot_check_frames(frames: int, width: int, height: int) -> int:
    """How many first frames of a ``width`` x ``height`` render the converter compares (at least 1)."""
    return max(1, min(frames, PSNR_FRAMES, PSNR_PIXELS // (width * height)))


def psnr_args(video_input: list[str], seq: Sequence, geo: Geometry, fps: int, count: int, scale: str) -> list[str]:
    """ffmpeg arguments comparing ``count`` frames of the video with the PNGs (same geometry)."""
    source = ",".join([*geo.filters(scale), "format=rgb24"])
    graph = (f"[0:v]scale=in_color_matrix=bt709:in_range=tv,format=rgb24[enc];[1:v]{source}[src];"
             f"[enc][src]psnr=stats_file={STATS}")
    # -threads 1: frame threads would decode ahead, past the frames compared (0.1 of 0.5 CPU s)
    return ["-threads", "1", *video_input, "-threads", "1", *seq.ffmpeg_input(fps), "-lavfi", graph,
            "-frames:v", str(count), "-f", "null", "-"]


def read_psnr(folder: Path, count: int, what: str) -> float:
    """The PSNR of the mean squared error of frames 1..count in the stats file (which is then removed)."""
    stats = Path(folder) / STATS
    mse = {}
    try:
        for line in stats.read_text(encoding="ascii").splitlines():
            fields = dict(part.split(":", 1) for part in line.split() if ":" in part)
            if int(fields["n"]) <= count:
                mse[int(fields["n"])] = float(fields["mse_avg"])
        stats.unlink()
    except (OSError, KeyError, ValueError):
        mse = {}
    if len(mse) != count:
        raise UserError(f"{what}: could not measure PSNR ({len(mse)} of {count} frames compared); "
                        "re-run with --force")
    mean = sum(mse.values()) / count
    return 10 * math.log10(255 ** 2 / mean) if mean > 0 else float("inf")


def color_psnr(video: Path, seq: Sequence, geo: Geometry, fps: int, scale: str,
               frames: int | None = None) -> tuple[float, int]:
    """PSNR of an encoded colour video against its PNGs over the first ``frames`` (None: all)."""
    count = len(seq.files) if frames is None else min(len(seq.files), frames)
    with tempfile.TemporaryDirectory(prefix="cosmos-psnr-") as folder:
        argv = [FFMPEG, *QUIET, *psnr_args(["-i", str(Path(video).resolve())], seq, geo, fps, count, scale)]
        subprocess.run(argv, capture_output=True, check=False, cwd=folder)
        return read_psnr(Path(folder), count, Path(video).name), count
