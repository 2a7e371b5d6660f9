"""Exit codes of the scripts in cosmos_tools/remote/ and the codes the queue (or Slurm batch script) writes for a job,
named once.

Each value means one thing. They stay clear of bash's own codes (1, 2, 126, 127, 128+signal), of
docker's (125-127) and of ``transport.NO_FOLDER`` (97, the working folder is missing). A test checks
that every ``exit N`` / ``sys.exit(N)`` in the scripts is named here.
"""

from __future__ import annotations

from enum import IntEnum


class ScriptExit(IntEnum):
    SETUP_FAILED = 80  # enqueue.sh, migrate.sh, slurm_*.sh: the job folder cannot be made, a tool is missing, sbatch
    # refused the job, or the batch script cannot read its job file
    LOCK_TIMEOUT = 81  # enqueue.sh, migrate.sh, cancel.sh: the queue lock stayed taken for 120 s
    DOCKER_FAILED = 82  # job_state.sh: `docker ps` failed (its error on stderr)
    SLURM_FAILED = 83  # job_state.sh, slurm_cancel.sh (BACKEND=slurm): `squeue` failed (its error on stderr)
    LOST = 84  # follow.sh: the container is gone and wrote no exit code
    DOCKER_SILENT = 85  # follow.sh: docker has not answered for about a minute
    WRITE_FAILED = 86  # write.sh: a file could not be written
    SHORT_INPUT = 87  # write.sh: stdin ended before the announced sizes
    NOT_A_FOLDER = 88  # sync_list.py: the folder to list does not exist
    STALLED = 89  # sync_follow.py: the file being uploaded stopped growing
    RUN_EXISTS = 90  # enqueue.sh: the run folder already exists (another client took that run id): take the next


class QueueCode(IntEnum):
    """What the queue or the Slurm batch script writes into a job's ``exit_code`` instead of the command's code."""

    DOCKER_RUN_FAILED = 91  # queue_runner.sh: `docker run` refused the job (its first lines are in run.log)
    CANCELLED = 92  # cancel.sh, slurm_cancel.sh: removed from the queue before it started (Ctrl-C or `kill`)
    LAUNCH_FAILED = 93  # slurm_job.sh: the launcher (srun, apptainer) failed before the command ran (see run.log)
    TIMED_OUT = 94  # slurm_job.sh: Slurm stopped the job at its time limit (SLURM_TIME)
