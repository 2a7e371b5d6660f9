"""Check each MP4 after encoding with ffprobe."""

from __future__ import annotations

from pathlib import Path

from ..errors import UserError
from ..probe import probe_video
from .encode import EXPECTED


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
