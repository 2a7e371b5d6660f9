"""The contact sheet: one PNG beside the review page, for places a page can't go (chat, notes/experiment_log.md).

One row per run: its first, middle and last frame under a label (run id, status, the values that differ
between the runs; a run without a video shows its verdict on a dark row). The shot's source video is the
first row. One ffmpeg call draws it all. The label texts reach drawtext only through ``textfile=`` files
with ``expansion=none`` (no filter syntax, no ``%{...}`` expansion: a name is always just text), and the
video paths only as ``-i`` arguments.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from pathlib import Path

from .convert.ffmpeg_run import FFMPEG, QUIET, FfmpegFailed
from .errors import UserError
from .fsutil import atomic_path
from .review import Review

THUMB_W, THUMB_H = 320, 180
LABEL_H = 64
LINE_CHARS = 110  # what fits in three thumbnails' width at the label's font size
FONT_SIZE = 14
ROW_BG = "0x22252c"
NO_VIDEO_BG = "0x3a1c1c"
FONTS = ("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf")
FONT_FIX = "install fonts-dejavu-core (make deps does)"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


def sheet_path(page: Path) -> Path:
    """The contact sheet of a page: ``<page stem>.png`` beside it."""
    return page.with_suffix(".png")


def run_ffmpeg(args: list[str], what: str, cwd: Path | None = None) -> None:
    """``ffmpeg <args>`` quietly; one line (ffmpeg's last) if it fails."""
    try:
        done = subprocess.run([FFMPEG, *QUIET, "-y", *args], capture_output=True, cwd=cwd, stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise UserError("ffmpeg not found; install it (sudo apt-get install ffmpeg, or make deps)") from None
    if done.returncode != 0:
        lines = [ln for ln in done.stderr.decode("utf-8", "replace").splitlines() if ln.strip()]
        raise FfmpegFailed(what, lines[-1].strip() if lines else f"exit code {done.returncode}")


def write_poster(video: Path, target: Path, width: int) -> None:
    """The first frame of ``video`` as a JPEG ``width`` pixels wide."""
    run_ffmpeg(["-i", f"file:{video}", "-frames:v", "1", "-vf", f"scale={width}:-2", "-q:v", "4",
                "-f", "image2", "-update", "1", "-c:v", "mjpeg", str(target)], f"poster of {video}")


def font_file() -> str:
    for font in FONTS:
        if Path(font).is_file():
            return font
    raise UserError(f"no font for the contact sheet's labels ({FONTS[0]} is missing); {FONT_FIX}")


def label_lines(*parts: str) -> str:
    """Up to three lines of label text, control characters as spaces, each cut to what fits."""
    lines = [_CONTROL.sub(" ", part).strip() for part in parts if part]
    return "\n".join(line if len(line) <= LINE_CHARS else line[:LINE_CHARS - 1] + "…" for line in lines[:3])


def write_sheet(review: Review, target: Path) -> None:
    """The contact sheet of ``review`` at ``target`` (PNG, written atomically)."""
    from .probe import probe_video

    rows: list[tuple[Path | None, str]] = []  # (video or None, label text)
    source = next((v for v in review.sources if v.label == "source"), None)
    if source:
        rows.append((source.path, label_lines("source", str(source.path.name))))
    for tile in review.tiles:
        values = "  ".join(f"{k}={v}" for k, v in tile.differing.items())
        head = f"{tile.run_id}  ·  {tile.status}  ·  seed {tile.seed}" + (
            "" if tile.critic_score is None else f"  ·  critic {tile.critic_score:.2f} (advisory)")
        rows.append((tile.output, label_lines(head, values, "" if tile.output else tile.verdict)))
    font = font_file()
    with tempfile.TemporaryDirectory(prefix="cosmos-sheet-") as work:
        args, graph, inputs = [], [], 0
        for i, (video, text) in enumerate(rows):
            Path(work, f"label-{i}.txt").write_text(text, encoding="utf-8")
            if video:
                frames = max(probe_video(video).frames, 1)
                picks = sorted({0, frames // 2, frames - 1})
                pick = "+".join(f"eq(n\\,{n})" for n in picks)
                args += ["-i", f"file:{video}"]
                graph.append(f"[{inputs}:v]select={pick},scale={THUMB_W}:{THUMB_H}:force_original_aspect_ratio="
                             f"decrease,pad={THUMB_W}:{THUMB_H}:(ow-iw)/2:(oh-ih)/2,setsar=1,"
                             f"tile={len(picks)}x1,pad={3 * THUMB_W}:{THUMB_H}:0:0:color={ROW_BG},"
                             f"setpts=0[v{i}]")
                inputs += 1
            else:
                graph.append(f"color=c={NO_VIDEO_BG}:s={3 * THUMB_W}x{THUMB_H}:d=1,trim=end_frame=1,"
                             f"setpts=0[v{i}]")
            graph.append(f"[v{i}]pad={3 * THUMB_W}:{THUMB_H + LABEL_H}:0:{LABEL_H}:color={ROW_BG},"
                         f"drawtext=fontfile={font}:textfile=label-{i}.txt:expansion=none:fontcolor=white:"
                         f"fontsize={FONT_SIZE}:line_spacing=4:x=8:y=6[r{i}]")
        stack = "".join(f"[r{i}]" for i in range(len(rows)))
        graph.append(f"{stack}vstack=inputs={len(rows)}[out]" if len(rows) > 1 else "[r0]null[out]")
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(target) as tmp:
            run_ffmpeg([*args, "-filter_complex", ";".join(graph), "-map", "[out]", "-frames:v", "1",
                        "-f", "image2", "-update", "1", "-c:v", "png", str(tmp)], f"contact sheet {target}",
                       cwd=Path(work))
