"""Where a job lives: its own run folder, the prompt's "latest" link, its log, exit-code file, spec and container.

Every run has a folder of its own, ``outputs/runs/<run id>/`` (upscales: ``outputs/runs/<run id>_upscaled``,
then ``..._upscaled-2``, ``-3``...), never overwritten. ``outputs/<prompt name>`` and
``outputs/<prompt name>_upscaled`` are the "latest" views: relative links to ``runs/<folder>``.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

RUN, UPSCALE = "run", "up"
UPSCALED_SUFFIX = "_upscaled"
RUNS_DIR = "outputs/runs"


def container_name(name: str, kind: str) -> str:
    """``ct1-<kind>-<sanitised name, 40 chars max>-<sha1(name)[:10]>``: Docker allows [a-zA-Z0-9][a-zA-Z0-9_.-]*."""
    digest = hashlib.sha1(name.encode("utf-8", "surrogateescape"), usedforsecurity=False).hexdigest()[:10]
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-.")[:40].rstrip("-.")
    return "-".join(part for part in ("ct1", kind, safe, digest) if part)


def latest_folder(name: str, kind: str) -> str:
    """The "latest" view of prompt ``name``: ``outputs/<name>`` or ``outputs/<name>_upscaled``."""
    return f"outputs/{name}" if kind == RUN else f"outputs/{name}{UPSCALED_SUFFIX}"


def run_id_of(name: str, k: int) -> str:
    """Run ``k`` of prompt ``name``: ``<name>-<k>``."""
    return f"{name}-{k}"


def upscale_leaf(run_id: str, k: int) -> str:
    """The folder of the ``k``-th upscale of a run: ``<run id>_upscaled``, then ``<run id>_upscaled-<k>``."""
    return f"{run_id}{UPSCALED_SUFFIX}" if k == 1 else f"{run_id}{UPSCALED_SUFFIX}-{k}"


def run_number(name: str, run_id: str) -> int | None:
    """``k`` of run id ``<name>-<k>``; None if ``run_id`` is not a run of ``name``."""
    match = re.fullmatch(re.escape(name) + r"-(\d+)", run_id)
    return int(match.group(1)) if match else None


def upscale_number(run_id: str, leaf: str) -> int | None:
    """``k`` of upscale folder ``leaf`` of run ``run_id`` (1 for ``<run id>_upscaled``); None if it is not one."""
    match = re.fullmatch(re.escape(run_id + UPSCALED_SUFFIX) + r"(?:-(\d+))?", leaf)
    return (int(match.group(1)) if match.group(1) else 1) if match else None


def split_leaf(leaf: str) -> tuple[str, str, str]:
    """(prompt name, kind, run id) of a folder under outputs/runs/ (name: the run id without ``-<k>``)."""
    kind, run_id = RUN, leaf
    match = re.fullmatch(r"(.+)" + re.escape(UPSCALED_SUFFIX) + r"(?:-\d+)?", leaf, flags=re.DOTALL)
    if match:
        kind, run_id = UPSCALE, match.group(1)
    number = re.fullmatch(r"(.+)-\d+", run_id, flags=re.DOTALL)
    return (number.group(1) if number else run_id), kind, run_id


@dataclass(frozen=True)
class JobPaths:
    """The paths of a run (``kind`` RUN) or upscale (UPSCALE) of prompt ``name``, relative to REMOTE_DIR.

    ``folder`` is the job's own folder under outputs/runs/ (or, for a job known by name only, the prompt's
    "latest" view). The same relative paths hold in the local project and in the container (``/workspace``).
    """

    name: str
    kind: str
    folder: str
    container: str

    @classmethod
    def of(cls, name: str, kind: str, leaf: str | None = None) -> JobPaths:
        """``leaf``: the job's folder under outputs/runs/ (a run id, or an upscale folder); None: the latest view."""
        folder = latest_folder(name, kind) if leaf is None else f"{RUNS_DIR}/{leaf}"
        return cls(name=name, kind=kind, folder=folder, container=container_name(name, kind))

    @property
    def latest(self) -> str:
        return latest_folder(self.name, self.kind)

    @property
    def leaf(self) -> str:
        return self.folder.rsplit("/", 1)[-1]

    @property
    def log(self) -> str:
        return f"{self.folder}/run.log"

    @property
    def exit_code(self) -> str:
        return f"{self.folder}/exit_code"

    @property
    def spec(self) -> str:
        return f"{self.folder}/controlnet_spec.json"
