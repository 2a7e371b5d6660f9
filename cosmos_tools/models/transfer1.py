"""Cosmos-Transfer1-7B (nvidia-cosmos/cosmos-transfer1): one controlnet spec JSON per run, transfer.py, 4K upscaler.

Reference: ../shared/reference/cosmos-transfer1.md. The spec is the prompt minus comment keys; paths in it are
relative to the checkout (the container's /workspace), which mirrors the project.
"""

from __future__ import annotations

from ..errors import UserError

NAME = "transfer1-7b"
VIDEO_KEY = "input_video_path"
PROMPT_TEMPLATE = "prompt.json.j2"
USER_TEMPLATE = "prompt_template.json.j2"
HAS_UPSCALER = True
COMMIT_KEY = None  # no pinned commit: transfer.py's interface is stable (limited maintenance since 5005e82)
TRANSFER_PY = "cosmos_transfer1/diffusion/inference/transfer.py"
BATCH_FLAG = "--batch_input_path"  # a batch job's JSONL of lines (batch.py), beside the shared spec
OFFLOAD_WORDS = ("diffusion_transformer", "text_encoder_model", "guardrail_models", "prompt_upsampler")


def checker(spec: dict, cfg):
    from ..validate import Transfer1Checker

    return Transfer1Checker(spec, cfg)


def run_spec(prompt: dict, spec_path: str) -> dict:
    """The spec transfer.py reads: the prompt as written, minus ``_comment``-style keys (ours, not cosmos's)."""
    return {key: value for key, value in prompt.items() if not key.startswith("_")}


def project_spec(spec: dict, spec_path: str) -> dict:
    """The spec with project-relative paths: Transfer1's are already (the checkout is /workspace)."""
    return spec


def offload_words(cfg, prompt: dict) -> list[str]:
    """OFFLOAD's words, minus those the prompt sets to false: a store_true flag on the command line cannot be
    switched off by the spec, so the prompt's ``"offload_<x>": false`` wins by leaving ``--offload_<x>`` out."""
    words = cfg["OFFLOAD"].split()
    for word in words:
        if word not in OFFLOAD_WORDS:
            raise UserError(f"OFFLOAD ({cfg.sources['OFFLOAD']}): unknown model {word!r}; "
                            f"use any of: {' '.join(OFFLOAD_WORDS)}")
    return [word for word in dict.fromkeys(words) if prompt.get(f"offload_{word}") is not False]


def command(cfg, prompt: dict, paths, num_gpu: int, *, fps: int | None = None,
            num_steps: int | None = None) -> list[str]:
    """transfer.py's argv (python3 for one GPU, torchrun with --num_gpus for more); ``fps`` default: run_fps."""
    from ..render import render_json

    return render_json("transfer_command.json.j2", num_gpu=num_gpu, checkpoint_dir=cfg["CHECKPOINT_DIR_REMOTE"],
                       output_dir=paths.folder, spec_path=paths.spec, fps=fps or run_fps(prompt, cfg),
                       num_steps=num_steps, offload=offload_words(cfg, prompt))


def env(cfg, num_gpu: int) -> dict[str, str]:
    """Container environment beyond CUDA_VISIBLE_DEVICES: the checkout is not pip-installed (PYTHONPATH)."""
    values = {"PYTHONPATH": "/workspace", "HF_HOME": "/hf-cache", "HOME": "/tmp"}
    if num_gpu == 1:
        values["RANK"] = "0"  # --upsample_prompt reads os.environ["RANK"], which only torchrun sets
    return values


def run_fps(prompt: dict, cfg) -> int:
    """The fps a run writes: the prompt's ``fps`` when it sets one, else FPS (transfer.py's --fps wins over the
    JSON, so passing FPS alone would silently override the prompt)."""
    fps = prompt.get("fps")
    if isinstance(fps, bool) or not isinstance(fps, int) or fps < 1:
        return cfg.int("FPS")
    return fps
