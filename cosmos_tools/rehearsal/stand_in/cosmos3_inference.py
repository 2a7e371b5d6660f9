#!/usr/bin/env python3
"""STAND-IN for NVIDIA/cosmos-framework's omni inference CLI (cosmos_framework/scripts/inference.py, run with
``python -m`` or ``torchrun ... -m``) on a cosmos-tools rehearsal host: Cosmos 3 transfer, no model, no GPU.

It takes upstream's setup flags (tyro: hyphen or underscore spellings, --flag/--no-flag pairs, unknown flags refused
with exit 2), checks --checkpoint-path (a registry name or an existing folder) and the parallelism sizes against
WORLD_SIZE with upstream's messages, loads every -i file as upstream does (.json one sample, .jsonl one per line,
``name`` from the file stem, paths relative to the spec file's folder, CLI sample values over the file's), validates
each sample like upstream's pydantic model (extra keys forbidden, types, ranges, enums, existing files, vision
extension, hints required by transfer-only fields, duplicate names; "N validation error(s) for
OmniSampleOverrides", exit 1), then "loads the model" once and runs the samples one after another with the checks
upstream makes only after loading (hints without an input, precomputed hints without control_path, weights,
conditional frames, a transfer batch > 1). Per sample it writes upstream's names into OUT/<name>/:
sample_args.json first, then vision.mp4 (a cheap ffmpeg filter of the input at the bucket size: scaled and
centre-cropped), control_<hint>.mp4 and sample_outputs.json; OUT/console.log holds the log. Reasoner samples
(``"model_mode": "reasoner"``) go to the sibling module reasoner_stand_in.run(records, output_dir) when it is
installed next to this file. Facts: ../shared/reference/cosmos3.md. Standard library and ffmpeg/ffprobe only.
"""

import argparse
import importlib.util
import json
import math
import os
import subprocess
import sys
import time
from datetime import datetime

MODULE = "cosmos_framework/scripts/inference.py"
REGISTRY = {"Cosmos3-Nano": "720", "Cosmos3-Super": "720", "Cosmos3-Edge": "480"}  # name -> default resolution
HINTS = ("edge", "blur", "depth", "seg", "wsm")
PRECOMPUTED = ("depth", "seg", "wsm")
PRESETS = ("very_low", "low", "medium", "high", "very_high")
RESOLUTIONS = ("256", "480", "720", "768")
ASPECTS = {"16,9": 16 / 9, "4,3": 4 / 3, "1,1": 1.0, "3,4": 3 / 4, "9,16": 9 / 16}
SIZES = {
    "256": {"16,9": (320, 192), "4,3": (320, 256), "1,1": (256, 256), "3,4": (256, 320), "9,16": (192, 320)},
    "480": {"16,9": (832, 480), "4,3": (736, 544), "1,1": (640, 640), "3,4": (544, 736), "9,16": (480, 832)},
    "720": {"16,9": (1280, 720), "4,3": (1104, 832), "1,1": (960, 960), "3,4": (832, 1104), "9,16": (720, 1280)},
    "768": {"16,9": (1360, 768), "4,3": (1184, 880), "1,1": (1024, 1024), "3,4": (880, 1184), "9,16": (768, 1360)},
}
VISION_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".mp4")
# Sample fields: kind for the checks below (a subset of upstream's OmniSampleOverrides, the ones transfer uses).
FIELDS = {"name": "str", "model_mode": "mode", "prompt": "str", "prompt_path": "file", "negative_prompt": "str",
          "negative_prompt_file": "str", "negative_metadata_mode": "str", "negative_prompt_keep_metadata": "bool",
          "defaults_file": "file", "resolution": "resolution", "aspect_ratio": "aspect", "fps": "pos",
          "num_frames": "pos", "num_steps": "pos", "guidance": "guidance", "guidance_interval": "interval",
          "shift": "float", "sigma_max": "float", "control_guidance": "control_guidance",
          "control_guidance_interval": "interval", "seed": "int", "vision_path": "vision",
          "num_video_frames_per_chunk": "pos", "num_conditional_frames": "nonneg", "max_frames": "pos",
          "num_first_chunk_conditional_frames": "nonneg", "share_vision_temporal_positions": "bool",
          "emphasize_control_in_prompt": "bool", "show_control_condition": "bool", "show_input": "bool",
          "num_outputs": "pos", "max_new_tokens": "pos", "do_sample": "bool", "temperature": "float",
          "top_k": "pos", "top_p": "float", "repetition_penalty": "float", "presence_penalty": "float",
          "video_fps": "float", **{hint: "hint" for hint in HINTS}}
