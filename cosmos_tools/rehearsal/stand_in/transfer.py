#!/usr/bin/env python3
"""STAND-IN for cosmos-transfer1's cosmos_transfer1/diffusion/inference/transfer.py (rehearsal host).

No model, no GPU: it takes exactly the real flags (types, defaults, choices), merges the controlnet spec
with the command line by the real rule (a JSON arg is used unless the exact string ``--<key>`` is in
sys.argv), raises the real validation errors with the same messages (ValueError -> traceback, exit 1),
fails on missing files like upstream does (later, FileNotFoundError), logs in cosmos's loguru format,
sleeps like a model load once per process (COSMOS_STANDIN_LOAD_SECONDS, default 0.2 x COSMOS_STANDIN_SECONDS)
and like a generation per video (COSMOS_STANDIN_SAMPLE_SECONDS, default 0.7 x COSMOS_STANDIN_SECONDS), then
writes the output with ffmpeg: a cheap filter of the input at the bucket resolution (upscale: 3x the bucket),
the input's frame count trimmed to the shortest control, and the prompt beside it. Upstream facts: docs/reference
cosmos-transfer1.md. Where upstream would hang or race (--num_gpus != torchrun's WORLD_SIZE) the
stand-in refuses clearly instead. Standard library and the ffmpeg/ffprobe binaries only.
"""

import argparse
import contextlib
import copy
import errno
import json
import math
import os
import subprocess
import sys
import time
from datetime import datetime

TRANSFER = "cosmos_transfer1/diffusion/inference/transfer.py"
UTILS = "cosmos_transfer1/diffusion/inference/inference_utils.py"
PIPELINE = "cosmos_transfer1/diffusion/inference/world_generation_pipeline.py"
MISC = "cosmos_transfer1/utils/misc.py"
PREPROCESSORS = "cosmos_transfer1/diffusion/inference/preprocessors.py"

valid_hint_keys = {"vis", "seg", "edge", "depth", "keypoint", "upscale", "hdmap", "lidar"}
DEFAULT_CKPT = {
    **{k: f"nvidia/Cosmos-Transfer1-7B/{k}_control.pt" for k in ("vis", "seg", "edge", "depth", "keypoint")},
    "upscale": "nvidia/Cosmos-Transfer1-7B/4kupscaler_control.pt",
    "hdmap": "nvidia/Cosmos-Transfer1-7B-Sample-AV/hdmap_control.pt",
    "lidar": "nvidia/Cosmos-Transfer1-7B-Sample-AV/lidar_control.pt",
}
DEFAULT_DISTILLED_CKPT = {"edge": "nvidia/Cosmos-Transfer1-7B/edge_control_distilled.pt"}
BASE_CKPT = "nvidia/Cosmos-Transfer1-7B/base_model.pt"
BASE_AV_CKPT = "nvidia/Cosmos-Transfer1-7B-Sample-AV/base_model.pt"
TOKENIZER_CKPT = "nvidia/Cosmos-Tokenize1-CV8x8x8-720p/mean_std.pt"
# VIDEO_RES_SIZE_INFO (W, H) by aspect ratio
BUCKETS = {"1,1": (960, 960), "4,3": (960, 704), "3,4": (704, 960), "16,9": (1280, 704), "9,16": (704, 1280)}
PRESETS = ("very_low", "low", "medium", "high", "very_high")
CHUNK = 121
# A cheap look per control, so outputs differ visibly by modality (stand-in only).
LOOKS = {"vis": "boxblur=4:1", "edge": "edgedetect=low=0.1:high=0.3", "depth": "format=gray,format=yuv420p",
         "seg": "lutrgb=r='if(gt(val,128),255,0)':g='if(gt(val,128),255,0)':b='if(gt(val,128),255,0)'",
         "keypoint": "negate", "upscale": "null", "hdmap": "hue=h=90", "lidar": "hue=h=180"}


def log(level, message, where=(TRANSFER, 0, "<module>")):
    """One loguru line as cosmos formats it; only rank 0 prints (stdout)."""
    if os.environ.get("RANK", "0") != "0":
        return
    path, line, function = where
    print(f"[{datetime.now():%m-%d %H:%M:%S}|{level}|{path}:{line}:{function}] {message}", flush=True)


