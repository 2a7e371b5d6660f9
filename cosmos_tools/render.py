"""Pure rendering of what runs on the GPU box: the spec transfer.py reads, its command, and the docker run around it.

Nothing here touches the network or the filesystem beyond reading the packaged templates and the runner
(``cosmos_tools/templates/*.json.j2``). Templates emit JSON through ``|tojson`` and are parsed back with
``json.loads``, so names and prompts (quotes, ``$(...)``, backticks, newlines, unicode) stay data: they
become argv words, never shell text. See docs/ARCHITECTURE.md, "The docker command" and "Names".
"""

from __future__ import annotations

import functools
import json
import math
import re
import shlex
from dataclasses import dataclass, field

from .errors import UserError
from .names import check_run_name
from .remote import script
from .remote.account import BoxAccount
from .remote.paths import RUN, UPSCALE, JobPaths

TRANSFER_PY = "cosmos_transfer1/diffusion/inference/transfer.py"
OFFLOAD_WORDS = ("diffusion_transformer", "text_encoder_model", "guardrail_models", "prompt_upsampler")
UPSCALE_NUM_STEPS = 10  # examples/inference_cosmos_transfer1_7b_4kupscaler.md

@dataclass(frozen=True)
class Rendered:
    """One job, ready to run: paths are relative to REMOTE_DIR (the container's /workspace)."""

    name: str
    kind: str  # "run" or "up"
    spec: dict
    command: list[str]
    docker: list[str]
    container: str
    output_dir: str
    spec_path: str
    log_path: str
    exit_code_path: str
    env: dict[str, str] = field(default_factory=dict)

    def spec_used(self) -> dict:
        """What was run, for people: written to outputs/<name>/spec_used.json."""
        return {"spec": self.spec, "command": self.command, "docker": self.docker, "env": self.env,
                "container": self.container, "kind": self.kind, "name": self.name}


@functools.lru_cache(maxsize=1)
def _environment():
    import jinja2  # imported here: keeps CLI start-up fast

    return jinja2.Environment(loader=jinja2.PackageLoader("cosmos_tools", "templates"),
                              undefined=jinja2.StrictUndefined, autoescape=False)  # noqa: S701 (JSON, not HTML)


def _render_json(template: str, **context):
    """Render a packaged template and parse its output as JSON."""
    return json.loads(_environment().get_template(template).render(**context))


def _num_gpu(cfg) -> int:
    value = cfg.int("NUM_GPU")
    if value < 1:
        raise UserError(f"number of GPUs must be a whole number >= 1, got {value!r} ({cfg.sources['NUM_GPU']}); "
                        "fix NUM_GPU or --num-gpu")
    return value


def _cuda_devices(cfg, num_gpu: int) -> str:
    devices = cfg["CUDA_VISIBLE_DEVICES"].strip()
    if not devices:
        return ",".join(str(i) for i in range(num_gpu))
    listed = devices.split(",")
    if any(not re.fullmatch(r"[A-Za-z0-9-]+", d) for d in listed):
        raise UserError(f"CUDA_VISIBLE_DEVICES={devices!r} ({cfg.sources['CUDA_VISIBLE_DEVICES']}) is not a "
                        "comma-separated list of GPU ids; write e.g. 0,1 or leave it empty")
    if len(listed) < num_gpu:
        raise UserError(f"{num_gpu} GPUs asked for but CUDA_VISIBLE_DEVICES={devices!r} lists {len(listed)}; "
                        "list more GPUs or lower NUM_GPU / --num-gpu")
    return devices


def _offload_words(cfg) -> list[str]:
    words = cfg["OFFLOAD"].split()
    for word in words:
        if word not in OFFLOAD_WORDS:
            raise UserError(f"OFFLOAD ({cfg.sources['OFFLOAD']}): unknown model {word!r}; "
                            f"use any of: {' '.join(OFFLOAD_WORDS)}")
    return list(dict.fromkeys(words))


