"""Check each MP4 after encoding (ffprobe) and measure the colour's PSNR against the PNGs."""

from __future__ import annotations

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


def color_psnr(video: Path, seq: Sequence, geo: Geometry, fps: int) -> tuple[float, int]:
    """Mean RGB PSNR (dB) of the decoded colour video against the source PNGs, and frames compared.

    A spot check on the first PSNR_FRAMES frames: decoding the whole video and every PNG again would
    cost a quarter of the encode (bench/convert.py measures every frame; the figures agree).
    """
    frames = min(len(seq.files), PSNR_FRAMES)
    source = ",".join([*geo.filters(SETTINGS["color"]["scale"]), "format=rgb24"])
    graph = f"[0:v]scale=in_color_matrix=bt709:in_range=tv,format=rgb24[enc];[1:v]{source}[src];[enc][src]psnr"
    # -threads 1: frame threads decode ahead, past the frames compared (measured: a quarter less CPU)
    argv = [FFMPEG, "-hide_banner", "-nostdin", "-loglevel", "info", "-threads", "1", "-i", str(video),
            "-threads", "1", *image_input(seq, fps),
            "-lavfi", graph, "-frames:v", str(frames), "-f", "null", "-"]
    result = subprocess.run(argv, capture_output=True, check=False)
    found = re.findall(rb"PSNR r:\S+ g:\S+ b:\S+ average:(\S+)", result.stderr)
    if result.returncode != 0 or not found:
        raise UserError(f"{video.name}: could not measure PSNR against {seq.label}; re-run with --force")
    value = found[-1].decode()
    return (float("inf") if value == "inf" else float(value)), frames