TRANSFER_ONLY = ("control_guidance_interval", "negative_prompt_file", "num_video_frames_per_chunk",
                 "num_conditional_frames", "max_frames", "show_control_condition", "show_input",
                 "num_first_chunk_conditional_frames", "share_vision_temporal_positions",
                 "emphasize_control_in_prompt")
HINT_FIELDS = {"control_path": "file", "weight": "float", "preset_edge_threshold": "edge_preset",
               "preset_blur_strength": "blur_preset"}
LOOKS = {"edge": "edgedetect=low=0.1:high=0.3", "blur": "boxblur=4:1"}
LOG_FILE = None


def log(level, message, where=("cosmos_framework/inference/inference.py", 0, "generate")):
    if os.environ.get("RANK", "0") != "0":
        return
    path, line, function = where
    text = f"[{datetime.now():%m-%d %H:%M:%S}|{level}|{path}:{line}:{function}] {message}"
    print(text, flush=True)
    if LOG_FILE:
        with open(LOG_FILE, "a", encoding="utf-8") as handle:
            handle.write(text + "\n")


def parser():
    p = argparse.ArgumentParser(prog="inference.py", allow_abbrev=False,
                                description="STAND-IN cosmos-framework omni inference CLI (rehearsal host).")

    def flag(name, **kwargs):
        under = name.replace("-", "_")
        p.add_argument(f"--{name}", f"--{under}", dest=under, **kwargs)

    p.add_argument("-i", "--input-files", "--input_files", dest="input_files", nargs="+", required=True)
    p.add_argument("-o", "--output-dir", "--output_dir", dest="output_dir")
    flag("checkpoint-path", required=True)
    flag("seed", type=int)
    flag("parallelism-preset", choices=("latency", "throughput"), default="latency")
    for name in ("dp-shard-size", "dp-replicate-size", "cp-size"):
        flag(name, type=int, default=0)
    flag("cfgp-size", type=int, choices=(0, 1, 2), default=0)
    flag("max-num-seqs", type=int, default=1)
    flag("num-iterations", type=int, default=1)
    flag("warmup", type=int, default=0)
    flag("diffusion-cache-thresh", type=float)
    flag("sampler", choices=("unipc", "edm"), default="unipc")
    flag("quantization-method", choices=("mxfp8", "nvfp4"))
    for name, default in (("guardrails", True), ("offload-guardrail-models", False), ("use-torch-compile", True),
                          ("diffusion-cache", True), ("keep-going", False), ("skip-invalid-samples", False),
                          ("benchmark", False), ("debug", False), ("profile", False)):
        under = name.replace("-", "_")
        p.add_argument(f"--{name}", f"--{under}", dest=under, action="store_true", default=default)
        p.add_argument(f"--no-{name}", f"--no_{under}", dest=under, action="store_false")
    return p


def whole(value):
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    return None


def number(value):
    return None if isinstance(value, bool) or not isinstance(value, (int, float)) else float(value)


