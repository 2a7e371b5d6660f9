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

PROJECT_MOUNT = "/project"  # where a container whose /workspace is another checkout sees REMOTE_DIR


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
    model: str = "transfer1-7b"
    model_commit: str = ""  # the upstream commit the profile is written for ("" when not pinned)

    def spec_used(self) -> dict:
        """What was run, for people: written to outputs/<name>/spec_used.json."""
        used = {"spec": self.spec, "command": self.command, "docker": self.docker, "env": self.env,
                "container": self.container, "kind": self.kind, "name": self.name, "model": self.model}
        return {**used, "model_commit": self.model_commit} if self.model_commit else used


@functools.lru_cache(maxsize=1)
def _environment():
    import jinja2  # imported here: keeps CLI start-up fast

    return jinja2.Environment(loader=jinja2.PackageLoader("cosmos_tools", "templates"),
                              undefined=jinja2.StrictUndefined, autoescape=False)  # noqa: S701 (JSON, not HTML)


def render_json(template: str, **context):
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


def host_path(cfg, key: str, home: str) -> str:
    """An absolute path on the GPU box for docker -v, --container-mounts or --bind (relative settings are under the
    remote home)."""
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


def _render(name: str, kind: str, spec: dict, cfg, profile, command_of, *, account: BoxAccount | None,
            leaf: str | None) -> Rendered:
    """The docker run (or sbatch, BACKEND=slurm) around ``command_of(paths, num_gpu)``, the profile's command."""
    from .backend import backend_of

    paths = JobPaths.of(name, kind, leaf)
    gpus = _num_gpu(cfg)
    command = command_of(paths, gpus)
    home = _remote_home(cfg, account)
    env = {"CUDA_VISIBLE_DEVICES": _cuda_devices(cfg, gpus), **profile.env(cfg, gpus)}
    backend = backend_of(cfg)
    docker = backend.launch(cfg, name=name, kind=kind, container=paths.container, gpus=gpus, env=env,
                            account=account, home=home, image_paths=getattr(profile, "IMAGE_PATHS", ()),
                            runner=script("runner.sh"), log=paths.log,
                            runner_exit=f"{paths.folder}/{backend.runner_exit}", command=command)
    return Rendered(name=name, kind=kind, spec=spec, command=command, docker=docker, container=paths.container,
                    output_dir=paths.folder, spec_path=paths.spec, log_path=paths.log,
                    exit_code_path=paths.exit_code, env=env, model=profile.NAME,
                    model_commit=cfg[profile.COMMIT_KEY] if profile.COMMIT_KEY else "")


def docker_argv(cfg, *, name: str, kind: str, container: str, gpus: int, env: dict[str, str],
                account: BoxAccount | None, home: str, runner: str, log: str, runner_exit: str,
                command: list[str], image_paths=(), image_key: str | None = None,
                checkout: str | None = None) -> list[str]:
    """The `docker run` argv of one detached, named job (templates/docker_run.json.j2); ``image_paths``: container
    folders kept from the image (anonymous volumes, e.g. Cosmos 3's /workspace/.venv). ``image_key``: the setting
    naming the job's own image (empty: DOCKER_IMAGE); ``checkout``: the folder on the box at /workspace (None:
    REMOTE_DIR; another folder puts REMOTE_DIR at /project, see ``container_project_dir``)."""
    docker_cmd = _split_words(cfg, "DOCKER_CMD")
    if not docker_cmd:
        raise UserError(f"DOCKER_CMD ({cfg.sources['DOCKER_CMD']}) is empty; set it to docker or 'sudo docker'")
    ipc = cfg["DOCKER_IPC"]
    remote_dir = host_path(cfg, "REMOTE_DIR", home)
    workspace = checkout or remote_dir
    image = cfg[image_key].strip() if image_key else ""
    return render_json("docker_run.json.j2", docker_cmd=docker_cmd, container=container, name=name, kind=kind,
                       gpus=cfg["DOCKER_GPUS"], ipc=ipc, shm_size="" if ipc == "host" else cfg["DOCKER_SHM_SIZE"],
                       user=_docker_user(cfg, account), env=env, remote_dir=workspace,
                       hf_cache=host_path(cfg, "HF_CACHE_REMOTE", home), image_paths=image_paths,
                       mounts=[] if workspace == remote_dir else [f"{remote_dir}:{PROJECT_MOUNT}"],
                       extra_args=_split_words(cfg, "DOCKER_EXTRA_ARGS"), image=image or cfg["DOCKER_IMAGE"],
                       runner=runner, log_path=log, exit_code_path=runner_exit, command=command)


def container_project_dir(cfg, home: str, checkout: str) -> str:
    """How a container whose /workspace is ``checkout`` names REMOTE_DIR: /workspace, or /project beside it."""
    return "/workspace" if checkout == host_path(cfg, "REMOTE_DIR", home) else PROJECT_MOUNT


