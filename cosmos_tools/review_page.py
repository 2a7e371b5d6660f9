"""The review page: one static HTML file (default ``outputs/review/<selection>.html``) and, beside it, its files.

Self-contained: every path on the page is relative to it and stays inside the outputs folder: the run
videos are linked where they are (``../runs/<run id>/output.mp4``), the shot's source and control videos
(which live in ``inputs/``) are hard-linked (else copied) into ``<page>.files/`` with the posters, so a
copied or moved outputs/ folder keeps a working page. No request leaves ``file:``: a Content-Security-Policy
allows only files of the page's own place, and the page's one script and style by their sha256.
Text from runs (names, prompts, logs) is HTML-escaped; the data the script reads is JSON in a
``type="application/json"`` block with ``<``, ``>``, ``&`` and ``'`` escaped.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import shutil
import tempfile
from pathlib import Path
from urllib.parse import quote

from .fsutil import DIR_MODE, write_text_atomic
from .history import now_iso
from .review import Review, Tile, load
from .runs import outputs_dir

PAGE_DIR = "review"  # under LOCAL_OUTPUTS_DIR
LARGE_BYTES = 64 * 1024 * 1024  # a bigger video gets preload="metadata": it is linked, not fetched up front
POSTER_WIDTH = 640
DEFAULT_FPS = 24.0
_UNSAFE = re.compile(r"[^\w.+-]+")
MAX_STEM = 80


def default_page(cfg, title: str) -> Path:
    """``outputs/review/<title as a plain file name>.html`` (long titles shortened, with a hash)."""
    stem = _UNSAFE.sub("_", title).strip("._") or "review"
    if len(stem) > MAX_STEM:
        digest = hashlib.sha1(title.encode("utf-8", "surrogateescape"), usedforsecurity=False).hexdigest()[:8]
        stem = f"{stem[:MAX_STEM]}-{digest}"
    return outputs_dir(cfg) / PAGE_DIR / f"{stem}.html"


def write_review(cfg, run_ids: list[str], out: Path | None = None, *, title: str | None = None,
                 notes: list[str] | None = None, page: bool = True, sheet: bool = True) -> Path:
    """Write the review page of ``run_ids`` (and its contact sheet beside it); return the page's path
    (with ``page=False``, only the sheet is written and its path returned)."""
    from .sheet import sheet_path, write_sheet

    review = load(cfg, title or "runs " + ", ".join(run_ids), list(run_ids), notes)
    target = Path(out).absolute() if out else default_page(cfg, review.title)
    if page:
        write_page(review, target, outputs_dir(cfg))
    if sheet:
        write_sheet(review, sheet_path(target))
    return target if page else sheet_path(target)


def write_page(review: Review, page: Path, outputs: Path) -> None:
    """The page and its files folder, each replaced whole: a failure leaves the previous ones as they were.
    Videos outside ``outputs`` (the shot's, in inputs/) are linked or copied into the files folder."""
    page.parent.mkdir(parents=True, exist_ok=True)
    files = page.with_name(page.stem + ".files")
    staging = Path(tempfile.mkdtemp(prefix=f".{page.stem}.files.", dir=page.parent))
    try:
        html = _render(review, page, files, staging, outputs)
        os.chmod(staging, DIR_MODE)
        _swap(staging, files)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    write_text_atomic(page, html)


def _swap(new: Path, old: Path) -> None:
    if not old.exists():
        os.rename(new, old)
        return
    trash = Path(tempfile.mkdtemp(prefix=f".{old.name}.old.", dir=old.parent))
    os.rename(old, trash / "files")
    os.rename(new, old)
    shutil.rmtree(trash, ignore_errors=True)


def _render(review: Review, page: Path, files: Path, staging: Path, outputs: Path) -> str:
    """Posters and source copies into ``staging`` (named as they will be in ``files``); the page's HTML."""
    from .sheet import write_poster

    def href(path: Path) -> str:
        return quote(os.path.relpath(path, page.parent), safe="/")

    def player(video_path: Path, shown_path: Path, name: str) -> dict:
        write_poster(video_path, staging / f"{name}.jpg", POSTER_WIDTH)
        large = video_path.stat().st_size > LARGE_BYTES
        return {"href": href(shown_path), "poster": href(files / f"{name}.jpg"),
                "preload": "metadata" if large else "auto"}

    sources = []
    for i, video in enumerate(review.sources, start=1):
        shown = video.path
        if not video.path.resolve().is_relative_to(outputs.resolve()):
            shown = files / f"source-{i}-{_UNSAFE.sub('_', video.label)[:40]}.mp4"
            _link_or_copy(video.path, staging / shown.name)
        sources.append({"label": video.label, **player(video.path, shown, f"poster-source-{i}")})
    tiles = [_tile_view(tile, i, href, player) for i, tile in enumerate(review.tiles, start=1)]
    data = {"title": review.title, "fps": _fps(review), "shared": review.shared,
            "runs": [{"run_id": t.run_id, "status": t.status, "seed": t.seed, "duration_s": t.duration_s,
                      "critic_score": t.critic_score, "differing": t.differing} for t in review.tiles]}
    return _page_html(title=review.title, written=now_iso(), notes=review.notes, shared=list(review.shared.items()),
                      sources=sources, tiles=tiles, data=data, scored=any(t["critic"] for t in tiles))


def _tile_view(tile: Tile, index: int, href, player) -> dict:
    spec = next((tile.folder / n for n in ("spec_used.json", "prompt_spec.json") if (tile.folder / n).is_file()),
                None)
    log = tile.folder / "run.log"
    critic = "" if tile.critic_score is None else f"{tile.critic_score:.2f}"
    return {"run_id": tile.run_id, "status": tile.status, "verdict": tile.verdict, "order": index, "critic": critic,
            "critic_answer": tile.critic_answer,
            "duration": f"{tile.duration_s:.1f} s" if tile.duration_s is not None else "duration unknown",
            "seed": tile.seed, "started": tile.started, "differing": list(tile.differing.items()),
            "video": player(tile.output, tile.output, f"poster-run-{index}") if tile.output else None,
            "log_tail": "\n".join(tile.log_tail), "folder": href(tile.folder) + "/",
            "spec": href(spec) if spec else "", "log": href(log) if log.is_file() else "",
            "upscales": [href(p) for p in tile.upscales]}


def _fps(review: Review) -> float:
    from .probe import probe_video

    videos = [t.output for t in review.tiles if t.output] + [v.path for v in review.sources]
    for path in videos[:1]:
        fps = probe_video(path, count_frames=False).fps
        if fps > 0:
            return round(fps, 3)
    return DEFAULT_FPS


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def _csp_hash(text: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii")


def _page_html(**context) -> str:
    import jinja2  # imported here: keeps CLI start-up fast

    env = jinja2.Environment(loader=jinja2.PackageLoader("cosmos_tools", "templates"),
                             undefined=jinja2.StrictUndefined, autoescape=True)
    style, script = (env.get_template(name).render() for name in ("review.css.j2", "review.js.j2"))
    return env.get_template("review.html.j2").render(style_hash=_csp_hash(style), script_hash=_csp_hash(script),
                                                     **context)