def field_error(kind, value, folder):
    """pydantic's message (with its error type) for a value of the field kind, or None."""
    if value is None:  # every sample field is optional
        return None
    if kind == "str":
        return None if isinstance(value, str) else "Input should be a valid string [type=string_type]"
    if kind == "bool":
        return None if isinstance(value, bool) else "Input should be a valid boolean [type=bool_type]"
    if kind in ("file", "vision"):
        if not isinstance(value, str):
            return "Input should be a valid string [type=string_type]"
        if kind == "vision" and os.path.splitext(value)[1].lower() not in VISION_EXTENSIONS:
            return f"Value error, Invalid vision extension: {os.path.splitext(value)[1]} [type=value_error]"
        if value.startswith(("http://", "https://", "s3://")) or os.path.isfile(os.path.join(folder, value)):
            return None
        return f"Value error, Path does not point to a file: {os.path.join(folder, value)} [type=value_error]"
    if kind in ("int", "pos", "nonneg"):
        n = whole(value)
        if n is None:
            return "Input should be a valid integer [type=int_type]"
        if kind == "pos" and n <= 0:
            return "Input should be greater than 0 [type=greater_than]"
        if kind == "nonneg" and n < 0:
            return "Input should be greater than or equal to 0 [type=greater_than_equal]"
        return None
    if kind in ("float", "guidance", "control_guidance"):
        n = number(value)
        if n is None:
            return "Input should be a valid number [type=float_type]"
        high = {"guidance": 7, "control_guidance": 10}.get(kind)
        if high is not None and n < 0:
            return "Input should be greater than or equal to 0 [type=greater_than_equal]"
        if high is not None and n > high:
            return f"Input should be less than or equal to {high} [type=less_than_equal]"
        return None
    if kind == "interval":
        ok = isinstance(value, list) and len(value) == 2 and all(number(v) is not None for v in value)
        return None if ok else "Input should be a valid tuple of 2 numbers [type=tuple_type]"
    if kind == "resolution":
        return None if isinstance(value, str) and value in RESOLUTIONS else \
            f"Input should be {', '.join(repr(r) for r in RESOLUTIONS)} [type=literal_error]"
    if kind == "aspect":
        return None if isinstance(value, str) and value in ASPECTS else \
            f"Input should be {', '.join(repr(a) for a in ASPECTS)} [type=literal_error]"
    if kind == "mode":
        modes = ("text2image", "text2video", "image2video", "video2video", "reasoner")
        return None if isinstance(value, str) and value in modes else \
            f"Input should be {', '.join(repr(m) for m in modes)} [type=enum]"
    if kind in ("edge_preset", "blur_preset"):
        choices = PRESETS if kind == "edge_preset" else ("none", *PRESETS)
        return None if isinstance(value, str) and value in choices else \
            f"Input should be {', '.join(repr(c) for c in choices)} [type=enum]"
    return None


def validate(record, folder):
    """pydantic-style (location, message) pairs for one sample."""
    if not isinstance(record, dict):
        return [("", "Input should be a valid dictionary [type=model_type]")]
    errors = []
    for key, value in record.items():
        kind = FIELDS.get(key)
        if kind is None:
            errors.append((key, f"Extra inputs are not permitted [type=extra_forbidden, input_value={value!r}]"))
        elif kind == "hint":
            if value is None:
                continue
            if not isinstance(value, dict):
                errors.append((key, "Input should be a valid dictionary or instance of TransferOverrides "
                                    "[type=model_type]"))
                continue
            for field, field_value in value.items():
                allowed = {"edge": "preset_edge_threshold", "blur": "preset_blur_strength"}.get(key)
                if field not in ("control_path", "weight") and field != allowed:
                    errors.append((f"{key}.{field}", "Extra inputs are not permitted [type=extra_forbidden, "
                                                     f"input_value={field_value!r}]"))
                elif message := field_error(HINT_FIELDS[field], field_value, folder):
                    errors.append((f"{key}.{field}", message))
        elif message := field_error(kind, value, folder):
            errors.append((key, message))
    hints = [k for k in HINTS if record.get(k) is not None]
    configured = [k for k in TRANSFER_ONLY if record.get(k) is not None]
    guidance = number(record.get("control_guidance"))
    if not errors and record.get("model_mode") != "reasoner" and not hints and \
            (configured or (guidance is not None and guidance != 1.0)):
        errors.append(("", "Value error, transfer inference requires at least one control hint "
                           f"({', '.join(HINTS)}) [type=value_error]"))
    return errors