def parse_arguments():
    parser = argparse.ArgumentParser(description="Control to world generation demo script", conflict_handler="resolve")
    parser.add_argument("--prompt", type=str, default=(
        "The video captures a stunning, photorealistic scene with remarkable attention to detail, giving it a "
        "lifelike appearance that is almost indistinguishable from reality. It appears to be from a high-budget 4K "
        "movie, showcasing ultra-high-definition quality with impeccable resolution."),
        help="prompt which the sampled video condition on")
    parser.add_argument("--negative_prompt", type=str, default=(
        "The video captures a game playing, with bad crappy graphics and cartoonish frames. It represents a "
        "recording of old outdated games. The lighting looks very fake. The textures are very raw and basic. The "
        "geometries are very primitive. The images are very pixelated and of poor CG quality. There are many "
        "subtitles in the footage. Overall, the video is unrealistic at all."),
        help="negative prompt which the sampled video condition on")
    parser.add_argument("--input_video_path", type=str, default="", help="Optional input RGB video path")
    parser.add_argument("--num_input_frames", type=int, default=1, choices=[1],
                        help="Number of conditional frames for long video generation")
    parser.add_argument("--sigma_max", type=float, default=70.0, help="sigma_max for partial denoising")
    parser.add_argument("--blur_strength", type=str, default="medium", choices=list(PRESETS), help="blur strength.")
    parser.add_argument("--canny_threshold", type=str, default="medium", choices=list(PRESETS),
                        help="blur strength of canny threshold applied to input.")
    parser.add_argument("--controlnet_specs", type=str, required=True,
                        help="Path to JSON file specifying multicontrolnet configurations")
    parser.add_argument("--is_av_sample", action="store_true",
                        help="Whether the model is an driving post-training model")
    parser.add_argument("--checkpoint_dir", type=str, default="checkpoints",
                        help="Base directory containing model checkpoints")
    parser.add_argument("--tokenizer_dir", type=str, default="Cosmos-Tokenize1-CV8x8x8-720p",
                        help="Tokenizer weights directory relative to checkpoint_dir")
    parser.add_argument("--video_save_name", type=str, default="output",
                        help="Output filename for generating a single video")
    parser.add_argument("--video_save_folder", type=str, default="outputs/",
                        help="Output folder for generating a batch of videos")
    parser.add_argument("--batch_input_path", type=str,
                        help="Path to a JSONL file of input prompts for generating a batch of videos")
    parser.add_argument("--batch_size", type=int, default=1, help="Batch size")
    parser.add_argument("--num_steps", type=int, default=35, help="Number of diffusion sampling steps")
    parser.add_argument("--guidance", type=float, default=5, help="Classifier-free guidance scale value")
    parser.add_argument("--fps", type=int, default=24, help="FPS of the output video")
    parser.add_argument("--seed", type=int, default=1, help="Random seed")
    parser.add_argument("--num_gpus", type=int, default=1, help="Number of GPUs used to run inference in parallel.")
    parser.add_argument("--offload_diffusion_transformer", action="store_true", help="Offload DiT after inference")
    parser.add_argument("--offload_text_encoder_model", action="store_true",
                        help="Offload text encoder model after inference")
    parser.add_argument("--offload_guardrail_models", action="store_true",
                        help="Offload guardrail models after inference")
    parser.add_argument("--upsample_prompt", action="store_true", help="Upsample prompt using Pixtral upsampler model")
    parser.add_argument("--offload_prompt_upsampler", action="store_true",
                        help="Offload prompt upsampler model after inference")
    parser.add_argument("--use_distilled", action="store_true", help="Use distilled ControlNet model variant")
    parser.add_argument("--save_input_noise", action="store_true", help="Save the input noise for distillation")
    parser.add_argument("--benchmark", action="store_true", help="Benchmark the generation time")

    cmd_args = parser.parse_args()
    log("WARNING", "STAND-IN transfer.py on a cosmos-tools rehearsal host: no GPU, no model; the output is an "
        f"ffmpeg filter of the input with the real names and sizes (GPUs: {gpu_ids()})",
        (TRANSFER, 48, "parse_arguments"))
    control_inputs, json_args = load_controlnet_specs(cmd_args)
    log("INFO", f"control_inputs: {json.dumps(control_inputs, indent=4)}", (TRANSFER, 181, "parse_arguments"))
    log("INFO", f"args in json: {json.dumps(json_args, indent=4)}", (TRANSFER, 182, "parse_arguments"))
    for key in json_args:  # the real merge rule: the exact string --<key> on the command line wins
        if f"--{key}" not in sys.argv:
            setattr(cmd_args, key, json_args[key])
    log("INFO", f"final args: {json.dumps(vars(cmd_args), indent=4)}", (TRANSFER, 189, "parse_arguments"))
    return cmd_args, control_inputs


