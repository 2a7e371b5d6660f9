"""Detached jobs on the GPU box: start, follow the log, judge, list, stop.

A job is a folder (``outputs/<name>/`` for a run, ``outputs/<name>_upscaled/`` for an upscale) and a
named container. The runner inside the container appends everything to ``run.log`` and writes
``exit_code`` when the command ends, so nothing about a job lives only in a connection: the client
can drop, come back and pick up from a byte offset. Every remote step is one fixed bash script run
with its data as positional parameters (never pasted into the script).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shlex
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .errors import RemoteError, UserError

RUN, UPSCALE = "run", "up"
LOCK_FILE = ".cosmos-tools/gpu.lock"
TAIL_LINES = 15
BUSY, LOST, DOCKER_SILENT = 75, 4, 6  # exit codes of the start and follow scripts
RECONNECT_DELAYS = (1, 2, 4, 8)
MAX_DROPS = 20  # reconnections while following one job before giving up
WAIT_POLL_SECONDS = 2.0
GUARDRAIL = "GUARDRAIL BLOCKED"
STOPPED_CODES = (130, 137, 143)  # ended by SIGINT, SIGKILL or SIGTERM (Ctrl-C, kill, docker stop)

# $1 = number of docker words, then the docker words, then job folders. Prints, NUL-separated:
# uid, gid, home, the names of running cosmos-tools containers (one per line), then 8 fields per folder.
PROBE_SCRIPT = r"""
nd=$1; shift
docker=("${@:1:nd}"); shift "$nd"
printf '%s\0' "$(id -u)" "$(id -g)" "$HOME"
if ! names=$("${docker[@]}" ps --filter label=cosmos-tools.run --format '{{.Names}}' 2>&1 </dev/null); then
  printf 'docker ps failed: %s\n' "$names" >&2; exit 97
fi
printf '%s\0' "$names"
for d; do
  code='' when='' log=0 out=0 blocked=0 sha='' tail=''
  if [ -f "$d/exit_code" ]; then code=$(head -c 32 "$d/exit_code"); when=$(stat -c %Y "$d/exit_code"); fi
  if [ -f "$d/run.log" ]; then
    log=$(stat -c %s "$d/run.log")
    grep -qF 'GUARDRAIL BLOCKED' "$d/run.log" && blocked=1
    tail=$(tail -n 15 "$d/run.log" | tr -d '\000')
  fi
  [ -f "$d/output.mp4" ] && out=$(stat -c %s "$d/output.mp4")
  [ -f "$d/controlnet_spec.json" ] && sha=$(sha256sum < "$d/controlnet_spec.json") && sha=${sha%% *}
  printf '%s\0' "$d" "$code" "$when" "$log" "$out" "$blocked" "$sha" "$tail"
done
"""

# $1 = job folder, $2 = container, $3 = number of docker words, then the full `docker run` argv (docker
# words first). Under the GPU lock: refuse (exit 75, running names on stdout) when a job runs, else rotate
# the previous attempt's log, clear its result, remove a stopped leftover container of that name (one
# that was never auto-removed) and start the container.
START_SCRIPT = r"""
d=$1 container=$2 nd=$3; shift 3
docker=("${@:1:nd}")
mkdir -p .cosmos-tools "$d" || exit 96
command -v flock >/dev/null || { echo "flock is not installed on the GPU box (util-linux)" >&2; exit 96; }
exec 9>>.cosmos-tools/gpu.lock
flock -w 120 9 || { echo "timed out waiting for .cosmos-tools/gpu.lock" >&2; exit 98; }
if ! names=$("${docker[@]}" ps --filter label=cosmos-tools.run --format '{{.Names}}' 2>&1 </dev/null 9>&-); then
  printf 'docker ps failed: %s\n' "$names" >&2; exit 97
