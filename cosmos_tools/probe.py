"""Read a video's facts with ffprobe (through ffmpeg-python)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .errors import UserError


@dataclass(frozen=True)
class VideoInfo:
    path: Path
    width: int
    height: int
    frames: int
    codec: str
    pix_fmt: str
    fps: float


def probe_video(path: Path, count_frames: bool = True) -> VideoInfo:
    """Probe the first video stream; frames are counted by decoding when the container has no count."""
    import ffmpeg  # imported here: keeps CLI start-up fast

    path = Path(path)
    try:
        data = ffmpeg.probe(str(path), select_streams="v:0", count_frames=None) if count_frames \
            else ffmpeg.probe(str(path), select_streams="v:0")
    except ffmpeg.Error as exc:
        detail = (exc.stderr or b"").decode("utf-8", "replace").strip().splitlines()
        raise UserError(f"{path}: not a readable video ({detail[-1] if detail else 'ffprobe failed'}); "
                        "re-encode it, e.g. with scripts/convert_png_sequences.sh") from None
    except FileNotFoundError:
        raise UserError("ffprobe not found; install ffmpeg (sudo apt-get install ffmpeg)") from None
    streams = data.get("streams") or []
    if not streams:
        raise UserError(f"{path}: has no video stream; point it at an MP4 with video")
    s = streams[0]
    frames = s.get("nb_read_frames") or s.get("nb_frames") or 0
    num, _, den = (s.get("avg_frame_rate") or s.get("r_frame_rate") or "0/1").partition("/")
    fps = float(num) / float(den or 1) if float(den or 1) else 0.0
    return VideoInfo(path=path, width=int(s.get("width", 0)), height=int(s.get("height", 0)),
                     frames=int(frames), codec=s.get("codec_name", ""), pix_fmt=s.get("pix_fmt", ""), fps=fps)