def load_controlnet_specs(cfg):
    with open(host_path(cfg.controlnet_specs, reading=True)) as f:
        controlnet_specs_in = json.load(f)
    controlnet_specs, args = {}, {}
    for hint_key, config in controlnet_specs_in.items():
        if hint_key in valid_hint_keys:
            controlnet_specs[hint_key] = config
        elif type(config) is dict:  # upstream's exact-type test (a dict subclass would pass)
            raise ValueError(f"Invalid hint_key: {hint_key}. Must be one of {valid_hint_keys}")
        else:
            args[hint_key] = config
    return controlnet_specs, args


def validate_controlnet_specs(cfg, controlnet_specs):
    checkpoint_dir, sigma_max, input_video_path = cfg.checkpoint_dir, cfg.sigma_max, cfg.input_video_path
    for hint_key, config in controlnet_specs.items():
        if hint_key not in valid_hint_keys:
            raise ValueError(f"Invalid hint_key: {hint_key}. Must be one of {valid_hint_keys}")
        if not input_video_path and sigma_max < 80:
            raise ValueError("Must have 'input_video' specified if sigma_max < 80")
        if not input_video_path and "input_control" not in config:
            raise ValueError(
                f"{hint_key} controlnet must have 'input_control' video specified if no 'input_video' specified.")
        if "ckpt_path" not in config:
            log("INFO", f"No checkpoint path specified for {hint_key}. Using default.",
                (UTILS, 1238, "validate_controlnet_specs"))
            ckpt_path = os.path.join(checkpoint_dir, DEFAULT_CKPT[hint_key])
            if cfg.use_distilled:
                if hint_key in DEFAULT_DISTILLED_CKPT:
                    ckpt_path = os.path.join(checkpoint_dir, DEFAULT_DISTILLED_CKPT[hint_key])
                else:
                    raise ValueError(  # noqa: B904 (chained, as upstream's traceback shows)
                        f"No default distilled checkpoint for {hint_key}. Users must specify ckpt_path in config.")
            config["ckpt_path"] = ckpt_path
            log("INFO", f"Using default checkpoint path: {config['ckpt_path']}",
                (UTILS, 1256, "validate_controlnet_specs"))
        if "control_weight" not in config:
            log("WARNING", f"No control weight specified for {hint_key}. Setting to 0.5.",
                (UTILS, 1261, "validate_controlnet_specs"))
            config["control_weight"] = "0.5"
        else:
            weight = config["control_weight"]
            if not isinstance(weight, str) or not weight.endswith(".pt"):
                try:
                    if float(weight) < 0:
                        raise ValueError(f"Control weight for {hint_key} must be non-negative.")
                except ValueError:
                    raise ValueError(  # noqa: B904 (chained, as upstream's traceback shows)
                        f"Control weight for {hint_key} must be a valid non-negative float or a path to a .pt file.")
    return controlnet_specs


# ---------------------------------------------------------------------------------------------- helpers


def host_path(path, reading=False):
    """A path as the container sees it, on this host (the stand-in docker passes its -v mounts).

    Reading an absolute path outside every mount fails as in a real container, where it does not exist.
    """
    path = str(path)
    mounts = json.loads(os.environ.get("COSMOS_STANDIN_MOUNTS", "[]"))
    for dest, source in mounts:
        if path == dest or path.startswith(dest.rstrip("/") + "/"):
            return source + path[len(dest):]
    if reading and mounts and os.path.isabs(path):
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path)
    return path


def require_file(path):
    """Open a file the model would read: FileNotFoundError (upstream's failure) if it is missing."""
    with open(host_path(path, reading=True), "rb"):
        pass


