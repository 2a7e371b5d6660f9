"""Render folder -> shot folder: check, encode the three modalities at once, verify, swap in atomically.

Everything is written to a temporary folder beside the target and renamed at the end. An earlier
shot folder is renamed aside, the new one renamed in, then the old one deleted, so a failure at any
point leaves the earlier good shot untouched. A shot whose sources, options and encoder settings
have not changed since the last conversion (``shot.json``'s fingerprint) is not encoded again.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from .. import __version__
from ..errors import LocalError, UserError
from ..fsutil import DIR_MODE, FILE_MODE, write_json_atomic
from ..names import check_name
from ..progress import PartsProgress
from .encode import SETTINGS, encode_color, encode_depth, encode_segmentation
from .ffmpeg_run import ProcessGroup
from .geometry import Geometry, geometry_notes, plan_geometry
from .sequences import Sequence, check_sequences, find_sequences, keep_first
from .verify import check_output

SHOT_JSON = "shot.json"
TEMP_PREFIX = ".cosmos-convert-"


@dataclass
class ConvertOptions:
    frame_count: int | None = None
    fps: int = 24
    fit: bool = False
    depth_near_bright: bool = False
    force: bool = False
    progress: bool = True
    passes: dict[str, str] = field(default_factory=dict)  # modality -> pass name, over the names (--pass)
    concurrent: bool = True  # False encodes one modality after the other (the benchmark measures the gain)


@dataclass
class ConvertResult:
    folder: Path
    record: dict
    skipped: bool
    notes: list[str] = field(default_factory=list)


def check_output_name(name: str) -> None:
    """The name becomes one folder under inputs/videos: the rules of ``names.check_name``."""
    check_name(name, "output name", "give a name without '/' (spaces and unicode are fine), e.g. shot_010")


def _fingerprint(sequences: dict[str, Sequence], options: ConvertOptions) -> tuple[str, dict[str, str]]:
    """sha256 of every source PNG's path, size and mtime, per modality, plus the options and settings."""
    per_modality = {}
    for modality, seq in sequences.items():
        digest = hashlib.sha256(str(seq.folder).encode("utf-8", "surrogateescape"))
        for path in seq.files:
            st = path.stat()
            digest.update(f"\0{path.name}\0{st.st_size}\0{st.st_mtime_ns}".encode("utf-8", "surrogateescape"))
        per_modality[modality] = digest.hexdigest()
    settings = {"fps": options.fps, "fit": options.fit, "depth_near_bright": options.depth_near_bright,
                "encoders": SETTINGS, "sources": per_modality}
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest(), per_modality


def _up_to_date(target: Path, fingerprint: str) -> dict | None:
    """The existing shot.json if the shot was made from exactly these sources and still holds its MP4s."""
    try:
        record = json.loads((target / SHOT_JSON).read_text(encoding="utf-8"))
        if record.get("fingerprint") != fingerprint:
            return None
        for name, out in record["outputs"].items():
            if (target / f"{name}.mp4").stat().st_size != out["bytes"]:
                return None
        return record
    except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError):
        return None


def _check_target(target: Path) -> None:
    if (target.exists() or target.is_symlink()) and (not target.is_dir() or target.is_symlink()):
        raise UserError(f"{target} exists and is not a shot folder; move it away or pick another name")


def _swap_in(tmp: Path, target: Path) -> None:
    """Rename the finished folder into place; an earlier shot is moved aside first and deleted last.

    Whatever interrupts it (an error, Ctrl-C), the earlier shot is moved back if the new one is not in."""
    _check_target(target)
    old = None
    try:
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX + "old-", dir=target.parent))
            os.rename(target, old / "shot")
        os.rename(tmp, target)
    except BaseException:
        if old is not None and (old / "shot").exists() and not target.exists():
            os.rename(old / "shot", target)
        raise
    finally:
        if old is not None and target.is_dir():  # never delete the earlier shot while it is not back in place
            shutil.rmtree(old, ignore_errors=True)


def _usual_permissions(folder: Path) -> None:
    """mkdtemp makes a private folder; a shot folder gets the same modes as any folder the user makes."""
    os.chmod(folder, DIR_MODE)
    for path in folder.iterdir():
        os.chmod(path, FILE_MODE)


def _encode_all(sequences: dict[str, Sequence], geo: Geometry, options: ConvertOptions, tmp: Path,
                bar: PartsProgress) -> dict:
    """Run the encoders concurrently; the first failure stops the others and is the one reported."""
    group = ProcessGroup()
    outputs: dict = {}
    results: dict = {"outputs": outputs}

    frames = len(sequences["color"].files)
    # With no more cores than modalities encoding at once, each encode already keeps a core busy: frame
    # threads in the lossless encoders only made them compete (0.3 CPU s of 8 on 2 cores). Colour keeps
    # x264's default: it is the longest encode, and its threads shape its (lossy) stream.
    workers = len(sequences) if options.concurrent else 1
    lossless_threads = 1 if workers > 1 and (os.cpu_count() or 1) <= workers else 0

    def checked(modality: str) -> None:
        outputs[modality] = check_output(tmp / f"{modality}.mp4", modality, frames, geo.width, geo.height)

    def color() -> None:
        psnr, compared = encode_color(group, sequences["color"], geo, options.fps, tmp / "color.mp4",
                                      partial(bar.update, "color"))
        checked("color")
        results["color_psnr_db"] = round(psnr, 3)
        results["color_psnr_frames"] = compared

    def depth() -> None:
        mapping = encode_depth(group, sequences["depth"], geo, options.fps, tmp / "depth.mp4",
                               partial(bar.update, "depth"), options.depth_near_bright, lossless_threads)
        checked("depth")
        results["depth"] = mapping.as_json()

    def segmentation() -> None:
        encode_segmentation(group, sequences["segmentation"], geo, options.fps, tmp / "segmentation.mp4",
                            partial(bar.update, "segmentation"), lossless_threads)
        checked("segmentation")

    jobs = {"color": color, "depth": depth, "segmentation": segmentation}
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="convert") as pool:
        futures = [pool.submit(jobs[m]) for m in sequences]
        try:
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        except BaseException:
            group.kill_all()
            raise
        failed = [error for f in futures if f in done and (error := f.exception()) is not None]
        if failed:
            group.kill_all()
            wait(futures)
            raise failed[0]
    return results


