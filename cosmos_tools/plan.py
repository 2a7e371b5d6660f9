"""One prompt, read once and checked locally: what to send to the GPU box and what to run there.

The prompt file is read once. The bytes that were checked are the bytes uploaded to
``inputs/prompts/<file name>`` and kept as the run's ``prompt_spec.json``: they are staged in a private
temporary folder that lives as long as the plan, so editing (or deleting) the file while a cycle runs
changes nothing that is sent. (sync uploads local files; staging keeps it that way instead of teaching it
about in-memory files for this one case.)
"""

from __future__ import annotations

import json
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from . import models
from .constants import MAX_UPSCALE_FRAMES
from .errors import UserError
from .names import check_run_name
from .prompts import PromptFile, inside_project, local_file, read_prompt, referenced_files, shot_of
from .validate import check_prompt


@dataclass
class Plan:
    """One prompt, read and checked locally: what to send and what to run."""

    path: Path
    name: str
    prompt: dict
    text: bytes  # the prompt file's bytes, as checked: what is uploaded and kept as prompt_spec.json
    shot: str | None
    uploads: list[tuple[Path, str]] = field(default_factory=list)  # (local file, path relative to REMOTE_DIR)
    staging: tempfile.TemporaryDirectory | None = field(default=None, repr=False)  # holds the staged prompt


def _stage(raw: bytes, file_name: str) -> tuple[tempfile.TemporaryDirectory, Path]:
    """A private copy of the checked bytes (removed with the plan, or at exit)."""
    folder = tempfile.TemporaryDirectory(prefix="cosmos-tools-prompt-")
    staged = Path(folder.name) / file_name
    staged.write_bytes(raw)
    return folder, staged


def plan_prompt(cfg, path: str | Path, override: str | None = None, *, check: bool = True,
                quiet: bool = False) -> Plan:
    """Read the prompt once, check it (problems: UserError, nothing sent) and list the files to upload.

    The prompt goes to ``inputs/prompts/<file name>`` on the box wherever it lives locally; the shot folder
    (``override`` or the one ``input_video_path`` points at) and every file the spec names go to their spec paths.
    """
    path = Path(path)
    if not path.is_absolute():
        path = (Path.cwd() / path).resolve()
    prompt = read_prompt(path)
    name = check_run_name(prompt.name)
    models.for_run(prompt.data, cfg)  # a prompt for another model than MODEL's checkout: refused before anything
    files = _check(prompt, cfg, quiet) if check else referenced_files(cfg, prompt.data)
    try:
        natural = shot_of(prompt.data)
    except UserError:
        natural = None
    if override is not None:
        shot: str | None = shot_of(prompt.data, override)
        if natural not in (None, shot):
            raise UserError(f"{path}: input_video_path points at shot {natural!r}, not at {shot!r}; point the prompt's "
                            f"paths at inputs/videos/{shot}/ or drop the videos_subdir argument")
    else:
        shot = natural
    prompt_rel = f"inputs/prompts/{path.name}"
    uploads = _shot_uploads(cfg, shot, files, known={prompt_rel})
    staging, staged = _stage(prompt.raw, path.name)
    uploads.insert(0, (staged, prompt_rel))
    return Plan(path=path, name=name, prompt=prompt.data, text=prompt.raw, shot=shot, uploads=uploads,
                staging=staging)


def _shot_uploads(cfg, shot: str | None, files: list[tuple[Path, str]], known: set[str]) -> list[tuple[Path, str]]:
    """The shot folder's files, then the other files the spec names (each once, none of ``known``)."""
    uploads: list[tuple[Path, str]] = []
    if shot is not None:
        folder = cfg.local_path("LOCAL_VIDEOS_DIR") / shot
        if not folder.is_dir():
            raise UserError(f"{folder}: shot folder not found; convert the renders with "
                            f"scripts/convert_png_sequences.sh or fix the prompt's paths")
        for file in sorted(folder.rglob("*")):
            rel = file.relative_to(folder)
            if not file.is_file() or any(part.startswith(".") for part in rel.parts):
                continue
            if not inside_project(cfg, file):  # a link to ~/.ssh/id_rsa must never reach a rented box
                print(f"warning: not sending {file}: a symlink to {file.resolve()}, outside the project; copy the "
                      "file into the shot folder if it belongs to the shot", file=sys.stderr)
                continue
            uploads.append((file, f"inputs/videos/{shot}/{rel.as_posix()}"))
    known = known | {rel for _, rel in uploads}
    return uploads + [(local, rel) for local, rel in files if rel not in known]


