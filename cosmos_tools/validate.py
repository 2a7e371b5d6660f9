"""Check a prompt before any GPU time is spent: cosmos-transfer1's own rules and the ones it forgets.

cosmos-transfer1 (transfer.py + inference_utils.py) refuses a dict under an unknown key, a missing input video
when sigma_max < 80, a control without input_control when there is no input video, and a control_weight that
is neither a non-negative number nor a ``.pt`` path. Everything else it finds late (missing files, after
minutes of model loading) or never (typos, wrong types: JSON values skip argparse's checks). Here we also check:
types and choices of every transfer.py flag set in the JSON; fields inside each control; regional_prompts;
that every referenced file exists and stays inside the project (relative paths, no '..', no symlink out);
that the input video and every input_control agree in frame count and aspect ratio (ffprobe).

Decisions:
- Unknown top-level keys are errors (upstream silently accepts them, so a typo like "promt" would run with the
  default prompt). Keys starting with "_" are comments: allowed, and left out of the spec sent to cosmos.
- Unknown fields inside a control are errors; a transfer.py flag name there (e.g. sigma_max) is a warning,
  since upstream ignores it.
- ``ckpt_path`` under CHECKPOINT_DIR_REMOTE (e.g. ``checkpoints/...``) names a file on the GPU box and is not
  looked for locally; any other ckpt_path, and every ``.pt`` weight map, must exist in the project.
- Warnings (printed, exit 0): fewer than 121 frames, aspect far from every resolution bucket, fps that differs
  from the run's, keys with no effect.
"""

from __future__ import annotations

import difflib
import json
import math
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TypeGuard

from .config import Config
from .constants import CHUNK_FRAMES, MAX_UPSCALE_FRAMES, RESOLUTION_BUCKETS
from .errors import UserError
from .names import check_run_name
from .prompts import (
    PromptFile,
    PromptFileError,
    inside_project,
    is_clean_relative,
    local_file,
    read_prompt,
    referenced_files,
)

CONTROL_KEYS = ("vis", "seg", "edge", "depth", "keypoint", "upscale", "hdmap", "lidar")
CONTROL_FIELDS = ("control_weight", "input_control", "ckpt_path", "input_control_prompt", "control_weight_prompt")
UPSCALE_KEY = "_upscale"  # a comment key (never sent): settings of this prompt's 4K upscale, over config.sh
UPSCALE_FIELDS = ("prompt", "seed", "num_steps", "control_weight")
PRESETS = ("very_low", "low", "medium", "high", "very_high")
MAX_FRAMES = 5000
PURE_NOISE_SIGMA = 80
DEFAULT_SIGMA_MAX = 70.0
BOOL_FLAGS = ("is_av_sample", "use_distilled", "upsample_prompt", "offload_prompt_upsampler", "save_input_noise",
              "benchmark", "offload_diffusion_transformer", "offload_text_encoder_model", "offload_guardrail_models")
# Flags cosmos-tools sets on the command line (which wins over the JSON), or that break how it runs a job.
IGNORED_FLAGS = {
    "checkpoint_dir": "set CHECKPOINT_DIR_REMOTE in config.sh instead",
    "video_save_folder": "results always go to outputs/<prompt name>/",
    "controlnet_specs": "cosmos-tools uploads this spec itself",
}
REFUSED_FLAGS = {
    "num_gpus": "set NUM_GPU in config.sh or pass --num-gpu; here it would start context parallelism without "
                "torchrun",
    "batch_input_path": "batch mode writes video_<N>/ folders that cosmos-tools does not collect; make one prompt "
                        "per video",
    "video_save_name": "cosmos-tools collects output.mp4; remove it",
}


@dataclass(frozen=True)
class Problem:
    """One finding: ``key`` is the JSON key path, ``message`` says what is wrong and how to fix it."""

    key: str
    message: str
    warning: bool = False


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def json_type(value) -> str:
    names = {bool: "true/false", str: "a string", list: "a list", dict: "an object", type(None): "null"}
    return names.get(type(value), "a number")