fi
if [ -n "$names" ]; then printf '%s\n' "$names"; exit 75; fi
if [ -f "$d/run.log" ]; then mv -f "$d/run.log" "$d/run.log.prev"; fi
rm -f "$d/exit_code" "$d/output.mp4" "$d/output.txt"
"${docker[@]}" rm "$container" </dev/null >/dev/null 2>&1 9>&-
"$@" </dev/null 9>&-
"""

# $1 = log, $2 = exit-code file, $3 = byte offset (negative: start at the last -N lines), $4 = container,
# then the docker words. Prints the starting offset on a line of its own, then copies the log from it
# until the exit-code file exists; exits 4 if the container is gone without one, 6 if docker has not
# answered for about a minute (so a follower whose job and docker are gone never polls for ever).
FOLLOW_SCRIPT = r"""
exec 2>/dev/null
log=$1 code=$2 off=$3 container=$4; shift 4
docker=("$@")
if [ "$off" -lt 0 ]; then
  size=$(stat -c %s "$log" || echo 0)
  off=$(( size - $(tail -n "${off#-}" "$log" | wc -c) ))
fi
echo "$off"
polls=0 failures=0
while :; do
  finished=0; [ -e "$code" ] && finished=1
  size=$(stat -c %s "$log" || echo 0)
  if [ "$size" -lt "$off" ]; then off=0; fi
  if [ "$size" -gt "$off" ]; then tail -c "+$(( off + 1 ))" "$log" | head -c "$(( size - off ))"; off=$size; fi
  [ "$finished" = 1 ] && exit 0
  polls=$(( polls + 1 ))
  if [ $(( polls % 8 )) = 0 ]; then
    if names=$("${docker[@]}" ps --filter label=cosmos-tools.run --format '{{.Names}}' </dev/null); then
      failures=0
      if ! printf '%s\n' "$names" | grep -qxF -- "$container"; then
        sleep 1
        [ -e "$code" ] || exit 4
      fi
    else
      failures=$(( failures + 1 ))
      [ "$failures" -lt 30 ] || exit 6
    fi
  fi
  sleep 0.25
done
"""

# $1 = folder, then NAME SIZE pairs: stdin holds the files' bytes one after another (text without NUL).
# Each is written through a temporary file and a rename.
WRITE_SCRIPT = r"""
export LC_ALL=C
d=$1; shift
mkdir -p -- "$d" || exit 1
while [ "$#" -ge 2 ]; do
  name=$1 size=$2; shift 2
  data=''
  [ "$size" -gt 0 ] && { IFS= read -r -d '' -N "$size" data || [ "${#data}" -eq "$size" ] || exit 2; }
  [ "${#data}" -eq "$size" ] || exit 2
  tmp=$(mktemp "$d/.cosmos-write.XXXXXX") && printf '%s' "$data" > "$tmp" && mv -f -- "$tmp" "$d/$name" || exit 1
done
"""

# Every job folder under outputs/ (one with run.log or exit_code): name, exit code, log mtime, output size,
# guardrail flag, NUL-separated; after the names of the running containers.
STATUS_SCRIPT = r"""
nd=$1; shift
docker=("${@:1:nd}")
if ! names=$("${docker[@]}" ps --filter label=cosmos-tools.run --format '{{.Names}}' 2>&1 </dev/null); then
  printf 'docker ps failed: %s\n' "$names" >&2; exit 97
