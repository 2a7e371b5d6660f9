"""Check each MP4 after encoding, from its own header (``mp4_header.py``): no ffprobe process."""

from __future__ import annotations

from pathlib import Path

from ..errors import UserError
from .encode import EXPECTED
from .mp4_header import read_mp4_video


def check_output(path: Path, modality: str, frames: int, width: int, height: int) -> dict:
    """The MP4 must hold what we wrote: frame count, size, codec and pixel format."""
    try:
        info = read_mp4_video(path)
    except (OSError, ValueError) as exc:
        raise UserError(f"{path.name}: cannot read the MP4 just written ({exc}); nothing was written, "
                        "report this with the render folder") from None
    codec, pix_fmt = EXPECTED[modality]
    got = (info.frames, info.width, info.height, info.codec, info.pix_fmt)
    want = (frames, width, height, codec, pix_fmt)
    if got != want:
        raise UserError(f"{path.name} holds {got[0]} frames {got[1]}x{got[2]} {got[3]}/{got[4]}, expected "
                        f"{want[0]} frames {want[1]}x{want[2]} {want[3]}/{want[4]}; nothing was written, "
                        "report this with the render folder")
    return {"frames": info.frames, "width": info.width, "height": info.height, "codec": info.codec,
            "pix_fmt": info.pix_fmt, "bytes": path.stat().st_size}
