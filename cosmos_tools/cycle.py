"""The steps behind the remote commands, and the full cycle over one connection.

upload -> run (live log) -> download the run folder -> upscale (unless told not to, only after a
successful run, at most 121 frames) -> download the upscale -> one line in notes/run_history.log.
Re-running resumes: uploads skip identical files, a job that finished ok with the same spec is not
run again, a running job is re-attached, downloads skip identical files. A dropped connection is
reopened (a few tries, ``Remote.retrying``) and the interrupted step repeated. docs/remote.md has the rules.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from . import history
from .constants import MAX_UPSCALE_FRAMES
from .errors import Interrupted, JobFailed, UserError
from .jobs import Box, Job, Outcome, Remote, Runner, job_from_rendered, plain_job
from .plan import Plan, check_upscale_length, plan_prompt, weights_text
from .remote.paths import RUN, UPSCALE, JobPaths

RESULT_FILES = ("output.mp4", "output.txt", "exit_code")


def say(msg: str) -> None:
    print(f"cosmos-tools: {msg}", file=sys.stderr, flush=True)


def local_folder(cfg, name: str, kind: str) -> Path:
    """The local copy of a job's folder: LOCAL_OUTPUTS_DIR/<folder name on the box>."""
    return cfg.local_path("LOCAL_OUTPUTS_DIR") / PurePosixPath(JobPaths.of(name, kind).folder).name


class Session:
    """The remote steps for one prompt over one connection (reopened if it drops).

    ``cfg`` carries the run's overrides (``Config.with_overrides``, e.g. ``--num-gpu``).
    """

    def __init__(self, cfg, plan: Plan, *, quiet: bool = False, echo: Callable[[bytes], None] | None = None) -> None:
        self.cfg = cfg
        self.plan = plan
        self.quiet = quiet
        self.remote = Remote(cfg, say=self.say)
        self.runner = Runner(self.remote, echo=echo)
        self.runner.watch = [JobPaths.of(plan.name, RUN).folder, JobPaths.of(plan.name, UPSCALE).folder]
        self.box: Box | None = None
        self._fresh = False  # self.box was read after the last change we made on the box

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
        self.say(f"upload: {len(report.sent)} sent ({report.bytes_sent / 1e6:.1f} MB), "
                 f"{len(report.skipped)} already on the box, {report.seconds:.1f} s")
        return report

    def probe(self) -> Box:
        """Read the box (remote user, running containers, this prompt's two job folders): one round trip."""
        self.box = self.remote.retrying("reading job state", lambda: self.remote.probe(self.runner.watch))
        self._fresh = True
        return self.box

    def fresh_box(self) -> Box:
        """The last reading of the box if nothing was done since, else a new one."""
        if self.box is not None and self._fresh:
            self._fresh = False
            return self.box
        return self.probe()

    def named_job(self, kind: str) -> Job:
        """This prompt's run or upscale as known by name (container and files), without rendering it."""
        return plain_job(self.plan.name, kind)

    def run_job(self) -> Job:
        from .render import render_run

        account = (self.box or self.probe()).account
        rendered = render_run(self.plan.name, self.plan.prompt, self.cfg, account=account)
        return job_from_rendered(rendered, self.plan.text)

    def upscale_job(self, weight: float | None) -> Job:
        from .render import render_upscale

        account = (self.box or self.probe()).account
        return job_from_rendered(render_upscale(self.plan.name, self.cfg, weight=weight, account=account), None)

    def ensure(self, job: Job, *, wait: bool, detach: bool = False, force: bool = False) -> Outcome:
        """Run or re-attach ``job`` (reconnecting as needed) and return how it ended."""
        run_done = self.box.jobs[JobPaths.of(self.plan.name, RUN).folder].finished_at if self.box else 0

        def stale(state) -> bool:
            return force or (job.kind == UPSCALE and state.finished_at < run_done)

        def attempt():
            outcome = self.runner.ensure(job, self.fresh_box(), wait=wait, detach=detach, rerun_if=stale)
            if outcome.box is not None:
                self.box, self._fresh = outcome.box, True
            return outcome

        return self.remote.retrying(f"running {job.label}", attempt)

    def download(self, kind: str, missing_ok: bool):
        from .sync import download_tree

        rel = JobPaths.of(self.plan.name, kind).folder
        local = local_folder(self.cfg, self.plan.name, kind)
        report = self.remote.retrying("download", lambda: download_tree(self.remote.t, rel, local,
                                                                 progress=not self.quiet, missing_ok=missing_ok))
        on_box = set(report.sent) | set(report.skipped)
        for name in RESULT_FILES:  # results of an earlier attempt that the box no longer has
            if (local / name).is_file() and name not in on_box:
                os.replace(local / name, local / f"{name}.prev")
        self.say(f"download {rel}: {len(report.sent)} fetched ({report.bytes_sent / 1e6:.1f} MB), "
                 f"{len(report.skipped)} unchanged, {report.seconds:.1f} s")
        return report

    def check_upscale_input(self) -> None:
        """Refuse an upscale when the run has no output or it is longer than the upscaler handles.

        Frames are counted with ffprobe on the downloaded copy (the download verified it is the box's file):
        the GPU box may have no ffprobe outside its Docker image.
        """
        from .probe import probe_video

        run = JobPaths.of(self.plan.name, RUN).folder
        state = (self.box or self.probe()).jobs[run]
        rel = f"{run}/output.mp4"
        if state.output_size <= 0:
            raise UserError(f"{rel} is missing on the GPU box: run the inference first "
                            f"(scripts/run_inference_remote.sh {self.plan.path.name})")
        local = local_folder(self.cfg, self.plan.name, RUN) / "output.mp4"
        if not local.is_file():
            self.download(RUN, missing_ok=False)
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
class CycleResult:
    status: str = "failed"
    exit: int | None = None
    error: str = ""
    durations: dict[str, float] = field(default_factory=dict)
    upscaled: bool = False
    connections: int = 0