def load(files, cli_seed):
    """Every sample of every -i file, as (record, folder of its file)."""
    if not files:
        raise ValueError("No inference parameter files")
    samples = []
    for path in sorted(files):
        ext = os.path.splitext(path)[1]
        if ext not in (".json", ".jsonl"):
            raise ValueError(f"Unsupported file extension: {path} (STAND-IN: .json and .jsonl only)")
        folder = os.path.dirname(os.path.abspath(path))
        stem = os.path.splitext(os.path.basename(path))[0]
        with open(path, encoding="utf-8") as handle:
            lines = [handle.read()] if ext == ".json" else handle.read().splitlines()
        for number_, text in enumerate(lines, start=1):
            try:
                record = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ValueError(f"Invalid JSON in '{path}': {exc}") from None
            errors = validate(record, folder)
            if errors:
                print("Traceback (most recent call last):\n  (STAND-IN: upstream's traceback omitted)",
                      file=sys.stderr)
                print(f"pydantic_core._pydantic_core.ValidationError: {len(errors)} validation "
                      f"error{'s' if len(errors) > 1 else ''} for OmniSampleOverrides", file=sys.stderr)
                for where, message in errors:
                    print(where, file=sys.stderr)
                    print(f"  {message}", file=sys.stderr)
                raise SystemExit(1)
            record.setdefault("name", stem if ext == ".json" else f"{stem}_{number_}")
            if cli_seed is not None:
                record["seed"] = cli_seed  # CLI sample values win over the file's
            samples.append((record, folder))
    names = [record["name"] for record, _ in samples]
    for name in names:
        if names.count(name) > 1:
            raise ValueError(f"Duplicate name: '{name}'")
    return samples


def check_setup(args):
    """The checkpoint and the parallelism sizes, before anything loads (upstream's setup validators)."""
    path = args.checkpoint_path
    if path not in REGISTRY and not path.startswith("s3://") and not os.path.isdir(path):
        raise ValueError(f"Checkpoint directory does not exist: {path}")
    if args.num_iterations > 1 and not args.benchmark:
        raise ValueError("num_iterations > 1 requires benchmark=True")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if args.parallelism_preset == "latency":
        cfgp = args.cfgp_size or min(2, world)
        cp = args.cp_size or max(world // cfgp, 1)
    else:
        cfgp, cp = args.cfgp_size or 1, args.cp_size or 1
    shard, replicate = args.dp_shard_size or world, args.dp_replicate_size or 1
    if shard * replicate > world:
        raise ValueError(f"dp_shard_size({shard}) * dp_replicate_size({replicate}) must be <= WORLD_SIZE({world})")
    if world % (shard * replicate):
        raise ValueError(f"dp_shard_size({shard}) * dp_replicate_size({replicate}) must divide WORLD_SIZE({world})")
    if cp * cfgp > world:
        raise ValueError(f"cp_size({cp}) * cfgp_size({cfgp}) must be <= WORLD_SIZE({world})")
    if world % (cp * cfgp):
        raise ValueError(f"cp_size({cp}) * cfgp_size({cfgp}) must divide WORLD_SIZE({world})")
    return world, cp, cfgp


def probe(path):
    done = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-count_packets", "-show_entries",
                           "stream=width,height,nb_read_packets,r_frame_rate", "-of", "json", path],
                          capture_output=True, text=True)
    streams = json.loads(done.stdout or "{}").get("streams") or []
    if done.returncode != 0 or not streams:
        raise OSError(f"Could not read frames from {path}: {done.stderr.strip() or 'no video stream'}")
    s = streams[0]
    num, _, den = s.get("r_frame_rate", "24/1").partition("/")
    return int(s["width"]), int(s["height"]), int(s.get("nb_read_packets", 0)), round(int(num) / int(den or 1))


