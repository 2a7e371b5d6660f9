#!/usr/bin/env python3
"""STAND-IN for cosmos-transfer2.5's examples/inference.py (v1.2+ CLI) on a cosmos-tools rehearsal host.

No model, no GPU. It takes the real setup flags (tyro: hyphen or underscore spellings, unknown flags refused,
usage exit 2), loads every -i file as upstream does (.json one sample, .jsonl one per line, paths relative to
the spec file's folder), validates each record like upstream's pydantic model (extra keys forbidden, strict
types: guidance an int 0-7, sigma_max and resolution strings, control_weight 0-1, existing files) with the same
messages ("Error validating parameters from '<file>' at line <i>", exit 1), refuses no controls, vis with
image_context_path and duplicate names, then loads the "model" once (COSMOS_STANDIN_LOAD_SECONDS, default 0.2 x
COSMOS_STANDIN_SECONDS; the model of the union of the samples' control keys) and runs every sample in turn
(COSMOS_STANDIN_SAMPLE_SECONDS each, default 0.7 x COSMOS_STANDIN_SECONDS): <name>.json first, then
<name>.mp4 (a cheap ffmpeg filter of the input at its own size and fps), <name>.txt and
<name>_control_<key>.mp4, in -o DIR with config.yaml. A prompt containing GUARDRAIL_BLOCK_ME is blocked
(skipped with --keep-going, the default) unless --disable-guardrails. Upstream facts:
docs/reference cosmos-transfer2.5.md. Standard library and the ffmpeg/ffprobe binaries only.
"""

import argparse
import json
import math
import os
import subprocess
import sys
import time
from datetime import datetime

SCRIPT = "examples/inference.py"
CONTROL_KEYS = ("edge", "vis", "depth", "seg")
PRESETS = ("very_low", "low", "medium", "high", "very_high")
RESOLUTIONS = ("256", "480", "512", "720", "1024", "1080", "480p", "720p", "720robocasa")
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".png", ".jpg", ".jpeg")
FIELDS = {"name": "str", "prompt": "str", "prompt_path": "file", "negative_prompt": "str", "video_path": "file",
          "seed": "int", "guidance": "guidance", "num_steps": "pos", "resolution": "resolution",
          "sigma_max": "optstr", "max_frames": "optpos", "num_video_frames_per_chunk": "pos",
          "num_conditional_frames": "cond", "context_frame_index": "optpos", "image_context_path": "optfile",
          "keep_input_resolution": "bool", "show_control_condition": "bool", "show_input": "bool",
          "guided_generation_mask": "optfile", "guided_generation_step_threshold": "int",
          "guided_generation_foreground_labels": "intlist", **{k: "control" for k in CONTROL_KEYS}}
CONTROL_FIELDS = {"control_path": "optfile", "control_weight": "weight", "mask_path": "optfile",
                  "mask_prompt": "optstr", "preset_edge_threshold": "preset", "preset_blur_strength": "preset",
                  "control_prompt": "optstr"}
CHUNK = 93
LOOKS = {"edge": "edgedetect=low=0.1:high=0.3", "vis": "boxblur=4:1", "depth": "format=gray,format=yuv420p",
         "seg": "negate"}


def log(level, message, where=("cosmos_transfer2/inference.py", 0, "<module>")):
    if os.environ.get("RANK", "0") != "0":
        return
    path, line, function = where
    print(f"[{datetime.now():%m-%d %H:%M:%S}|{level}|{path}:{line}:{function}] {message}", flush=True)


def parser():
    p = argparse.ArgumentParser(prog="inference.py", allow_abbrev=False,
                                description="STAND-IN Cosmos-Transfer2.5 examples/inference.py (rehearsal host).")
    p.add_argument("-i", "--input-files", "--input_files", nargs="+", required=True)
    p.add_argument("-o", "--output-dir", "--output_dir", required=True)
    p.add_argument("--model", choices=("edge", "depth", "seg", "vis", "edge/distilled"), default="edge")
    p.add_argument("--checkpoint-path", "--checkpoint_path")
    p.add_argument("--experiment")
    p.add_argument("--context-parallel-size", "--context_parallel_size", type=int)
    for flag, default in (("disable-guardrails", False), ("offload-guardrail-models", False), ("keep-going", True),
                          ("profile", False), ("benchmark", False)):
        under = flag.replace("-", "_")
        p.add_argument(f"--{flag}", f"--{under}", dest=under, action="store_true", default=default)
        p.add_argument(f"--no-{flag}", f"--no_{under}", dest=under, action="store_false")
    return p


def whole(value):
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    return None


