"""Run ids and run folders on this side: the next run number, the "latest" links, the folders of the old layout.

A run id is ``<prompt name>-<k>``, k = 1, 2, 3... per prompt name. Each run keeps its results in
``outputs/runs/<run id>/`` (its upscales in ``outputs/runs/<run id>_upscaled[-k]/``), here and on the box;
``outputs/<prompt name>`` and ``outputs/<prompt name>_upscaled`` are relative links to the latest.
Nothing under outputs/runs/ is ever deleted or overwritten by the toolkit.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterable
from pathlib import Path

from .errors import UserError
from .remote.paths import (
    RUN,
    RUNS_DIR,
    UPSCALE,
    latest_folder,
    run_id_of,
    run_number,
    split_leaf,
    upscale_leaf,
    upscale_number,
)


def outputs_dir(cfg) -> Path:
    return cfg.local_path("LOCAL_OUTPUTS_DIR")


def runs_dir(cfg) -> Path:
    return outputs_dir(cfg) / "runs"


def local_job_folder(cfg, remote_folder: str) -> Path:
    """The local copy of a job folder on the box (``outputs/...`` there, LOCAL_OUTPUTS_DIR/... here)."""
    return outputs_dir(cfg) / remote_folder.removeprefix("outputs/")


def _leaves(cfg) -> list[str]:
    try:
        return os.listdir(runs_dir(cfg))
    except FileNotFoundError:
        return []


def next_run_number(cfg, name: str, box_leaf: str | None, run_ids: Iterable[str]) -> int:
    """1 + the largest k known for ``name``: local run folders, the box's latest run, the history's run ids."""
    known = [run_number(name, leaf) for leaf in [*_leaves(cfg), box_leaf or "", *run_ids]]
    return 1 + max([k for k in known if k is not None], default=0)


def next_upscale_number(cfg, run_id: str, box_leaf: str | None) -> int:
    """1 + the largest upscale number of ``run_id`` known here or as the box's latest upscale."""
    known = [upscale_number(run_id, leaf) for leaf in [*_leaves(cfg), box_leaf or ""]]
    return 1 + max([k for k in known if k is not None], default=0)


def point_latest(cfg, name: str, kind: str, leaf: str) -> None:
    """Make outputs/<name>[_upscaled] a relative link to runs/<leaf>: a new link renamed over the old one."""
    link = outputs_dir(cfg) / latest_folder(name, kind).removeprefix("outputs/")
    target = f"runs/{leaf}"
    if link.is_symlink() and os.readlink(link) == target:
        return
    if link.is_dir() and not link.is_symlink():
        raise UserError(f"{link} is a folder, not the link to the latest run; move it away and download again")
    tmp = link.with_name(f".{link.name}.{secrets.token_hex(4)}.link")
    os.symlink(target, tmp)
    try:
        os.replace(tmp, link)
    except OSError:
        tmp.unlink()
        raise


def migrate_legacy(cfg, name: str, say: Callable[[str], None]) -> None:
    """Move real folders outputs/<name>[_upscaled] of the old layout to outputs/runs/<name>-0[_upscaled]."""
    for kind, leaf in ((RUN, run_id_of(name, 0)), (UPSCALE, upscale_leaf(run_id_of(name, 0), 1))):
        folder = outputs_dir(cfg) / latest_folder(name, kind).removeprefix("outputs/")
        if not folder.is_dir() or folder.is_symlink():
            continue
        moved = runs_dir(cfg) / leaf
        if moved.exists() or moved.is_symlink():
            raise UserError(f"cannot move {folder} to {moved}: that exists already; move one of them away")
        runs_dir(cfg).mkdir(parents=True, exist_ok=True)
        os.rename(folder, moved)
        point_latest(cfg, name, kind, leaf)
        say(f"moved {folder} (results of the version before run ids) to {moved}")


def describe(cfg, run_id: str) -> dict:
    """Everything known about one run without a connection: history lines, provenance, files, where it lives."""
    from . import critic, history, provenance
    from .names import check_run_name

    check_run_name(run_id)
    path = history.history_path(cfg)
    lines = [history.typed(r) for r in history.read_records(path, warn=lambda msg: None)
             if r.get("run_id") == run_id]
    folder = runs_dir(cfg) / run_id
    if not lines and not folder.is_dir():
        raise UserError(f"no run {run_id!r}: it is neither in {path} nor in {runs_dir(cfg)}; "
                        "`cosmos-tools history` lists the run ids")
    leaves = [run_id] + sorted((leaf for leaf in _leaves(cfg) if upscale_number(run_id, leaf)),
                               key=lambda leaf: upscale_number(run_id, leaf) or 0)
    folders = [{"path": _rel(cfg, runs_dir(cfg) / leaf), "files": _files(runs_dir(cfg) / leaf)}
               for leaf in leaves if (runs_dir(cfg) / leaf).is_dir()]
    prov = provenance.read(folder)
    name = prov.get("prompt_name") or (lines[-1].get("run") if lines else "") or split_leaf(run_id)[0]
    box = f"{provenance.host_of(cfg)}:{cfg['REMOTE_DIR'].rstrip('/')}/{RUNS_DIR}/{run_id}"
    judged = critic.read(folder)
    return {"run_id": run_id, "prompt_name": name, "local": _rel(cfg, folder) if folder.is_dir() else "",
            "box": box, "history": lines, "provenance": prov, "folders": folders,
            "critic_score": critic.score_in(judged), "critic": judged}


def _rel(cfg, path: Path) -> str:
    try:
        return str(path.relative_to(cfg.root))
    except ValueError:
        return str(path)


def _files(folder: Path) -> list[dict]:
    return [{"name": str(p.relative_to(folder)), "size": p.stat().st_size}
            for p in sorted(folder.rglob("*")) if p.is_file()]
