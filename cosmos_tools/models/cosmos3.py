"""Cosmos 3 transfer (NVIDIA/cosmos-framework's omni inference CLI): one profile per checkpoint, Nano, Super and Edge.

Reference: ../shared/reference/cosmos3.md (facts with upstream paths; sections 1, 2, 4, 5). What these profiles decide:
- The prompt is one sample record of upstream's ``OmniSampleOverrides`` (``extra="forbid"``) plus our ``_`` comment
  keys. Paths are written relative to the project; the rendered spec makes them relative to the spec's folder
  (``outputs/runs/<run id>/``), which is what upstream resolves them against. ``name`` becomes ``output``.
- ``prompt`` is plain text (upstream appends its duration and resolution sentences) or an object in upstream's
  structured JSON caption format (its native prompt), which the rendered spec compacts into a string as upstream
  compacts a ``.json`` prompt_path. ``new-prompt`` writes the object, the user's text as its ``temporal_caption``,
  for the other fields to be filled in by hand (and swept: ``--set prompt.lighting.conditions=dusk,noon``).
- Upstream writes ``<-o>/<name>/vision.mp4``, ``control_<hint>.mp4``, ``sample_args.json``, ``sample_outputs.json``;
  the command is wrapped in remote/cosmos3_collect.sh, which moves them into the run folder as ``output.mp4``,
  ``output_control_<hint>.mp4``, ``sample_args.json`` and ``sample_outputs.json`` (also after a failure).
- One job per sample (sweeps: one job per variant): one failing transfer sample aborts upstream's whole run and there
  is no resume (section 5 #12). So the parallelism preset is always ``latency`` (``throughput`` only deals samples
  across ranks, and can hang on transfer with FSDP, section 1.4); an odd N > 1 adds ``--cfgp-size 1 --cp-size N``.
  Super needs 4 GPUs or more (128 GB of weights; upstream's tested transfer layout).
- Guardrails from config as for Transfer2.5 (DISABLE_GUARDRAILS, OFFLOAD's guardrail_models; upstream's transfer
  path calls none of them, so they cost memory only); the diffusion cache always explicit (COSMOS3_DIFFUSION_CACHE,
  it changes pixels); ``--checkpoint-path`` is the registry name unless COSMOS3_CHECKPOINT names a folder.
- No upscaler (refused like Transfer2.5: the Transfer1 upscaler needs a Transfer1 checkout and image, and a run has
  MODEL's only). Nano-Sim-Transfer is refused (config.REFUSED_MODELS): not in upstream's registry, untested.
- The container: the checkout mounted at /workspace (the image's entrypoint installs it), ``-v /workspace/.venv``
  keeps the image's venv visible under that mount, HF_HOME and UV_CACHE_DIR on the mounted Hugging Face cache, and
  upstream's knobs (PYTHONNOUSERSITE, PYTORCH_CUDA_ALLOC_CONF, NCCL_NET_PLUGIN, an empty LD_LIBRARY_PATH).
"""

from __future__ import annotations

import json
import math
import posixpath
from dataclasses import dataclass

from ..errors import UserError
from ..prompts import is_clean_relative
from ..validate import SpecChecker, json_type, suggest
from .transfer25 import _whole, project_path

OUTPUT_NAME = "output"  # the rendered sample's name: remote/cosmos3_collect.sh moves output/vision.mp4 to output.mp4
MODULE = "cosmos_framework.scripts.inference"
HINTS = ("edge", "blur", "depth", "seg", "wsm")  # upstream's TransferHintKey, in the order it applies them
PRECOMPUTED = ("depth", "seg", "wsm")  # upstream computes only edge and blur (from vision_path)
PRESETS = ("very_low", "low", "medium", "high", "very_high")
HINT_FIELDS = {"control_path": HINTS, "weight": HINTS, "preset_edge_threshold": ("edge",),
               "preset_blur_strength": ("blur",)}
FIELD_CHOICES = {"preset_edge_threshold": PRESETS, "preset_blur_strength": ("none", *PRESETS)}
# Transfer1 and Transfer2.5 names a prompt may bring, and what Cosmos 3 calls them.
RENAMED = {"video_path": "vision_path", "input_video_path": "vision_path", "vis": "blur",
           "input_control": "control_path", "control_weight": "weight"}