def field_error(kind, value, folder):
    """pydantic's message for a value of the field kind, or None."""
    if kind in ("optstr", "optfile", "optpos") and value is None:
        return None
    if kind in ("str", "optstr"):
        return None if isinstance(value, str) else "Input should be a valid string"
    if kind in ("file", "optfile"):
        if not isinstance(value, str):
            return "Input should be a valid string"
        return None if os.path.isfile(os.path.join(folder, value)) else "Path does not point to a file"
    if kind in ("int", "pos", "optpos", "guidance", "cond"):
        number = whole(value)
        if number is None:
            return "Input should be a valid integer"
        if kind in ("pos", "optpos") and number <= 0:
            return "Input should be greater than 0"
        if kind == "guidance" and not 0 <= number <= 7:
            return f"Input should be {'greater than or equal to 0' if number < 0 else 'less than or equal to 7'}"
        if kind == "cond" and number not in (0, 1, 2):
            return "Input should be 0, 1 or 2"
        return None
    if kind == "resolution":
        return None if isinstance(value, str) else "Input should be a valid string"
    if kind == "bool":
        return None if isinstance(value, bool) else "Input should be a valid boolean"
    if kind == "intlist":
        ok = value is None or isinstance(value, list) and all(whole(v) is not None for v in value)
        return None if ok else "Input should be a valid list of integers"
    if kind == "weight":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return "Input should be a valid number"
        return None if 0 <= value <= 1 else \
            f"Input should be {'greater than or equal to 0' if value < 0 else 'less than or equal to 1'}"
    if kind == "preset":
        return None if value in PRESETS else f"Input should be {', '.join(repr(p) for p in PRESETS)}"
    return None


def validate(record, folder):
    """pydantic-style (location, message) pairs for one record."""
    if not isinstance(record, dict):
        return [("", "Input should be a valid dictionary")]
    errors = []
    for key, value in record.items():
        kind = FIELDS.get(key)
        if kind is None:
            errors.append((key, "Extra inputs are not permitted [type=extra_forbidden]"))
        elif kind == "control":
            if value is None:
                continue
            if not isinstance(value, dict):
                errors.append((key, "Input should be a valid dictionary"))
                continue
            for field, field_value in value.items():  # extra control fields are ignored, as upstream
                if field in CONTROL_FIELDS and (message := field_error(CONTROL_FIELDS[field], field_value, folder)):
                    errors.append((f"{key}.{field}", message))
        elif message := field_error(kind, value, folder):
            errors.append((key, message))
    for key in ("name", "video_path"):
        if key not in record:
            errors.append((key, "Field required [type=missing]"))
    if "prompt" not in record and "prompt_path" not in record:
        errors.append(("prompt", "Field required [type=missing]"))
    return errors


def load(files):
    """Every sample of every -i file, as (record, folder of its file)."""
    if not files:
        raise SystemExit("No inference parameter files")
    samples = []
    for path in files:
        ext = os.path.splitext(path)[1]
        if ext not in (".json", ".jsonl"):
            raise ValueError(f"Unsupported file extension: {ext}")
        folder = os.path.dirname(os.path.abspath(path))
        with open(path, encoding="utf-8") as handle:
            lines = [handle.read()] if ext == ".json" else handle.read().splitlines()
        for number, text in enumerate(lines, start=1):
            try:
                record = json.loads(text)
            except json.JSONDecodeError as exc:
                errors = [("", f"Invalid JSON: {exc}")]
            else:
                errors = validate(record, folder)
            if errors:
                print(f"Error validating parameters from '{path}' at line {number}", file=sys.stderr)
                print(f"{len(errors)} validation error(s) for InferenceArguments", file=sys.stderr)
                for where, message in errors:
                    print(where, file=sys.stderr)
                    print(f"  {message}", file=sys.stderr)
                raise SystemExit(1)
            controls = [k for k in CONTROL_KEYS if record.get(k) is not None]
            if not controls:
                raise ValueError("No controls provided, please provide at least one control key (edge, vis, depth, "
                                 "seg)")
            if record.get("vis") is not None and record.get("image_context_path") is not None:
                raise ValueError("vis and image_context_path are both transfer style; use only one")
            samples.append((record, folder))
    if not samples:
        raise SystemExit("No inference samples")
    names = [record["name"] for record, _ in samples]
    for name in names:
        if names.count(name) > 1:
            raise ValueError(f"Inference samplename {name} is not unique")
    return samples


def probe(path):
    done = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-count_packets", "-show_entries",
                           "stream=width,height,nb_read_packets,r_frame_rate", "-of", "json", path],
                          capture_output=True, text=True)
    streams = json.loads(done.stdout or "{}").get("streams") or []
    if done.returncode != 0 or not streams:
        raise OSError(f"Could not read frames from {path}: {done.stderr.strip() or 'no video stream'}")
    s = streams[0]
    num, _, den = s.get("r_frame_rate", "16/1").partition("/")
    return int(s["width"]), int(s["height"]), int(s.get("nb_read_packets", 0)), int(int(num) / int(den or 1))