def render_run(name: str, prompt: dict, cfg, *, account: BoxAccount | None = None,
               run_id: str | None = None) -> Rendered:
    """The inference job of prompt ``name``: results in outputs/runs/<run_id>/ (no run id: outputs/<name>/).

    The prompt's model profile (``models``) makes the spec and the command; it must be MODEL's, whose checkout
    and image the job uses. ``account`` is the remote user the probe found (for DOCKER_USER=auto and relative
    remote paths); per-run settings such as ``--num-gpu`` arrive as a layer of ``cfg`` (``Config.with_overrides``).
    """
    from . import models

    check_run_name(name)
    profile = models.for_run(prompt, cfg)
    spec = profile.run_spec(prompt, JobPaths.of(name, RUN, run_id).spec)
    return _render(name, RUN, spec, cfg, profile, lambda paths, gpus: profile.command(cfg, prompt, paths, gpus),
                   account=account, leaf=run_id)


def run_spec(name: str, prompt: dict, cfg) -> dict:
    """The spec a run of prompt ``name`` sends, as its model profile makes it (Transfer1: the prompt without its
    comment keys): what experiments compare to group variants into batch jobs."""
    from . import models
    from .remote.paths import run_id_of

    # any run folder: a profile with spec-relative paths (Transfer2.5) depends only on its depth
    return models.of_prompt(prompt, cfg).run_spec(prompt, JobPaths.of(name, RUN, run_id_of(name, 1)).spec)


def upscale_weight(value) -> float:
    """A control weight for the upscaler: a finite number >= 0 (numeric strings accepted)."""
    try:
        weight = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError):
        weight = math.nan
    if not math.isfinite(weight) or weight < 0:
        raise UserError(f"upscale weight {value!r} is not usable: give a number >= 0, e.g. 0.5")
    return weight


def upscale_weight_of(cfg, run_prompt: dict | None, weight=None) -> float:
    """The upscaler's control weight: ``weight`` (the command line) wins over the run prompt's
    ``_upscale.control_weight``, which wins over UPSCALE_WEIGHT."""
    own = (run_prompt or {}).get("_upscale")
    own = own if isinstance(own, dict) else {}
    return upscale_weight(weight if weight is not None else own.get("control_weight", cfg["UPSCALE_WEIGHT"]))


def upscale_settings(cfg, run_prompt: dict | None = None, *, prompt: str | None = None) -> dict:
    """The upscaler's prompt, seed and steps: ``prompt`` (or --upscale-prompt, a cfg layer) wins over the run's
    ``_upscale`` key, which wins over UPSCALE_PROMPT / UPSCALE_SEED / UPSCALE_STEPS. An empty prompt means
    cosmos-transfer1's own 4K default."""
    own = (run_prompt or {}).get("_upscale")
    own = own if isinstance(own, dict) else {}
    from_cli = cfg.sources["UPSCALE_PROMPT"] == UPSCALE_PROMPT_OPTION
    text = prompt if prompt is not None else cfg["UPSCALE_PROMPT"] if from_cli else \
        own.get("prompt", cfg["UPSCALE_PROMPT"])
    if not isinstance(text, str):
        raise UserError(f"upscale prompt must be text, got {type(text).__name__}")
    seed, steps = own.get("seed", cfg.int("UPSCALE_SEED")), own.get("num_steps", cfg.int("UPSCALE_STEPS"))
    for what, value in (("seed", seed), ("num_steps", steps)):
        if isinstance(value, bool) or not isinstance(value, int) or value < (1 if what == "num_steps" else 0):
            raise UserError(f"_upscale.{what} {value!r} is not a whole number; fix the prompt (cosmos-tools check)")
    return {"prompt": text or None, "seed": seed, "num_steps": steps}


UPSCALE_PROMPT_OPTION = "--upscale-prompt"  # the cfg layer source of the CLI's --upscale-prompt


