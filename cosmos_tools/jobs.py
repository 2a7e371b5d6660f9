"""Detached jobs on the GPU box: enqueue, follow the log, judge, list, cancel.

A job is a folder of its own (``outputs/runs/<run id>/`` for a run, ``outputs/runs/<run id>_upscaled[-k]/``
for an upscale; ``outputs/<name>`` and ``outputs/<name>_upscaled`` link to the latest) and a named
container. The runner inside the container appends everything to ``run.log`` and writes ``exit_code`` when
the command ends, so nothing about a job lives only in a connection: the client
can drop, come back and pick up from a byte offset. Jobs are not started by the client: they are enqueued
on the box (remote/enqueue.sh) and a runner there (remote/queue_runner.sh) starts each as soon as the one
before ends, with no client connected. Every remote step is one fixed bash script of
cosmos_tools/remote/ run with its data as positional parameters (never pasted into the script), and
``Remote.retrying`` is the one policy for dropped connections.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import posixpath
import secrets
import shlex
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import PurePosixPath
from typing import TypedDict

from .backend import backend_of
from .constants import GUARDRAIL_MARKERS
from .errors import Interrupted, RemoteError, UserError
from .remote import script
from .remote.account import BoxAccount
from .remote.codes import QueueCode, ScriptExit
from .remote.paths import RUN, UPSCALE, UPSCALED_SUFFIX, JobPaths, container_name, split_leaf

# The one reconnect policy (Remote.retrying): wait these seconds before each try to reconnect after a drop;
# a step is repeated after at most STEP_RETRIES drops, following one job's log after at most MAX_DROPS.
RECONNECT_DELAYS = (1, 2, 4, 8)
STEP_RETRIES = 3
MAX_DROPS = 20
GUARDRAIL = " or ".join(GUARDRAIL_MARKERS)
STOPPED_CODES = (130, 137, 143)  # ended by SIGINT, SIGKILL or SIGTERM (Ctrl-C, kill, docker stop)
STATE_FIELDS = 10  # fields per job folder in the answer of remote/job_state.sh
FACT_FIELDS = 3  # what the box says about the image, its checkout and its GPUs (scope "provenance")
QUEUE_FIELDS = 5  # fields per queue entry in the answer of remote/job_state.sh
START_TRIES = 10  # run ids tried when other clients took the proposed ones (enqueue.sh RUN_EXISTS)
STAGING_DIR = ".cosmos-tools/staging"  # a job's files are written here, then moved into its folder by enqueue.sh


class RunTaken(Exception):
    """The job folder proposed for a new job exists already on the box (enqueue.sh RUN_EXISTS)."""


def spec_bytes(spec: dict) -> bytes:
    """The exact bytes of controlnet_spec.json (its sha256 tells whether a finished job is still current)."""
    return (json.dumps(spec, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class JobState:
    """What the box knows about one job folder."""

    dir: str
    exit_code: int | None = None  # None: no exit_code file (queued, running, lost, or never started)
    finished_at: float = 0.0  # mtime of exit_code
    log_size: int = 0
    output_size: int = 0
    blocked: bool = False
    spec_sha: str = ""
    tail: list[str] = field(default_factory=list)
    running: bool = False
    updated: float = 0.0  # mtime of run.log
    target: str = ""  # the folder is a link to this (``runs/<leaf>``): a "latest" view
    queued: int | None = None  # waiting in the box's queue behind this many jobs (running included)
    slurm_end: str = ""  # a Slurm job gone without an exit code: timeout, cancelled (its batch script's marker) or
    # the state Slurm reports (NODE_FAIL, OUT_OF_MEMORY...)

    @property
    def leaf(self) -> str | None:
        """The folder under outputs/runs/ a "latest" view points at; None if it is not such a link."""
        return self.target.removeprefix("runs/") if self.target.startswith("runs/") and "/" not in \
            self.target.removeprefix("runs/") else None

    @property
    def verdict(self) -> str:
        """queued, running, absent, lost (ended without an exit code), ok, blocked, stopped (by a signal),
        cancelled (removed from the queue before it started), timed out (Slurm's time limit) or failed."""
        if self.exit_code is None and self.queued is not None:
            return "queued"
        if self.running and self.exit_code is None:
            return "running"
        if self.exit_code is None and self.slurm_end.lower() == "timeout":
            return "timed out"
        if self.exit_code is None and self.slurm_end.lower() == "cancelled":
            return "stopped"
        if self.exit_code is None:
            return "lost" if self.log_size or self.slurm_end else "absent"
        if self.exit_code == QueueCode.CANCELLED:
            return "cancelled"
        if self.exit_code == QueueCode.TIMED_OUT:
            return "timed out"
        if self.blocked:
            return "blocked"
        if self.exit_code in STOPPED_CODES:
            return "stopped"
        return "ok" if self.exit_code == 0 and self.output_size > 0 else "failed"

    def failure(self, name: str) -> str:
        """One line saying why the job did not succeed."""
        verdict = self.verdict
        if verdict == "blocked":
            return f"{name}: the guardrail blocked it ({GUARDRAIL} in {self.dir}/run.log); change the prompt"
        if verdict == "stopped":
            how = f"exit {self.exit_code}" if self.exit_code is not None else "Slurm cancelled it"
            return f"{name}: stopped by a signal ({how}): cancelled, or killed with `cosmos-tools kill`"
        if verdict == "cancelled":
            return f"{name}: cancelled: removed from the queue before it started (Ctrl-C or `cosmos-tools kill`)"
        if verdict == "lost" and self.slurm_end:
            return f"{name}: the Slurm job ended {self.slurm_end} without an exit code (see {self.dir}/run.log)"
        if verdict == "lost":
            return f"{name}: the job ended without an exit code (container killed or box restarted)"
        if verdict == "timed out":
            return (f"{name}: timed out: Slurm stopped it at its time limit (SLURM_TIME); raise SLURM_TIME and run it "
                    "again")
        if self.exit_code == QueueCode.LAUNCH_FAILED:
            return (f"{name}: the Slurm job could not start its command (SLURM_CONTAINER, SLURM_IMAGE): see "
                    f"{self.dir}/run.log")
        if self.exit_code == QueueCode.DOCKER_RUN_FAILED:
            said = [line for line in self.tail if line.strip() and not line.startswith("[cosmos-queue]")]
            cause = next((line for line in said if "error" in line.lower()), said[0] if said else "")
            return f"{name}: docker could not start the container: {cause or f'see {self.dir}/run.log'}"
        if self.exit_code == 0:
            return f"{name}: exit 0 but no {self.dir}/output.mp4 was written"
        return f"{name}: exit {self.exit_code}"


STATUS_OF_VERDICT = {"ok": "ok", "blocked": "blocked", "stopped": "cancelled", "cancelled": "cancelled"}


@dataclass(frozen=True)
class BoxFacts:
    """What the box says about the run's Docker image, its cosmos-transfer1 checkout and its GPUs."""

    image_id: str = "unknown"
    image_digests: tuple[str, ...] = ()
    code_version: str = "unknown"
    gpu_names: tuple[str, ...] = ()

    @property
    def gpu(self) -> str:
        """``<model> x <count>`` as nvidia-smi reports them (models joined with "+" if mixed), or unknown."""
        if not self.gpu_names:
            return "unknown"
        return f"{' + '.join(dict.fromkeys(self.gpu_names))} x {len(self.gpu_names)}"


def parse_facts(image: str, code: str, gpus: str) -> BoxFacts:
    """The three fact fields of remote/job_state.sh; anything a tool did not answer is ``unknown``."""
    image_id, _, digests_json = image.strip().partition(" ")
    try:
        digests = tuple(str(d) for d in json.loads(digests_json) or ())
    except ValueError:
        digests = ()
    return BoxFacts(image_id=image_id or "unknown", image_digests=digests, code_version=code.strip() or "unknown",
                    gpu_names=tuple(line.strip() for line in gpus.splitlines() if line.strip()))


@dataclass(frozen=True)
class QueueEntry:
    """One job file of the box's queue (or one Slurm job): pending (with the number of jobs ahead), running or done."""

    state: str  # pending, running or done
    number: str  # its submission number (the job file's name; Slurm: its job id, 12 digits)
    folder: str
    container: str
    ahead: int | None = None  # pending: jobs ahead of it, running ones included
    note: str = ""  # Slurm: why it is pending (squeue's reason) or its state while it runs

    @property
    def leaf(self) -> str:
        return self.folder.rsplit("/", 1)[-1]

    @property
    def run_id(self) -> str:
        return split_leaf(self.leaf)[2]


@dataclass
class Box:
    """One look at the box: the remote user, the running cosmos-tools containers, the queue, some job folders."""

    account: BoxAccount
    running: list[str]
    jobs: dict[str, JobState]
    facts: BoxFacts | None = None  # read only when asked (``Remote.probe(..., image=...)``)
    queue: list[QueueEntry] = field(default_factory=list)  # running, then pending in order, then done (newest last)

    def waiting(self) -> list[QueueEntry]:
        """The queue's running and pending jobs, in the order they run."""
        return [e for e in self.queue if e.state != "done"]


def parse_queue(fields: list[str]) -> list[QueueEntry] | None:
    """The queue block of remote/job_state.sh (state, number, folder, container, note per job); None if malformed."""
    if len(fields) % QUEUE_FIELDS:
        return None
    latest = {}  # a job read twice while it moved: the later state counts
    for i in range(0, len(fields), QUEUE_FIELDS):
        state, number, folder, container, note = fields[i:i + QUEUE_FIELDS]
        latest[number] = QueueEntry(state, number, folder, container, note=note)
    order = {"running": 0, "pending": 1, "done": 2}
    entries = sorted(latest.values(), key=lambda e: (order.get(e.state, 3), e.number))
    running = sum(e.state == "running" for e in entries)
    pending = [e for e in entries if e.state == "pending"]
    ahead = {e.number: running + i for i, e in enumerate(pending)}
    return [QueueEntry(e.state, e.number, e.folder, e.container, ahead.get(e.number), e.note) for e in entries]


def parse_box(stdout: bytes, facts: bool = False) -> Box | None:
    """The answer of remote/job_state.sh (``facts``: scope provenance); None if it is not one.

    Job folders that wait or run in the queue are marked (``JobState.queued``, ``running``), also through a
    "latest" link pointing at them.
    """
    fields = [f.decode("utf-8", "replace") for f in stdout.split(b"\0")[:-1]]
    if len(fields) < 5 or not fields[4].isdigit():
        return None
    uid, gid, home, names = fields[:4]
    end = 5 + QUEUE_FIELDS * int(fields[4])
    queue = parse_queue(fields[5:end])
    head = end + (FACT_FIELDS if facts else 0)
    if queue is None or len(fields) < head or (len(fields) - head) % STATE_FIELDS:
        return None
    jobs = {}
    try:
        for i in range(head, len(fields), STATE_FIELDS):
            d, code, when, log, logged, out, blocked, sha, tail, target = fields[i:i + STATE_FIELDS]
            jobs[d] = JobState(dir=d, exit_code=_int_or_none(code), finished_at=float(when or 0),
                               log_size=int(log or 0), output_size=int(out or 0), blocked=blocked == "1",
                               spec_sha=sha, tail=tail.splitlines(), updated=float(logged or 0), target=target)
    except ValueError:
        return None
    waiting = {e.folder: e for e in queue if e.state != "done"}
    ended = {e.folder: e.note for e in queue if e.state == "done" and e.note}  # Slurm: how a lost job ended
    for state in jobs.values():  # a "latest" link (outputs/<name>, outputs/batches/<name>) names runs/<leaf> beside it
        folder = posixpath.join(posixpath.dirname(state.dir), "runs", state.leaf) if state.leaf is not None else \
            state.dir
        entry = waiting.get(folder)
        if entry is not None and state.exit_code is None:
            state.queued, state.running = entry.ahead, entry.state == "running"
        if entry is None and state.exit_code is None:
            state.slurm_end = ended.get(folder, "")
    return Box(account=BoxAccount(uid=uid, gid=gid, home=home), running=[n for n in names.splitlines() if n],
               jobs=jobs, facts=parse_facts(*fields[end:head]) if facts else None, queue=queue)


def _say(msg: str) -> None:
    print(f"cosmos-tools: {msg}", file=sys.stderr, flush=True)


class Remote:
    """A connection to the box that owns the reconnect policy (``retrying``); counts connections."""

    def __init__(self, cfg, transport=None, *, say: Callable[[str], None] | None = None) -> None:
        from .transport import connect

        self.cfg = cfg
        self.backend = backend_of(cfg)  # docker (the box's queue) or slurm (sbatch): backend.py
        self.say = say or _say
        self.t = transport or connect(cfg)
        self.connections = 1

    def close(self) -> None:
        self.t.close()

    def retrying(self, what: str, step, *, drops: int = STEP_RETRIES, retry_on: type[Exception] | None = None,
                 then: str = ""):
        """Run ``step``; after a dropped connection reconnect (backing off) and run it again.

        Steps must be safe to repeat. At most ``drops`` reconnections; after that, or when the box stays
        away, RemoteError ending with ``then`` (what the user can do next). ``retry_on`` widens what
        counts as a drop (default ConnectionLost).
        """
        from .transport import ConnectionLost

        dropped = retry_on or ConnectionLost
        for drop in range(drops + 1):
            try:
                return step()
            except dropped as exc:
                if drop == drops:
                    raise RemoteError(f"{what}: the connection dropped {drops + 1} times ({exc}){then}") from None
                self._reconnect(f"{what}: {exc}", then)
        raise AssertionError("unreachable")

    def _reconnect(self, why: str, then: str) -> None:
        from .transport import connect

        with contextlib.suppress(Exception):  # paramiko's state after a drop or an interrupt is anyone's guess
            self.t.close()
        last = why
        for delay in RECONNECT_DELAYS:
            self.say(f"connection lost; reconnecting in {delay} s")
            time.sleep(delay)
            try:
                self.t = connect(self.cfg)
            except RemoteError as exc:
                last = str(exc)
                continue
            self.connections += 1
            return
        raise RemoteError(f"lost the connection to the GPU box and could not reconnect ({last}){then}")

    def bash(self, name: str, *args: str, input: bytes | None = None, check: bool = False):
        """Run the packaged script ``name`` (remote/<name>) with ``args`` as its positional parameters."""
        return self.t.run(["bash", "-c", script(name), f"cosmos-{name.removesuffix('.sh')}", *args], input=input,
                          check=check)

    def probe(self, dirs: list[str] | None, image: str | None = None) -> Box:
        """The remote user, running containers and job folders (``dirs``; None: every one), in one round trip.

        With ``image`` (DOCKER_IMAGE) also the facts a run's provenance needs (``Box.facts``).
        """
        scope, folders = ("all", []) if dirs is None else ("named", dirs)
        if image is not None:
            scope, folders = "provenance", [image, *folders]
        done = self.bash("job_state.sh", scope, *self.backend.words, *folders)
        if done.rc != 0:
            raise _docker_error(done, self.t.describe())
        box = parse_box(done.stdout, facts=image is not None)
        if box is None or (dirs is not None and list(box.jobs) != list(dict.fromkeys(dirs))):
            raise RemoteError(f"unexpected answer from {self.t.describe()} when reading job state; is bash there?")
        return box

    def write_files(self, folder: str, files: dict[str, bytes]) -> None:
        """Write text files (no NUL bytes) into ``folder`` on the box, each atomically; one round trip."""
        if any(b"\0" in data for data in files.values()):
            raise ValueError("write_files carries text only (no NUL bytes)")
        args = [word for name, data in files.items() for word in (name, str(len(data)))]
        done = self.bash("write.sh", folder, *args, input=b"".join(files.values()))
        if done.rc != 0:
            raise RemoteError(f"could not write {', '.join(files)} into {folder} on {self.t.describe()} "
                              f"(exit {done.rc}): {_last_line(done)}")

    def enqueue(self, staging: str, job: Job) -> int:
        """Put the job in the box's queue (a runner starts it when the jobs ahead have ended), or submit it to Slurm;
        the jobs ahead.

        ``staging`` holds the job's files; the backend's script moves it to the job's folder and points the "latest"
        link there, under the queue lock. RunTaken if that folder exists already.
        """
        done = self.backend.enqueue(self, staging, job)
        if done.rc == ScriptExit.RUN_EXISTS:
            raise RunTaken(job.dir)
        answer = done.stdout.decode("utf-8", "replace").strip()
        if done.rc != 0 or not answer.isdigit():
            raise RemoteError(f"queueing {job.label} on {self.t.describe()} failed (exit {done.rc}): "
                              f"{_last_line(done)}")
        return self.backend.ahead(self, job, int(answer))

    def cancel(self, folder: str, container: str) -> str:
        """Remove a queued job from the queue ("removed") or stop its container or Slurm job ("stopped"; "gone" if
        none ran)."""
        done = self.backend.cancel(self, folder, container)
        answer = done.stdout.decode("utf-8", "replace").strip()
        if done.rc != 0 or answer not in ("removed", "stopped", "gone"):
            raise RemoteError(f"cancelling {folder} on {self.t.describe()} failed (exit {done.rc}): {_last_line(done)}")
        return answer

    def migrate(self, name: str) -> list[tuple[str, str]]:
        """Move the real folders the version before run ids left at outputs/<name>[_upscaled] to
        outputs/runs/<name>-0[_upscaled] (links left in their place); the (from, to) pairs moved."""
        done = self.bash("migrate.sh", name)
        if done.rc != 0:
            raise RemoteError(f"could not move the old results of {name!r} into outputs/runs/ on "
                              f"{self.t.describe()} (exit {done.rc}): {_last_line(done)}")
        fields = [f.decode("utf-8", "replace") for f in done.stdout.split(b"\0")[:-1]]
        return list(zip(fields[::2], fields[1::2], strict=True))


def _int_or_none(text: str) -> int | None:
    try:
        return int(text.strip())
    except ValueError:
        return None


def _last_line(done) -> str:
    lines = done.stderr.decode("utf-8", "replace").strip().splitlines()
    return lines[-1] if lines else "no error output"


def _docker_error(done, where: str) -> RemoteError:
    if done.rc == ScriptExit.DOCKER_FAILED:
        detail = done.stderr.decode("utf-8", "replace").strip().replace("docker ps failed: ", "", 1)
        detail = " | ".join(detail.splitlines()[-2:]) or "no error output"
        return RemoteError(f"docker does not answer on {where} ({detail}); check DOCKER_CMD in config.sh "
                           "(e.g. 'sudo docker') and that Docker runs there")
    if done.rc == ScriptExit.SLURM_FAILED:
        detail = done.stderr.decode("utf-8", "replace").strip().replace("squeue failed: ", "", 1)
        detail = " | ".join(detail.splitlines()[-2:]) or "no error output"
        return RemoteError(f"Slurm does not answer on {where} ({detail}); with BACKEND=slurm, REMOTE_HOST must be a "
                           "login node where squeue and sbatch work")
    if done.rc == 127:
        return RemoteError(f"bash is not installed on {where}; the GPU box needs bash")
    return RemoteError(f"reading job state on {where} failed (exit {done.rc}): {_last_line(done)}")


@dataclass
class Job:
    """One job to run or follow: where it lives and, to start it, its docker argv and files."""

    paths: JobPaths
    docker: list[str] = field(default_factory=list)
    files: dict[str, bytes] = field(default_factory=dict)  # written into the folder before the start
    spec_sha: str = ""

    @property
    def run_id(self) -> str:
        """The run this job is (a run) or upscales (an upscale); "" for a folder of the version before run ids."""
        if not self.dir.startswith("outputs/runs/"):
            return ""
        return split_leaf(self.paths.leaf)[2]

    @property
    def name(self) -> str:
        return self.paths.name

    @property
    def kind(self) -> str:
        return self.paths.kind

    @property
    def dir(self) -> str:
        return self.paths.folder

    @property
    def container(self) -> str:
        return self.paths.container

    @property
    def label(self) -> str:
        """``<run id>`` or ``<run id> (upscale)``; the prompt name for a job known by name only."""
        who = self.run_id or self.name
        return who if self.kind == RUN else f"{who} (upscale)"


def plain_job(name: str, kind: str) -> Job:
    """A job known by name only (for attach/kill): the prompt's "latest" view and its container."""
    return Job(JobPaths.of(name, kind))


def current_job(name: str, kind: str, state: JobState) -> Job:
    """The job a "latest" view (``state``, as probed) points at: its own folder under outputs/runs/."""
    return Job(JobPaths.of(name, kind, state.leaf))


def job_from_rendered(rendered, prompt_text: bytes | None, provenance: dict | None = None) -> Job:
    """The job for a rendered run or upscale: controlnet_spec.json, spec_used.json, prompt_spec.json and
    provenance.json (its ``spec_sha256`` filled in here)."""
    spec = spec_bytes(rendered.spec)
    files = {"controlnet_spec.json": spec,
             "spec_used.json": (json.dumps(rendered.spec_used(), indent=2, ensure_ascii=False) + "\n").encode()}
    if prompt_text is not None:
        files["prompt_spec.json"] = prompt_text
    if provenance is not None:
        provenance = {**provenance, "spec_sha256": _sha(spec)}
        files["provenance.json"] = (json.dumps(provenance, indent=2, ensure_ascii=False) + "\n").encode()
    return Job(JobPaths.of(rendered.name, rendered.kind, PurePosixPath(rendered.output_dir).name),
               docker=list(rendered.docker), files=files, spec_sha=_sha(spec))


class _FollowPosition(TypedDict):
    """Where ``Runner.follow`` is in a job's log."""

    offset: int  # bytes of the log printed so far
    header: bytes | None  # the offset line read so far; None once it is complete
    queued: bool  # no log byte seen yet of a job that was queued


class JobRow(TypedDict):
    """One job folder on the box, as ``job_rows`` lists it."""

    job: str
    run: str
    run_id: str
    kind: str
    state: str
    exit_code: int | None
    updated: str
    output_size: int
    batch: str  # a batch job: its name ("" for a run or upscale)
    variants: list[str]  # a batch job: the run ids of its lines

@dataclass
class Outcome:
    """How a job ended, from the client's point of view."""

    status: str  # ok, failed, blocked, cancelled, detached, running
    state: JobState
    job: Job  # the job that ran, runs or was found (its own folder, its run id)
    reused: bool = False  # already finished before this command: nothing was run
    seconds: float = 0.0
    message: str = ""
    box: Box | None = None  # the box as seen when the job ended (job folders of ``Runner.watch``)


class Runner:
    """Start or re-attach to jobs and follow them to the end, printing the live log."""

    def __init__(self, remote: Remote, *, echo: Callable[[bytes], None] | None = None,
                 say: Callable[[str], None] | None = None) -> None:
        self.remote = remote
        self.watch: list[str] = []  # job folders to read again when a job ends (besides its own)
        self.echo = echo or _echo_stdout
        self.say = say or remote.say
        self.detach_hint = True  # say how to follow a detached job (False: the caller follows it itself)

    def ensure(self, name: str, kind: str, box: Box, new_job: Callable[[int], Job], *, first: int,
               detach: bool = False, force: bool = False) -> Outcome:
        """Make sure the latest ``kind`` job of prompt ``name`` is current: re-attach to it if it runs or waits in
        the box's queue, keep it if it finished ok with the spec ``new_job`` renders (unless ``force``), else
        enqueue a new one.

        ``new_job(k)`` renders the job in its ``k``-th folder (run id ``<name>-<k>``, or upscale ``k``); the
        new job takes ``first`` and, when another client took that folder, the next ones.
        """
        view = JobPaths.of(name, kind)
        state = box.jobs[view.folder]
        current = current_job(name, kind, state)
        if view.container in box.running:
            state.running = True
        if state.verdict in ("running", "queued"):
            where = "running" if state.verdict == "running" else f"queued behind {_jobs(state.queued or 0)}"
            if detach:
                self.say(f"{current.label} is already {where} on the box; follow it with "
                         f"`cosmos-tools attach {shlex.quote(name)}`")
                return Outcome("running", state, job=current, box=box)
            self.say(f"{current.label} is already {where} on the box; re-attaching to its log")
            return self.follow(current, offset=-20, queued=state.verdict == "queued")
        job = new_job(first)
        if state.verdict == "ok" and state.spec_sha == job.spec_sha and not force:
            self.say(f"{current.label} already finished ok on the box with the same spec; not running it again")
            return Outcome("ok", state, job=current, reused=True, box=box)
        for k in range(first, first + START_TRIES):
            if k != first:
                job = new_job(k)
            try:
                return self.start(job, detach=detach)
            except RunTaken:
                continue
        raise RemoteError(f"could not start {name!r}: {START_TRIES} run folders in a row were taken on the box by "
                          "other clients; try again")

    def start(self, job: Job, *, detach: bool) -> Outcome:
        """Enqueue ``job`` in its own folder (RunTaken if that folder exists), then follow it unless ``detach``."""
        remote = self.remote
        staging = f"{STAGING_DIR}/{secrets.token_hex(8)}"
        remote.write_files(staging, job.files)
        with deferred_sigint() as pending:  # an enqueue cut in half would leave an unknown job behind
            try:
                ahead = remote.enqueue(staging, job)
            except RunTaken:
                if pending:
                    raise Interrupted(f"interrupted before {job.label} was queued") from None
                raise
        if pending:
            raise self.interrupt(job)
        try:
            if ahead:
                self.say(f"{job.label} queued behind {_jobs(ahead)} on the box (container {job.container}, "
                         f"folder {job.dir})")
            elif detach and self.detach_hint:  # the box's runner starts it at once; a follower says when its log begins
                self.say(f"started {job.label} {self.remote.backend.running_as(job)} in {job.dir}")
            if detach and not self.detach_hint:
                return Outcome("detached", JobState(dir=job.dir, running=not ahead, queued=ahead or None), job=job)
            if detach:
                self.say(f"detached: follow it with `cosmos-tools attach {shlex.quote(job.name)}`, "
                         f"stop it with `cosmos-tools kill {shlex.quote(job.run_id or job.name)}`")
                return Outcome("detached", JobState(dir=job.dir, running=not ahead, queued=ahead or None), job=job)
        except KeyboardInterrupt:
            raise self.interrupt(job) from None
        return self.follow(job, offset=0, queued=True)

    def follow(self, job: Job, offset: int, *, queued: bool = False) -> Outcome:
        """Print the log from ``offset`` until the job ends (reconnecting after drops), then judge it.

        ``queued``: the job was queued (maybe still waiting); its first log bytes mean it has started (said once).
        """
        remote = self.remote
        started = time.monotonic()
        position: _FollowPosition = {"offset": offset, "header": b"", "queued": queued}

        def on_output(data: bytes) -> None:
            if position["header"] is not None:  # the script's first line: the offset it starts from
                head, newline, data = (position["header"] + data).partition(b"\n")
                if not newline:
                    position["header"] = head
                    return
                position["offset"], position["header"] = int(head or 0), None
            position["offset"] += len(data)
            if data and position["queued"]:
                position["queued"] = False
                self.say(f"started {job.label} {self.remote.backend.running_as(job)} in {job.dir}")
            if data:
                self.echo(data)

        def stream() -> int:
            start_at, position["header"] = position["offset"], b""
            try:
                return remote.t.stream(["bash", "-c", script("follow.sh"), "cosmos-follow", job.paths.log,
                                        job.paths.exit_code, str(start_at), job.container, *remote.backend.words],
                                       on_output=on_output)
            except BaseException:
                if position["header"] is not None:  # the offset line never arrived: ask for the same start
                    position["offset"] = start_at
                raise

        then = f"; the job keeps running on the box: re-attach with `cosmos-tools attach {shlex.quote(job.name)}`"
        try:
            rc = remote.retrying(f"following {job.label}", stream, drops=MAX_DROPS, then=then)
        except KeyboardInterrupt:
            raise self.interrupt(job) from None
        if rc == ScriptExit.DOCKER_SILENT:
            raise RemoteError(f"{remote.backend.name} on {remote.t.describe()} stopped answering while {job.label} "
                              f"ran; it may still be running: check with `cosmos-tools status`, re-attach with "
                              f"`cosmos-tools attach {shlex.quote(job.name)}`")
        box = remote.retrying(f"reading the state of {job.label}",
                              lambda: remote.probe(list(dict.fromkeys([job.dir, *self.watch]))), drops=MAX_DROPS,
                              then=then)
        state = box.jobs[job.dir]
        if rc == ScriptExit.LOST and state.exit_code is None:
            state.running = False
        status = STATUS_OF_VERDICT.get(state.verdict, "failed")
        return Outcome(status, state, job=job, seconds=time.monotonic() - started,
                       message="" if status == "ok" else state.failure(job.label), box=box)

    def interrupt(self, job: Job) -> Interrupted:
        """Ctrl-C: remove the job from the box's queue, or stop it if it runs (a second Ctrl-C gives up); the
        error to raise.

        A Ctrl-C can land in the middle of paramiko and break the connection, so a failed cancel is
        tried once more over a new one.
        """
        self.say(f"Ctrl-C: stopping {job.label} on the box (Ctrl-C again to leave it running)")
        hint = f"stop it with `cosmos-tools kill {shlex.quote(job.run_id or job.name)}`"
        try:
            done = self.remote.retrying(f"stopping {job.label}", lambda: self.remote.cancel(job.dir, job.container),
                                        drops=1, retry_on=Exception)
        except KeyboardInterrupt:
            return Interrupted(f"interrupted: left {job.label} on the box; {hint}")
        except RemoteError as exc:
            return Interrupted(f"interrupted: could not stop {job.label} ({exc}); {hint}")
        return Interrupted({"removed": f"interrupted: removed {job.label} from the queue on the box",
                            "stopped": f"interrupted: stopped {job.label} on the box"}.get(
                                done, f"interrupted: {job.label} was not running on the box"))


@contextlib.contextmanager
def deferred_sigint():
    """Hold Ctrl-C during the block; the yielded list is non-empty afterwards if one came."""
    pending: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield pending
        return
    from .transport import take_held_interrupt

    if take_held_interrupt():  # a Ctrl-C that transport.paramiko_safe_sigint still holds
        pending.append(1)
    previous = signal.signal(signal.SIGINT, lambda *_: pending.append(1))
    try:
        yield pending
    finally:
        signal.signal(signal.SIGINT, previous)


def _jobs(n: int) -> str:
    return f"{n} job" if n == 1 else f"{n} jobs"


def _echo_stdout(data: bytes) -> None:
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


def report_failure(outcome: Outcome, say: Callable[[str], None]) -> None:
    """The failure line and the last lines of the job's log, on stderr."""
    say(f"FAILED {outcome.message}")
    if outcome.state.tail:
        print(f"--- last {len(outcome.state.tail)} lines of {outcome.state.dir}/run.log ---", file=sys.stderr)
        for line in outcome.state.tail:
            print(line, file=sys.stderr)
        print("---", file=sys.stderr)


def attach(remote: Remote, name: str, runner: Runner | None = None) -> Outcome:
    """Follow the running or queued job of ``name`` (upscale or run) to its end; if none, judge the latest one."""
    from .names import check_run_name

    check_run_name(name)
    jobs = {kind: plain_job(name, kind) for kind in (RUN, UPSCALE)}
    box = remote.probe([job.dir for job in jobs.values()])
    runner = runner or Runner(remote)
    for kind, view in jobs.items():
        state = box.jobs[view.dir]
        if view.container in box.running or state.verdict in ("running", "queued"):
            job = current_job(name, kind, state)
            queued = state.verdict == "queued"
            runner.say(f"attached to {job.label}" + (f" (queued behind {_jobs(state.queued or 0)})" if queued else ""))
            return runner.follow(job, offset=-20, queued=queued)
    live = _live_batch(remote, box, name)
    if live is not None:
        return _attach_batch(remote, runner, name, *live)
    known = [(box.jobs[view.dir].finished_at, kind) for kind, view in jobs.items()
             if box.jobs[view.dir].verdict != "absent"]
    if not known:
        raise UserError(f"no job named {name!r} on the GPU box; `cosmos-tools status` lists the jobs")
    kind = max(known, key=lambda pair: (pair[0], pair[1] == UPSCALE))[1]
    state = box.jobs[jobs[kind].dir]
    job = current_job(name, kind, state)
    runner.say(f"{job.label} is not running; it ended {state.verdict}")
    if state.verdict == "ok":
        for line in state.tail:
            runner.echo((line + "\n").encode())
        return Outcome("ok", state, job=job, reused=True)
    status = STATUS_OF_VERDICT.get(state.verdict, "failed")
    return Outcome(status, state, job=job, reused=True, message=state.failure(job.label))


def _live_batch(remote: Remote, box: Box, name: str) -> tuple[QueueEntry, dict | None] | None:
    """The batch queued or running on the box that is ``name`` (a batch name), or that has a line of prompt ``name``
    (that line's item of items.json); None if there is none."""
    from .batch import is_batch_folder, read_items

    entries = [e for e in box.waiting() if is_batch_folder(e.folder)]
    for entry in entries:
        if split_leaf(entry.leaf)[0] == name or entry.leaf == name:
            return entry, None
    latest = JobPaths.of(name, RUN).latest
    for entry, items in zip(entries, read_items(remote, [e.folder for e in entries]).values(), strict=True):
        item = next((i for i in items if i["latest"] == latest), None)
        if item is not None:
            return entry, item
    return None


def _attach_batch(remote: Remote, runner: Runner, name: str, entry: QueueEntry, item: dict | None) -> Outcome:
    """Follow a live batch to its end: the batch ``name`` itself, or the batch that has ``item``, the line of prompt
    ``name`` (then the outcome is that line's run, as the batch mapped it)."""
    from .batch import BatchPaths

    job = Job(BatchPaths.of_batch(split_leaf(entry.leaf)[0], entry.leaf))
    queued = entry.state == "pending"
    where = f"queued behind {_jobs(entry.ahead or 0)}" if queued else "running"
    if item is None:
        runner.say(f"attached to batch {job.name} ({job.dir}, {where})")
    else:
        runner.say(f"{name} is a line of batch {job.name} ({job.dir}, {where}); following the batch's log")
    outcome = runner.follow(job, offset=-20, queued=queued)
    if item is None:
        ok = outcome.state.exit_code == 0  # a batch writes no output.mp4 of its own: its lines have them
        return replace(outcome, status="ok", message="") if ok else outcome
    run = Job(JobPaths.of(name, RUN, item["dir"].rsplit("/", 1)[-1]))
    state = remote.probe([run.dir]).jobs[run.dir]
    if state.verdict == "absent":
        return Outcome("failed", state, job=run, message=f"{run.label}: its batch ended before this line ran (after "
                                                             "a blocked line the experiment queues it again: re-run "
                                                             "the experiment)")
    status = STATUS_OF_VERDICT.get(state.verdict, "failed")
    return Outcome(status, state, job=run, message="" if status == "ok" else state.failure(run.label))


def kill(remote: Remote, target: str) -> list[str]:
    """Remove from the queue, or stop, the jobs of ``target``: a run id (that run and its upscales) or a prompt
    name (its run and upscale); one line per job ("removed ... from the queue", "stopped ...")."""
    from .names import check_run_name

    check_run_name(target)
    box = remote.probe([])
    containers = {container_name(target, RUN), container_name(target, UPSCALE)}
    done = []
    for entry in box.waiting():
        if entry.container in containers or target in (entry.run_id, entry.leaf):
            answer = remote.cancel(entry.folder, entry.container)
            if answer == "removed":
                done.append(f"removed {entry.leaf} from the queue")
            elif answer == "stopped":
                done.append(f"stopped {entry.container} ({entry.leaf})")
    queued = {e.container for e in box.waiting()}
    for container in sorted(containers & set(box.running) - queued):  # a job started before the queue existed
        if remote.cancel("", container) == "stopped":
            done.append(f"stopped {container}")
    if not done:
        raise UserError(f"no job named {target!r} is running or queued on the GPU box; `cosmos-tools queue` lists "
                        "them")
    return done


def job_rows(remote: Remote) -> list[JobRow]:
    """Every job folder on the box with its state (running, ok, blocked, failed, lost), newest first.

    Folders under outputs/runs/ are named by their run id; a running container is the job its prompt's
    "latest" link points at. Real folders of the version before run ids (outputs/<name>) are listed as they are.
    """
    box = remote.probe(None)
    links = {}  # job folder -> (prompt name, kind), from the "latest" links
    for state in box.jobs.values():
        if state.target and state.leaf is not None:
            view = state.dir.removeprefix("outputs/")
            kind = UPSCALE if view.endswith(UPSCALED_SUFFIX) and len(view) > len(UPSCALED_SUFFIX) else RUN
            links[f"outputs/runs/{state.leaf}"] = (view[:-len(UPSCALED_SUFFIX)] if kind == UPSCALE else view, kind)
    seen = set()
    out: list[JobRow] = []
    for state in box.jobs.values():
        if state.target:
            continue
        if state.dir.startswith("outputs/runs/"):
            name, kind, run_id = split_leaf(state.dir.removeprefix("outputs/runs/"))
            name, kind = links.get(state.dir, (name, kind))
            if links.get(state.dir) and container_name(name, kind) in box.running:
                state.running = True
                seen.add(container_name(name, kind))
        else:
            name, kind, run_id = _legacy_row(state, box, seen)
        out.append({"job": state.dir, "run": name, "run_id": run_id, "kind": kind, "state": state.verdict,
                    "exit_code": state.exit_code, "updated": _iso(state.updated),
                    "output_size": state.output_size, "batch": "", "variants": []})
    for folder, (state, variants) in _batches(remote, box.queue).items():
        entry = next(e for e in box.queue if e.folder == folder)
        live = {"pending": "queued", "running": "running"}.get(entry.state) if state.exit_code is None else None
        seen.add(entry.container)
        out.append({"job": folder, "run": split_leaf(entry.leaf)[0], "run_id": entry.leaf, "kind": BATCH,
                    "state": live or _verdict(state, variants), "exit_code": state.exit_code,
                    "updated": _iso(state.updated), "output_size": 0, "batch": split_leaf(entry.leaf)[0],
                    "variants": variants})
    listed = {row["job"] for row in out}
    for entry in box.waiting():
        if entry.folder not in listed:  # queued (no log yet), or just handed to docker
            name, kind, run_id = split_leaf(entry.leaf)
            seen.add(entry.container)
            out.append({"job": entry.folder, "run": name, "run_id": run_id, "kind": kind,
                        "state": "queued" if entry.state == "pending" else "running", "exit_code": None,
                        "updated": "", "output_size": 0, "batch": "", "variants": []})
    for container in box.running:
        if container not in seen:
            out.append({"job": container, "run": "", "run_id": "", "kind": "", "state": "running", "exit_code": None,
                        "updated": "", "output_size": 0, "batch": "", "variants": []})
    out.sort(key=lambda r: r["updated"], reverse=True)
    out.sort(key=lambda r: {"running": 0, "queued": 1}.get(r["state"], 2))
    return out


def queue_rows(remote: Remote) -> list[dict]:
    """The box's queue: the running job, the queued ones (``position``: the jobs ahead, the running one included,
    as in "queued behind N jobs") and the last finished ones (newest first), with run ids and states. With
    BACKEND=slurm, ``number`` is the Slurm job id and ``note`` why a job waits (squeue's reason)."""
    box = remote.probe(None)
    entries = [*box.waiting(), *reversed([e for e in box.queue if e.state == "done"])]
    batches = _batches(remote, entries)
    rows = []
    for entry in entries:
        name, kind, run_id = split_leaf(entry.leaf)
        state, variants = batches.get(entry.folder) or (box.jobs.get(entry.folder) or JobState(dir=entry.folder), None)
        verdict = {"pending": "queued", "running": "running"}.get(entry.state, _verdict(state, variants))
        rows.append({"job": entry.folder, "run": name, "run_id": run_id, "kind": kind if variants is None else BATCH,
                     "state": verdict, "position": entry.ahead, "exit_code": state.exit_code,
                     "container": entry.container, "number": int(entry.number), "updated": _iso(state.updated),
                     "note": entry.note, "batch": name if variants is not None else "", "variants": variants or []})
    return rows


BATCH = "batch"  # the kind of a batch job in status and queue rows


def _batches(remote: Remote, entries: list[QueueEntry]) -> dict[str, tuple[JobState, list[str]]]:
    """The batch jobs among queue ``entries``: their folder's state and their lines' run ids (two round trips, none
    without batches)."""
    from .batch import is_batch_folder, read_items

    folders = list(dict.fromkeys(e.folder for e in entries if is_batch_folder(e.folder)))
    if not folders:
        return {}
    states = remote.probe(folders).jobs
    return {folder: (states[folder], [split_leaf(i["dir"].rsplit("/", 1)[-1])[2] for i in items])
            for folder, items in read_items(remote, folders).items()}


def _verdict(state: JobState, variants: list[str] | None) -> str:
    """A job folder's verdict; a batch's is ok when it exited 0 (its lines have the outputs)."""
    return "ok" if variants is not None and state.exit_code == 0 else state.verdict


def _legacy_row(state: JobState, box: Box, seen: set) -> tuple[str, str, str]:
    """(name, kind, run id "") of a real folder outputs/<name>[_upscaled] left by the version before run ids."""
    folder = state.dir.removeprefix("outputs/")
    candidates = [(folder, RUN)]
    if folder.endswith(UPSCALED_SUFFIX) and len(folder) > len(UPSCALED_SUFFIX):
        candidates.insert(0, (folder[:-len(UPSCALED_SUFFIX)], UPSCALE))
    name, kind = candidates[-1]
    for cand_name, cand_kind in candidates:
        if container_name(cand_name, cand_kind) in box.running:
            name, kind, state.running = cand_name, cand_kind, True
            seen.add(container_name(cand_name, cand_kind))
    if kind == RUN and len(candidates) == 2 and not state.running:
        name, kind = candidates[0]  # a *_upscaled folder is an upscale unless a run of that name is live
    return name, kind, ""


def _iso(epoch: float) -> str:
    """A file time as UTC ``YYYY-MM-DDTHH:MM:SSZ`` ("" if unknown)."""
    from datetime import datetime, timezone

    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") if epoch else ""
