"""Exit codes of the scripts in cosmos_tools/remote/, named once (0 = done).

Each value means one thing. They stay clear of bash's own codes (1, 2, 126, 127, 128+signal), of
docker's (125-127) and of ``transport.NO_FOLDER`` (97, the working folder is missing). A test checks
that every ``exit N`` / ``sys.exit(N)`` in the scripts is named here.
"""

from __future__ import annotations

from enum import IntEnum


class ScriptExit(IntEnum):
    SETUP_FAILED = 80  # start.sh: the job folder cannot be made, or flock is missing
    LOCK_TIMEOUT = 81  # start.sh: the GPU lock stayed taken for 120 s
    DOCKER_FAILED = 82  # start.sh, job_state.sh: `docker ps` failed (its error on stderr)
    BUSY = 83  # start.sh: another cosmos-tools job runs (their names on stdout)
    LOST = 84  # follow.sh: the container is gone and wrote no exit code
    DOCKER_SILENT = 85  # follow.sh: docker has not answered for about a minute
    WRITE_FAILED = 86  # write.sh: a file could not be written
    SHORT_INPUT = 87  # write.sh: stdin ended before the announced sizes
    NOT_A_FOLDER = 88  # sync_list.py: the folder to list does not exist
    STALLED = 89  # sync_follow.py: the file being uploaded stopped growing
    RUN_EXISTS = 90  # start.sh: the run folder already exists (another client took that run id): take the next
