"""Pure rendering of a Slurm job: the sbatch options and the launcher around the job's command (docs/slurm.md).

A Slurm job is ``sbatch OPTIONS remote/slurm_job.sh JOBFILE``; the job file holds the launch argv rendered here
(NUL-separated, never shell text): ``[launcher...] env K=V... bash -c RUNNER cosmos-run LOG CODE COMMAND...``,
where the launcher is ``srun --container-image ...`` (pyxis), ``apptainer|singularity exec --nv --bind ...`` or
nothing (SLURM_CONTAINER=none: the command runs in the checkout, REMOTE_DIR). ``launch_argv`` returns the
options and the launch as one list: every sbatch word starts with ``--``, the launch starts with the first word
that does not (``split_launch``). Settings are checked here, one line each (what, where, how to fix).
"""

from __future__ import annotations

import re
import shlex

from .errors import UserError
from .render import PROJECT_MOUNT, container_project_dir, host_path

RUNNER_EXIT = "command_exit_code"  # the runner's exit code; slurm_job.sh writes the job's exit_code from it
SLURM_LOG = ".cosmos-tools/slurm/%j.out"  # what Slurm itself prints for a job (%j: its id); run.log is ours
# sbatch options cosmos-tools sets itself: SLURM_EXTRA_ARGS may not repeat them.
OWN_OPTIONS = {"job-name": "the run's name", "output": "run.log", "error": "run.log", "open-mode": "run.log",
               "gres": "NUM_GPU", "gpus": "NUM_GPU", "gpus-per-node": "NUM_GPU", "partition": "SLURM_PARTITION",
               "account": "SLURM_ACCOUNT", "time": "SLURM_TIME", "parsable": "the submit script",
               "wrap": "the batch script", "array": "one job per run", "chdir": "REMOTE_DIR",
               "input": "the batch script", "hold": "the submit script"}
_OPTION = re.compile(r"--([A-Za-z][A-Za-z0-9-]*)(=[^\n]*)?")
_TIME = re.compile(r"(\d+-)?\d+(:\d+){0,2}|(\d+-)\d+|UNLIMITED|INFINITE")
_NAME = re.compile(r"[A-Za-z0-9_.,+-]+")


def launch_argv(cfg, *, job_name: str, gpus: int, env: dict[str, str], log: str, runner_exit: str,
                runner: str, command: list[str], home: str, image_key: str | None = None,
                checkout: str | None = None) -> list[str]:
    """``sbatch`` and its options, then the launch argv of one job (its GPUs: ``--gres=gpu:<gpus>``).

    ``image_key``: the setting naming the job's own image (empty: SLURM_IMAGE); ``checkout``: the folder the job
    works in (None: REMOTE_DIR), /workspace in the container, with REMOTE_DIR at /project beside it when it is
    another folder; without a container ``env --chdir`` goes there (``project_dir``)."""
    remote_dir = host_path(cfg, "REMOTE_DIR", home)
    checkout = checkout or remote_dir
    chdir = [f"--chdir={checkout}"] if cfg["SLURM_CONTAINER"] == "none" and checkout != remote_dir else []
    return [*sbatch_options(cfg, job_name, gpus), *launcher(cfg, home, image_key, checkout), "env", *chdir,
            *job_env(cfg, env, home, checkout), "bash", "-c", runner, "cosmos-run", log, runner_exit, *command]


def project_dir(cfg, home: str, checkout: str) -> str:
    """How a job working in ``checkout`` names REMOTE_DIR: as a container does (/workspace or /project), or, without
    a container, REMOTE_DIR itself."""
    if cfg["SLURM_CONTAINER"] == "none":
        return host_path(cfg, "REMOTE_DIR", home)
    return container_project_dir(cfg, home, checkout)


def split_launch(argv: list[str]) -> tuple[list[str], list[str]]:
    """(sbatch and its options, the launch argv) of a ``launch_argv`` list."""
    end = next(i for i, word in enumerate(argv) if i > 0 and not word.startswith("--"))
    return argv[:end], argv[end:]