def _arg_problem(key: str, value) -> str | None:
    """What is wrong with a top-level transfer.py argument, or None."""
    if key in ("prompt", "negative_prompt", "tokenizer_dir"):
        return None if isinstance(value, str) else f"must be a string, got {json_type(value)}"
    if key in ("blur_strength", "canny_threshold"):
        return None if value in PRESETS else f"must be one of {', '.join(PRESETS)}, got {json.dumps(value)}"
    if key == "num_input_frames":
        return None if _is_int(value) and value == 1 else f"must be 1 (the only value transfer.py allows), got " \
                                                         f"{json.dumps(value)}"
    if key in ("num_steps", "fps", "batch_size"):
        return None if _is_int(value) and value >= 1 else f"must be a whole number >= 1, got {json.dumps(value)}"
    if key == "seed":
        return None if _is_int(value) and 0 <= value < 2**32 else \
            f"must be a whole number from 0 to {2**32 - 1}, got {json.dumps(value)}"
    if key in ("sigma_max", "guidance"):
        return None if _is_number(value) and value >= 0 else f"must be a number >= 0, got {json.dumps(value)}"
    if key in BOOL_FLAGS:
        return None if isinstance(value, bool) else f"must be true or false, got {json.dumps(value)}"
    return None


ARG_KEYS = ("prompt", "negative_prompt", "input_video_path", "num_input_frames", "sigma_max", "blur_strength",
            "canny_threshold", "num_steps", "guidance", "fps", "seed", "batch_size", "tokenizer_dir",
            "num_video_frames", "regional_prompts", *BOOL_FLAGS, *IGNORED_FLAGS, *REFUSED_FLAGS)


def _is_box(value) -> bool:
    """A normalised box [x1, y1, x2, y2]: numbers from 0 to 1, x1 < x2 and y1 < y2."""
    return (isinstance(value, list) and len(value) == 4 and all(_is_number(v) and 0 <= v <= 1 for v in value)
            and value[0] < value[2] and value[1] < value[3])


def suggest(word: str, choices) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f'; did you mean "{close[0]}"?' if close else ""


@dataclass(frozen=True)
class Checked:
    """A prompt and what checking it found; ``prompt`` is None when the file is not readable as one JSON object.

    ``files`` are (local file, spec path) of the project files the spec names: what an upload sends with it.
    """

    prompt: PromptFile | None
    problems: list[Problem]
    files: list[tuple[Path, str]]

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if not p.warning]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.warning]