def run_cycle(cfg, prompt_path, *, override: str | None = None, upscale: bool = True, weight=None,
              wait: bool = False, echo=None) -> None:
    """The full cycle; raises like every command (JobFailed, RemoteError, Interrupted: errors.ExitStatus).

    Whatever the outcome, the history line is written and the summary printed first; the error is shown
    (by click) after them.
    """
    from .jobs import report_failure
    from .render import upscale_weight

    plan = plan_prompt(cfg, prompt_path, override)
    up_weight = upscale_weight(cfg["UPSCALE_WEIGHT"] if weight is None else weight) if upscale else None
    if upscale:
        check_upscale_length(cfg, plan)
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

    try:
        session = Session(cfg, plan, echo=echo)
        timed("upload", session.upload)
        session.probe()
        outcome = timed("run", lambda: session.ensure(session.run_job(), wait=wait))
        result.exit = outcome.state.exit_code
        timed("download", lambda: session.download(RUN, missing_ok=True))
        if outcome.status != "ok":
            report_failure(outcome, say)
            result.status, error = outcome.status, JobFailed(outcome.message)
        elif upscale:
            session.check_upscale_input()
            up = timed("upscale", lambda: session.ensure(session.upscale_job(up_weight), wait=wait))
            timed("download", lambda: session.download(UPSCALE, missing_ok=True))
            result.upscaled = True
            if up.status != "ok":
                report_failure(up, say)
                result.status, error = "failed", JobFailed(f"upscale: {up.message}")
            else:
                result.status = "ok"
        else:
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
    line = _record(cfg, plan, started, result, up_weight)
    _summary(cfg, plan, result, line)
    if error is not None:
        raise error


def _record(cfg, plan: Plan, started: str, result: CycleResult, up_weight) -> str:
    d = result.durations
    record = {
        "ts": started, "run": plan.name, "prompt": local_rel(cfg, plan.path), "shot": plan.shot or "",
        "host": cfg["REMOTE_HOST"] if cfg["TRANSPORT"] == "ssh" else "local", "gpus": cfg.int("NUM_GPU"),
        "weights": weights_text(plan.prompt), "upscale": "no" if up_weight is None else f"{up_weight:g}",
        "status": result.status, "exit": "" if result.exit is None else result.exit,
        "upload_s": f"{d.get('upload', 0):.1f}", "run_s": f"{d.get('run', 0):.1f}",
        "upscale_s": f"{d.get('upscale', 0):.1f}", "download_s": f"{d.get('download', 0):.1f}",
        "total_s": f"{d.get('total', 0):.1f}",
        "output": local_rel(cfg, local_folder(cfg, plan.name, RUN)),
        "upscaled": local_rel(cfg, local_folder(cfg, plan.name, UPSCALE)) if result.upscaled else None,
        "error": result.error or None,
    }
    return history.append_record(history.history_path(cfg), record)


def _summary(cfg, plan: Plan, result: CycleResult, line: str) -> None:
    print(f"status: {result.status}" + (f" ({result.error})" if result.error else ""))
    run_video = local_folder(cfg, plan.name, RUN) / "output.mp4"
    if result.status == "ok" and run_video.is_file():
        print(f"result: {local_rel(cfg, run_video)}")
    up_video = local_folder(cfg, plan.name, UPSCALE) / "output.mp4"
    if result.upscaled and up_video.is_file():
        print(f"upscaled: {local_rel(cfg, up_video)}")
    print(f"log: {local_rel(cfg, local_folder(cfg, plan.name, RUN) / 'run.log')}")
    if result.connections:
        say(f"{result.durations['total']:.1f} s over {result.connections} SSH connection(s)")
    print(f"history ({local_rel(cfg, history.history_path(cfg))}): {line}")