def ffmpeg(source, target, look, size, frames, fps):
    width, height = size
    vf = f"scale={width}:{height}:force_original_aspect_ratio=increase,crop={width}:{height},{look},format=yuv420p"
    done = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", source, "-frames:v", str(frames),
                           "-vf", vf, "-r", str(fps), "-c:v", "libx264", "-preset", "ultrafast", "-crf", "30", "-an",
                           target], capture_output=True, text=True)
    if done.returncode != 0:
        raise OSError(f"ffmpeg could not write {target}: {done.stderr.strip()}")


def pause(seconds):
    """Sleep in small steps (a SIGTERM stops the process at once: Python's default action)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(min(0.05, max(0.0, end - time.monotonic())))


def path_of(record, key, folder):
    value = record.get(key)
    return None if value is None else os.path.join(folder, value)


def build(record, folder, default_resolution):
    """Upstream's build step after the model loads: every hint needs an input."""
    for hint in HINTS:
        config = record.get(hint)
        if config is not None and record.get("vision_path") is None and config.get("control_path") is None:
            raise ValueError(f"transfer inference requires 'vision_path' or a pre-computed 'control_path' "
                             f"(hint: {hint})")
    return {**record, "resolution": record.get("resolution") or default_resolution}


def generate(record, folder, out, seconds):
    """One transfer sample: upstream's generation-time checks, then its files."""
    name = record["name"]
    target = os.path.join(out, name)
    os.makedirs(target, exist_ok=True)
    with open(os.path.join(target, "sample_args.json"), "w", encoding="utf-8") as handle:
        json.dump(record, handle, indent=2)  # upstream writes it before generating
    hints = [k for k in HINTS if record.get(k) is not None]
    for hint in hints:
        if hint in PRECOMPUTED and record[hint].get("control_path") is None:
            raise ValueError(f"Missing pre-computed control input for '{hint}'. Provide a control_path in the "
                             "transfer config.")
    weights = [number(record[h].get("weight")) if record[h].get("weight") is not None else 1.0 for h in hints]
    assert all(w >= 0 for w in weights), f"control_weights must all be non-negative, got {weights}"
    assert sum(weights) > 0, f"control_weights must have a positive sum, got {weights}"
    vision = path_of(record, "vision_path", folder)
    if (whole(record.get("num_first_chunk_conditional_frames")) or 0) > 0 and vision is None:
        raise ValueError("num_first_chunk_conditional_frames > 0 requires 'vision_path'")
    first = path_of(record[hints[0]], "control_path", folder) if vision is None else vision
    width, height, frames, fps = probe(first)
    frames = min(frames, whole(record.get("max_frames")) or 5000)
    chunk = math.ceil(((whole(record.get("num_video_frames_per_chunk")) or 93) - 1) / 4) * 4 + 1
    conditional = whole(record.get("num_conditional_frames"))
    conditional = 1 if conditional is None else conditional
    assert conditional < chunk, f"num_conditional_frames ({conditional}) must be < chunk size ({chunk})"
    if vision is None:
        aspect = min(ASPECTS, key=lambda a: abs(math.log(ASPECTS[a] * height / width)))
        fps = whole(record.get("fps")) or 24
    else:
        aspect = record.get("aspect_ratio") or "16,9"
    size = SIZES[record["resolution"]][aspect]
    chunks = 1 if frames <= chunk else 1 + math.ceil((frames - chunk) / (chunk - conditional))
    log("INFO", f"Generating transfer sample '{name}': {frames} frames at {size[0]}x{size[1]} ({aspect}), {chunks} "
                f"chunk(s) of {chunk}, hints {', '.join(hints)} (STAND-IN: no model, no GPU)")
    for i in range(chunks):
        pause(seconds / max(chunks, 1))
        log("INFO", f"Chunk {i + 1}/{chunks} done")
    files = []
    for hint in hints:
        control = path_of(record[hint], "control_path", folder)
        ffmpeg(control or vision, os.path.join(target, f"control_{hint}.mp4"), "null" if control else LOOKS[hint],
               size, frames, fps)
        files.append(f"control_{hint}.mp4")
    ffmpeg(vision or first, os.path.join(target, "vision.mp4"), "hue=s=0.3", size, frames, fps)
    files.insert(0, "vision.mp4")
    with open(os.path.join(target, "sample_outputs.json"), "w", encoding="utf-8") as handle:
        json.dump({"status": "success", "files": [os.path.join(target, f) for f in files]}, handle, indent=2)
    log("SUCCESS", f"Saved video to '{os.path.join(target, 'vision.mp4')}'")