def ffmpeg(source, target, look, frames, fps):
    done = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", source, "-frames:v", str(frames),
                           "-vf", f"{look},scale=trunc(iw/2)*2:trunc(ih/2)*2,format=yuv420p", "-r", str(fps),
                           "-c:v", "libx264", "-preset", "ultrafast", "-crf", "30", "-an", target],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise OSError(f"ffmpeg could not write {target}: {done.stderr.strip()}")


def pause(seconds):
    if seconds > 0:
        time.sleep(seconds)


def generate(record, folder, out, args, seconds):
    name = record["name"]
    with open(os.path.join(out, f"{name}.json"), "w", encoding="utf-8") as handle:
        json.dump(record, handle, indent=2)  # upstream writes the arguments before generating
    prompt = record.get("prompt")
    if prompt is None:
        with open(os.path.join(folder, record["prompt_path"]), encoding="utf-8") as handle:
            prompt = handle.read()
    if not args.disable_guardrails and "GUARDRAIL_BLOCK_ME" in prompt:
        log("CRITICAL", f"Guardrail blocked generation for sample {name}")
        if args.keep_going:
            return False
        raise RuntimeError(f"Guardrail blocked generation for sample {name}")
    video = os.path.join(folder, record["video_path"])
    width, height, frames, fps = probe(video)
    frames = min(frames, 5000, whole(record.get("max_frames")) or frames)
    controls = [k for k in CONTROL_KEYS if record.get(k) is not None]
    for key in controls:
        path = record[key].get("control_path")
        if path is not None and probe(os.path.join(folder, path))[2] < frames:
            raise RuntimeError("No input frames; cannot pad. Verify that video frame counts match.")
    chunk = whole(record.get("num_video_frames_per_chunk")) or CHUNK
    overlap = whole(record.get("num_conditional_frames"))
    overlap = 1 if overlap is None else overlap
    chunks = 1 if frames <= chunk else 1 + math.ceil((frames - chunk) / (chunk - overlap))
    log("INFO", f"Generating {name}: {frames} frames, {chunks} chunk(s) of {chunk} (STAND-IN: no model, no GPU)")
    for i in range(chunks):
        pause(seconds / chunks)
        log("INFO", f"Generating chunk {i + 1}/{chunks}")
    for key in controls:
        path = record[key].get("control_path")
        source = os.path.join(folder, path) if path is not None else video
        ffmpeg(source, os.path.join(out, f"{name}_control_{key}.mp4"), "null" if path else LOOKS[key], frames, fps)
    ffmpeg(video, os.path.join(out, f"{name}.mp4"), "hue=s=0.3", frames, fps)
    with open(os.path.join(out, f"{name}.txt"), "w", encoding="utf-8") as handle:
        handle.write(prompt)
    log("INFO", f"Saved video to {os.path.join(out, name + '.mp4')}")
    return True


def main(argv):
    args = parser().parse_args(argv)
    samples = load(args.input_files)
    out = args.output_dir
    os.makedirs(out, exist_ok=True)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    log("INFO", f"STAND-IN Cosmos-Transfer2.5 (rehearsal host): {len(samples)} sample(s), one model load, "
                f"context parallel size {args.context_parallel_size or world}, guardrails "
                f"{'off' if args.disable_guardrails else 'on'}")
    seconds = float(os.environ.get("COSMOS_STANDIN_SECONDS", "3"))
    load_seconds = float(os.environ.get("COSMOS_STANDIN_LOAD_SECONDS") or seconds * 0.2)  # once per process
    sample_seconds = float(os.environ.get("COSMOS_STANDIN_SAMPLE_SECONDS") or seconds * 0.7)  # per sample
    keys = [k for k in CONTROL_KEYS if any(record.get(k) is not None for record, _ in samples)]
    if len(keys) > 1:
        log("WARNING", f"controls {', '.join(keys)}: the multi-control model is loaded (output of a single-control "
                       "sample in this batch is not strictly the same as alone); controls a sample lacks get weight "
                       "0.0")
    log("INFO", f"Loading the {'+'.join(keys)} model once for {len(samples)} sample(s) (STAND-IN: sleeping "
                f"{load_seconds:g} s)")
    pause(load_seconds)
    with open(os.path.join(out, "config.yaml"), "w", encoding="utf-8") as handle:
        handle.write("# STAND-IN config.yaml (no model)\nmodel: " + args.model + "\n")
    for record, folder in samples:
        generate(record, folder, out, args, sample_seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