def _split_words(cfg, key: str) -> list[str]:
    try:
        return shlex.split(cfg[key])
    except ValueError as exc:
        raise UserError(f"{key} ({cfg.sources[key]}): cannot split it into words ({exc}); fix its quotes") from None


def _remote_home(cfg, account: BoxAccount | None) -> str:
    if account is not None and account.home:
        return account.home.rstrip("/") or "/"
    user = cfg["REMOTE_USER"] or "root"
    return "/root" if user == "root" else f"/home/{user}"


def _host_path(cfg, key: str, home: str) -> str:
    """An absolute path on the GPU box for docker -v (relative settings are under the remote home)."""
    value = cfg[key].strip()
    if not value or ":" in value or "," in value or "\n" in value:
        raise UserError(f"{key}={cfg[key]!r} ({cfg.sources[key]}) cannot be mounted with docker -v "
                        "(empty, or contains ':', ',' or a newline); use a plain absolute path")
    value = value.rstrip("/") or "/"
    return value if value.startswith("/") else f"{home.rstrip('/')}/{value}"


def _docker_user(cfg, account: BoxAccount | None) -> str | None:
    setting = cfg["DOCKER_USER"].strip()
    if setting == "auto":
        return account.docker_user if account is not None else None
    if setting == "root":
        return "0:0"
    if not re.fullmatch(r"[0-9]+(:[0-9]+)?", setting):
        raise UserError(f"DOCKER_USER={setting!r} ({cfg.sources['DOCKER_USER']}): use auto, root or UID:GID")
    return setting


def _render(name: str, kind: str, spec: dict, cfg, *, num_steps: int | None, fps: int,
            account: BoxAccount | None, leaf: str | None) -> Rendered:
    paths = JobPaths.of(name, kind, leaf)
    gpus = _num_gpu(cfg)
    command = _render_json("transfer_command.json.j2", num_gpu=gpus, checkpoint_dir=cfg["CHECKPOINT_DIR_REMOTE"],
                           output_dir=paths.folder, spec_path=paths.spec, fps=fps, num_steps=num_steps,
                           offload=_offload_words(cfg))
    home = _remote_home(cfg, account)
    env = {"CUDA_VISIBLE_DEVICES": _cuda_devices(cfg, gpus), "PYTHONPATH": "/workspace",
           "HF_HOME": "/hf-cache", "HOME": "/tmp"}
    if gpus == 1:
        env["RANK"] = "0"  # --upsample_prompt reads os.environ["RANK"], which only torchrun sets
    docker_cmd = _split_words(cfg, "DOCKER_CMD")
    if not docker_cmd:
        raise UserError(f"DOCKER_CMD ({cfg.sources['DOCKER_CMD']}) is empty; set it to docker or 'sudo docker'")
    docker = _render_json("docker_run.json.j2", docker_cmd=docker_cmd, container=paths.container, name=name, kind=kind,
                          gpus=cfg["DOCKER_GPUS"], ipc=cfg["DOCKER_IPC"], shm_size=cfg["DOCKER_SHM_SIZE"],
                          user=_docker_user(cfg, account), env=env,
                          remote_dir=_host_path(cfg, "REMOTE_DIR", home),
                          hf_cache=_host_path(cfg, "HF_CACHE_REMOTE", home),
                          extra_args=_split_words(cfg, "DOCKER_EXTRA_ARGS"), image=cfg["DOCKER_IMAGE"],
                          runner=script("runner.sh"), log_path=paths.log, exit_code_path=paths.exit_code,
                          command=command)
    return Rendered(name=name, kind=kind, spec=spec, command=command, docker=docker, container=paths.container,
                    output_dir=paths.folder, spec_path=paths.spec, log_path=paths.log,
                    exit_code_path=paths.exit_code, env=env)


def run_spec(prompt: dict) -> dict:
    """The spec transfer.py reads: the prompt as written, minus ``_comment``-style keys (ours, not cosmos's)."""
    return {key: value for key, value in prompt.items() if not key.startswith("_")}


