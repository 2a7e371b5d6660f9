"""The steps behind the remote commands, and the full cycle over one connection.

upload -> run (live log) -> download the run folder -> upscale (unless told not to, only after a
successful run, at most 121 frames) -> download the upscale -> one line in notes/run_history.log.
Re-running resumes: uploads skip identical files, a job that finished ok with the same spec is not
run again, a running job is re-attached, downloads skip identical files. A dropped connection is
reopened (a few tries) and the interrupted step repeated. docs/remote.md has the rules.
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
from .errors import UserError
from .jobs import RUN, UPSCALE, Box, Interrupted, Job, Outcome, Remote, Runner, job_dir, job_from_rendered
from .plan import Plan, check_upscale_length, plan_prompt, weights_text

RESULT_FILES = ("output.mp4", "output.txt", "exit_code")
STEP_RETRIES = 3


def say(msg: str) -> None:
    print(f"cosmos-tools: {msg}", file=sys.stderr, flush=True)


class Session:
    """The remote steps for one prompt over one connection (reopened if it drops)."""

    def __init__(self, cfg, plan: Plan, *, num_gpu: int | None = None, quiet: bool = False,
                 echo: Callable[[bytes], None] | None = None) -> None:
        self.cfg = cfg
        self.plan = plan
        self.num_gpu = num_gpu
        self.quiet = quiet
        self.remote = Remote(cfg)
        self.runner = Runner(self.remote, echo=echo, say=self.say)
        self.runner.watch = [job_dir(plan.name, RUN), job_dir(plan.name, UPSCALE)]
        self.box: Box | None = None
        self._fresh = False  # self.box was read after the last change we made on the box

    def say(self, msg: str) -> None:
        if not self.quiet:
            say(msg)

    def close(self) -> None:
        self.remote.close()

    def retrying(self, what: str, fn):
        """Run a step; after a dropped connection reopen it and run the step again (steps are idempotent)."""
        from .transport import ConnectionLost

        for attempt in range(STEP_RETRIES + 1):
            try:
                return fn()
            except ConnectionLost as exc:
                if attempt == STEP_RETRIES:
                    raise
                self.remote.reconnect(f"{what}: {exc}", self.say)
        raise AssertionError("unreachable")

    # --- steps -------------------------------------------------------------------------------------

    def upload(self):
        from .sync import upload_files

        report = self.retrying("upload", lambda: upload_files(self.remote.t, self.plan.uploads,
                                                               progress=not self.quiet))
        self.say(f"upload: {len(report.sent)} sent ({report.bytes_sent / 1e6:.1f} MB), "
                 f"{len(report.skipped)} already on the box, {report.seconds:.1f} s")
        return report

    def probe(self) -> Box:
        """Read the box (remote user, running containers, this prompt's two job folders): one round trip."""
        self.box = self.retrying("reading job state", lambda: self.remote.probe(self.runner.watch))
        self._fresh = True
        return self.box

    def fresh_box(self) -> Box:
        """The last reading of the box if nothing was done since, else a new one."""
        if self.box is not None and self._fresh:
            self._fresh = False
            return self.box
        return self.probe()

    def _render_args(self) -> dict:
        box = self.box or self.probe()
        return {"num_gpu": self.num_gpu, "docker_user": f"{box.uid}:{box.gid}", "remote_home": box.home}

    def named_job(self, kind: str) -> Job:
        """This prompt's run or upscale as known by name (container and files), without rendering it."""
        from .jobs import plain_job

        return plain_job(self.plan.name, kind)

    def run_job(self) -> Job:
        from .render import render_run

        rendered = render_run(self.plan.name, self.plan.prompt, self.cfg, **self._render_args())
        return job_from_rendered(self.plan.name, RUN, rendered, self.plan.text)

    def upscale_job(self, weight: float | None) -> Job:
        from .render import render_upscale

        rendered = render_upscale(self.plan.name, self.cfg, weight=weight, **self._render_args())
        return job_from_rendered(self.plan.name, UPSCALE, rendered, None)

    def ensure(self, job: Job, *, wait: bool, detach: bool = False, force: bool = False) -> Outcome:
        """Run or re-attach ``job`` (reconnecting as needed) and return how it ended."""
        run_done = self.box.jobs[job_dir(self.plan.name, RUN)].finished_at if self.box else 0

        def stale(state) -> bool:
            return force or (job.kind == UPSCALE and state.finished_at < run_done)

        def attempt():
            outcome = self.runner.ensure(job, self.fresh_box(), wait=wait, detach=detach, rerun_if=stale)
            if outcome.box is not None:
                self.box, self._fresh = outcome.box, True
            return outcome

        return self.retrying(f"running {job.label}", attempt)

    def download(self, kind: str, missing_ok: bool):
        from .sync import download_tree

        rel = job_dir(self.plan.name, kind)
        local = self.cfg.local_path("LOCAL_OUTPUTS_DIR") / PurePosixPath(rel).name
        report = self.retrying("download", lambda: download_tree(self.remote.t, rel, local,
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

        state = (self.box or self.probe()).jobs[job_dir(self.plan.name, RUN)]
        rel = f"{job_dir(self.plan.name, RUN)}/output.mp4"
        if state.output_size <= 0:
            raise UserError(f"{rel} is missing on the GPU box: run the inference first "
                            f"(scripts/run_inference_remote.sh {self.plan.path.name})")
        local = self.cfg.local_path("LOCAL_OUTPUTS_DIR") / self.plan.name / "output.mp4"
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
    code: int = 1


def run_cycle(cfg, prompt_path, *, override: str | None = None, upscale: bool = True, weight=None,
              wait: bool = False, num_gpu: int | None = None, echo=None) -> int:
    """The full cycle; returns the exit code (0 ok, 1 run failed, 3 box/connection problem, 130 interrupted)."""
    from .render import upscale_weight

    plan = plan_prompt(cfg, prompt_path, override)
    up_weight = upscale_weight(cfg["UPSCALE_WEIGHT"] if weight is None else weight) if upscale else None
    if upscale:
        check_upscale_length(cfg, plan)
    started = history.now_iso()
    result = CycleResult()
    session = None
    clock = time.monotonic()

    def timed(step: str, fn):
        begin = time.monotonic()
        try:
            return fn()
        finally:
            result.durations[step] = result.durations.get(step, 0.0) + time.monotonic() - begin

    try:
        session = Session(cfg, plan, num_gpu=num_gpu, echo=echo)
        timed("upload", session.upload)
        session.probe()
        outcome = timed("run", lambda: session.ensure(session.run_job(), wait=wait))
        result.exit = outcome.state.exit_code
        timed("download", lambda: session.download(RUN, missing_ok=True))
        if outcome.status != "ok":
            from .jobs import report_failure

            report_failure(outcome, say)
            result.status, result.error, result.code = outcome.status, outcome.message, 1
        else:
            if upscale:
                session.check_upscale_input()
                up = timed("upscale", lambda: session.ensure(session.upscale_job(up_weight), wait=wait))
                timed("download", lambda: session.download(UPSCALE, missing_ok=True))
                result.upscaled = True
                if up.status != "ok":
                    from .jobs import report_failure

                    report_failure(up, say)
                    result.status, result.error, result.code = "failed", f"upscale: {up.message}", 1
                else:
                    result.status, result.code = "ok", 0
            else:
                result.status, result.code = "ok", 0
    except KeyboardInterrupt:
        say("interrupted (Ctrl-C)")
        result.status, result.error, result.code = "cancelled", "interrupted (Ctrl-C)", 130
    except UserError as exc:  # RemoteError (exit 3) and Interrupted (exit 130) included
        exc.show()
        cancelled = isinstance(exc, Interrupted)
        result.status, result.error, result.code = "cancelled" if cancelled else "failed", exc.format_message(), \
            exc.exit_code
    finally:
        if session is not None:
            result.connections = session.remote.connections
            session.close()
    result.durations["total"] = time.monotonic() - clock
    line = _record(cfg, plan, started, result, up_weight, num_gpu)
    _summary(cfg, plan, result, line)
    return result.code


def _record(cfg, plan: Plan, started: str, result: CycleResult, up_weight, num_gpu: int | None) -> str:
    outputs = cfg.local_path("LOCAL_OUTPUTS_DIR")
    d = result.durations
    record = {
        "ts": started, "run": plan.name, "prompt": local_rel(cfg, plan.path), "shot": plan.shot or "",
        "host": cfg["REMOTE_HOST"] if cfg["TRANSPORT"] == "ssh" else "local", "gpus": num_gpu or cfg.int("NUM_GPU"),
        "weights": weights_text(plan.prompt), "upscale": "no" if up_weight is None else f"{up_weight:g}",
        "status": result.status, "exit": "" if result.exit is None else result.exit,
        "upload_s": f"{d.get('upload', 0):.1f}", "run_s": f"{d.get('run', 0):.1f}",
        "upscale_s": f"{d.get('upscale', 0):.1f}", "download_s": f"{d.get('download', 0):.1f}",
        "total_s": f"{d.get('total', 0):.1f}",
        "output": local_rel(cfg, outputs / plan.name),
        "upscaled": local_rel(cfg, outputs / f"{plan.name}_upscaled") if result.upscaled else None,
        "error": result.error or None,
    }
    return history.append_record(history.history_path(cfg), record)


def _summary(cfg, plan: Plan, result: CycleResult, line: str) -> None:
    outputs = cfg.local_path("LOCAL_OUTPUTS_DIR")
    print(f"status: {result.status}" + (f" ({result.error})" if result.error else ""))
    run_video = outputs / plan.name / "output.mp4"
    if result.status == "ok" and run_video.is_file():
        print(f"result: {local_rel(cfg, run_video)}")
    up_video = outputs / f"{plan.name}_upscaled" / "output.mp4"
    if result.upscaled and up_video.is_file():
        print(f"upscaled: {local_rel(cfg, up_video)}")
    print(f"log: {local_rel(cfg, outputs / plan.name / 'run.log')}")
    if result.connections:
        say(f"{result.durations['total']:.1f} s over {result.connections} SSH connection(s)")
    print(f"history ({local_rel(cfg, history.history_path(cfg))}): {line}")