def sbatch_options(cfg, job_name: str, gpus: int) -> list[str]:
    words = ["sbatch", "--parsable", f"--job-name={job_name}", f"--gres=gpu:{gpus}", f"--output={SLURM_LOG}",
             "--open-mode=append"]
    for key, option in (("SLURM_PARTITION", "partition"), ("SLURM_ACCOUNT", "account")):
        value = cfg[key].strip()
        if value and not _NAME.fullmatch(value):
            raise UserError(f"{key}={cfg[key]!r} ({cfg.sources[key]}) is not a Slurm {option} name; write the name "
                            f"`sinfo`/`sacctmgr` shows, or leave it empty")
        if value:
            words.append(f"--{option}={value}")
    limit = cfg["SLURM_TIME"].strip()
    if limit and not _TIME.fullmatch(limit):
        raise UserError(f"SLURM_TIME={cfg['SLURM_TIME']!r} ({cfg.sources['SLURM_TIME']}) is not a Slurm time; write "
                        "minutes, MM:SS, HH:MM:SS or D-HH:MM:SS (e.g. 2:00:00), or leave it empty")
    if limit:
        words.append(f"--time={limit}")
    return [*words, *extra_args(cfg)]


def extra_args(cfg) -> list[str]:
    """SLURM_EXTRA_ARGS as sbatch words, each ``--option`` or ``--option=value``, none of the ones set here."""
    where = f"SLURM_EXTRA_ARGS ({cfg.sources['SLURM_EXTRA_ARGS']})"
    try:
        words = shlex.split(cfg["SLURM_EXTRA_ARGS"])
    except ValueError as exc:
        raise UserError(f"{where}: cannot split it into words ({exc}); fix its quotes") from None
    for word in words:
        match = _OPTION.fullmatch(word)
        if not match:
            raise UserError(f"{where}: {word!r} is not an sbatch option written --option or --option=value; "
                            "write e.g. --qos=high (short forms like -q high are not taken)")
        if match.group(1) in OWN_OPTIONS:
            raise UserError(f"{where}: {word} is set by cosmos-tools (from {OWN_OPTIONS[match.group(1)]}); "
                            "remove it")
    return words


def launcher(cfg, home: str, image_key: str | None, checkout: str) -> list[str]:
    """The words that start the job's container (SLURM_CONTAINER); none for ``none``."""
    kind = cfg["SLURM_CONTAINER"]
    if kind == "none":
        return []
    image = _image(cfg, home, image_key if image_key and cfg[image_key].strip() else "SLURM_IMAGE")
    remote_dir, cache = host_path(cfg, "REMOTE_DIR", home), host_path(cfg, "HF_CACHE_REMOTE", home)
    project = "" if checkout == remote_dir else f",{remote_dir}:{PROJECT_MOUNT}"
    mounts = f"{checkout}:/workspace,{cache}:/hf-cache{project}"
    if kind == "pyxis":
        return ["srun", "--ntasks=1", f"--container-image={image}", f"--container-mounts={mounts}",
                "--container-workdir=/workspace"]
    return [kind, "exec", "--nv", "--bind", mounts, "--pwd", "/workspace", image]


def job_env(cfg, env: dict[str, str], home: str, checkout: str) -> list[str]:
    """``K=V`` words for ``env``. Without a container the container paths /workspace and /hf-cache are the
    box's own (the checkout, HF_CACHE_REMOTE). CUDA_VISIBLE_DEVICES is Slurm's: it sets it for the job's GPUs."""
    mapped = {"/workspace": checkout, "/hf-cache": host_path(cfg, "HF_CACHE_REMOTE", home)}
    words = []
    for key, value in env.items():
        if key == "CUDA_VISIBLE_DEVICES":
            continue
        if cfg["SLURM_CONTAINER"] == "none":
            value = mapped.get(value, value)
        words.append(f"{key}={value}")
    return words


def _image(cfg, home: str, key: str) -> str:
    image = cfg[key].strip()
    where = f"{key} ({cfg.sources[key]})"
    if not image:
        raise UserError(f"SLURM_CONTAINER={cfg['SLURM_CONTAINER']} ({cfg.sources['SLURM_CONTAINER']}) needs "
                        "SLURM_IMAGE: set it to a .sqsh (pyxis) or .sif (apptainer) file, or use SLURM_CONTAINER=none")
    if "\n" in image or "," in image:
        raise UserError(f"{where}: {image!r} contains a newline or ','; use a plain file path or image name")
    if image.endswith((".sqsh", ".sif", ".simg")) and not image.startswith("/"):
        return f"{home.rstrip('/')}/{image}"
    return image

