"""A run's provenance: what made its result, gathered in the round trips a run already makes.

``provenance.json`` is written into the run's folder on the box before the job starts (with the spec, atomically)
and comes back with the download; the step timings are added to the local copy after the cycle. The box's side
(image id and digests, cosmos-transfer1 commit, GPUs) comes from the probe (``jobs.BoxFacts``).
"""

from __future__ import annotations

import functools
import hashlib
import subprocess
from pathlib import Path

from . import __version__
from .fsutil import read_json_object, write_json_atomic

FILE = "provenance.json"
SLURM_JOB_FILE = "slurm_job_id"  # in a job folder when BACKEND=slurm submitted it
DEFAULT_SEED = 1  # transfer.py's --seed default (cosmos-transfer1), used when the spec sets none
PROMPT_PREFIX = 80  # characters of the prompt text in a history line (the full text is in provenance.json)


def host_of(cfg) -> str:
    """The GPU box as history and provenance name it: REMOTE_HOST, or ``local`` (TRANSPORT=local)."""
    return cfg["REMOTE_HOST"] if cfg["TRANSPORT"] == "ssh" else "local"


def seed_of(spec: dict) -> int:
    """The seed the job uses: the spec's ``seed``, else transfer.py's default."""
    seed = spec.get("seed")
    return seed if isinstance(seed, int) and not isinstance(seed, bool) else DEFAULT_SEED


@functools.cache
def tool_version() -> str:
    """The package version, plus ``git describe --always --dirty`` when the toolkit is a git checkout."""
    checkout = Path(__file__).resolve().parent.parent
    if not (checkout / ".git").exists():
        return __version__
    try:
        done = subprocess.run(["git", "-C", str(checkout), "describe", "--always", "--dirty"], capture_output=True,
                              text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return __version__
    described = done.stdout.strip()
    return f"{__version__}+{described}" if done.returncode == 0 and described else __version__


def shot_fingerprint(shot: str | None, digests: dict[str, str]) -> str:
    """sha256 over the shot folder's files: ``<path in the shot>\\0<sha256 of its bytes>\\n`` per file, sorted.

    ``digests`` maps paths relative to REMOTE_DIR to the sha256 the upload computed; "" without a shot.
    """
    if not shot:
        return ""
    prefix = f"inputs/videos/{shot}/"
    lines = sorted(f"{rel[len(prefix):]}\0{sha}\n" for rel, sha in digests.items() if rel.startswith(prefix))
    return hashlib.sha256("".join(lines).encode("utf-8", "surrogateescape")).hexdigest() if lines else ""


def build(*, run_id: str, kind: str, name: str, prompt_file: str, spec: dict, shot: str | None, shot_sha256: str,
          docker_image: str, facts, num_gpu: int, host: str, rerun_of: str, started: str, **extra) -> dict:
    """The provenance of one job (``spec_sha256`` is added where its bytes are made: jobs.job_from_rendered)."""
    prompt = spec.get("prompt")
    return {"run_id": run_id, "kind": "run" if kind == "run" else "upscale", "prompt_name": name,
            "prompt_file": prompt_file, "prompt_text": prompt if isinstance(prompt, str) else "",
            "seed": seed_of(spec), "shot": shot or "", "shot_sha256": shot_sha256, "docker_image": docker_image,
            "image_id": facts.image_id, "image_digests": list(facts.image_digests),
            "code_version": facts.code_version, "tool_version": tool_version(), "gpu": facts.gpu,
            "num_gpu": num_gpu, "host": host, "rerun_of": rerun_of, "started": started, **extra}


def read(folder: Path) -> dict:
    """The provenance.json of a local run folder; {} if there is none (or it is not JSON)."""
    return read_json_object(Path(folder) / FILE)


def slurm_job_id(folder: Path) -> str:
    """The Slurm job id a job folder holds (``slurm_job_id``, written at submission; BACKEND=slurm), else ""."""
    try:
        return (Path(folder) / SLURM_JOB_FILE).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return ""


def add_timings(folder: Path, timings: dict[str, float]) -> None:
    """Add the step timings (and the Slurm job id, known only after submission) to the local provenance.json of a
    run (written atomically); no file, nothing."""
    data = read(folder)
    slurm = {"slurm_job_id": slurm_job_id(folder)} if slurm_job_id(folder) else {}
    if data:
        write_json_atomic(Path(folder) / FILE,
                          {**data, **slurm, "timings": {k: round(v, 1) for k, v in timings.items()}})