def probe(path):
    require_file(path)
    done = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-count_packets", "-show_entries",
                           "stream=width,height,nb_read_packets", "-of", "json", host_path(path)],
                          capture_output=True, text=True)
    streams = json.loads(done.stdout or "{}").get("streams") or []
    if done.returncode != 0 or not streams:
        raise OSError(f"Could not read frames from {path}: {done.stderr.strip() or 'no video stream'}")
    s = streams[0]
    return int(s["width"]), int(s["height"]), int(s.get("nb_read_packets", 0))


def bucket(width, height):
    """The resolution bucket whose aspect ratio is closest (no cropping: the video is stretched)."""
    aspect = width / height
    key = min(BUCKETS, key=lambda k: abs(aspect - int(k.split(",")[0]) / int(k.split(",")[1])))
    return BUCKETS[key]


def pause(seconds):
    """Sleep in small steps (a SIGTERM stops the process at once: Python's default action)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(min(0.05, max(0.0, end - time.monotonic())))


def ffmpeg(source, target, look, width, height, frames, fps):
    os.makedirs(os.path.dirname(host_path(target)) or ".", exist_ok=True)
    vf = f"scale={width}:{height},{look},format=yuv420p"
    done = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", host_path(source), "-frames:v",
                           str(frames), "-vf", vf, "-r", str(fps), "-c:v", "libx264", "-preset", "ultrafast",
                           "-crf", "30", "-pix_fmt", "yuv420p", "-an", host_path(target)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise OSError(f"ffmpeg could not write {target}: {done.stderr.strip()}")


def progress(total, seconds, desc=""):
    """A tqdm bar on stderr (carriage returns, like tqdm writes into a log)."""
    start = time.monotonic()
    for i in range(total + 1):
        elapsed = time.monotonic() - start
        bar = "█" * int(10 * i / max(total, 1))
        sys.stderr.write(f"\r{desc}{int(100 * i / max(total, 1)):3d}%|{bar:<10}| {i}/{total} "
                         f"[{int(elapsed) // 60:02d}:{int(elapsed) % 60:02d}<00:00, {elapsed / max(i, 1):.2f}s/it]")
        sys.stderr.flush()
        if i < total:
            yield i
            pause(seconds / max(total, 1))
    sys.stderr.write("\n")
    sys.stderr.flush()


def check_types(cfg):
    """JSON values skip argparse's type checks; upstream then fails where it uses them."""
    for key in ("num_steps", "seed", "fps", "batch_size", "num_gpus"):
        value = getattr(cfg, key)
        if not isinstance(value, int):
            raise TypeError(f"'{type(value).__name__}' object cannot be interpreted as an integer")
    for key in ("guidance", "sigma_max"):
        value = getattr(cfg, key)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"unsupported operand type(s) for *: '{type(value).__name__}' and 'float'")


# ---------------------------------------------------------------------------------------------- demo


