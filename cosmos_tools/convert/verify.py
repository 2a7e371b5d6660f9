"""Check each MP4 after encoding (ffprobe) and measure the colour's PSNR against the PNGs."""

from __future__ import annotations

import math
import re
import subprocess
from pathlib import Path

from ..errors import UserError
from ..probe import probe_video
from .encode import EXPECTED, SETTINGS, image_input
from .ffmpeg_run import FFMPEG
from .geometry import Geometry
from .sequences import Sequence

PSNR_FRAMES = 8


def check_output(path: Path, modality: str, frames: int, width: int, height: int) -> dict:
    """ffprobe the MP4: frame count, size, codec and pixel format must be what we wrote."""
    info = probe_video(path, count_frames=False)
    codec, pix_fmt = EXPECTED[modality]
    got = (info.frames, info.width, info.height, info.codec, info.pix_fmt)
    want = (frames, width, height, codec, pix_fmt)
    if got != want:
        raise UserError(f"{path.name}: ffprobe finds {got[0]} frames {got[1]}x{got[2]} {got[3]}/{got[4]}, expected "
                        f"{want[0]} frames {want[1]}x{want[2]} {want[3]}/{want[4]}; nothing was written, "
                        "report this with the render folder")
    return {"frames": info.frames, "width": info.width, "height": info.height, "codec": info.codec,
            "pix_fmt": info.pix_fmt, "bytes": path.stat().st_size}


def color_psnr(video: Path, seq: Sequence, geo: Geometry, fps: int,
               frames: int | None = PSNR_FRAMES) -> tuple[float, int]:
    """RGB PSNR (dB, of the mean squared error) of the decoded colour video against the source PNGs,
    over the first ``frames`` frames (None: all), and the number of frames compared.

    The default is a spot check: decoding the whole video and every PNG again would cost a quarter of
    the encode (bench/convert.py measures every frame). The per-frame lines of the psnr filter are read,
    not its summary: at the end of the streams it compares one extra, mismatched pair of frames.
    """
    count = len(seq.files) if frames is None else min(len(seq.files), frames)
    source = ",".join([*geo.filters(SETTINGS["color"]["scale"]), "format=rgb24"])
    graph = (f"[0:v]scale=in_color_matrix=bt709:in_range=tv,format=rgb24[enc];[1:v]{source}[src];"
             "[enc][src]psnr=stats_file=-")
    # -threads 1: frame threads decode ahead, past the frames compared (measured: 0.1 CPU s of 0.5)
    argv = [FFMPEG, "-hide_banner", "-nostdin", "-loglevel", "error", "-threads", "1", "-i", str(video),
            "-threads", "1", *image_input(seq, fps), "-lavfi", graph, "-frames:v", str(count), "-f", "null", "-"]
    result = subprocess.run(argv, capture_output=True, check=False)
    mse = [float(m[2]) for m in re.finditer(rb"^n:(\d+) mse_avg:(\S+)", result.stdout, re.MULTILINE)
           if int(m[1]) <= count]
    if result.returncode != 0 or len(mse) != count:
        raise UserError(f"{video.name}: could not measure PSNR against {seq.label}; re-run with --force")
    mean = sum(mse) / count
    return (10 * math.log10(255 ** 2 / mean) if mean > 0 else float("inf")), count