class SpecChecker:
    """What every model profile's checker shares: findings, project paths, and probing the videos a spec names.

    A profile's checker (``models.<profile>.checker``) adds its rules in ``rules()`` and says what the probed
    videos must satisfy in ``first_video`` (the input) and ``other_video`` (each control).
    """

    def __init__(self, spec: dict, cfg: Config) -> None:
        self.spec, self.cfg = spec, cfg
        self.problems: list[Problem] = []
        self.videos: list[tuple[str, Path]] = []  # (key, local file) of the input video and control videos
        self.input_missing_reported = False  # one line for a missing input video, not one per control

    def run(self) -> list[Problem]:
        self.rules()
        self.probe_all()
        return self.problems

    def rules(self) -> None:
        raise NotImplementedError

    def first_video(self, key: str, info) -> None:
        raise NotImplementedError

    def other_video(self, key: str, info, ref_key: str, ref) -> None:
        raise NotImplementedError

    def error(self, key: str, message: str) -> None:
        self.problems.append(Problem(key, message))

    def warn(self, key: str, message: str) -> None:
        self.problems.append(Problem(key, message, warning=True))

    # -- paths ----------------------------------------------------------------------------------------------------

    def file(self, key: str, value, what: str, fix: str) -> Path | None:
        """Check a path in the spec: text, relative, inside the project, an existing file. Returns the local file."""
        if not isinstance(value, str) or not value:
            self.error(key, f"must be a path (a non-empty string), got {json_type(value)}")
            return None
        posix = PurePosixPath(value)
        if posix.is_absolute():
            self.error(key, f"{value!r} is absolute; the GPU box sees the project at /workspace, so write it "
                            "relative to the project root (e.g. inputs/videos/<shot>/color.mp4)")
            return None
        if ".." in posix.parts:
            self.error(key, f"{value!r} contains '..'; write it relative to the project root without '..'")
            return None
        local = local_file(self.cfg, value)
        if not inside_project(self.cfg, local):
            self.error(key, f"{value!r} leads out of the project (through a symlink to {local.resolve()}); copy "
                            "the file into the project")
            return None
        if local.is_dir():
            self.error(key, f"{value!r} is a folder; name the {what} file inside it")
            return None
        if not local.is_file():
            self.error(key, f"{what} {value!r} not found (looked at {local}); {fix}")
            return None
        return local

    def probe_all(self) -> None:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=4) as pool:  # ffprobe start-up dominates: run them side by side
            results = list(pool.map(_probe, [local for _, local in self.videos]))
        infos = []
        for (key, _), result in zip(self.videos, results, strict=True):
            if isinstance(result, UserError):
                self.error(key, result.format_message())
            else:
                infos.append((key, result))
        if not infos:
            return
        ref_key, ref = infos[0]
        self.first_video(ref_key, ref)
        for key, info in infos[1:]:
            self.other_video(key, info, ref_key, ref)
            ratio = (info.width / info.height) / (ref.width / ref.height) if info.height and ref.height else 0
            if abs(ratio - 1) > 0.02:
                self.error(key, f"{info.width}x{info.height} does not match the aspect ratio of {ref_key} "
                                f"({ref.width}x{ref.height}); render every modality at the same size")

    def aspect(self, key: str, width: int, height: int) -> None:
        if not width or not height:
            return
        ratio = width / height
        name, (bw, bh) = min(RESOLUTION_BUCKETS.items(), key=lambda item: abs(item[1][0] / item[1][1] / ratio - 1))
        if abs(bw / bh / ratio - 1) > 0.05:
            self.warn(key, f"{width}x{height} is far from every cosmos aspect ratio; it will be stretched to "
                           f"{bw}x{bh} ({name}); crop or pad the render to avoid distortion")


