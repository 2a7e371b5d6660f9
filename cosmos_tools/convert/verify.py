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

PSNR_FRAMES = 16


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


def psnr_sample(count: int, most: int = PSNR_FRAMES) -> list[int]:
    """Evenly spread frame indices (all of them for short shots)."""
    step = max(1, math.ceil(count / most))
    return list(range(0, count, step))


def _concat_list(paths: list[Path]) -> str:
    """An ffconcat list of single-frame entries (paths single-quoted the way ffconcat unquotes them)."""
    lines = ["ffconcat version 1.0"]
    for path in paths:
        lines.append("file '" + str(path).replace("'", "'\\''") + "'")
        lines.append("duration 1")
        lines.append("option pattern_type none")  # a literal % in a path is not an image2 pattern
    return "\n".join(lines) + "\n"


def color_psnr(video: Path, seq: Sequence, geo: Geometry, fps: int, workdir: Path) -> tuple[float, int]:
    """Mean RGB PSNR (dB) of the decoded colour video against the source PNGs, and frames compared.

    The comparison uses evenly spread frames (at most PSNR_FRAMES): decoding every source PNG a second
    time would cost a third of the encode.
    """
    picks = psnr_sample(len(seq.files))
    paths = [seq.files[i] for i in picks]
    source_filters = [*geo.filters(SETTINGS["color"]["scale"]), "format=rgb24", "settb=1", "setpts=N"]
    if any("\n" in str(p) for p in paths):  # ffconcat is line based: fall back to every frame
        picks, source_input = list(range(len(seq.files))), image_input(seq, fps)
    else:
        listing = workdir / "psnr.ffconcat"
        listing.write_text(_concat_list(paths), encoding="utf-8")
        source_input = ["-f", "concat", "-safe", "0", "-i", str(listing)]
    step = picks[1] - picks[0] if len(picks) > 1 else 1
    encoded = [f"select=not(mod(n\\,{step}))", "scale=in_color_matrix=bt709:in_range=tv", "format=rgb24",
               "settb=1", "setpts=N"]
    graph = f"[0:v]{','.join(encoded)}[enc];[1:v]{','.join(source_filters)}[src];[enc][src]psnr"
    argv = [FFMPEG, "-hide_banner", "-nostdin", "-loglevel", "info", "-i", str(video), *source_input,
            "-lavfi", graph, "-f", "null", "-"]
    result = subprocess.run(argv, capture_output=True, check=False)
    (workdir / "psnr.ffconcat").unlink(missing_ok=True)
    found = re.findall(rb"PSNR r:\S+ g:\S+ b:\S+ average:(\S+)", result.stderr)
    if result.returncode != 0 or not found:
        raise UserError(f"{video.name}: could not measure PSNR against {seq.label}; re-run with --force")
    value = found[-1].decode()
    return (float("inf") if value == "inf" else float(value)), len(picks)