def demo(cfg, control_inputs):
    control_inputs = validate_controlnet_specs(cfg, control_inputs)
    check_types(cfg)
    log("INFO", f"Using random seed {cfg.seed}.", (MISC, 41, "set_random_seed"))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if cfg.num_gpus != world:
        if "WORLD_SIZE" not in os.environ:
            raise RuntimeError(f"STAND-IN: --num_gpus {cfg.num_gpus} needs torchrun --nproc_per_node="
                               f"{cfg.num_gpus} (upstream: torch.distributed fails, RANK/WORLD_SIZE are unset)")
        raise RuntimeError(f"STAND-IN: --num_gpus {cfg.num_gpus} but torchrun started {world} processes; they must "
                           "be equal (upstream would fail or run several copies that race for the same output)")
    if cfg.use_distilled:
        assert not cfg.is_av_sample  # upstream's check
        assert not cfg.save_input_noise, "save_input_noise is not supported with the distilled model"
    seconds = float(os.environ.get("COSMOS_STANDIN_SECONDS", "3"))
    load_seconds = float(os.environ.get("COSMOS_STANDIN_LOAD_SECONDS") or seconds * 0.2)  # once per process
    sample_seconds = float(os.environ.get("COSMOS_STANDIN_SAMPLE_SECONDS") or seconds * 0.7)  # per generated video
    base = os.path.join(cfg.checkpoint_dir, BASE_AV_CKPT if cfg.is_av_sample else BASE_CKPT)
    log("INFO", f"Loading base model {base} (stand-in: checking the file exists, loading nothing)",
        (PIPELINE, 212, "_load_model"))
    require_file(base)
    require_file(os.path.join(cfg.checkpoint_dir, TOKENIZER_CKPT))
    for config in control_inputs.values():
        ckpt = config["ckpt_path"]
        if len(control_inputs) == 1 and not os.path.isabs(ckpt) and not os.path.exists(host_path(ckpt)):
            ckpt = os.path.join(cfg.checkpoint_dir, ckpt)
        require_file(ckpt)
        weight = config["control_weight"]
        if isinstance(weight, str) and weight.endswith(".pt"):
            require_file(weight)
    if cfg.use_distilled:
        assert len(control_inputs) == 1, "Distilled model only supports single control input"
    pause(load_seconds)

    if cfg.batch_input_path:
        log("INFO", f"Reading batch inputs from path: {cfg.batch_input_path}", (TRANSFER, 262, "demo"))
        with open(host_path(cfg.batch_input_path, reading=True)) as f:
            prompts = [json.loads(line) for line in f]
    else:
        prompts = [{"prompt": cfg.prompt, "visual_input": cfg.input_video_path}]
    batch_size = cfg.batch_size
    upscale = "upscale" in control_inputs
    if upscale and batch_size > 1:
        batch_size = 1
        log("INFO", "Setting batch_size=1 as upscale does not support batch generation", (TRANSFER, 271, "demo"))
    log("INFO", f"Running batch generation with batch_size={batch_size}", (TRANSFER, 273, "demo"))
    os.makedirs(host_path(cfg.video_save_folder), exist_ok=True)
    for index, item in enumerate(prompts):
        if cfg.batch_input_path:
            folder = os.path.join(cfg.video_save_folder, f"video_{index}")
            os.makedirs(host_path(folder), exist_ok=True)
            video_path, prompt_path = os.path.join(folder, "output.mp4"), os.path.join(folder, "prompt.txt")
        else:
            folder = cfg.video_save_folder
            video_path = os.path.join(folder, f"{cfg.video_save_name}.mp4")
            prompt_path = os.path.join(folder, f"{cfg.video_save_name}.txt")
        controls = copy.deepcopy(control_inputs)  # upstream: dict.update on a deep copy per line
        for key, override in (item.get("control_overrides") or {}).items():
            if key in controls:
                controls[key].update(override)
            else:
                log("WARNING", f"Ignoring unknown control key in override: {key}", (TRANSFER, 296, "demo"))
        videos, final_prompts = generate(cfg, item.get("prompt"), item.get("visual_input"), controls, folder,
                                         sample_seconds, upscale)
        for video, prompt in zip(videos, final_prompts, strict=True):
            os.replace(host_path(video), host_path(video_path))
            log("INFO", f"Saved video to {video_path}", (TRANSFER, 357, "demo"))
            with open(host_path(prompt_path), "wb") as f:
                f.write(prompt.encode("utf-8"))
            log("INFO", f"Saved prompt to {prompt_path}", (TRANSFER, 361, "demo"))


