"""The steps behind the remote commands, and one attempt of cycle, run, upscale or rerun over one connection.

upload -> run (live log) -> download the run folder -> upscale (unless told not to, only after a
successful run, at most 121 frames) -> download the upscale -> one line in notes/run_history.log.
Every job that starts gets its own folder (``outputs/runs/<run id>/``, jobs.py); re-running resumes: uploads
skip identical files, a job that finished ok with the same spec is not run again, a running job is
re-attached, downloads skip identical files. A dropped connection is reopened (``Remote.retrying``) and the
interrupted step repeated. docs/remote.md has the rules, including which attempts get a history line.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from . import history, provenance
from .constants import MAX_UPSCALE_FRAMES
from .errors import Interrupted, JobFailed, LocalError, RemoteError, UserError
from .jobs import Box, BoxFacts, Job, Outcome, Remote, Runner, current_job, job_from_rendered
from .plan import Plan, check_upscale_length, plan_prompt, weights_text
from .remote.paths import RUN, UPSCALE, latest_folder, run_id_of, upscale_leaf
from .runs import local_job_folder, migrate_legacy, next_run_number, next_upscale_number, point_latest


def say(msg: str) -> None:
    print(f"cosmos-tools: {msg}", file=sys.stderr, flush=True)


class Session:
    """The remote steps for one prompt over one connection (reopened if it drops).

    ``cfg`` carries the run's overrides (``Config.with_overrides``, e.g. ``--num-gpu``); ``rerun_of`` is the run
    id a rerun repeats (recorded in the new run's provenance); ``remote``, a connection to share (experiment.py).
    """

    def __init__(self, cfg, plan: Plan, *, quiet: bool = False, echo: Callable[[bytes], None] | None = None,
                 rerun_of: str = "", remote: Remote | None = None) -> None:
        self.cfg = cfg
        self.plan = plan
        self.quiet = quiet
        self.rerun_of = rerun_of
        migrate_legacy(cfg, plan.name, self.say)
        self.remote = remote or Remote(cfg, say=self.say)  # several prompts may share one (experiment.py)
        self.runner = Runner(self.remote, echo=echo)
        self.runner.watch = [latest_folder(plan.name, RUN), latest_folder(plan.name, UPSCALE)]
        self.box: Box | None = None
        self._fresh = False  # self.box was read after the last change we made on the box
        self.facts: BoxFacts | None = None  # the box's image, checkout and GPUs (first probe)
        self.digests: dict[str, str] = {}  # sha256 of every file the upload sent or found, by remote path
        self.made: dict[str, dict] = {}  # provenance of each job this session rendered, by its folder
        self.run_ids = [r.get("run_id", "") for r in history.read_records(history.history_path(cfg),
                                                                          warn=lambda msg: None)]

    def say(self, msg: str) -> None:
        if not self.quiet:
            say(msg)

    def close(self) -> None:
        self.remote.close()

    # --- steps -------------------------------------------------------------------------------------

    def upload(self):
        from .sync import upload_files

        report = self.remote.retrying("upload", lambda: upload_files(self.remote.t, self.plan.uploads,
                                                               progress=not self.quiet))
        self.digests.update(report.digests)
        self.say(f"upload: {len(report.sent)} sent ({report.bytes_sent / 1e6:.1f} MB), "
                 f"{len(report.skipped)} already on the box, {report.seconds:.1f} s")
        return report

    def probe(self) -> Box:
        """Read the box (remote user, running containers, this prompt's two "latest" views): one round trip.

        The first reading also asks what provenance needs (image, checkout, GPUs) and moves results of the
        version before run ids into outputs/runs/ (once per prompt name).
        """
        first = self.facts is None
        image = self.cfg["DOCKER_IMAGE"] if first else None
        box = self.remote.retrying("reading job state", lambda: self.remote.probe(self.runner.watch, image=image))
        if first:
            self.facts = box.facts
            if self.old_layout(box):
                moved = self.remote.retrying("moving old results", lambda: self.remote.migrate(self.plan.name))
                for old, new in moved:
                    self.say(f"moved {old} on the box (results of the version before run ids) to {new}")
                box = self.remote.retrying("reading job state", lambda: self.remote.probe(self.runner.watch))
        self.box, self._fresh = box, True
        return box

    def old_layout(self, box: Box) -> bool:
        """A real folder (not a link) at outputs/<name>[_upscaled] whose job is not running."""
        for kind, folder in zip((RUN, UPSCALE), self.runner.watch, strict=True):
            state = box.jobs[folder]
            used = state.log_size or state.exit_code is not None or state.spec_sha
            if not state.target and used and current_job(self.plan.name, kind, state).container not in box.running:
                return True
        return False

    def fresh_box(self) -> Box:
        """The last reading of the box if nothing was done since, else a new one."""
        if self.box is not None and self._fresh:
            self._fresh = False
            return self.box
        return self.probe()

    def current(self, kind: str) -> Job:
        """The job the prompt's "latest" view points at (its own folder), as last read."""
        box = self.box or self.probe()
        return current_job(self.plan.name, kind, box.jobs[latest_folder(self.plan.name, kind)])

    def shot_sha256(self) -> str:
        """The shot's fingerprint from the upload's digests (a command without upload hashes the shot here)."""
        from .sync import local_digest

        if self.plan.shot and not any(rel.startswith(f"inputs/videos/{self.plan.shot}/") for rel in self.digests):
            for local, rel in self.plan.uploads:
                if rel.startswith(f"inputs/videos/{self.plan.shot}/"):
                    self.digests[rel] = local_digest(local)[1]
        return provenance.shot_fingerprint(self.plan.shot, self.digests)

    def _provenance(self, run_id: str, kind: str, spec: dict, **extra) -> dict:
        return provenance.build(run_id=run_id, kind=kind, name=self.plan.name,
                                prompt_file=local_rel(self.cfg, self.plan.path), spec=spec, shot=self.plan.shot,
                                shot_sha256=self.shot_sha256(), docker_image=self.cfg["DOCKER_IMAGE"],
                                facts=self.facts or BoxFacts(), num_gpu=self.cfg.int("NUM_GPU"),
                                host=provenance.host_of(self.cfg), rerun_of=self.rerun_of,
                                started=history.now_iso(), **extra)

    def make_job(self, rendered, prompt_text: bytes | None, run_id: str, **extra) -> Job:
        job = job_from_rendered(rendered, prompt_text, self._provenance(run_id, rendered.kind, rendered.spec,
                                                                        model=rendered.model,
                                                                        model_commit=rendered.model_commit, **extra))
        self.made[job.dir] = json.loads(job.files[provenance.FILE])
        return job

    def ensure_run(self, *, detach: bool = False, force: bool = False) -> Outcome:
        """Queue the prompt on the box (a new run id), re-attach to its running or queued job, or find it finished
        ok with the same spec."""
        from .render import render_run

        name = self.plan.name

        def attempt():
            box = self.fresh_box()

            def new_job(k: int) -> Job:
                run_id = run_id_of(name, k)
                rendered = render_run(name, self.plan.prompt, self.cfg, account=box.account, run_id=run_id)
                return self.make_job(rendered, self.plan.text, run_id)

            first = next_run_number(self.cfg, name, box.jobs[latest_folder(name, RUN)].leaf, self.run_ids)
            return self._keep(self.runner.ensure(name, RUN, box, new_job, first=first, detach=detach, force=force))

        return self.remote.retrying(f"running {name}", attempt)

    def ensure_upscale(self, run: Job, weight: float) -> Outcome:
        """Upscale ``run`` into its next upscale folder, unless its latest upscale is current (same spec, ok)."""
        from .render import render_upscale

        name = self.plan.name

        def attempt():
            box = self.fresh_box()

            def new_job(k: int) -> Job:
                rendered = render_upscale(name, self.cfg, weight=weight, account=box.account, run_id=run.run_id,
                                          leaf=upscale_leaf(run.run_id, k), run_prompt=self.plan.prompt)
                return self.make_job(rendered, None, run.run_id, upscale_of=run.run_id, upscale_weight=weight)

            first = next_upscale_number(self.cfg, run.run_id, box.jobs[latest_folder(name, UPSCALE)].leaf)
            return self._keep(self.runner.ensure(name, UPSCALE, box, new_job, first=first))

        return self.remote.retrying(f"upscaling {run.label}", attempt)

    def _keep(self, outcome: Outcome) -> Outcome:
        if outcome.box is not None:
            self.box, self._fresh = outcome.box, True
        return outcome

    def download(self, job: Job, missing_ok: bool):
        """Fetch a job's own folder (provenance.json only if not here: the local copy adds the timings), then
        point the local "latest" link at it."""
        from .sync import download_tree

        local = local_job_folder(self.cfg, job.dir)
        report = self.remote.retrying("download", lambda: download_tree(
            self.remote.t, job.dir, local, progress=not self.quiet, missing_ok=missing_ok, keep=(provenance.FILE,)))
        if job.run_id and local.is_dir():
            point_latest(self.cfg, job.name, job.kind, job.paths.leaf)
        self.say(f"download {job.dir}: {len(report.sent)} fetched ({report.bytes_sent / 1e6:.1f} MB), "
                 f"{len(report.skipped)} unchanged, {report.seconds:.1f} s")
        return report

    def check_upscale_input(self, run: Job) -> None:
        """Refuse an upscale when the run has no output or it is longer than the upscaler handles.

        Frames are counted with ffprobe on the downloaded copy (the download verified it is the box's file):
        the GPU box may have no ffprobe outside its Docker image.
        """
        from .probe import probe_video

        state = (self.box or self.probe()).jobs[latest_folder(self.plan.name, RUN)]
        rel = f"{run.dir}/output.mp4"
        if state.output_size <= 0 or not run.run_id:
            raise UserError(f"{rel} is missing on the GPU box: run the inference first "
                            f"(scripts/run_inference_remote.sh {self.plan.path.name})")
        local = local_job_folder(self.cfg, run.dir) / "output.mp4"
        if not local.is_file():
            self.download(run, missing_ok=False)
        frames = probe_video(local).frames
        if frames > MAX_UPSCALE_FRAMES:
            raise UserError(f"{rel} has {frames} frames; the 4K upscaler handles at most {MAX_UPSCALE_FRAMES} "
                            "(cosmos-transfer1 issue #150): use a shorter shot, or --no-upscale")


def local_rel(cfg, path: Path) -> str:
    try:
        return str(Path(path).relative_to(cfg.root))
    except ValueError:
        return str(path)


@dataclass
class Steps:
    """What one attempt does: cycle = every step; `run`, `upscale` and `rerun` are subsets."""

    upload: bool = True
    run: bool = True
    upscale: float | None = None  # the upscaler's control weight; None: no upscale
    download: bool = True
    detach: bool = False
    force: bool = False
    rerun_of: str = ""


@dataclass
class CycleResult:
    status: str = "failed"
    exit: int | None = None
    error: str = ""
    durations: dict[str, float] = field(default_factory=dict)
    run: Job | None = None  # the run this attempt ran, re-attached or found
    upscale: Job | None = None
    started: list[Job] = field(default_factory=list)  # jobs this attempt started or re-attached to
    unrecorded: bool = False  # the run found done has no history line yet (its client died before writing it)
    connections: int = 0


def run_cycle(cfg, prompt_path, *, override: str | None = None, upscale: bool = True, weight=None,
              force: bool = False, echo=None) -> None:
    """The full cycle of a prompt file (checked first: a refused prompt is no attempt, nothing is written)."""
    from .render import upscale_weight_of

    plan = plan_prompt(cfg, prompt_path, override)
    up_weight = upscale_weight_of(cfg, plan.prompt, weight) if upscale else None
    if upscale:
        check_upscale_length(cfg, plan)
    run_attempt(cfg, plan, Steps(upscale=up_weight, force=force), echo=echo)


def run_attempt(cfg, plan: Plan, steps: Steps, *, echo=None) -> None:
    """One attempt; raises like every command (JobFailed, RemoteError, Interrupted: errors.ExitStatus).

    Whatever the outcome, the history line (unless nothing new ran: docs/remote.md) is written and the summary
    printed first; the error is shown (by click) after them.
    """
    from .jobs import report_failure

    started = history.now_iso()
    result = CycleResult()
    error: UserError | None = None
    session = None
    clock = time.monotonic()

    def timed(step: str, fn):
        begin = time.monotonic()
        try:
            return fn()
        finally:
            result.durations[step] = result.durations.get(step, 0.0) + time.monotonic() - begin

    def fail(outcome: Outcome, prefix: str = "") -> None:
        nonlocal error
        report_failure(outcome, say)
        result.status, error = outcome.status if not prefix else "failed", JobFailed(prefix + outcome.message)

    try:
        session = Session(cfg, plan, echo=echo, rerun_of=steps.rerun_of)
        if steps.upload:
            timed("upload", session.upload)
        session.probe()
        run_ok = True
        if steps.run:
            outcome = timed("run", lambda: session.ensure_run(detach=steps.detach, force=steps.force))
            result.run, result.exit = outcome.job, outcome.state.exit_code
            if not outcome.reused and outcome.status != "running":
                result.started.append(outcome.job)
            if outcome.status in ("detached", "running"):
                result.status, run_ok = "detached", False
            else:
                if steps.download:
                    timed("download", lambda: session.download(outcome.job, missing_ok=True))
                run_ok = outcome.status == "ok"
                result.unrecorded = outcome.reused and outcome.job.run_id not in session.run_ids and \
                    bool(provenance.read(local_job_folder(cfg, outcome.job.dir)))
                if not run_ok:
                    fail(outcome)
        else:
            result.run = session.current(RUN)
        if run_ok and steps.upscale is not None:
            session.check_upscale_input(result.run)
            up = timed("upscale", lambda: session.ensure_upscale(result.run, steps.upscale))
            result.upscale = up.job
            if not up.reused:
                result.started.append(up.job)
            if steps.download:
                timed("download", lambda: session.download(up.job, missing_ok=True))
            if up.status != "ok":
                fail(up, "upscale: ")
            else:
                result.status = "ok"
        elif run_ok:
            result.status = "ok"
    except KeyboardInterrupt:
        result.status, error = "cancelled", Interrupted("interrupted (Ctrl-C)")
    except UserError as exc:  # RemoteError and Interrupted included
        result.status, error = "cancelled" if isinstance(exc, Interrupted) else "failed", exc
    finally:
        if session is not None:
            result.connections = session.remote.connections
            session.close()
    result.error = error.format_message() if error is not None else ""
    result.durations["total"] = time.monotonic() - clock
    for job in result.started:
        provenance.add_timings(local_job_folder(cfg, job.dir), result.durations)
    line, unwritten = None, None
    if result.started or result.unrecorded or (error is not None and not _refusal(error)):
        try:
            line = history_line(cfg, plan, started, result, steps, session)
        except LocalError as exc:  # the results are in place: say where they are, then why the line is missing
            unwritten = exc
    _summary(cfg, result, line)
    if unwritten is not None and error is not None:
        unwritten.show()  # both matter: the missing line here, the run's own failure as the exit status
    if error is not None:
        raise error
    if unwritten is not None:
        raise unwritten


def _refusal(error: UserError) -> bool:
    """The toolkit refused the input (no run to upscale, a shot too long...): not a run attempt, no history line.

    The box or the connection failing (RemoteError), a job failing (JobFailed) or Ctrl-C (Interrupted) are.
    """
    return not isinstance(error, (RemoteError, JobFailed, Interrupted))


def history_line(cfg, plan: Plan, started: str, result: CycleResult, steps: Steps, session: Session | None) -> str:
    """The history line of an attempt; the run's provenance as made here, downloaded, or known now."""
    d = result.durations
    run = result.run if result.run is not None and result.run.run_id else None
    prov = {}
    if run is not None:
        prov = (session.made.get(run.dir) if session else None) or provenance.read(local_job_folder(cfg, run.dir))
    spec = plan.prompt
    facts = (session.facts if session else None) or BoxFacts()
    prompt = spec.get("prompt")
    text = prov.get("prompt_text", prompt if isinstance(prompt, str) else "")
    upscale = steps.upscale
    record = {
        "ts": started, "run": plan.name, "run_id": run.run_id if run else None, "prompt": local_rel(cfg, plan.path),
        "shot": plan.shot or "", "host": provenance.host_of(cfg), "gpus": cfg.int("NUM_GPU"),
        "weights": weights_text(spec),
        "seed": prov.get("seed", provenance.seed_of(spec)), "upscale": "no" if upscale is None else f"{upscale:g}",
        "status": result.status, "exit": "" if result.exit is None else result.exit,
        "upload_s": f"{d.get('upload', 0):.1f}", "run_s": f"{d.get('run', 0):.1f}",
        "upscale_s": f"{d.get('upscale', 0):.1f}", "download_s": f"{d.get('download', 0):.1f}",
        "total_s": f"{d.get('total', 0):.1f}",
        "output": local_rel(cfg, local_job_folder(cfg, run.dir)) if run else None,
        "upscaled": local_rel(cfg, local_job_folder(cfg, result.upscale.dir)) if result.upscale else None,
        "spec_sha256": prov.get("spec_sha256") or None, "prompt_text": text[:provenance.PROMPT_PREFIX],
        "image_id": prov.get("image_id", facts.image_id), "code_version": prov.get("code_version", facts.code_version),
        "tool_version": prov.get("tool_version", provenance.tool_version()),
        "shot_sha256": prov.get("shot_sha256") or None, "gpu": prov.get("gpu", facts.gpu),
        "rerun_of": steps.rerun_of or None, "error": result.error or None,
        "slurm_job": provenance.slurm_job_id(local_job_folder(cfg, run.dir)) or None if run else None,
    }
    return history.append_record(history.history_path(cfg), record)


def _summary(cfg, result: CycleResult, line: str | None) -> None:
    print(f"status: {result.status}" + (f" ({result.error})" if result.error else ""))
    if result.run is not None and result.run.run_id:
        folder = local_rel(cfg, local_job_folder(cfg, result.run.dir))
        fresh = result.run in result.started
        print(f"run: {result.run.run_id} ({folder})" + ("" if fresh else ", found already done: nothing new run"))
        run_video = local_job_folder(cfg, result.run.dir) / "output.mp4"
        if result.status == "ok" and run_video.is_file():
            print(f"result: {local_rel(cfg, run_video)}")
        if result.upscale is not None:
            up_video = local_job_folder(cfg, result.upscale.dir) / "output.mp4"
            if up_video.is_file():
                print(f"upscaled: {local_rel(cfg, up_video)}")
        log = local_job_folder(cfg, result.run.dir) / "run.log"
        if log.is_file():
            print(f"log: {local_rel(cfg, log)}")
    if result.connections:
        say(f"{result.durations['total']:.1f} s over {result.connections} SSH connection(s)")
    history_file = local_rel(cfg, history.history_path(cfg))
    print(f"history ({history_file}): {line}" if line else f"history ({history_file}): nothing new, no line added")
