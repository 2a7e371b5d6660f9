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
from .errors import UserError
from .jobs import RUN, UPSCALE, Box, Interrupted, Job, Outcome, Remote, Runner, job_dir, job_from_rendered

RESULT_FILES = ("output.mp4", "output.txt", "exit_code")
MAX_UPSCALE_FRAMES = 121  # cosmos-transfer1 issue #150: the second 121-frame chunk of an upscale fails
STEP_RETRIES = 3


def say(msg: str) -> None:
    print(f"cosmos-tools: {msg}", file=sys.stderr, flush=True)


@dataclass
class Plan:
    """One prompt, read and checked locally: what to send and what to run."""

    path: Path
    name: str
    prompt: dict
    text: bytes
    shot: str | None
    uploads: list[tuple[Path, str]] = field(default_factory=list)  # (local file, path relative to REMOTE_DIR)


def _spec_paths(spec: dict) -> list[str]:
    """The project files a spec points at: input video, control videos, checkpoints, .pt weight maps, region files."""
    found: list[str] = []

    def add(value) -> None:
        if isinstance(value, str) and value:
            found.append(value)
        elif isinstance(value, list):
            for item in value:
                add(item)

    add(spec.get("input_video_path"))
    for value in spec.values():
        if isinstance(value, dict):
            add(value.get("input_control"))
            add(value.get("ckpt_path"))
            weight = value.get("control_weight")
            if isinstance(weight, str) and weight.endswith(".pt"):
                add(weight)
    for region in spec.get("regional_prompts") or []:
        if isinstance(region, dict) and isinstance(region.get("region_definitions_path"), str):
            add(region["region_definitions_path"])
    return found


def _clean_relative(path: str) -> bool:
    parts = PurePosixPath(path).parts
    return bool(parts) and not path.startswith("/") and ".." not in parts and "\0" not in path


def plan_prompt(cfg, path: str | Path, override: str | None = None, *, check: bool = True,
                quiet: bool = False) -> Plan:
    """Load the prompt, check it (problems: UserError, nothing sent) and list the files to upload.

    The prompt goes to ``inputs/prompts/<file name>`` on the box wherever it lives locally; the shot folder
    (``override`` or the one ``input_video_path`` points at) and every file the spec names go to their spec paths.
    """
    from .prompts import load_prompt, local_file, prompt_name, shot_of
    from .render import check_name

    path = Path(path)
    if not path.is_absolute():
        path = (Path.cwd() / path).resolve()
    prompt = load_prompt(path)
    name = check_name(prompt_name(path))
    if check:
        _check(path, cfg, quiet)
    try:
        natural = shot_of(prompt)
    except UserError:
        natural = None
    if override is not None:
        shot = shot_of(prompt, override)
        if natural not in (None, shot):
            raise UserError(f"{path}: input_video_path points at shot {natural!r}, not at {shot!r}; point the prompt's "
                            f"paths at inputs/videos/{shot}/ or drop the videos_subdir argument")
    else:
        shot = natural
    uploads: list[tuple[Path, str]] = [(path, f"inputs/prompts/{path.name}")]
    if shot is not None:
        folder = cfg.local_path("LOCAL_VIDEOS_DIR") / shot
        if not folder.is_dir():
            raise UserError(f"{folder}: shot folder not found; convert the renders with "
                            f"scripts/convert_png_sequences.sh or fix the prompt's paths")
        for file in sorted(folder.rglob("*")):
            rel = file.relative_to(folder)
            if file.is_file() and not any(part.startswith(".") for part in rel.parts):
                uploads.append((file, f"inputs/videos/{shot}/{rel.as_posix()}"))
    known = {rel for _, rel in uploads}
    box_checkpoints = PurePosixPath(cfg["CHECKPOINT_DIR_REMOTE"]).parts
    for spec_path in _spec_paths(prompt):
        rel = PurePosixPath(spec_path).as_posix()
        on_box_only = PurePosixPath(rel).parts[:len(box_checkpoints)] == box_checkpoints  # never send model weights
        if _clean_relative(spec_path) and rel not in known and not on_box_only and local_file(cfg, spec_path).is_file():
            uploads.append((local_file(cfg, spec_path), rel))
            known.add(rel)
    return Plan(path=path, name=name, prompt=prompt, text=path.read_bytes(), shot=shot, uploads=uploads)


def _check(path: Path, cfg, quiet: bool = False) -> None:
    """Print the prompt's problems; errors stop here (nothing is sent), warnings only inform."""
    from .validate import check_prompt

    problems = check_prompt(path, cfg)
    errors = [p for p in problems if not p.warning]
    for problem in problems:
        if problem.warning and quiet:
            continue
        kind = "warning" if problem.warning else "error"
        print(f"{kind}: {path.name}: {problem.key}: {problem.message}", file=sys.stderr)
    if errors:
        raise UserError(f"{path}: {len(errors)} error(s) above; fix the prompt (nothing was sent)")


def weights_text(prompt: dict) -> str:
    """``vis=0.25,edge=0.25,...``: the control weights of a spec, for the history line."""
    parts = []
    for key, value in prompt.items():
        if isinstance(value, dict) and not key.startswith("_"):
            parts.append(f"{key}={value.get('control_weight', '')}")
    return ",".join(parts)


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


def check_upscale_length(cfg, plan: Plan) -> None:
    """Before any GPU time: refuse a cycle whose output would be too long to upscale (it has the input's length)."""
    from .probe import probe_video
    from .prompts import local_file

    video = plan.prompt.get("input_video_path")
    if not isinstance(video, str) or not local_file(cfg, video).is_file():
        return
    info = probe_video(local_file(cfg, video), count_frames=False)
    frames = info.frames or probe_video(local_file(cfg, video)).frames
    if frames > MAX_UPSCALE_FRAMES:
        raise UserError(f"{video} has {frames} frames; the 4K upscaler handles at most {MAX_UPSCALE_FRAMES} "
                        "(cosmos-transfer1 issue #150): pass --no-upscale, or use a shorter shot (nothing was sent)")


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