def render_upscale(name: str, cfg, *, weight: float | None = None, account: BoxAccount | None = None,
                   prompt: str | None = None, run_id: str | None = None, leaf: str | None = None,
                   run_prompt: dict | None = None) -> Rendered:
    """The 4K upscale of run ``run_id`` of prompt ``name``: input outputs/runs/<run_id>/output.mp4, results in
    outputs/runs/<leaf>/ (no run id: outputs/<name>/output.mp4 into outputs/<name>_upscaled/).

    ``run_prompt`` is the prompt the run ran: the upscale plays at its fps (the upscaler copies frames one to
    one) and takes its ``_upscale`` settings (``upscale_settings``); ``weight`` wins over ``_upscale``'s
    control_weight, which wins over UPSCALE_WEIGHT. Only Transfer1 has an upscaler.
    """
    from . import models

    check_run_name(name)
    run_prompt = run_prompt or {}
    profile = models.of_prompt(run_prompt, cfg)
    if not profile.HAS_UPSCALER:
        raise UserError(f"{profile.NAME} has no 4K upscaler; pass --no-upscale (README: Choosing a model)")
    w = upscale_weight_of(cfg, run_prompt, weight)
    settings = upscale_settings(cfg, run_prompt, prompt=prompt)
    spec = render_json("upscale_spec.json.j2",
                       input_video_path=f"{JobPaths.of(name, RUN, run_id).folder}/output.mp4",
                       prompt=settings["prompt"], seed=settings["seed"], weight=w)
    fps = profile.run_fps(run_prompt, cfg)
    return _render(name, UPSCALE, spec, cfg, profile,
                   lambda paths, gpus: profile.command(cfg, spec, paths, gpus, fps=fps,
                                                       num_steps=settings["num_steps"]),
                   account=account, leaf=leaf)


def render_batch(name: str, spec: dict, cfg, *, account: BoxAccount | None = None,
                 leaf: str | None = None) -> Rendered:
    """The batch job ``name`` (batch.py): transfer.py with ``--batch_input_path <folder>/batch.jsonl`` and the
    shared ``spec`` (Transfer2.5: inference.py with ``-i <folder>/batch.jsonl``, the profile's ``BATCH_FLAG`` being
    empty), wrapped in remote/batch_map.py (copied into the job's folder), which maps each line's results to its run
    folder when the model ends. Results in outputs/batches/runs/<leaf>/."""
    from dataclasses import replace

    from . import models
    from .backend import backend_of
    from .batch import JSONL_FILE, MAP_SCRIPT, BatchPaths

    paths = BatchPaths.of_batch(name, leaf)
    profile = models.for_run(spec, cfg)
    single = _render(name, RUN, spec, cfg, profile, lambda job, gpus: profile.command(cfg, spec, job, gpus),
                     account=account, leaf=leaf)
    lines = f"{paths.folder}/{JSONL_FILE}"
    # the values of the output and spec flags; Transfer2.5 reads its records as its input spec
    moved = {single.output_dir: paths.folder, single.spec_path: paths.spec if profile.BATCH_FLAG else lines}
    transfer = [moved.get(word, word) for word in single.command]
    command = ["python3", f"{paths.folder}/{MAP_SCRIPT}", paths.folder, "--", *transfer,
               *((profile.BATCH_FLAG, lines) if profile.BATCH_FLAG else ())]
    docker = single.docker[:-len(single.command) - 2]  # up to the runner's log and exit-code paths
    runner_exit = f"{paths.folder}/{backend_of(cfg).runner_exit}"
    return replace(single, command=command, docker=[*docker, paths.log, runner_exit, *command],
                   output_dir=paths.folder, spec_path=paths.spec, log_path=paths.log, exit_code_path=paths.exit_code)


def render_critique(paths: JobPaths, cfg, command_of, *, account: BoxAccount | None = None) -> Rendered:
    """The critic job in ``paths`` (critic.py), launched as every job is (``backend.launch``): the critic's image
    (CRITIC_IMAGE, else the backend's) with its checkout (CRITIC_DIR, else REMOTE_DIR) as the working folder
    (/workspace). ``command_of(project)`` gives the command, ``project`` being how the job names REMOTE_DIR
    (``backend.project_dir``: /workspace, /project beside another checkout, or REMOTE_DIR itself without a
    container)."""
    from .backend import backend_of
    from .critic import KIND

    home = _remote_home(cfg, account)
    checkout = host_path(cfg, "CRITIC_DIR" if cfg["CRITIC_DIR"].strip() else "REMOTE_DIR", home)
    backend = backend_of(cfg)
    project = backend.project_dir(cfg, home, checkout)
    gpus = _num_gpu(cfg)
    env = {"CUDA_VISIBLE_DEVICES": _cuda_devices(cfg, gpus), "HF_HOME": "/hf-cache", "HOME": "/tmp",
           "PYTHONNOUSERSITE": "1"}
    command = command_of(project)
    docker = backend.launch(cfg, name=paths.name, kind=KIND, container=paths.container, gpus=gpus, env=env,
                            account=account, home=home, runner=script("runner.sh"), log=f"{project}/{paths.log}",
                            runner_exit=f"{project}/{paths.folder}/{backend.runner_exit}", command=command,
                            image_key="CRITIC_IMAGE", checkout=checkout)
    return Rendered(name=paths.name, kind=paths.kind, spec={}, command=command, docker=docker,
                    container=paths.container, output_dir=paths.folder, spec_path=paths.spec, log_path=paths.log,
                    exit_code_path=paths.exit_code, env=env, model=cfg["CRITIC"])