REFUSED = {
    "max_num_seqs": "Cosmos 3 transfer runs one sample at a time (upstream asserts: Batching is not supported for "
                    "transfer inference); remove it",
    "batch_size": "Cosmos 3 transfer runs one sample at a time (batch size 1); remove it",
    "mask_path": "Cosmos 3 has no per-hint masks; remove it",
    "mask_prompt": "Cosmos 3 has no per-hint masks; remove it",
}
ASPECTS = {"16,9": 16 / 9, "4,3": 4 / 3, "1,1": 1.0, "3,4": 3 / 4, "9,16": 9 / 16}
SIZES = {  # upstream's VIDEO_RES_SIZE_INFO: tier -> aspect -> (width, height) of the output
    "256": {"16,9": (320, 192), "4,3": (320, 256), "1,1": (256, 256), "3,4": (256, 320), "9,16": (192, 320)},
    "480": {"16,9": (832, 480), "4,3": (736, 544), "1,1": (640, 640), "3,4": (544, 736), "9,16": (480, 832)},
    "720": {"16,9": (1280, 720), "4,3": (1104, 832), "1,1": (960, 960), "3,4": (832, 1104), "9,16": (720, 1280)},
    "768": {"16,9": (1360, 768), "4,3": (1184, 880), "1,1": (1024, 1024), "3,4": (880, 1184), "9,16": (768, 1360)},
}
CHUNK_FRAMES, MAX_FRAMES = 93, 5000  # upstream's transfer sample defaults
VISION_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".mp4")
URL_PREFIXES = ("http://", "https://", "s3://")
PATH_KEYS = ("prompt_path", "vision_path", "defaults_file")
CAPTION_KEYS = ("subjects", "background_setting", "lighting", "aesthetics", "cinematography", "style_medium",
                "artistic_style", "context", "actions", "text_and_signage_elements", "segments", "transitions",
                "temporal_caption", "audio_description", "resolution", "aspect_ratio", "duration", "fps")
STRING_KEYS = ("name", "negative_prompt", "negative_prompt_file", "negative_metadata_mode")
BOOL_KEYS = ("negative_prompt_keep_metadata", "share_vision_temporal_positions", "emphasize_control_in_prompt",
             "show_control_condition", "show_input")
INT_KEYS = {"seed": None, "fps": 1, "num_frames": 1, "num_steps": 1, "num_video_frames_per_chunk": 1,
            "max_frames": 1, "num_conditional_frames": 0, "num_first_chunk_conditional_frames": 0, "num_outputs": 1}
RANGES = {"guidance": (0, 7), "control_guidance": (0, 10), "shift": (0, math.inf), "sigma_max": (0, math.inf)}
TOP_KEYS = ("prompt", *STRING_KEYS, *BOOL_KEYS, *INT_KEYS, *RANGES, *PATH_KEYS, "model_mode", "resolution",
            "aspect_ratio", "guidance_interval", "control_guidance_interval", *HINTS)


def chunk_frames(value: int) -> int:
    """Frames of one chunk as upstream rounds the setting: up to 4k + 1."""
    return math.ceil((value - 1) / 4) * 4 + 1


def nearest_aspect(width: int, height: int) -> str:
    """The aspect bucket ("16,9"...) closest to width x height."""
    return min(ASPECTS, key=lambda name: abs(math.log(ASPECTS[name] * height / width)))


def _is_url(value) -> bool:
    return isinstance(value, str) and value.lower().startswith(URL_PREFIXES)