def reasoner(samples, out, load_seconds):
    """Reasoner samples: the sibling module reasoner_stand_in (installed by the critic's rehearsal set-up)."""
    sibling = os.path.join(os.path.dirname(os.path.abspath(__file__)), "reasoner_stand_in.py")
    if not os.path.isfile(sibling):
        raise ValueError(f"STAND-IN: model_mode 'reasoner' needs {sibling} (the rehearsal host's reasoner stand-in), "
                         "which is not installed")
    spec = importlib.util.spec_from_file_location("reasoner_stand_in", sibling)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    records = []
    for record, folder in samples:
        record = dict(record)
        for key in ("vision_path", "prompt_path"):
            if record.get(key) is not None:
                record[key] = os.path.join(folder, record[key])
        if record.get("prompt") is None and record.get("prompt_path"):
            with open(record["prompt_path"], encoding="utf-8") as handle:
                record["prompt"] = handle.read()
        records.append(record)
    log("INFO", "Reasoner-only inputs detected; generation vision tokenizer will not be loaded")
    pause(load_seconds)
    module.run(records, out)


def main(argv):
    global LOG_FILE
    args = parser().parse_args(argv)
    if args.output_dir is None:
        raise ValueError("'output_dir' is required")
    world, cp, cfgp = check_setup(args)
    out = args.output_dir
    os.makedirs(out, exist_ok=True)
    LOG_FILE = os.path.join(out, "console.log")
    with open(os.path.join(out, "debug.log"), "a", encoding="utf-8") as handle:
        handle.write(f"STAND-IN debug.log: argv {argv!r}\n")
    samples = load(args.input_files, args.seed)
    log("INFO", f"Loaded {len(samples)} samples")
    seconds = float(os.environ.get("COSMOS_STANDIN_SECONDS", "3"))
    load_seconds = float(os.environ.get("COSMOS_STANDIN_LOAD_SECONDS") or seconds * 0.2)  # once per process
    sample_seconds = float(os.environ.get("COSMOS_STANDIN_SAMPLE_SECONDS") or seconds * 0.7)  # per sample
    modes = {record.get("model_mode") == "reasoner" for record, _ in samples}
    if modes == {True}:
        reasoner(samples, out, load_seconds)
        return 0
    if len(modes) > 1:
        raise ValueError("Cannot mix reasoner and generation samples in one batch")
    log("INFO", f"STAND-IN Cosmos 3 (rehearsal host, no model, no GPU): checkpoint {args.checkpoint_path}, world "
                f"size {world}, cp {cp}, cfgp {cfgp}, preset {args.parallelism_preset}, guardrails "
                f"{'on' if args.guardrails else 'off'} (not applied to transfer), diffusion cache "
                f"{'on' if args.diffusion_cache else 'off'}")
    pause(load_seconds)
    default = REGISTRY.get(args.checkpoint_path, "720")
    built = [(build(record, folder, default), folder) for record, folder in samples]
    if args.max_num_seqs > 1 and len(built) > 1:
        raise AssertionError("Batching is not supported for transfer inference")
    for record, folder in built:
        generate(record, folder, out, sample_seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