def convert_shot(input_dir: Path, output_name: str, videos_dir: Path, options: ConvertOptions,
                 notify: Callable[[str], None] = print) -> ConvertResult:
    """Convert a render folder into ``videos_dir/output_name`` (see the module docstring)."""
    check_output_name(output_name)
    if options.fps < 1:
        raise UserError(f"--fps must be at least 1, got {options.fps}")
    unused: list[str] = []
    sequences = find_sequences(Path(input_dir).resolve(), options.passes, unused)
    unused_notes = [f"note: {line}" for line in unused]
    for note in unused_notes:  # said before the checks: a failing check may come from what was left out
        notify(note)
    check_sequences(sequences)
    keep_first(sequences, options.frame_count)
    color = sequences["color"]
    frames, width, height = len(color.files), color.png.width, color.png.height
    geo = plan_geometry(width, height, options.fit)
    notes = geometry_notes(width, height, frames, options.fit)
    if (geo.width, geo.height) != (width, height) and not options.fit:
        notes.append(f"note: {width}x{height} has an odd side; padded to {geo.width}x{geo.height} by repeating "
                     "the last row/column (H.264 needs even sizes)")
    for note in notes:
        notify(note)
    notes = unused_notes + notes
    fingerprint, per_modality = _fingerprint(sequences, options)
    videos_dir = Path(videos_dir)
    target = videos_dir / output_name
    _check_target(target)
    if not options.force:
        record = _up_to_date(target, fingerprint)
        if record is not None:
            return ConvertResult(target, record, skipped=True, notes=notes)
    try:
        videos_dir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX, dir=videos_dir))
    except OSError as exc:
        raise _cannot_write(videos_dir, exc) from None
    try:
        started = time.monotonic()
        parts = {m: (frames, 2 if m == "depth" else 1) for m in sequences}  # depth: range pass, then encode
        with PartsProgress(f"convert {output_name}", parts, unit="frames", enabled=options.progress) as bar:
            measured = _encode_all(sequences, geo, options, tmp, bar)
        seconds = time.monotonic() - started
        measured["outputs"] = {m: measured["outputs"][m] for m in sequences}
        record = _record(output_name, sequences, per_modality, geo, options, measured, fingerprint)
        record["encode_seconds"] = round(seconds, 3)
        try:
            write_json_atomic(tmp / SHOT_JSON, record)
            _usual_permissions(tmp)
            _swap_in(tmp, target)
        except OSError as exc:
            raise _cannot_write(videos_dir, exc) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return ConvertResult(target, record, skipped=False, notes=notes)


def _cannot_write(folder: Path, exc: OSError) -> LocalError:
    """This machine would not let the shot folder be written: a full disk or a folder without write permission."""
    fix = ("free some space on that disk" if exc.errno in (errno.ENOSPC, errno.EDQUOT)
           else f"make {folder} writable, or point LOCAL_VIDEOS_DIR in config.sh elsewhere")
    return LocalError(f"{exc.filename or folder}: cannot write the shot there ({exc.strerror}); {fix}")


def _record(name: str, sequences: dict[str, Sequence], per_modality: dict[str, str], geo: Geometry,
            options: ConvertOptions, measured: dict, fingerprint: str) -> dict:
    color = sequences["color"]
    return {
        "shot": name,
        "tool": f"cosmos-tools {__version__}",
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "source": {
            "folder": str(color.folder),
            "first_frame": color.first,
            "last_frame": color.first + len(color.files) - 1,
            "frames": len(color.files),
            "width": color.png.width,
            "height": color.png.height,
            "sequences": {m: {"pattern": s.label, "png": s.png.kind, "bit_depth": s.png.bit_depth,
                              "fingerprint": per_modality[m]} for m, s in sequences.items()},
        },
        "fps": options.fps,
        "width": geo.width,
        "height": geo.height,
        "frames": len(color.files),
        "settings": {"frame_count": options.frame_count, "fit": options.fit, "passes": options.passes,
                     "depth_near_bright": options.depth_near_bright,
                     "geometry": {"scaled": [geo.scaled_w, geo.scaled_h], "padded_to": [geo.width, geo.height],
                                  "pad": "edge pixels repeated"},
                     "encoders": {m: SETTINGS[m] for m in sequences}},
        **measured,
        "fingerprint": fingerprint,
    }