def generate(cfg, prompt, video_path, controls, folder, seconds, upscale):
    """The stand-in pipeline: preprocess, guardrail, chunks, write (``seconds`` of sleep for this sample); returns
    (videos, prompts) or crashes."""
    log("INFO", "running preprocessor", (TRANSFER, 300, "demo"))
    rank = os.environ.get("LOCAL_RANK", "0")
    sources = {}
    if video_path:
        sources["input"] = (video_path, *probe(video_path))
    for key, config in controls.items():
        if config.get("input_control"):
            sources[key] = (config["input_control"], *probe(config["input_control"]))
        elif key in ("hdmap", "lidar"):
            raise KeyError("input_control")  # no preprocessor: upstream crashes in the augmentor
        elif key != "upscale":
            if key in ("vis", "edge"):
                preset = cfg.blur_strength if key == "vis" else cfg.canny_threshold
                if preset not in PRESETS:
                    raise KeyError(preset)
            generated = os.path.join(folder, f"{key}_input_control_{rank}.mp4")
            _, w, h, t = sources["input"]
            log("INFO", f"Generating {key} control video from the input: {generated} (stand-in: ffmpeg filter)",
                (PREPROCESSORS, 88, "gen_input_control"))
            ffmpeg(video_path, generated, LOOKS[key], w, h, t, cfg.fps)
            config["input_control"] = generated
            sources[key] = (generated, w, h, t)
    if prompt is None:
        raise TypeError("expected string or bytes-like object, got 'NoneType'")
    if cfg.upsample_prompt:
        int(os.environ["RANK"])  # upstream reads RANK: KeyError under plain python
        prompt = prompt + " (STAND-IN: prompt upsampler not run)"
    log("INFO", "Running guardrail checks on all prompts", (PIPELINE, 1030, "generate"))
    if "GUARDRAIL_BLOCK_ME" in prompt:
        log("CRITICAL", "GUARDRAIL BLOCKED: STAND-IN guardrail: the prompt contains GUARDRAIL_BLOCK_ME",
            ("cosmos_transfer1/auxiliary/guardrail/common/presets.py", 92, "run_text_guardrail"))
        log("CRITICAL", "Input text prompt 0 is not safe", (PIPELINE, 1036, "generate"))
        log("CRITICAL", "All prompts failed safety checks", (PIPELINE, 1040, "generate"))
        batch_outputs = None
        videos, final_prompts = batch_outputs  # upstream unpacks the guardrail's None: TypeError
    first = sources.get("input") or next(iter(sources.values()))
    _, width, height, frames = first
    width, height = bucket(width, height)
    frames = min(s[3] for s in sources.values())
    log("INFO", f"Making all control and input videos to be length of {frames} frames.", (PIPELINE, 820, "generate"))
    if hasattr(cfg, "regional_prompts") and cfg.regional_prompts and frames % CHUNK:
        raise AssertionError(f"Temporal dimension {frames} is not divisible by chunk_length {CHUNK}")
    chunks = math.ceil((frames - 1) / (CHUNK - 1))
    if chunks == 0:
        raise RuntimeError("torch.cat(): expected a non-empty list of Tensors")
    log("INFO", "Starting latent encoding", (PIPELINE, 860, "generate"))
    log("INFO", f"Starting diffusion sampling: {chunks} chunk(s) of {CHUNK} frames, {cfg.num_steps} steps "
        "(stand-in: sleeping)", (PIPELINE, 872, "generate"))
    for chunk in progress(chunks, seconds * 0.85):
        if upscale and chunk == 1:
            raise RuntimeError("input tensor must fit into 32-bit index math")
    log("INFO", "Completed diffusion sampling", (PIPELINE, 901, "generate"))
    log("INFO", "Starting VAE decode", (PIPELINE, 905, "generate"))
    if upscale:
        width, height = 3 * width, 3 * height
    source, *_ = first
    temporary = os.path.join(folder, f".standin_output_{os.getpid()}.mp4")
    looks = ",".join(LOOKS[k] for k in sorted(controls)) or "null"
    ffmpeg(source, temporary, looks, width, height, frames, cfg.fps)
    pause(seconds * 0.15)
    log("INFO", "Completed VAE decode", (PIPELINE, 910, "generate"))
    if cfg.save_input_noise:
        with open(host_path(os.path.join(folder, "noise.pickle")), "wb") as f:
            f.write(b"STAND-IN: no noise tensor\n")
    if cfg.benchmark:
        log("CRITICAL", f"Average generation time: {seconds:.2f} seconds (STAND-IN)", (TRANSFER, 340, "demo"))
    return [temporary], [prompt]


def gpu_ids():
    """The GPU ids this process was given: CUDA_VISIBLE_DEVICES, else Slurm's (stand-in GPUs leave it empty)."""
    for key in ("CUDA_VISIBLE_DEVICES", "SLURM_STEP_GPUS", "SLURM_JOB_GPUS"):
        if os.environ.get(key):
            return os.environ[key]
    return f"{os.environ['SLURM_GPUS_ON_NODE']} from Slurm" if os.environ.get("SLURM_GPUS_ON_NODE") else "none"


def engine_env():
    """Without the stand-in docker (a rehearsal Slurm job runs this directly), its timings come from the engine file
    the rehearsal host names in COSMOS_STANDIN_ENGINE; the job's own environment wins."""
    with contextlib.suppress(OSError, ValueError, KeyError):
        with open(os.environ["COSMOS_STANDIN_ENGINE"]) as f:
            for key, value in json.load(f).get("env", {}).items():
                os.environ.setdefault(key, value)


if __name__ == "__main__":
    engine_env()
    args, control_inputs = parse_arguments()
    demo(args, control_inputs)
