"""Which runs a review shows, and what it shows of each: runs -> tiles, shared and differing values.

Everything comes from the filesystem, never a connection: ``notes/run_history.log`` (the last line of
each run id) and the local run folders ``outputs/runs/<run id>/`` (output.mp4, run.log, exit_code,
provenance.json, spec_used.json, prompt_spec.json; upscales in ``<run id>_upscaled[-k]/``).

Selections: run ids as given; ``--sweep NAME``: the latest run of each variant of the manifest
``inputs/sweeps/NAME.json`` (variants never run are left out, with a note); ``--shot SHOT``: every run
of that shot, oldest first; ``--last N``: the last N run ids of the history.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from . import critic, history, provenance
from .constants import GUARDRAIL_MARKERS
from .errors import UserError
from .fsutil import read_json_object
from .names import check_name
from .remote.paths import run_number, split_leaf, upscale_number
from .runs import runs_dir

SWEEPS_DIR = "inputs/sweeps"
LOG_TAIL = 15  # last lines of run.log shown for a run that did not end ok (as jobs.py prints them)
GUARDRAIL = " or ".join(GUARDRAIL_MARKERS)
STOPPED_CODES = (130, 137, 143)
COMPUTED_CONTROL = re.compile(r"(?P<key>[a-z]+)_input_control_\d+\.mp4")
NO_RUN_FIX = "`cosmos-tools history` lists the run ids"


@dataclass(frozen=True)
class Video:
    """One video shown on the page: what it is and where it is (absolute)."""

    label: str
    path: Path


@dataclass
class Tile:
    """One run as the review shows it."""

    run_id: str
    prompt_name: str
    status: str  # ok, failed, blocked, cancelled, detached, stopped, unfinished
    verdict: str  # one line for a run that did not end ok ("" when ok)
    folder: Path
    output: Path | None  # output.mp4 when it is here and not empty
    upscales: list[Path]  # each upscale's output.mp4 that is here
    log_tail: list[str]
    duration_s: float | None
    seed: int | str
    started: str
    spec: dict  # the prompt as written (prompt_spec.json), else the rendered spec
    critic_score: float | None = None  # the advisory score of its critic.json (0..1), None when not scored
    critic_answer: str = ""  # the critic's answer, as critic.json says it
    values: dict[str, str] = field(default_factory=dict)  # dotted key -> shown value
    differing: dict[str, str] = field(default_factory=dict)  # the values that differ between the selected runs


@dataclass
class Review:
    """What one review page or contact sheet shows."""

    title: str
    tiles: list[Tile]
    shared: dict[str, str | None]  # values every selected run has alike (None: a key no run sets)
    sources: list[Video]  # the shot's source and control videos, then the controls Cosmos computed
    notes: list[str]  # what was asked for but is not here (variants never run, missing files)


def select(cfg, run_ids=(), sweep: str | None = None, shot: str | None = None,
           last: int | None = None) -> tuple[str, list[str], list[str]]:
    """(title, run ids, notes) of exactly one selection; one clear line for an unknown run, sweep or shot."""
    given = [bool(run_ids), sweep is not None, shot is not None, last is not None]
    if sum(given) != 1:
        raise UserError("give the runs to review: RUN_ID..., --sweep NAME, --shot SHOT or --last N (exactly one)")
    records = _records(cfg)
    known = _known_run_ids(cfg, records)
    if run_ids:
        for run_id in run_ids:
            if run_id not in known:
                raise UserError(f"no run {run_id!r}: it is neither in {history.history_path(cfg)} nor in "
                                f"{runs_dir(cfg)}; {NO_RUN_FIX}")
        return "runs " + ", ".join(run_ids), list(dict.fromkeys(run_ids)), []
    if sweep is not None:
        return _select_sweep(cfg, sweep, known)
    if shot is not None:
        chosen = [r for r in known if _shot_of(cfg, r, records) == shot]
        if not chosen:
            raise UserError(f"no run of shot {shot!r} in {history.history_path(cfg)} or {runs_dir(cfg)}; "
                            f"{NO_RUN_FIX} (column shot)")
        return f"shot {shot}", chosen, []
    if last is None or last < 1:
        raise UserError(f"--last {last}: give a number of runs of at least 1")
    ordered = list(dict.fromkeys(r["run_id"] for r in records if r.get("run_id")))
    if not ordered:
        raise UserError(f"no run with a run id in {history.history_path(cfg)}; run one first (full_cycle.sh)")
    return f"last {last} runs", ordered[-last:], []


def _records(cfg) -> list[dict]:
    return history.read_records(history.history_path(cfg), warn=lambda msg: None)


def _known_run_ids(cfg, records: list[dict]) -> list[str]:
    """Every run id of the history (in order), then the run folders here that the history lacks."""
    ids = [r["run_id"] for r in records if r.get("run_id")]
    try:
        leaves = sorted(p.name for p in runs_dir(cfg).iterdir() if p.is_dir())
    except FileNotFoundError:
        leaves = []
    ids += [leaf for leaf in leaves if split_leaf(leaf)[1] == "run"]
    return list(dict.fromkeys(ids))


def _shot_of(cfg, run_id: str, records: list[dict]) -> str:
    lines = [r for r in records if r.get("run_id") == run_id and r.get("shot")]
    return lines[-1]["shot"] if lines else provenance.read(runs_dir(cfg) / run_id).get("shot", "")


def _select_sweep(cfg, name: str, known: list[str]) -> tuple[str, list[str], list[str]]:
    check_name(name, "sweep name", "give the NAME of inputs/sweeps/NAME.json")
    path = cfg.root / SWEEPS_DIR / f"{name}.json"
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"no sweep {name!r}: {path} does not exist; `ls {SWEEPS_DIR}` lists the sweeps") from None
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: not a readable sweep manifest ({exc}); make it again with sweep.sh") from None
    variants = manifest.get("variants") if isinstance(manifest, dict) else None
    if not isinstance(variants, list) or not all(isinstance(v, dict) and isinstance(v.get("prompt"), str)
                                                 for v in variants):
        raise UserError(f"{path}: no list of variants with a prompt each; make it again with sweep.sh")
    chosen, notes = [], []
    for variant in variants:
        prompt = Path(variant["prompt"]).stem
        runs = [(run_number(prompt, r), r) for r in known if run_number(prompt, r) is not None]
        if runs:
            chosen.append(max(runs)[1])
        else:
            notes.append(f"variant {prompt} has no run yet")
    if not chosen:
        raise UserError(f"sweep {name!r}: none of its {len(variants)} variants has run yet; run them first "
                        f"(full_cycle.sh {path.relative_to(cfg.root)})")
    return f"sweep {name}", chosen, notes


def load(cfg, title: str, run_ids: list[str], notes: list[str] | None = None) -> Review:
    """The review of these runs: tiles with their differing values, the shared values, the source videos."""
    records = _records(cfg)
    tiles = [_tile(cfg, run_id, [r for r in records if r.get("run_id") == run_id]) for run_id in run_ids]
    keys = list(dict.fromkeys(k for tile in tiles for k in tile.values))
    shared = {}
    for key in keys:
        seen = {tile.values.get(key) for tile in tiles}
        if len(seen) == 1:
            shared[key] = seen.pop()
        else:
            for tile in tiles:
                tile.differing[key] = tile.values.get(key, "(not set)")
    notes = list(notes or [])
    return Review(title=title, tiles=tiles, shared=shared, sources=_sources(cfg, tiles, notes), notes=notes)


def _tile(cfg, run_id: str, lines: list[dict]) -> Tile:
    folder = runs_dir(cfg) / run_id
    line = lines[-1] if lines else {}
    prov = provenance.read(folder)
    spec = read_json_object(folder / "prompt_spec.json") or read_json_object(folder / "spec_used.json").get("spec") \
        or {}
    video = folder / "output.mp4"
    output = video if video.is_file() and video.stat().st_size > 0 else None
    log_text = _read_text(folder / "run.log")
    status, verdict = _judge(line, folder, output, log_text)
    judged = critic.read(folder)
    duration = _number(line.get("run_s")) or _number((prov.get("timings") or {}).get("run_s"))
    seed = line.get("seed") or prov.get("seed") or provenance.seed_of(spec)
    return Tile(run_id=run_id, prompt_name=prov.get("prompt_name") or line.get("run") or split_leaf(run_id)[0],
                status=status, verdict=verdict, folder=folder, output=output, upscales=_upscales(folder),
                log_tail=log_text.splitlines()[-LOG_TAIL:] if status != "ok" else [],
                duration_s=duration, seed=seed, started=line.get("ts") or prov.get("started", ""),
                spec=spec, critic_score=critic.score_in(judged), critic_answer=str(judged.get("answer", "")),
                values=flatten(spec))


def _judge(line: dict, folder: Path, output: Path | None, log_text: str) -> tuple[str, str]:
    """(status, verdict): the history line's status, else (no line, or ``detached``: started and left) judged
    from the folder as jobs.py judges a job."""
    status = line.get("status", "")
    code = _read_text(folder / "exit_code").strip()
    if status in ("", "detached"):
        if not code:
            status = status or "unfinished"
        elif any(marker in log_text for marker in GUARDRAIL_MARKERS):
            status = "blocked"
        elif code.isdigit() and int(code) in STOPPED_CODES:
            status = "stopped"
        else:
            status = "ok" if code == "0" and output else "failed"
    if status == "ok":
        return status, "" if output else "the output is not here: download it (download_results.sh)"
    if line.get("error"):
        return status, line["error"]
    if status == "blocked" or any(marker in log_text for marker in GUARDRAIL_MARKERS):
        return status, f"the guardrail blocked it ({GUARDRAIL} in run.log); change the prompt"
    if status in ("unfinished", "detached"):
        return status, "no exit code yet: still running, or not downloaded (cosmos-tools attach / download)"
    return status, f"exit code {code}" if code else f"status {status}"


def _upscales(folder: Path) -> list[Path]:
    leaves = [(upscale_number(folder.name, p.name), p) for p in folder.parent.glob(f"{_glob_safe(folder.name)}_*")]
    found = [p / "output.mp4" for k, p in sorted((k, p) for k, p in leaves if k) if (p / "output.mp4").is_file()]
    return [p for p in found if p.stat().st_size > 0]


def _glob_safe(text: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", text)


def _sources(cfg, tiles: list[Tile], notes: list[str]) -> list[Video]:
    """The source video and control videos each run's spec names (once each), then the controls Cosmos computed
    (from the first run that brought each back: edge and depth are the same for every run of a shot)."""
    named: dict[Path, str] = {}
    for tile in tiles:
        spec = tile.spec
        if isinstance(spec.get("input_video_path"), str):
            named.setdefault(cfg.root / spec["input_video_path"], "source")
        for key, value in spec.items():
            if isinstance(value, dict) and isinstance(value.get("input_control"), str):
                named.setdefault(cfg.root / value["input_control"], f"{key} control")
    videos = []
    for path, label in named.items():
        if path.is_file():
            videos.append(Video(label, path))
        else:
            notes.append(f"{label} {path} is not here")
    computed: dict[str, Video] = {}
    for tile in tiles:
        for path in sorted(tile.folder.glob("*_input_control_*.mp4")):
            match = COMPUTED_CONTROL.fullmatch(path.name)
            if match and match["key"] not in computed:
                computed[match["key"]] = Video(f"{match['key']} control computed by Cosmos ({tile.run_id})", path)
    return videos + list(computed.values())


def flatten(spec: dict, prefix: str = "") -> dict[str, str]:
    """Dotted keys to shown values (strings as they are, the rest as JSON); ``_`` comment keys left out."""
    out = {}
    for key, value in spec.items():
        if key.startswith("_"):
            continue
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return out


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def _number(value) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None