fi
printf '%s\0' "$names"
for d in outputs/*/; do
  d=${d%/}
  [ -f "$d/run.log" ] || [ -f "$d/exit_code" ] || continue
  code='' when=0 out=0 blocked=0
  [ -f "$d/exit_code" ] && code=$(head -c 32 "$d/exit_code")
  [ -f "$d/run.log" ] && when=$(stat -c %Y "$d/run.log") && { grep -qF 'GUARDRAIL BLOCKED' "$d/run.log" && blocked=1; }
  [ -f "$d/output.mp4" ] && out=$(stat -c %s "$d/output.mp4")
  printf '%s\0' "${d#outputs/}" "$code" "$when" "$out" "$blocked"
done
"""


class Busy(RemoteError):
    """Another job holds the GPU box."""


class Interrupted(UserError):
    """The user pressed Ctrl-C."""

    exit_code = 130


def job_dir(name: str, kind: str) -> str:
    """The job's folder relative to REMOTE_DIR (and to the local project)."""
    return f"outputs/{name}" if kind == RUN else f"outputs/{name}_upscaled"


def docker_words(cfg) -> list[str]:
    words = shlex.split(cfg["DOCKER_CMD"])
    if not words:
        raise UserError("DOCKER_CMD is empty; set it to docker or 'sudo docker' in config.sh")
    return words


def spec_bytes(spec: dict) -> bytes:
    """The exact bytes of controlnet_spec.json (its sha256 tells whether a finished job is still current)."""
    return (json.dumps(spec, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class JobState:
    """What the box knows about one job folder."""

    dir: str
    exit_code: int | None = None  # None: no exit_code file (running, lost, or never started)
    finished_at: float = 0.0  # mtime of exit_code
    log_size: int = 0
    output_size: int = 0
    blocked: bool = False
    spec_sha: str = ""
    tail: list[str] = field(default_factory=list)
    running: bool = False

    @property
    def verdict(self) -> str:
        """running, absent, lost (ended without an exit code), ok, blocked, stopped (by a signal) or failed."""
        if self.running and self.exit_code is None:
            return "running"
        if self.exit_code is None:
            return "lost" if self.log_size else "absent"
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
            return f"{name}: stopped by a signal (exit {self.exit_code}): cancelled, or killed with `cosmos-tools kill`"
        if verdict == "lost":
            return f"{name}: the job ended without an exit code (container killed or box restarted)"
        if self.exit_code == 0:
            return f"{name}: exit 0 but no {self.dir}/output.mp4 was written"
        return f"{name}: exit {self.exit_code}"


@dataclass
class Box:
    """One look at the box: the remote user, the running cosmos-tools containers and some job folders."""

    uid: str
    gid: str
    home: str
    running: list[str]
    jobs: dict[str, JobState]


class Remote:
    """A connection to the box that reconnects (with backoff) when it drops; counts connections."""

    def __init__(self, cfg, transport=None) -> None:
        from .transport import connect

        self.cfg = cfg
        self.docker = docker_words(cfg)
        self.t = transport or connect(cfg)
        self.connections = 1

    def close(self) -> None:
        self.t.close()

    def reconnect(self, why: str, say: Callable[[str], None]) -> None:
        """Open a new connection after a drop, trying a few times; RemoteError if the box stays away."""
        from .transport import connect

        self.t.close()
        last = why
        for delay in RECONNECT_DELAYS:
            say(f"connection lost; reconnecting in {delay} s")
            time.sleep(delay)
            try:
                self.t = connect(self.cfg)
            except RemoteError as exc:
                last = str(exc)
                continue
            self.connections += 1
            return
        raise RemoteError(f"lost the connection to the GPU box and could not reconnect ({last})")

    def bash(self, script: str, name: str, *args: str, input: bytes | None = None, check: bool = False):
        return self.t.run(["bash", "-c", script, name, *args], input=input, check=check)

    def probe(self, dirs: list[str]) -> Box:
        """uid, gid, home, running containers and the state of ``dirs``, in one round trip."""
        done = self.bash(PROBE_SCRIPT, "cosmos-probe", str(len(self.docker)), *self.docker, *dirs)
        if done.rc != 0:
            raise _docker_error(done, self.t.describe())
        fields = [f.decode("utf-8", "replace") for f in done.stdout.split(b"\0")[:-1]]
        if len(fields) != 4 + 8 * len(dirs):
            raise RemoteError(f"unexpected answer from {self.t.describe()} when reading job state; is bash there?")
        uid, gid, home, names = fields[:4]
        running = [n for n in names.splitlines() if n]
        jobs = {}
        for i in range(len(dirs)):
            d, code, when, log, out, blocked, sha, tail = fields[4 + 8 * i:12 + 8 * i]
            jobs[d] = JobState(dir=d, exit_code=_int_or_none(code), finished_at=float(when or 0),
                               log_size=int(log or 0), output_size=int(out or 0), blocked=blocked == "1",
                               spec_sha=sha, tail=tail.splitlines())
        return Box(uid=uid, gid=gid, home=home, running=running, jobs=jobs)

    def write_files(self, folder: str, files: dict[str, bytes]) -> None:
        """Write text files (no NUL bytes) into ``folder`` on the box, each atomically; one round trip."""
        if any(b"\0" in data for data in files.values()):
            raise ValueError("write_files carries text only (no NUL bytes)")
        args = [word for name, data in files.items() for word in (name, str(len(data)))]
        done = self.bash(WRITE_SCRIPT, "cosmos-write", folder, *args, input=b"".join(files.values()))
        if done.rc != 0:
            raise RemoteError(f"could not write {', '.join(files)} into {folder} on {self.t.describe()} "
                              f"(exit {done.rc}): {_last_line(done)}")

    def start(self, folder: str, container: str, docker_argv: list[str]) -> list[str] | None:
        """Start the job under the GPU lock; the running container names instead if the box is busy."""
        done = self.bash(START_SCRIPT, "cosmos-start", folder, container, str(len(self.docker)), *docker_argv)
        if done.rc == BUSY:
            return [n for n in done.stdout.decode("utf-8", "replace").splitlines() if n]
        if done.rc != 0:
            if done.rc == 97:
                raise _docker_error(done, self.t.describe())
            raise RemoteError(f"starting the job on {self.t.describe()} failed (exit {done.rc}): {_last_line(done)}")
        return None

    def stop(self, container: str) -> bool:
        """Ask a container to stop (SIGTERM, then SIGKILL after 10 s); False if it was not running."""
        done = self.t.run([*self.docker, "stop", "-t", "10", container], check=False)
        return done.rc == 0

    def status(self) -> tuple[list[str], list[dict]]:
        done = self.bash(STATUS_SCRIPT, "cosmos-status", str(len(self.docker)), *self.docker)
        if done.rc != 0:
            raise _docker_error(done, self.t.describe())
        fields = [f.decode("utf-8", "replace") for f in done.stdout.split(b"\0")[:-1]]
        running = [n for n in fields[0].splitlines() if n] if fields else []
        rows = []
        for i in range(1, len(fields) - 4, 5):
            name, code, when, out, blocked = fields[i:i + 5]
            rows.append({"dir": name, "exit_code": _int_or_none(code), "updated": float(when or 0),
                         "output_size": int(out or 0), "blocked": blocked == "1"})
        return running, rows


def _int_or_none(text: str) -> int | None:
    try:
        return int(text.strip())
    except ValueError:
        return None


def _last_line(done) -> str:
    lines = done.stderr.decode("utf-8", "replace").strip().splitlines()
    return lines[-1] if lines else "no error output"


def _docker_error(done, where: str) -> RemoteError:
    if done.rc == 97:
        detail = done.stderr.decode("utf-8", "replace").strip().replace("docker ps failed: ", "", 1)
        detail = " | ".join(detail.splitlines()[-2:]) or "no error output"
        return RemoteError(f"docker does not answer on {where} ({detail}); check DOCKER_CMD in config.sh "
                           "(e.g. 'sudo docker') and that Docker runs there")
    if done.rc == 127:
        return RemoteError(f"bash is not installed on {where}; the GPU box needs bash")
    return RemoteError(f"reading job state on {where} failed (exit {done.rc}): {_last_line(done)}")


@dataclass
class Job:
    """One job to run or follow: its name, kind, folder, container and rendered files."""

    name: str
    kind: str
    container: str
    log_path: str
    exit_code_path: str
    docker: list[str] = field(default_factory=list)
    files: dict[str, bytes] = field(default_factory=dict)  # written into the folder before the start
    spec_sha: str = ""

    @property
    def dir(self) -> str:
        return job_dir(self.name, self.kind)

    @property
    def label(self) -> str:
        return self.name if self.kind == RUN else f"{self.name} (upscale)"


def job_from_rendered(name: str, kind: str, rendered, prompt_text: bytes | None) -> Job:
    """The job for a rendered run or upscale: controlnet_spec.json, spec_used.json, prompt_spec.json."""
    spec = spec_bytes(rendered.spec)
    files = {"controlnet_spec.json": spec,
             "spec_used.json": (json.dumps(rendered.spec_used(), indent=2, ensure_ascii=False) + "\n").encode()}
    if prompt_text is not None:
        files["prompt_spec.json"] = prompt_text
    return Job(name=name, kind=kind, container=rendered.container, log_path=rendered.log_path,
               exit_code_path=rendered.exit_code_path, docker=list(rendered.docker), files=files,
               spec_sha=_sha(spec))


@dataclass
class Outcome:
    """How a job ended, from the client's point of view."""

    status: str  # ok, failed, blocked, cancelled, detached, running
    state: JobState
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
        self.say = say or (lambda msg: print(f"cosmos-tools: {msg}", file=sys.stderr, flush=True))

    def ensure(self, job: Job, box: Box, *, wait: bool = False, detach: bool = False, rerun_if=None) -> Outcome:
        """Run ``job`` unless it already finished ok with the same spec; re-attach if it is running.

        ``rerun_if(state)`` may force a new attempt of a finished job (e.g. an upscale older than its run).
        """
        state = box.jobs[job.dir]
        if job.container in box.running:
            state.running = True
        verdict = state.verdict
        if verdict == "running":
            if detach:
                self.say(f"{job.label} is already running on the box; follow it with "
                         f"`cosmos-tools attach {shlex.quote(job.name)}`")
                return Outcome("running", state, box=box)
            self.say(f"{job.label} is already running on the box; re-attaching to its log")
            return self.follow(job, offset=-20)
        current = state.spec_sha == job.spec_sha
        if verdict == "ok" and current and not (rerun_if and rerun_if(state)):
            self.say(f"{job.label} already finished ok on the box; not running it again")
            return Outcome("ok", state, reused=True, box=box)
        return self.start(job, wait=wait, detach=detach)

    def start(self, job: Job, *, wait: bool, detach: bool) -> Outcome:
        remote = self.remote
        remote.write_files(job.dir, job.files)
        waited_for: list[str] | None = None
        own_since = time.monotonic()
        while True:
            with deferred_sigint() as pending:  # a start cut in half would leave an unknown job behind
                busy = remote.start(job.dir, job.container, job.docker)
            if pending and busy is None:
                raise self.interrupt(job)
            if pending:
                raise Interrupted(f"interrupted before {job.label} started")
            if busy is None:
                break
            others = [n for n in busy if not _same_run(n, job)]
            if not others and time.monotonic() - own_since < 60:
                time.sleep(0.5)  # our previous step's container is still being removed
                continue
            if not wait:
                raise Busy(f"the GPU box is busy with {', '.join(others or busy)}; wait for it with --wait, "
                           "see it with `cosmos-tools status`, or stop it with `cosmos-tools kill RUN`")
            if busy != waited_for:
                self.say(f"the GPU box is busy with {', '.join(busy)}; waiting (--wait)")
                waited_for = busy
            time.sleep(WAIT_POLL_SECONDS)
        try:
            self.say(f"started {job.label} as container {job.container}")
            if detach:
                self.say(f"detached: follow it with `cosmos-tools attach {shlex.quote(job.name)}`, "
                         f"stop it with `cosmos-tools kill {shlex.quote(job.name)}`")
                return Outcome("detached", JobState(dir=job.dir, running=True))
        except KeyboardInterrupt:
            raise self.interrupt(job) from None
        return self.follow(job, offset=0)

    def follow(self, job: Job, offset: int) -> Outcome:
        """Print the log from ``offset`` until the job ends (reconnecting after drops), then judge it."""
        remote = self.remote
        started = time.monotonic()
        position = {"offset": offset, "header": b""}

        def on_output(data: bytes) -> None:
            if position["header"] is not None:  # the script's first line: the offset it starts from
                head, newline, data = (position["header"] + data).partition(b"\n")
                if not newline:
                    position["header"] = head
                    return
                position["offset"], position["header"] = int(head or 0), None
            position["offset"] += len(data)
            if data:
                self.echo(data)

        def stream() -> int:
            start_at, position["header"] = position["offset"], b""
            try:
                return remote.t.stream(["bash", "-c", FOLLOW_SCRIPT, "cosmos-follow", job.log_path,
                                        job.exit_code_path, str(start_at), job.container, *remote.docker],
                                       on_output=on_output)
            except BaseException:
                if position["header"] is not None:  # the offset line never arrived: ask for the same start
                    position["offset"] = start_at
                raise

        try:
            rc = self._reconnecting(job, stream)
        except KeyboardInterrupt:
            raise self.interrupt(job) from None
        if rc == DOCKER_SILENT:
            raise RemoteError(f"docker on {remote.t.describe()} stopped answering while {job.label} ran; it may "
                              f"still be running: check with `cosmos-tools status`, re-attach with "
                              f"`cosmos-tools attach {shlex.quote(job.name)}`")
        box = self._reconnecting(job, lambda: remote.probe(list(dict.fromkeys([job.dir, *self.watch]))))
        state = box.jobs[job.dir]
        if rc == LOST and state.exit_code is None:
            state.running = False
        status = {"ok": "ok", "blocked": "blocked", "stopped": "cancelled"}.get(state.verdict, "failed")
        return Outcome(status, state, seconds=time.monotonic() - started,
                       message="" if status == "ok" else state.failure(job.label), box=box)

    def _reconnecting(self, job: Job, step):
        """Run ``step``; after a dropped connection reconnect and run it again (the job keeps running)."""
        from .transport import ConnectionLost

        for _ in range(MAX_DROPS):
            try:
                return step()
            except ConnectionLost as exc:
                why = str(exc)
                try:
                    self.remote.reconnect(why, self.say)
                except RemoteError as gone:
                    why = str(gone)
                    break
        else:
            why = f"the connection dropped {MAX_DROPS} times"
        raise RemoteError(f"{why}; the job keeps running on the box: re-attach with "
                          f"`cosmos-tools attach {shlex.quote(job.name)}`")

    def interrupt(self, job: Job) -> Interrupted:
        """Ctrl-C: ask the box to stop the job (a second Ctrl-C gives up); the error to raise.

        A Ctrl-C can land in the middle of paramiko and break the connection, so a failed stop is
        tried once more over a new one.
        """
        from .transport import connect

        self.say(f"Ctrl-C: stopping {job.label} on the box (Ctrl-C again to leave it running)")
        hint = f"stop it with `cosmos-tools kill {shlex.quote(job.name)}`"
        try:
            try:
                stopped = self.remote.stop(job.container)
            except Exception:  # paramiko's state after an interrupt inside it is anyone's guess
                with contextlib.suppress(Exception):
                    self.remote.t.close()
                self.remote.t = connect(self.remote.cfg)
                self.remote.connections += 1
                stopped = self.remote.stop(job.container)
        except KeyboardInterrupt:
            return Interrupted(f"interrupted: left {job.label} running on the box; {hint}")
        except RemoteError as exc:
            return Interrupted(f"interrupted: could not stop {job.label} ({exc}); {hint}")
        if not stopped:
            return Interrupted(f"interrupted: {job.label} was not running on the box")
        return Interrupted(f"interrupted: stopped {job.label} on the box")


@contextlib.contextmanager
def deferred_sigint():
    """Hold Ctrl-C during the block; the yielded list is non-empty afterwards if one came."""
    pending: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield pending
        return
    if signal.getitimer(signal.ITIMER_REAL)[0] > 0:  # a Ctrl-C that transport.paramiko_safe_sigint still holds
        signal.setitimer(signal.ITIMER_REAL, 0)
        pending.append(1)
    previous = signal.signal(signal.SIGINT, lambda *_: pending.append(1))
    try:
        yield pending
    finally:
        signal.signal(signal.SIGINT, previous)


def _same_run(container: str, job: Job) -> bool:
    """True for the container of the other step of the same run (ct1-run-... vs ct1-up-...)."""
    from .render import container_name

    return container in (container_name(job.name, RUN), container_name(job.name, UPSCALE))


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


def plain_job(name: str, kind: str) -> Job:
    """A job known by name only (for attach/kill): its container and files follow from the name."""
    from .render import container_name

    folder = job_dir(name, kind)
    return Job(name=name, kind=kind, container=container_name(name, kind), log_path=f"{folder}/run.log",
               exit_code_path=f"{folder}/exit_code")


def attach(remote: Remote, name: str, runner: Runner | None = None) -> Outcome:
    """Follow the running job of ``name`` (upscale or run) to its end; if none runs, judge the latest one."""
    from .names import check_run_name

    check_run_name(name)
    jobs = {kind: plain_job(name, kind) for kind in (RUN, UPSCALE)}
    box = remote.probe([job.dir for job in jobs.values()])
    runner = runner or Runner(remote)
    for job in jobs.values():
        if job.container in box.running:
            runner.say(f"attached to {job.label}")
            return runner.follow(job, offset=-20)
    known = [(box.jobs[job.dir].finished_at, job) for job in jobs.values() if box.jobs[job.dir].verdict != "absent"]
    if not known:
        raise UserError(f"no job named {name!r} on the GPU box; `cosmos-tools status` lists the jobs")
    job = max(known, key=lambda pair: (pair[0], pair[1].kind == UPSCALE))[1]
    state = box.jobs[job.dir]
    runner.say(f"{job.label} is not running; it ended {state.verdict}")
    if state.verdict == "ok":
        for line in state.tail:
            runner.echo((line + "\n").encode())
        return Outcome("ok", state, reused=True)
    status = {"blocked": "blocked", "stopped": "cancelled"}.get(state.verdict, "failed")
    return Outcome(status, state, reused=True, message=state.failure(job.label))


def kill(remote: Remote, name: str) -> list[str]:
    """Stop the running run and/or upscale of ``name``; the containers stopped."""
    from .names import check_run_name

    check_run_name(name)
    box = remote.probe([])
    targets = [plain_job(name, kind).container for kind in (RUN, UPSCALE)]
    stopped = [c for c in targets if c in box.running and remote.stop(c)]
    if not stopped:
        raise UserError(f"no job named {name!r} is running on the GPU box; `cosmos-tools status` lists the jobs")
    return stopped


def job_rows(remote: Remote) -> list[dict]:
    """Every job folder on the box with its state (running, ok, blocked, failed, lost), newest first."""
    from .render import UPSCALED_SUFFIX, container_name

    running, rows = remote.status()
    seen = set()
    out = []
    for row in rows:
        folder = row["dir"]
        candidates = [(folder, RUN)]
        if folder.endswith(UPSCALED_SUFFIX) and len(folder) > len(UPSCALED_SUFFIX):
            candidates.insert(0, (folder[:-len(UPSCALED_SUFFIX)], UPSCALE))
        name, kind = candidates[-1]
        live = False
        for cand_name, cand_kind in candidates:
            if container_name(cand_name, cand_kind) in running:
                name, kind, live = cand_name, cand_kind, True
                seen.add(container_name(cand_name, cand_kind))
        if kind == RUN and len(candidates) == 2 and not live:
            name, kind = candidates[0]  # a *_upscaled folder is an upscale unless a run of that name is live
        state = JobState(dir=f"outputs/{folder}", exit_code=row["exit_code"], log_size=1,
                         output_size=row["output_size"], blocked=row["blocked"], running=live)
        out.append({"job": f"outputs/{folder}", "run": name, "kind": kind, "state": state.verdict,
                    "exit_code": row["exit_code"], "updated": _iso(row["updated"]),
                    "output_size": row["output_size"]})
    for container in running:
        if container not in seen:
            out.append({"job": container, "run": "", "kind": "", "state": "running", "exit_code": None,
                        "updated": "", "output_size": 0})
    out.sort(key=lambda r: r["updated"], reverse=True)
    out.sort(key=lambda r: r["state"] != "running")
    return out


def _iso(epoch: float) -> str:
    """A file time as UTC ``YYYY-MM-DDTHH:MM:SSZ`` ("" if unknown)."""
    from datetime import datetime, timezone

    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") if epoch else ""