def render_run(name: str, prompt: dict, cfg, *, account: BoxAccount | None = None,
               run_id: str | None = None) -> Rendered:
    """The inference job of prompt ``name``: results in outputs/runs/<run_id>/ (no run id: outputs/<name>/).

    ``account`` is the remote user the probe found (for DOCKER_USER=auto and relative remote paths); per-run
    settings such as ``--num-gpu`` arrive as a layer of ``cfg`` (``Config.with_overrides``).

    ``--fps`` is the prompt's ``fps`` when it sets one (else FPS): transfer.py lets the command line win over
    the JSON, so passing FPS alone would silently override the prompt.
    """
    check_run_name(name)
    return _render(name, RUN, run_spec(prompt), cfg, num_steps=None, fps=_spec_fps(prompt, cfg), account=account,
                   leaf=run_id)


def _spec_fps(spec: dict, cfg) -> int:
    """The spec's ``fps`` when it sets a usable one, else FPS."""
    fps = spec.get("fps")
    return fps if isinstance(fps, int) and not isinstance(fps, bool) and fps >= 1 else cfg.int("FPS")


def upscale_weight(value) -> float:
    """A control weight for the upscaler: a finite number >= 0 (numeric strings accepted)."""
    try:
        weight = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError):
        weight = math.nan
    if not math.isfinite(weight) or weight < 0:
        raise UserError(f"upscale weight {value!r} is not usable: give a number >= 0, e.g. 0.5")
    return weight


def render_upscale(name: str, cfg, *, weight: float | None = None, account: BoxAccount | None = None,
                   prompt: str | None = None, run_id: str | None = None, leaf: str | None = None) -> Rendered:
    """The 4K upscale of run ``run_id`` of prompt ``name``: input outputs/runs/<run_id>/output.mp4, results in
    outputs/runs/<leaf>/ (no run id: outputs/<name>/output.mp4 into outputs/<name>_upscaled/)."""
    check_run_name(name)
    w = upscale_weight(cfg["UPSCALE_WEIGHT"] if weight is None else weight)
    if prompt is not None and not isinstance(prompt, str):
        raise UserError(f"upscale prompt must be text, got {type(prompt).__name__}")
    spec = _render_json("upscale_spec.json.j2", input_video_path=f"{JobPaths.of(name, RUN, run_id).folder}/output.mp4",
                        prompt=prompt, weight=w)
    return _render(name, UPSCALE, spec, cfg, num_steps=UPSCALE_NUM_STEPS, fps=cfg.int("FPS"), account=account,
                   leaf=leaf)


def render_batch(name: str, spec: dict, cfg, *, account: BoxAccount | None = None, leaf: str | None = None) -> Rendered:
    """The batch job ``name`` (batch.py): transfer.py with ``--batch_input_path <folder>/batch.jsonl`` and the
    shared ``spec``, wrapped in remote/batch_map.py (copied into the job's folder), which maps each line's
    ``video_<N>`` to its run folder when transfer.py ends. Results in outputs/batches/runs/<leaf>/."""
    from dataclasses import replace

    from .batch import JSONL_FILE, MAP_SCRIPT, BatchPaths

    paths = BatchPaths.of_batch(name, leaf)
    single = _render(name, RUN, spec, cfg, num_steps=None, fps=_spec_fps(spec, cfg), account=account, leaf=leaf)
    moved = {single.output_dir: paths.folder, single.spec_path: paths.spec}  # the values of two transfer.py flags
    transfer = [moved.get(word, word) for word in single.command]
    command = ["python3", f"{paths.folder}/{MAP_SCRIPT}", paths.folder, "--", *transfer,
               "--batch_input_path", f"{paths.folder}/{JSONL_FILE}"]
    docker = single.docker[:-len(single.command) - 2]  # up to the runner's log and exit-code paths
    return replace(single, command=command, docker=[*docker, paths.log, paths.exit_code, *command],
                   output_dir=paths.folder, spec_path=paths.spec, log_path=paths.log, exit_code_path=paths.exit_code)