class Cosmos3Checker(SpecChecker):
    """Cosmos 3's validation (pydantic models in inference/args.py, checks at load and generation) and what it
    forgets (files in the project, frame counts, aspect ratios, chunking)."""

    def __init__(self, spec: dict, cfg, profile: Cosmos3Profile) -> None:
        super().__init__(spec, cfg)
        self.profile = profile

    def rules(self) -> None:
        for key, value in self.spec.items():
            if key == "_upscale":
                self.error(key, f"{self.profile.NAME} has no 4K upscaler; remove it (README: Cosmos 3)")
            elif key.startswith("_"):
                continue
            elif key in REFUSED:
                self.error(key, REFUSED[key])
            elif key not in TOP_KEYS:
                hint = f'; did you mean "{RENAMED[key]}"?' if key in RENAMED else suggest(key, TOP_KEYS)
                self.error(key, f"unknown key (Cosmos 3 refuses it before loading: extra_forbidden){hint}; fix the "
                                "name, or start it with _ to keep it as a comment")
            elif key in HINTS:
                continue
            elif (message := self.value_problem(key, value)) is not None:
                self.error(key, message)
        self.prompt_text()
        self.paths()
        self.controls()
        self.chunking()

    def value_problem(self, key: str, value) -> str | None:
        if key == "prompt":
            if isinstance(value, dict):
                for field in value:
                    if field not in CAPTION_KEYS:
                        self.warn(f"prompt.{field}", f"not a field of upstream's caption schema"
                                                     f"{suggest(field, CAPTION_KEYS)}; the model reads it as text")
                return None
            return None if isinstance(value, str) else \
                f'must be text or a structured caption object ({{"temporal_caption": "..."}}), got {json_type(value)}'
        if key in STRING_KEYS:
            if not isinstance(value, str):
                return f"must be a string, got {json_type(value)}"
            if key == "name" and (not value or "/" in value):
                return "must be a non-empty name without '/' (upstream writes <output dir>/<name>/)"
            if key == "negative_prompt_file":
                self.warn(key, "ignored in practice (upstream's defaults fill negative_prompt first); write "
                               "\"negative_prompt\" instead")
            return None
        if key in BOOL_KEYS:
            return None if isinstance(value, bool) else f"must be true or false, got {json.dumps(value)}"
        if key in INT_KEYS:
            number, low = _whole(value), INT_KEYS[key]
            if number is None:
                return f"must be a whole number, got {json.dumps(value)}"
            if low is not None and number < low:
                return f"must be >= {low}, got {number}"
            if key == "num_outputs" and number != 1:
                return "must be 1: Cosmos 3 transfer makes one video per sample (batch size 1); use a sweep"
            if key == "num_frames":
                self.warn(key, "does not set the length of a transfer (max_frames does, upstream reads that many "
                               "frames of the controls); remove it")
            return None
        if key in RANGES:
            low, high = RANGES[key]
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and low <= value <= high
            limits = f"from {low} to {high}" if math.isfinite(high) else f">= {low}"
            return None if ok else f"must be a number {limits}, got {json.dumps(value)}"
        if key in ("guidance_interval", "control_guidance_interval"):
            ok = (value is None or isinstance(value, list) and len(value) == 2
                  and all(_whole(v) is not None and 0 <= v <= 1000 for v in value) and value[0] <= value[1])
            return None if ok else f"must be [low, high] with 0 <= low <= high <= 1000, got {json.dumps(value)}"
        if key == "model_mode":
            return None if value == "video2video" else \
                f'must be "video2video" (this profile runs transfer), got {json.dumps(value)}; or remove it'
        if key == "resolution":
            tiers = self.profile.TIERS
            if not isinstance(value, str):
                return f'must be a JSON string like "{tiers[-1]}", got {json.dumps(value)}'
            return None if value in tiers else \
                f"{value!r} is not a video resolution of {self.profile.CHECKPOINT}; use one of {', '.join(tiers)}"
        if key == "aspect_ratio":
            return None if isinstance(value, str) and value in ASPECTS else \
                f"{json.dumps(value)} is not an aspect ratio upstream knows; use one of {', '.join(ASPECTS)}"
        return None

    def prompt_text(self) -> None:
        if "prompt" in self.spec and "prompt_path" in self.spec:
            self.error("prompt_path", "give only one of prompt and prompt_path")
        elif "prompt" not in self.spec and "prompt_path" not in self.spec:
            self.warn("prompt", 'missing: Cosmos 3 runs with an empty prompt; add "prompt": "..."')

    def paths(self) -> None:
        for key in PATH_KEYS:
            value = self.spec.get(key)
            if value is None:
                continue
            if _is_url(value):
                self.error(key, f"{value!r} is a URL; download it into the project and give its path (cosmos-tools "
                                "uploads project files only)")
                continue
            if key == "vision_path" and isinstance(value, str) and not value.lower().endswith(VISION_EXTENSIONS):
                self.error(key, f"{value!r}: Invalid vision extension (upstream reads {' '.join(VISION_EXTENSIONS)})"
                                "; convert the shot with scripts/convert_png_sequences.sh")
                continue
            local = self.file(key, value, "input video" if key == "vision_path" else "file",
                              "convert the shot with scripts/convert_png_sequences.sh" if key == "vision_path"
                              else "create it or remove the key")
            if local and key == "vision_path" and value.lower().endswith(".mp4"):
                self.videos.insert(0, (key, local))

    def controls(self) -> None:
        hints = [key for key in HINTS if self.spec.get(key) is not None]
        if not hints:
            self.error("controls", "no control hint (upstream: transfer inference requires at least one control hint "
                                   f"({', '.join(HINTS)})); add e.g. \"depth\": {{\"control_path\": "
                                   '"inputs/videos/<shot>/depth.mp4", "weight": 1.0}')
        for key in hints:
            hint = self.spec[key]
            if not isinstance(hint, dict):
                self.error(key, f'must be an object like {{"control_path": "...", "weight": 1.0}} or null, got '
                                f"{json_type(hint)}")
                continue
            for field, value in hint.items():
                self.hint_field(key, field, value)
            if hint.get("control_path") is None:
                if key in PRECOMPUTED:
                    self.error(f"{key}.control_path", f"missing: Cosmos 3 computes only edge and blur, so give the "
                                                      f"rendered {key} video (upstream fails after loading the model: "
                                                      f"Missing pre-computed control input for '{key}')")
                elif self.spec.get("vision_path") is None:
                    self.error(f"{key}.control_path", f"missing, and there is no vision_path to compute {key} from "
                                                      "(upstream: transfer inference requires 'vision_path' or a "
                                                      "pre-computed 'control_path'); add one of them")
        weights = [self.spec[key].get("weight", 1.0) for key in hints if isinstance(self.spec[key], dict)]
        if weights and all(weight == 0 for weight in weights):
            self.error(hints[0], "every hint's weight is 0 (upstream aborts the run: control_weights must have a "
                                      "positive sum); give at least one a weight > 0")
        if len(hints) > 1:
            unset = [key for key in ("guidance", "control_guidance") if key not in self.spec]
            if unset:
                self.warn(unset[0], f"not set: with {len(hints)} hints upstream falls back to guidance 6.0 and "
                                    "control_guidance 1.0 (its tuned values apply to one hint only); set both")

    def hint_field(self, key: str, field: str, value) -> None:
        where = f"{key}.{field}"
        if field not in HINT_FIELDS or key not in HINT_FIELDS[field]:
            hint = f'; did you mean "{RENAMED[field]}"?' if field in RENAMED else suggest(field, HINT_FIELDS)
            self.error(where, f"unknown field for {key} (Cosmos 3 refuses it before loading: extra_forbidden){hint}")
        elif field == "weight":
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                    or value < 0:
                self.error(where, f"must be a number >= 0 (weights are normalised to sum 1; upstream aborts the run on "
                                  f"a negative one), got {json.dumps(value)}")
            elif value == 0:
                self.warn(where, f"0 switches {key} off (it still costs an attention pass); remove the hint instead")
        elif field == "control_path":
            if _is_url(value):
                self.error(where, f"{value!r} is a URL (upstream stores every hint URL under one name, so two "
                                  "collide); give the project file")
            elif value is not None:
                local = self.file(where, value, "control video",
                                  "convert the shot's passes with scripts/convert_png_sequences.sh")
                if local:
                    self.videos.append((where, local))
        elif value not in FIELD_CHOICES[field]:
            self.error(where, f"must be one of {', '.join(FIELD_CHOICES[field])}, got {json.dumps(value)}")

    def chunk(self) -> tuple[int, int]:
        """The chunk setting (a bad value is an error already: the default then) and the frames upstream uses."""
        chunk = _whole(self.spec.get("num_video_frames_per_chunk"))
        chunk = chunk if chunk is not None and chunk >= 1 else CHUNK_FRAMES
        return chunk, chunk_frames(chunk)

    def chunking(self) -> None:
        chunk, rounded = self.chunk()
        if rounded != chunk:
            self.warn("num_video_frames_per_chunk", f"{chunk} is rounded up to {rounded} (upstream uses 4k+1 frames); "
                                                    f"write {rounded}")
        conditional = _whole(self.spec.get("num_conditional_frames"))
        if conditional is not None and conditional >= rounded:
            self.error("num_conditional_frames", f"{conditional} must be less than the {rounded}-frame chunk "
                                                 "(upstream aborts the run during generation)")
        first = _whole(self.spec.get("num_first_chunk_conditional_frames"))
        if first and self.spec.get("vision_path") is None:
            self.error("num_first_chunk_conditional_frames", "conditions the first chunk on the input video: add "
                                                             "vision_path, or set it to 0")

    def used_frames(self, frames: int) -> int:
        return min(frames, _whole(self.spec.get("max_frames")) or MAX_FRAMES)

    def first_video(self, key: str, info) -> None:
        used = self.used_frames(info.frames)
        if info.frames > used and "max_frames" not in self.spec:
            self.warn(key, f"{info.frames} frames: Cosmos 3 reads only the first {MAX_FRAMES}")
        if used <= 1:
            self.error(key, f"{used} frame(s): a transfer needs a video of at least 2 frames; convert a longer "
                            "sequence")
            return
        chunk = self.chunk()[1]
        if used < chunk:
            self.warn(key, f"{used} frames: padded to one {chunk}-frame chunk (same GPU time as {chunk} frames); "
                           "the result is trimmed back")
        self.geometry(key, info)

    def geometry(self, key: str, info) -> None:
        if not info.width or not info.height:
            return
        bucket = nearest_aspect(info.width, info.height)
        if abs(math.log(ASPECTS[bucket] * info.height / info.width)) > 0.05:
            self.warn(key, f"{info.width}x{info.height} is far from every Cosmos 3 aspect ratio: centre-cropped to "
                           f"{bucket.replace(',', ':')} (the edges are lost); render the passes at a bucket's ratio")
        given = self.spec.get("aspect_ratio")
        if isinstance(given, str) and given in ASPECTS and given != bucket:
            if key == "vision_path":
                self.warn("aspect_ratio", f"{given} but {key} is {info.width}x{info.height} ({bucket}): upstream "
                                          f"centre-crops every input to {given}; write \"aspect_ratio\": "
                                          f"\"{bucket}\"")
            else:
                self.warn("aspect_ratio", f"{given} is ignored for the frames (without vision_path upstream takes "
                                          f"{bucket} from {key}) but written into the prompt; write \"{bucket}\"")
        fps = _whole(self.spec.get("fps"))
        if key != "vision_path" and fps and info.fps and abs(info.fps - fps) > 0.01:
            self.warn("fps", f"{fps} but {key} is {info.fps:g} fps: the output plays at {fps} fps (without "
                             f"vision_path upstream takes fps from the spec); set \"fps\": {round(info.fps)}")

    def other_video(self, key: str, info, ref_key: str, ref) -> None:
        used = self.used_frames(ref.frames)
        if info.frames < used:
            self.error(key, f"{info.frames} frames but the run uses {used} of {ref_key}; re-convert the shot with "
                            "equal frame counts")


