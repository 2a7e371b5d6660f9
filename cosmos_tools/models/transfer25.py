"""Cosmos-Transfer2.5-2B (nvidia-cosmos/cosmos-transfer2.5, v1.2+ CLI): strict per-sample records, one model load.

Reference: ../shared/reference/cosmos-transfer2.5.md (facts with upstream paths). What this profile decides:
- The prompt is one record of ``InferenceArguments`` (``extra="forbid"``) plus our ``_`` comment keys. Paths are
  written relative to the project like Transfer1's; upstream resolves them against the spec file's folder, so the
  rendered spec rewrites them relative to ``outputs/runs/<run id>/``.
- The rendered record's ``name`` is ``output``: upstream writes ``<name>.mp4``, ``<name>.txt``, ``<name>.json`` and
  ``<name>_control_<key>.mp4``, so results land in the run folder layout (``output.mp4``...) with no renaming step.
  The prompt's own ``name`` is kept in prompt_spec.json.
- No upscaler (refused, README), no fps (output fps = input fps), guardrails on unless DISABLE_GUARDRAILS=yes;
  OFFLOAD's ``guardrail_models`` becomes ``--offload-guardrail-models`` (2.5 has no other offload).
"""

from __future__ import annotations

import json
import math
import posixpath

from ..prompts import is_clean_relative
from ..validate import SpecChecker, json_type, suggest

NAME = "transfer2.5-2b"
VIDEO_KEY = "video_path"
PROMPT_TEMPLATE = "prompt_transfer25.json.j2"
USER_TEMPLATE = "prompt_template.transfer2.5-2b.json.j2"
HAS_UPSCALER = False
COMMIT_KEY = "TRANSFER25_COMMIT"
INFERENCE_PY = "examples/inference.py"
BATCH_FLAG = ""  # none: a batch job's JSONL of records (batch.py) is the -i input itself
OUTPUT_NAME = "output"  # the rendered record's name: upstream's <name>.mp4 becomes the run folder's output.mp4

CHUNK_FRAMES = 93  # num_video_frames_per_chunk default (the trained length)
MAX_FRAMES = 5000  # NUM_MAX_FRAMES
CONTROL_KEYS = ("edge", "vis", "depth", "seg")
PRESETS = ("very_low", "low", "medium", "high", "very_high")
RESOLUTIONS = ("256", "480", "512", "720", "1024", "1080", "480p", "720p", "720robocasa")
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".png", ".jpg", ".jpeg")
CONTROL_FIELDS = {"control_path": CONTROL_KEYS, "control_weight": CONTROL_KEYS, "mask_path": CONTROL_KEYS,
                  "mask_prompt": CONTROL_KEYS, "preset_edge_threshold": ("edge",), "preset_blur_strength": ("vis",),
                  "control_prompt": ("seg",)}
# Transfer1 names a Transfer1 prompt would bring, and what Transfer2.5 calls them.
RENAMED = {"input_video_path": "video_path", "input_control": "control_path",
           "blur_strength": "vis.preset_blur_strength", "canny_threshold": "edge.preset_edge_threshold"}
INT_KEYS = {"seed": None, "num_steps": 1, "max_frames": 1, "num_video_frames_per_chunk": 1, "context_frame_index": 1,
            "guided_generation_step_threshold": None}
BOOL_KEYS = ("keep_input_resolution", "show_control_condition", "show_input")
PATH_KEYS = ("video_path", "prompt_path", "image_context_path", "guided_generation_mask")
TOP_KEYS = ("name", "prompt", "prompt_path", "negative_prompt", "video_path", "guidance", "resolution", "sigma_max",
            "num_conditional_frames", "guided_generation_foreground_labels", *INT_KEYS, *BOOL_KEYS,
            "image_context_path", "guided_generation_mask", *CONTROL_KEYS)


