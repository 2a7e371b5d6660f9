"""Commands that talk to the GPU box (upload, run, upscale, download, cycle, status, attach, kill) and history.

Thin: parse, call cycle.py / jobs.py / history.py, print. Failures raise UserError/RemoteError (one line).
"""

from __future__ import annotations

import functools
import json
import shlex
from pathlib import Path

import click

from .config import load_config
from .errors import Interrupted, JobFailed, UserError

PROMPT = click.argument("prompt", type=click.Path(dir_okay=False, path_type=Path))
GPUS = click.option("--num-gpu", type=click.IntRange(min=1), default=None,
                    help="GPUs for this run (default NUM_GPU); more than 1 uses torchrun.")
WAIT = click.option("--wait", is_flag=True, help="If the GPU box is busy with another job, wait for it.")


def interruptible(command):
    """Ctrl-C anywhere in a remote command: exit 130 with one line (click alone would say "Aborted!", exit 1)."""
    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        from .transport import paramiko_safe_sigint

        try:
            with paramiko_safe_sigint():
                return command(*args, **kwargs)
        except KeyboardInterrupt:
            raise Interrupted("interrupted") from None

    return wrapper


def _config(num_gpu: int | None = None):
    """The effective settings with this run's overrides on top (``--num-gpu``)."""
    return load_config().with_overrides({"NUM_GPU": num_gpu}, source="--num-gpu")


def _session(cfg, prompt: Path, override: str | None = None, *, check: bool = False, **kwargs):
    from .cycle import Session
    from .plan import plan_prompt

    plan = plan_prompt(cfg, prompt, override, check=check, quiet=kwargs.get("quiet", False))
    return Session(cfg, plan, **kwargs)


def _finish(outcome, session) -> None:
    """Exit 0 for ok/detached/running; JobFailed (exit 1, after the failure line and log tail) otherwise."""
    from .jobs import report_failure

    if outcome.status in ("ok", "detached", "running"):
        if outcome.status == "ok":
            click.echo(f"{outcome.state.dir}: ok" + (" (already done)" if outcome.reused else ""))
        return
    report_failure(outcome, session.say)
    raise JobFailed(outcome.message)


@click.command("upload")
@PROMPT
@click.argument("videos_subdir", required=False)
@click.option("--quiet", is_flag=True, help="Print nothing but errors.")
@interruptible
def upload_cmd(prompt: Path, videos_subdir: str | None, quiet: bool) -> None:
    """Check PROMPT, then send it and its shot folder to the same paths under REMOTE_DIR.

    VIDEOS_SUBDIR names the shot folder to send instead of the one the prompt points at (the prompt's
    paths must point at it). Identical files are not sent again; every file is verified.
    """
    cfg = load_config()
    session = _session(cfg, prompt, videos_subdir, check=True, quiet=quiet)
    try:
        session.upload()
    finally:
        session.close()


@click.command("run")
@PROMPT
@click.option("--detach", is_flag=True, help="Start the job and return; it keeps running on the box.")
@WAIT
@GPUS
@click.option("--force", is_flag=True, help="Run again even if the job already finished ok with the same spec.")
@interruptible
def run_cmd(prompt: Path, detach: bool, wait: bool, num_gpu: int | None, force: bool) -> None:
    """Run PROMPT on the GPU box as a detached, named job and stream its log (Ctrl-C stops the job).

    The job survives a dropped connection: `cosmos-tools attach NAME` re-attaches. A job that already
    finished ok with the same spec is not run again; a running one is re-attached.
    """
    cfg = _config(num_gpu)
    session = _session(cfg, prompt)
    try:
        session.probe()
        outcome = session.ensure(session.run_job(), wait=wait, detach=detach, force=force)
        _finish(outcome, session)
    finally:
        session.close()


@click.command("upscale")
@PROMPT
@click.argument("control_weight", required=False)
@WAIT
@GPUS
@interruptible
def upscale_cmd(prompt: Path, control_weight: str | None, wait: bool, num_gpu: int | None) -> None:
    """4K-upscale the run's outputs/NAME/output.mp4 into outputs/NAME_upscaled/ (weight default UPSCALE_WEIGHT).

    Refused when the run has no output or its video is longer than 121 frames (what the upscaler handles).
    """
    from .render import upscale_weight

    cfg = _config(num_gpu)
    weight = upscale_weight(cfg["UPSCALE_WEIGHT"] if control_weight is None else control_weight)
    session = _session(cfg, prompt)
    try:
        session.probe()
        session.check_upscale_input()
        outcome = session.ensure(session.upscale_job(weight), wait=wait)
        _finish(outcome, session)
    finally:
        session.close()


@click.command("download")
@PROMPT
@interruptible
def download_cmd(prompt: Path) -> None:
    """Fetch outputs/NAME/ and outputs/NAME_upscaled/ from the box (verified, identical files skipped)."""
    from .remote.paths import RUN, UPSCALE

    cfg = load_config()
    session = _session(cfg, prompt)
    try:
        box = session.probe()
        for job in (session.named_job(RUN), session.named_job(UPSCALE)):
            if job.container in box.running:
                raise UserError(f"{job.label} is still running on the box: follow it with `cosmos-tools attach "
                                f"{shlex.quote(job.name)}` and download when it has finished")
        session.download(RUN, missing_ok=False)
        session.download(UPSCALE, missing_ok=True)
    finally:
        session.close()