@dataclass(frozen=True)
class Cosmos3Profile:
    """One Cosmos 3 checkpoint as a model profile (models/__init__.py lists what a profile provides)."""

    NAME: str
    CHECKPOINT: str  # upstream's registry name (--checkpoint-path)
    TIERS: tuple[str, ...]  # the video resolutions the checkpoint generates
    MIN_GPUS: int = 1
    VIDEO_KEY: str = "vision_path"
    PROMPT_TEMPLATE: str = "prompt_cosmos3.json.j2"
    HAS_UPSCALER: bool = False
    COMMIT_KEY: str = "COSMOS3_COMMIT"
    IMAGE_PATHS: tuple[str, ...] = ("/workspace/.venv",)  # the image's venv, under the checkout's mount

    @property
    def USER_TEMPLATE(self) -> str:  # noqa: N802 (a profile attribute, like the modules' constants)
        return f"prompt_template.{self.NAME}.json.j2"

    def checker(self, spec: dict, cfg) -> Cosmos3Checker:
        return Cosmos3Checker(spec, cfg, self)

    def run_spec(self, prompt: dict, spec_path: str) -> dict:
        """The sample upstream reads: comment keys dropped, a caption object compacted into the ``prompt`` string,
        ``name`` = output, project paths made relative to the spec's folder (idempotent: a rerun renders the same)."""
        folder = posixpath.dirname(spec_path)

        def moved(value):  # a spec that already ran (rerun) has them moved: kept as they are
            return posixpath.relpath(value, folder) if isinstance(value, str) and is_clean_relative(value) \
                and not _is_url(value) else value

        spec = {"name": OUTPUT_NAME, **{key: value for key, value in prompt.items() if not key.startswith("_")}}
        spec["name"] = OUTPUT_NAME
        if isinstance(spec.get("prompt"), dict):
            spec["prompt"] = json.dumps(spec["prompt"], ensure_ascii=False, separators=(",", ":"))
        for key in PATH_KEYS:
            if key in spec:
                spec[key] = moved(spec[key])
        for key in HINTS:
            if isinstance(spec.get(key), dict):
                spec[key] = {field: moved(v) if field == "control_path" else v for field, v in spec[key].items()}
        return spec

    def project_spec(self, spec: dict, spec_path: str) -> dict:
        """``spec`` as a run used it, with project-relative paths again (the files a rerun uploads)."""
        folder = posixpath.dirname(spec_path)
        projected = {key: project_path(value, folder) if key in PATH_KEYS else value for key, value in spec.items()}
        for key in HINTS:
            if isinstance(projected.get(key), dict):
                projected[key] = {field: project_path(v, folder) if field == "control_path" else v
                                  for field, v in projected[key].items()}
        return projected

    def command(self, cfg, prompt: dict, paths, num_gpu: int) -> list[str]:
        """remote/cosmos3_collect.sh around ``torchrun --nproc-per-node N -m cosmos_framework.scripts.inference``."""
        from ..remote import script
        from ..render import render_json

        if num_gpu < self.MIN_GPUS:
            raise UserError(f"{self.NAME} needs at least {self.MIN_GPUS} GPUs (its weights do not fit fewer 80 GB "
                            f"cards; upstream's tested transfer layout), got {num_gpu} ({cfg.sources['NUM_GPU']}); "
                            f"set NUM_GPU or pass --num-gpu {self.MIN_GPUS}")
        if num_gpu > 1 and num_gpu % 2 and num_gpu > 32:
            raise UserError(f"{num_gpu} GPUs: an odd count runs one context-parallel group of {num_gpu}, and upstream "
                            "allows at most 32; use an even number of GPUs")
        inference = render_json("cosmos3_command.json.j2", num_gpu=num_gpu, spec_path=paths.spec,
                                output_dir=paths.folder, checkpoint=cfg["COSMOS3_CHECKPOINT"] or self.CHECKPOINT,
                                disable_guardrails=cfg["DISABLE_GUARDRAILS"] == "yes",
                                offload_guardrails="guardrail_models" in cfg["OFFLOAD"].split(),
                                diffusion_cache=cfg["COSMOS3_DIFFUSION_CACHE"] == "yes")
        return ["bash", "-c", script("cosmos3_collect.sh"), "cosmos3-collect", paths.folder, OUTPUT_NAME, *inference]

    def env(self, cfg, num_gpu: int) -> dict[str, str]:
        """Checkpoints, the VAE and the hf CLI (run with ``uv run --isolated``) download on first use into the mounted
        cache; the rest are upstream's recommended settings (reference section 1.5)."""
        return {"HF_HOME": "/hf-cache", "UV_CACHE_DIR": "/hf-cache/uv", "HOME": "/tmp", "PYTHONNOUSERSITE": "1",
                "PYTORCH_CUDA_ALLOC_CONF": "expandable_segments:True", "NCCL_NET_PLUGIN": "none",
                "LD_LIBRARY_PATH": ""}

    def prompt_values(self, shot: dict) -> dict:
        """Template variables from the shot (width, height, frames, fps): the checkpoint's tier nearest the shot's
        short side, the nearest aspect bucket, and the shot's frames and fps."""
        short = min(shot["width"], shot["height"])
        tier = min(self.TIERS, key=lambda t: (abs(min(SIZES[t]["16,9"]) - short), -int(t)))
        return {"model": self.NAME, "resolution": tier, "aspect_ratio": nearest_aspect(shot["width"], shot["height"]),
                "frames": shot["frames"], "fps": shot["fps"]}


PROFILES = {
    "cosmos3-nano": Cosmos3Profile("cosmos3-nano", "Cosmos3-Nano", ("256", "480", "720")),
    "cosmos3-super": Cosmos3Profile("cosmos3-super", "Cosmos3-Super", ("256", "480", "720"), MIN_GPUS=4),
    "cosmos3-edge": Cosmos3Profile("cosmos3-edge", "Cosmos3-Edge", ("256", "480")),
}