def _whole(value) -> int | None:
    """An int as pydantic (lax) takes it: an int, or a float with no fraction; None otherwise (bools refused)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    return None


class Transfer25Checker(SpecChecker):
    """Cosmos-Transfer2.5's validation (pydantic models in cosmos_transfer2/config.py) and what it forgets."""

    def rules(self) -> None:
        for key, value in self.spec.items():
            if key.startswith("_"):
                if key == "_upscale":
                    self.error(key, "Cosmos-Transfer2.5 has no 4K upscaler; remove it (README: Choosing a model)")
                continue
            if key not in TOP_KEYS:
                hint = f'; Transfer2.5 calls it "{RENAMED[key]}"' if key in RENAMED else suggest(key, TOP_KEYS)
                self.error(key, f"unknown key (Cosmos-Transfer2.5 refuses it: extra_forbidden){hint}; fix the name, "
                                "or start it with _ to keep it as a comment")
            elif (message := self.value_problem(key, value)) is not None:
                self.error(key, message)
        self.required()
        self.video()
        self.controls()

    def value_problem(self, key: str, value) -> str | None:
        if key in ("name", "prompt", "negative_prompt"):
            if not isinstance(value, str):
                return f"must be a string, got {json_type(value)}"
            if key == "name" and (not value or "/" in value):
                return "must be a non-empty file name without '/' (upstream writes <name>.mp4)"
            return None
        if key in INT_KEYS:
            number, low = _whole(value), INT_KEYS[key]
            if value is None and key in ("max_frames", "context_frame_index"):
                return None
            if number is None:
                return f"must be a whole number, got {json.dumps(value)}"
            return f"must be >= {low}, got {number}" if low is not None and number < low else None
        if key == "guidance":
            number = _whole(value)
            return None if number is not None and 0 <= number <= 7 else \
                f"must be a whole number from 0 to 7 (Transfer2.5 takes an int), got {json.dumps(value)}"
        if key == "num_conditional_frames":
            return None if _whole(value) in (0, 1, 2) else f"must be 0, 1 or 2, got {json.dumps(value)}"
        if key == "resolution":
            if not isinstance(value, str):
                return f'must be a JSON string like "720" (pydantic: Input should be a valid string), got ' \
                       f"{json.dumps(value)}"
            return None if value in RESOLUTIONS else \
                f"{value!r} is not a resolution; use one of {', '.join(RESOLUTIONS)} (checkpoints are 720p)"
        if key == "sigma_max":
            if value is None:
                return None
            if not isinstance(value, str):
                return f'must be a JSON string like "70" or null (pydantic: Input should be a valid string), got ' \
                       f"{json.dumps(value)}"
            try:
                return None if 0 <= float(value) <= 200 else f"{value!r} is outside 0-200"
            except ValueError:
                return f"{value!r} is not a number in a string; write e.g. \"70\""
        if key in BOOL_KEYS:
            return None if isinstance(value, bool) else f"must be true or false, got {json.dumps(value)}"
        if key == "guided_generation_foreground_labels":
            ok = value is None or isinstance(value, list) and all(_whole(v) is not None for v in value)
            return None if ok else f"must be a list of whole numbers, got {json.dumps(value)}"
        return None

    def required(self) -> None:
        if "name" not in self.spec:
            self.error("name", 'missing (pydantic: Field required); add "name": "<a file name>"')
        if "prompt" not in self.spec and "prompt_path" not in self.spec:
            self.error("prompt", 'missing, and no prompt_path (pydantic: Field required); add "prompt": "..."')
        if isinstance(self.spec.get("prompt_path"), str):
            self.file("prompt_path", self.spec["prompt_path"], "prompt file", "create it or use \"prompt\"")
        for key in ("image_context_path", "guided_generation_mask"):
            if self.spec.get(key) is not None:
                self.file(key, self.spec[key], "file", "create it or remove the key")
        if self.spec.get("image_context_path") is not None and self.spec.get("vis") is not None:
            self.error("image_context_path", "cannot be used with vis (both set the style; upstream raises "
                                             "ValueError); keep one")

    def video(self) -> None:
        value = self.spec.get("video_path")
        if value is None:
            self.error("video_path", 'missing (pydantic: Field required); add "video_path": '
                                     '"inputs/videos/<shot>/color.mp4"')
            return
        if isinstance(value, str) and not value.lower().endswith(VIDEO_EXTENSIONS):
            self.error("video_path", f"{value!r} is not a video or image file upstream reads "
                                     f"({' '.join(VIDEO_EXTENSIONS)})")
            return
        local = self.file("video_path", value, "input video", "convert the shot with scripts/convert_png_sequences.sh")
        if local:
            self.videos.insert(0, ("video_path", local))

    def controls(self) -> None:
        keys = [k for k in CONTROL_KEYS if self.spec.get(k) is not None]
        if not keys:
            self.error("controls", "no control (upstream: No controls provided); add at least one of "
                                   f"{', '.join(CONTROL_KEYS)}, e.g. \"edge\": {{\"control_weight\": 1.0}}")
        for key in keys:
            control = self.spec[key]
            if not isinstance(control, dict):
                self.error(key, f'must be an object like {{"control_weight": 1.0}} or null, got {json_type(control)}')
                continue
            for field, value in control.items():
                self.control_field(key, field, value)

    def control_field(self, key: str, field: str, value) -> None:
        where = f"{key}.{field}"
        if field not in CONTROL_FIELDS or key not in CONTROL_FIELDS[field]:
            hint = f'; Transfer2.5 calls it "{RENAMED[field]}"' if field in RENAMED else \
                suggest(field, CONTROL_FIELDS)
            self.error(where, f"unknown field for {key} (Cosmos-Transfer2.5 silently ignores it){hint}")
        elif field == "control_weight":
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
                self.error(where, f"must be a number from 0 to 1, got {json.dumps(value)}")
        elif field in ("control_path", "mask_path"):
            if value is not None:
                local = self.file(where, value, "control video" if field == "control_path" else "mask video",
                                  "convert the shot's modalities with scripts/convert_png_sequences.sh")
                if local and field == "control_path":
                    self.videos.append((where, local))
        elif field.startswith("preset_"):
            if value not in PRESETS:
                self.error(where, f"must be one of {', '.join(PRESETS)}, got {json.dumps(value)}")
        elif value is not None and not isinstance(value, str):
            self.error(where, f"must be a string, got {json_type(value)}")

    def first_video(self, key: str, info) -> None:
        frames = info.frames
        used = _whole(self.spec.get("max_frames")) or frames
        if frames > MAX_FRAMES:
            self.warn(key, f"{frames} frames: Cosmos-Transfer2.5 reads only the first {MAX_FRAMES}")
        if used > frames:
            self.warn("max_frames", f"{used} is more than the video's {frames} frames; all {frames} are used")
        chunk = _whole(self.spec.get("num_video_frames_per_chunk")) or CHUNK_FRAMES
        if 1 < min(used, frames) < chunk:
            self.warn(key, f"{min(used, frames)} frames: padded to one {chunk}-frame chunk (same GPU time as {chunk} "
                           "frames)")
        self.aspect(key, info.width, info.height)

    def other_video(self, key: str, info, ref_key: str, ref) -> None:
        used = min(_whole(self.spec.get("max_frames")) or ref.frames, ref.frames)
        if info.frames < used:
            self.error(key, f"{info.frames} frames but the run uses {used} of {ref_key} (upstream: No input frames; "
                            "cannot pad); re-convert the shot with equal frame counts")


