"""Where jobs run, chosen by BACKEND: the GPU box's own queue (docker) or a Slurm cluster (slurm).

One job model for both (jobs.py): the same job folder, run.log, exit_code, spec files, run ids and history.
A backend differs only in how a job is rendered (``launch``, and ``project_dir``: how the job names REMOTE_DIR
when it works in another checkout), submitted (``enqueue``), stopped (``cancel``) and seen alive (``words``:
what remote/job_state.sh and remote/follow.sh are told to ask: docker or squeue).
"""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING

from .errors import UserError
from .remote import script

if TYPE_CHECKING:
    from .jobs import Job, Remote
    from .transport import Completed


class DockerBackend:
    """Jobs queued on the GPU box (remote/enqueue.sh) and started one at a time as named containers."""

    name = "docker"
    side_by_side = False  # the box's queue runs one job at a time
    runner_exit = "exit_code"  # the runner in the container writes the job's exit_code itself

    def __init__(self, docker: list[str]) -> None:
        self.docker = docker

    @property
    def words(self) -> list[str]:
        """job_state.sh's and follow.sh's backend arguments: the number of docker words, then the words."""
        return [str(len(self.docker)), *self.docker]

    def launch(self, cfg, **job) -> list[str]:
        from .render import docker_argv

        return docker_argv(cfg, **job)

    def project_dir(self, cfg, home: str, checkout: str) -> str:
        from .render import container_project_dir

        return container_project_dir(cfg, home, checkout)

    def enqueue(self, remote: Remote, staging: str, job: Job) -> Completed:
        """remote/enqueue.sh: into the box's queue; it answers the number of jobs ahead."""
        return remote.bash("enqueue.sh", staging, job.dir, job.paths.latest, job.container, script("queue_runner.sh"),
                           str(len(self.docker)), *job.docker)

    def ahead(self, remote: Remote, job: Job, answer: int) -> int:
        return answer

    def running_as(self, job: Job) -> str:
        return f"as container {job.container}"

    def cancel(self, remote: Remote, folder: str, container: str) -> Completed:
        """remote/cancel.sh: out of the queue, or `docker stop`."""
        return remote.bash("cancel.sh", folder, container, *self.docker)


class SlurmBackend:
    """Each job is one sbatch of remote/slurm_job.sh (remote/slurm_submit.sh); Slurm runs them side by side."""

    name = "slurm"
    side_by_side = True  # the cluster runs independent jobs at once (experiment.py submits them together)
    runner_exit = "command_exit_code"  # slurm_job.sh writes exit_code from it (or a time-out's code)
    words = ["slurm"]

    def launch(self, cfg, *, container: str, gpus: int, env: dict[str, str], log: str, runner_exit: str,
               runner: str, command: list[str], home: str, image_key: str | None = None,
               checkout: str | None = None, **_docker_only) -> list[str]:
        from .slurm import launch_argv

        return launch_argv(cfg, job_name=container, gpus=gpus, env=env, log=log, runner_exit=runner_exit,
                           runner=runner, command=command, home=home, image_key=image_key, checkout=checkout)

    def project_dir(self, cfg, home: str, checkout: str) -> str:
        from .slurm import project_dir

        return project_dir(cfg, home, checkout)

    def enqueue(self, remote: Remote, staging: str, job: Job) -> Completed:
        """remote/slurm_submit.sh: sbatch under the queue's lock and run-folder check; it answers the Slurm job id."""
        from .slurm import split_launch

        sbatch, launch = split_launch(job.docker)
        return remote.bash("slurm_submit.sh", staging, job.dir, job.paths.latest, job.container,
                           script("slurm_job.sh"), str(len(sbatch)), *sbatch, *launch)

    def ahead(self, remote: Remote, job: Job, answer: int) -> int:
        """0: Slurm, not a count of jobs ahead, says when it starts (`cosmos-tools queue` shows why it waits)."""
        remote.say(f"submitted {job.label} to Slurm as job {answer} (folder {job.dir})")
        return 0

    def running_as(self, job: Job) -> str:
        return f"as Slurm job {job.container}"

    def cancel(self, remote: Remote, folder: str, container: str) -> Completed:
        """remote/slurm_cancel.sh: scancel; "removed" while it was pending, "stopped" when it ran, "gone" if ended."""
        return remote.bash("slurm_cancel.sh", folder)


Backend = DockerBackend | SlurmBackend


def backend_of(cfg) -> Backend:
    """The backend BACKEND names (config.py checks the value)."""
    if cfg["BACKEND"] == "slurm":
        return SlurmBackend()
    return DockerBackend(docker_words(cfg))


def docker_words(cfg) -> list[str]:
    words = shlex.split(cfg["DOCKER_CMD"])
    if not words:
        raise UserError("DOCKER_CMD is empty; set it to docker or 'sudo docker' in config.sh")
    return words