def plan_rerun(cfg, run_id: str) -> Plan:
    """Run ``run_id`` again exactly: the spec it ran (controlnet_spec.json) and the prompt as it was written
    (prompt_spec.json), read from its local folder outputs/runs/<run id>/, never from the prompt file.

    The shot and the files the spec names are sent as for a new run; the prompt file itself is not. A model whose
    spec paths are relative to the spec's folder (Transfer2.5) has them read back as project paths for that.
    """
    from .remote.paths import RUNS_DIR, split_leaf
    from .runs import runs_dir

    check_run_name(run_id)
    folder = runs_dir(cfg) / run_id
    spec_file = folder / "controlnet_spec.json"
    if not spec_file.is_file():
        raise UserError(f"run {run_id!r} is not here: no {spec_file}; download it (scripts/download_results.sh) "
                        "or pick a run id from `cosmos-tools history`")
    try:
        spec = json.loads(spec_file.read_text(encoding="utf-8"))
        used = json.loads((folder / "spec_used.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"{folder}: cannot read the run's spec files ({exc}); the run folder is damaged") from None
    if not isinstance(spec, dict):
        raise UserError(f"{spec_file}: not a spec (a JSON object); the run folder is damaged")
    recorded = used.get("name") if isinstance(used, dict) else None
    name = check_run_name(recorded or split_leaf(run_id)[0])
    prompt_file = folder / "prompt_spec.json"
    text = prompt_file.read_bytes() if prompt_file.is_file() else spec_file.read_bytes()
    model = used.get("model") if isinstance(used, dict) else None
    profile = models.profile(model) if model in models.MODELS else models.of_prompt(spec, cfg)
    named = profile.project_spec(spec, f"{RUNS_DIR}/{run_id}/controlnet_spec.json")
    try:
        shot = shot_of(named)
    except UserError:
        shot = None
    return Plan(path=prompt_file, name=name, prompt=spec, text=text, shot=shot,
                uploads=_shot_uploads(cfg, shot, referenced_files(cfg, named), known=set()))


def _check(prompt: PromptFile, cfg, quiet: bool = False) -> list[tuple[Path, str]]:
    """Print the prompt's problems; errors stop here (nothing is sent), warnings only inform. The files it names."""
    checked = check_prompt(prompt, cfg)
    for problem in checked.problems:
        if problem.warning and quiet:
            continue
        kind = "warning" if problem.warning else "error"
        print(f"{kind}: {prompt.path.name}: {problem.key}: {problem.message}", file=sys.stderr)
    if checked.errors:
        raise UserError(f"{prompt.path}: {len(checked.errors)} error(s) above; fix the prompt (nothing was sent)")
    return checked.files


def check_upscaler(cfg, plan: Plan) -> None:
    """Before any GPU time: refuse an upscale under a model without an upscaler (Cosmos-Transfer2.5)."""
    from . import models

    profile = models.of_prompt(plan.prompt, cfg)
    if not profile.HAS_UPSCALER:
        raise UserError(f"{plan.path.name}: {profile.NAME} has no 4K upscaler; pass --no-upscale (nothing was sent)")


def check_upscale_length(cfg, plan: Plan) -> None:
    """Before any GPU time: refuse a cycle whose output would be too long to upscale (it has the input's length),
    or one under a model without an upscaler."""
    from .probe import probe_video

    check_upscaler(cfg, plan)
    video = plan.prompt.get("input_video_path")
    if not isinstance(video, str) or not local_file(cfg, video).is_file():
        return
    info = probe_video(local_file(cfg, video), count_frames=False)
    frames = info.frames or probe_video(local_file(cfg, video)).frames
    if frames > MAX_UPSCALE_FRAMES:
        raise UserError(f"{video} has {frames} frames; the 4K upscaler handles at most {MAX_UPSCALE_FRAMES} "
                        "(cosmos-transfer1 issue #150): pass --no-upscale, or use a shorter shot (nothing was sent)")


def weights_text(prompt: dict) -> str:
    """``vis=0.25,edge=0.25,...``: the control weights of a spec (Cosmos 3: ``weight``), for the history line."""
    parts = []
    for key, value in prompt.items():
        if isinstance(value, dict) and not key.startswith("_") and key != "prompt":  # Cosmos 3: a caption object
            parts.append(f"{key}={value.get('control_weight', value.get('weight', ''))}")
    return ",".join(parts)