def checker(spec: dict, cfg) -> Transfer25Checker:
    return Transfer25Checker(spec, cfg)


def run_spec(prompt: dict, spec_path: str) -> dict:
    """The record upstream reads: comment keys dropped, ``name`` = output, project paths made relative to the spec's
    folder (idempotent, so a rerun of the spec a run used renders the same spec)."""
    folder = posixpath.dirname(spec_path)

    def moved(value):  # a spec that already ran (rerun) has them moved: kept as they are
        return posixpath.relpath(value, folder) if isinstance(value, str) and is_clean_relative(value) else value

    spec = {key: value for key, value in prompt.items() if not key.startswith("_")}
    spec["name"] = OUTPUT_NAME
    for key in PATH_KEYS:
        if key in spec:
            spec[key] = moved(spec[key])
    for key in CONTROL_KEYS:
        if isinstance(spec.get(key), dict):
            spec[key] = {field: moved(v) if field in ("control_path", "mask_path") else v
                         for field, v in spec[key].items()}
    return spec


def project_path(value, folder: str):
    """A spec path relative to a run's ``folder`` as a project-relative path again (others as they are)."""
    if not isinstance(value, str) or not value or value.startswith("/") or is_clean_relative(value):
        return value
    return posixpath.normpath(posixpath.join(folder, value))


def project_spec(spec: dict, spec_path: str) -> dict:
    """``spec`` (as a run used it, its paths relative to ``spec_path``'s folder) with project-relative paths again:
    the files a rerun must find on the box (inputs/videos/<shot>/...)."""
    folder = posixpath.dirname(spec_path)

    def back(value):
        return project_path(value, folder)

    projected = dict(spec)
    for key in PATH_KEYS:
        if key in projected:
            projected[key] = back(projected[key])
    for key in CONTROL_KEYS:
        if isinstance(projected.get(key), dict):
            projected[key] = {field: back(v) if field in ("control_path", "mask_path") else v
                              for field, v in projected[key].items()}
    return projected


def command(cfg, prompt: dict, paths, num_gpu: int) -> list[str]:
    """``torchrun --nproc_per_node N examples/inference.py -i SPEC -o DIR`` (context parallelism = WORLD_SIZE)."""
    from ..render import render_json

    return render_json("transfer25_command.json.j2", num_gpu=num_gpu, spec_path=paths.spec, output_dir=paths.folder,
                       disable_guardrails=cfg["DISABLE_GUARDRAILS"] == "yes",
                       offload_guardrails="guardrail_models" in cfg["OFFLOAD"].split())


def env(cfg, num_gpu: int) -> dict[str, str]:
    """Checkpoints download on demand into the mounted Hugging Face cache; no PYTHONPATH (the image's venv has the
    package, and upstream's troubleshooting says to unset it)."""
    return {"HF_HOME": "/hf-cache", "HOME": "/tmp"}