@click.command("cycle")
@PROMPT
@click.argument("videos_subdir", required=False)
@click.option("--no-upscale", is_flag=True, help="Skip the 4K upscale.")
@click.option("--upscale-weight", default=None, metavar="W", help="Control weight of the upscaler (default "
              "UPSCALE_WEIGHT).")
@WAIT
@GPUS
@interruptible
def cycle_cmd(prompt: Path, videos_subdir: str | None, no_upscale: bool, upscale_weight: str | None, wait: bool,
              num_gpu: int | None) -> None:
    """Upload, run (live log), upscale, download, and append a line to notes/run_history.log.

    Re-running after a failure or a dropped connection resumes: what is done is not done again and a
    running job is re-attached. Exit codes: 0 ok, 1 run failed, 3 GPU box or connection problem, 130 Ctrl-C.
    """
    from .cycle import run_cycle

    run_cycle(_config(num_gpu), prompt, override=videos_subdir, upscale=not no_upscale, weight=upscale_weight,
              wait=wait)


def _name_of(run: str) -> str:
    """A run name, or a prompt file's name for convenience."""
    if run.endswith(".json") and Path(run).is_file():
        from .prompts import prompt_name

        return prompt_name(run)
    return run


def _remote(cfg):
    from .jobs import Remote

    return Remote(cfg)


def _shown(text: str) -> str:
    from .history import quote_value

    quoted = quote_value(text)
    return quoted[1:-1] if quoted.startswith('"') else quoted


@click.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list for tools.")
@interruptible
def status_cmd(as_json: bool) -> None:
    """List the jobs on the GPU box: running, ok, blocked or failed (with exit code)."""
    from .jobs import job_rows

    cfg = load_config()
    remote = _remote(cfg)
    try:
        rows = job_rows(remote)
    finally:
        remote.close()
    if as_json:
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    if not rows:
        click.echo("no jobs on the box yet", err=True)
        return
    table = [("STATE", "EXIT", "UPDATED", "JOB")]
    for row in rows:
        table.append((row["state"], "" if row["exit_code"] is None else str(row["exit_code"]), row["updated"],
                      _shown(row["job"])))
    widths = [max(len(r[i]) for r in table) for i in range(3)]
    for r in table:
        click.echo("  ".join(c.ljust(w) for c, w in zip(r[:3], widths, strict=True)) + "  " + r[3])


@click.command("attach")
@click.argument("run")
@interruptible
def attach_cmd(run: str) -> None:
    """Re-attach to the live log of job RUN (a run name or its prompt file) and follow it to the end."""
    from .jobs import attach

    cfg = load_config()
    remote = _remote(cfg)
    try:
        outcome = attach(remote, _name_of(run))
        if outcome.status != "ok":
            from .jobs import report_failure

            report_failure(outcome, lambda m: click.echo(f"cosmos-tools: {m}", err=True))
            raise JobFailed(outcome.message)
        click.echo(f"{outcome.state.dir}: ok")
    finally:
        remote.close()


@click.command("kill")
@click.argument("run")
@interruptible
def kill_cmd(run: str) -> None:
    """Stop job RUN on the GPU box (its run or its upscale, whichever is running)."""
    from .jobs import kill

    cfg = load_config()
    remote = _remote(cfg)
    try:
        stopped = kill(remote, _name_of(run))
    finally:
        remote.close()
    for container in stopped:
        click.echo(f"stopped {container}")


@click.command("history")
@click.option("--status", type=click.Choice(["ok", "failed", "blocked", "cancelled"]), help="Only this status.")
@click.option("--shot", help="Only runs of this shot.")
@click.option("--since", metavar="DATE", help="From this date (YYYY-MM-DD or ISO time, UTC).")
@click.option("--until", metavar="DATE", help="Up to this date (a bare date includes the whole day).")
@click.option("--grep", metavar="TEXT", help="Only records containing TEXT (any field, case-insensitive).")
@click.option("--limit", type=click.IntRange(min=1), help="Only the last N matching records.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of records for tools.")
def history_cmd(status, shot, since, until, grep, limit, as_json) -> None:
    """Show notes/run_history.log as a table (one row per cycle), filtered."""
    from . import history

    cfg = load_config()
    path = history.history_path(cfg)
    records = history.read_records(path, warn=lambda msg: click.echo(f"warning: {msg}", err=True))
    try:
        kept = history.filter_records(records, status=status, shot=shot, since=since, until=until, grep=grep,
                                      limit=limit)
    except ValueError as exc:
        raise UserError(f"{exc}") from None
    if as_json:
        click.echo(json.dumps([history.typed(r) for r in kept], indent=2, ensure_ascii=False))
        return
    if not records:
        click.echo(f"no runs recorded yet in {path}", err=True)
        return
    click.echo(history.format_table(kept))


COMMANDS = [upload_cmd, run_cmd, upscale_cmd, download_cmd, cycle_cmd, status_cmd, attach_cmd, kill_cmd,
            history_cmd]