class Transfer1Checker(SpecChecker):
    """Cosmos-Transfer1's rules (transfer.py's demo() and inference_utils.py) and the ones it forgets."""

    def rules(self) -> None:
        self.top_level()
        self.controls(self.input_video())
        self.regional_prompts()

    def first_video(self, key: str, info) -> None:
        self.frames(key, info.frames)
        self.aspect(key, info.width, info.height)
        self.fps(key, info.fps)

    def other_video(self, key: str, info, ref_key: str, ref) -> None:
        if info.frames != ref.frames:
            self.error(key, f"{info.frames} frames but {ref_key} has {ref.frames}; cosmos trims every video to "
                            "the shortest, so re-convert the shot with equal frame counts")

    # -- top level ------------------------------------------------------------------------------------------------

    def top_level(self) -> None:
        for key, value in self.spec.items():
            if key.startswith("_"):
                continue
            if key in CONTROL_KEYS:
                continue
            if isinstance(value, dict):
                self.error(key, f"not a control (cosmos: Invalid hint_key); use one of {', '.join(CONTROL_KEYS)}"
                                f"{suggest(key, CONTROL_KEYS)}")
            elif key in REFUSED_FLAGS:
                self.error(key, f"not supported in a cosmos-tools prompt: {REFUSED_FLAGS[key]}")
            elif key in IGNORED_FLAGS:
                self.warn(key, f"ignored: cosmos-tools passes --{key} on the command line, which wins; "
                               f"{IGNORED_FLAGS[key]}")
            elif key == "num_video_frames":
                self.warn(key, f"has no effect in transfer.py (chunks are always {CHUNK_FRAMES} frames); remove it")
            elif key == "tokenizer_dir":
                self.warn(key, "has no effect: transfer.py always loads Cosmos-Tokenize1-CV8x8x8-720p; remove it")
            elif key not in ARG_KEYS:
                self.error(key, f"unknown key (cosmos would silently ignore it){suggest(key, ARG_KEYS)}; "
                                "fix the name, or start it with _ to keep it as a comment")
            if key in ARG_KEYS and (message := _arg_problem(key, value)):
                self.error(key, message)
        if "prompt" not in self.spec:
            self.warn("prompt", "missing: cosmos will use its generic default prompt; add \"prompt\": \"...\"")
        self.offload()
        self.upscale_settings()

    def offload(self) -> None:
        """The prompt's offload_* keys win over OFFLOAD (render leaves the flag out): say so where they differ."""
        configured = self.cfg["OFFLOAD"].split()
        for word in configured:
            if self.spec.get(f"offload_{word}") is False:
                self.warn(f"offload_{word}", f"false here wins over OFFLOAD ({self.cfg.sources['OFFLOAD']}): "
                                             f"--offload_{word} is left off this run's command line")

    def upscale_settings(self) -> None:
        value = self.spec.get(UPSCALE_KEY)
        if value is None:
            return
        if not isinstance(value, dict):
            self.error(UPSCALE_KEY, f'must be an object like {{"prompt": "...", "seed": 1, "num_steps": 10, '
                                    f'"control_weight": 0.5}}, got {json_type(value)}')
            return
        for field, field_value in value.items():
            where = f"{UPSCALE_KEY}.{field}"
            if field not in UPSCALE_FIELDS:
                self.error(where, f"unknown field{suggest(field, UPSCALE_FIELDS)}; use {', '.join(UPSCALE_FIELDS)}")
            elif field == "control_weight":
                if not _is_number(field_value) or field_value < 0:
                    self.error(where, f"must be a number >= 0, got {json.dumps(field_value)}")
            elif message := _arg_problem(field, field_value):
                self.error(where, message)

    def sigma_max(self) -> float:
        value = self.spec.get("sigma_max", DEFAULT_SIGMA_MAX)
        return value if _is_number(value) else DEFAULT_SIGMA_MAX

    def input_video(self) -> bool:
        """Check input_video_path; True when the spec has one (cosmos's own notion: a non-empty value)."""
        value = self.spec.get("input_video_path")
        if value in (None, ""):
            if self.sigma_max() < PURE_NOISE_SIGMA:
                self.error("input_video_path", "missing, and sigma_max < 80 needs an input video (cosmos: Must have "
                                               "'input_video' specified if sigma_max < 80); add "
                                               "\"input_video_path\": \"inputs/videos/<shot>/color.mp4\"")
                self.input_missing_reported = True
            return False
        local = self.file("input_video_path", value, "input video",
                          "convert the shot with scripts/convert_png_sequences.sh")
        if local:
            self.videos.insert(0, ("input_video_path", local))
        return True

    # -- controls -------------------------------------------------------------------------------------------------

    def controls(self, has_input: bool) -> None:
        keys = [k for k in self.spec if k in CONTROL_KEYS]
        if not keys:
            self.error("controls", f"no control: add at least one of {', '.join(CONTROL_KEYS)}, "
                                   'e.g. "edge": {"control_weight": 0.5}')
        for key in keys:
            control = self.spec[key]
            if not isinstance(control, dict):
                self.error(key, f'must be an object like {{"control_weight": 0.5}}, got {json_type(control)}')
                continue
            self.control(key, control, has_input)
        self.distilled(keys)

    def control(self, key: str, control: dict, has_input: bool) -> None:
        for field, value in control.items():
            where = f"{key}.{field}"
            if field in ARG_KEYS:
                self.warn(where, "has no effect inside a control; move it to the top level")
            elif field not in CONTROL_FIELDS:
                self.error(where, f"unknown field (cosmos ignores it){suggest(field, CONTROL_FIELDS)}; "
                                  f"a control takes {', '.join(CONTROL_FIELDS)}")
            elif field in ("input_control_prompt", "control_weight_prompt"):
                if not isinstance(value, str):
                    self.error(where, f"must be a string, got {json_type(value)}")
                elif key != "seg":
                    self.warn(where, "cosmos-transfer1 only uses it on seg (since #182); it is ignored here")
        self.weight(key, control)
        if control.get("input_control") is not None:
            value = control["input_control"]
            if isinstance(value, list):
                self.error(f"{key}.input_control", "a list is for transfer_multiview.py; transfer.py takes one "
                                                   "video path")
            elif key == "upscale":
                self.warn(f"{key}.input_control", "ignored: the upscaler works from the input video")
            else:
                local = self.file(f"{key}.input_control", value, "control video",
                                  "convert the shot's modalities with scripts/convert_png_sequences.sh")
                if local:
                    self.videos.append((f"{key}.input_control", local))
        elif key in ("hdmap", "lidar"):
            self.error(f"{key}.input_control", f"missing or null: cosmos has no preprocessor for {key}; give the "
                                               f"rendered {key} video")
        elif not has_input and not self.input_missing_reported:
            self.error(f"{key}.input_control", "missing, and there is no input_video_path to compute it from "
                                               "(cosmos: controlnet must have 'input_control' video specified); "
                                               "add one of them")
        if key == "upscale" and not has_input and not self.input_missing_reported:
            self.error("input_video_path", "the upscale control works on the input video; add input_video_path")
        if "ckpt_path" in control:
            self.checkpoint(key, control["ckpt_path"], single=len(self.control_keys()) == 1)
        if key in ("hdmap", "lidar") and self.spec.get("is_av_sample") is not True:
            self.warn(key, f"{key} controls belong to the AV sample model; add \"is_av_sample\": true")

    def weight(self, key: str, control: dict) -> None:
        where = f"{key}.control_weight"
        if "control_weight" not in control:
            self.warn(where, "missing: cosmos will use 0.5; set it explicitly")
            return
        value = control["control_weight"]
        if isinstance(value, str) and value.endswith(".pt"):
            self.file(where, value, "weight map", "create it or give a number")
            return
        number = None
        if _is_number(value) or isinstance(value, float):
            number = float(value)
        elif isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                number = None
        if number is None or not math.isfinite(number) or number < 0:
            self.error(where, f"must be a finite number >= 0 or a path to a .pt weight map, got {json.dumps(value)}")

    def control_keys(self) -> list[str]:
        return [k for k in self.spec if k in CONTROL_KEYS]

    def checkpoint(self, key: str, value, *, single: bool) -> None:
        where = f"{key}.ckpt_path"
        box_dir = PurePosixPath(self.cfg["CHECKPOINT_DIR_REMOTE"])
        if isinstance(value, str) and value and box_dir.parts and PurePosixPath(value).parts[:len(box_dir.parts)] \
                == box_dir.parts and ".." not in PurePosixPath(value).parts:
            return  # a checkpoint on the GPU box (see the module docstring)
        if isinstance(value, str) and is_clean_relative(value) and not local_file(self.cfg, value).exists():
            if single:
                return  # transfer.py retries it as <checkpoint_dir>/<ckpt_path> (single-control specs only)
            self.error(where, f"{value!r} is not in the project, and a multi-control spec loads ckpt_path exactly as "
                              f"written (only single-control specs fall back to the checkpoint folder); write it as "
                              f"{(box_dir / value).as_posix()}")
            return
        self.file(where, value, "checkpoint", f"copy it into the project, or point it under {box_dir}/ on the GPU box")

    def distilled(self, keys: list[str]) -> None:
        if self.spec.get("use_distilled") is not True:
            return
        for key in keys:
            control = self.spec[key]
            if key != "edge" and isinstance(control, dict) and "ckpt_path" not in control:
                self.error(key, f"no default distilled checkpoint for {key} (use_distilled); set ckpt_path or "
                                "use only edge")
        if len(keys) != 1:
            self.error("use_distilled", f"the distilled model takes exactly one control, got {len(keys)} (cosmos "
                                        "asserts this after loading the network); keep only edge")
        elif keys != ["edge"]:
            self.warn("use_distilled", "the distilled model is made for edge; other controls need their own "
                                       "distilled ckpt_path")
        if self.spec.get("is_av_sample") is True:
            self.error("use_distilled", "cannot be combined with is_av_sample; remove one")
        if self.spec.get("save_input_noise") is True:
            self.error("use_distilled", "cannot be combined with save_input_noise (cosmos: saving input noise is not "
                                        "supported for distilled models); remove one")

    def regional_prompts(self) -> None:
        value = self.spec.get("regional_prompts")
        if value is None:
            return
        if not isinstance(value, list):
            self.error("regional_prompts", f"must be a list of objects, got {json_type(value)}")
            return
        definitions = 0
        for i, item in enumerate(value):
            where = f"regional_prompts[{i}]"
            if not isinstance(item, dict):
                self.error(where, f"must be an object with prompt and region_definitions_path or mask_prompt, "
                                  f"got {json_type(item)}")
                return
            for field in item:
                if field not in ("prompt", "region_definitions_path", "mask_prompt"):
                    self.error(f"{where}.{field}", "unknown field; use prompt, region_definitions_path or "
                                                   f"mask_prompt{suggest(field, ('prompt', 'mask_prompt'))}")
            if not isinstance(item.get("prompt"), str):
                self.error(f"{where}.prompt", "missing or not a string; every regional prompt needs its text")
            has_regions, has_mask = "region_definitions_path" in item, "mask_prompt" in item
            if has_regions == has_mask:
                self.error(where, "give exactly one of region_definitions_path and mask_prompt")
                return
            if has_mask and not isinstance(item["mask_prompt"], str):
                self.error(f"{where}.mask_prompt", "must be a string naming the objects to mask")
            count = self.regions(f"{where}.region_definitions_path", item["region_definitions_path"]) \
                if has_regions else 1
            if count is None:
                return
            definitions += count
        if definitions != len(value):
            self.error("regional_prompts", f"{len(value)} regional prompts but their region files hold {definitions} "
                                           "regions (cosmos needs one region per prompt); give each .json one box")

    def regions(self, where: str, value) -> int | None:
        """Check one region_definitions_path; the number of regions it defines, None when it is broken."""
        if isinstance(value, str):
            if not value.endswith((".json", ".mp4", ".pt")):
                self.error(where, "a path must name a .json file of boxes, an .mp4 mask video or a .pt mask")
                return None
            local = self.file(where, value, "region file", "create it or give the box inline as [x1, y1, x2, y2]")
            if local is None or not value.endswith(".json"):
                return None if local is None else 1
            try:
                boxes = json.loads(local.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
                self.error(where, f"{value}: not a readable JSON list of boxes ({exc}); fix the file")
                return None
            if not isinstance(boxes, list) or not all(_is_box(box) for box in boxes):
                self.error(where, f"{value} must hold a JSON list of [x1, y1, x2, y2] boxes (0 to 1, x1 < x2, "
                                  "y1 < y2)")
                return None
            return len(boxes)
        if not _is_box(value):
            self.error(where, "must be one box [x1, y1, x2, y2] in 0..1 with x1 < x2 and y1 < y2, or a path to a "
                              ".json, .mp4 or .pt region file")
            return None
        return 1

    # -- videos ---------------------------------------------------------------------------------------------------

    def frames(self, key: str, frames: int) -> None:
        if frames <= 1:
            self.error(key, f"{frames} frame(s): cosmos needs a video of at least 2 frames ({CHUNK_FRAMES} is best); "
                            "convert a longer sequence")
            return
        if frames < CHUNK_FRAMES:
            self.warn(key, f"{frames} frames, under one {CHUNK_FRAMES}-frame chunk: cosmos pads it and the output "
                           "tends to be noisy (cosmos-transfer1 #211)")
            if self.spec.get("regional_prompts"):
                self.warn("regional_prompts", f"regional prompts failed on inputs under {CHUNK_FRAMES} frames "
                                              "(cosmos-transfer1 #180)")
        if frames > MAX_FRAMES:
            self.warn(key, f"{frames} frames: cosmos reads only the first {MAX_FRAMES}")
        if "upscale" not in self.spec and frames > MAX_UPSCALE_FRAMES:
            self.warn(key, f"{frames} frames: the 4K upscale step handles at most {MAX_UPSCALE_FRAMES} "
                           "(cosmos-transfer1 #150), so full_cycle refuses this prompt unless you pass --no-upscale")
        if "upscale" in self.spec and frames > MAX_UPSCALE_FRAMES:
            self.warn(key, f"{frames} frames: the 4K upscaler failed after the first {CHUNK_FRAMES}-frame chunk "
                           f"(cosmos-transfer1 #150); keep upscale inputs to {MAX_UPSCALE_FRAMES} frames")

    def fps(self, key: str, fps: float) -> None:
        run_fps = self.spec.get("fps")
        if not _is_int(run_fps):
            run_fps = self.cfg.int("FPS")
        if fps and abs(fps - run_fps) > 0.01:
            self.warn(key, f"the video is {fps:g} fps but the run writes {run_fps} fps, so it will play at a "
                           f"different speed; set \"fps\": {round(fps)} or re-convert at {run_fps} fps")


_PROBED: dict[tuple, object] = {}


def _probe(local: Path):
    """VideoInfo of a file, or the UserError saying why it is not a video; cached per file (inode, size, mtime)."""
    from .probe import probe_video

    st = local.stat()
    version = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
    if version not in _PROBED:
        try:
            info = probe_video(local, count_frames=False)  # the container's frame count: no decoding
            _PROBED[version] = info if info.frames > 0 else probe_video(local, count_frames=True)
        except UserError as exc:
            _PROBED[version] = exc
    return _PROBED[version]


def check_prompt(prompt: PromptFile, cfg: Config) -> Checked:
    """Every problem of a prompt already read (errors and warnings); no errors means it would run."""
    from . import models

    found = [Problem(dup.key, f"appears twice in one object, on lines {dup.first_line} and {dup.line}; cosmos uses "
                     f"the one on line {dup.line}: remove the other", warning=True) for dup in prompt.duplicates]
    try:
        check_run_name(prompt.name)
    except UserError as exc:
        found.insert(0, Problem("file name", exc.format_message()))
    try:
        profile = models.of_prompt(prompt.data, cfg)
    except UserError as exc:
        return Checked(prompt, [*found, Problem(models.MODEL_KEY, exc.format_message())], [])
    problems = profile.checker(prompt.data, cfg).run()
    if profile.NAME != cfg["MODEL"]:
        problems.append(Problem(models.MODEL_KEY, models.mismatch(profile.NAME, cfg), warning=True))
    return Checked(prompt, found + problems, referenced_files(cfg, prompt.data))


def check_path(path: Path, cfg: Config) -> Checked:
    """Read the prompt at ``path`` and check it; a file that is not one JSON object is a problem under "json"."""
    try:
        prompt = read_prompt(path)
    except PromptFileError as exc:
        where = f"line {exc.line}, column {exc.col}: " if exc.line else ""
        return Checked(None, [Problem("json", where + exc.detail)], [])
    return check_prompt(prompt, cfg)
