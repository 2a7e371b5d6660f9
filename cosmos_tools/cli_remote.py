"""Commands that talk to the GPU box (upload, run, upscale, download, cycle, rerun, status, queue, attach, kill), and
the record: history, show.

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


def _wait_note(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    """``--wait``'s callback: say, when it is given, that it does nothing any more."""
    if value:
        click.echo("cosmos-tools: note: --wait has no effect any more: jobs wait in the GPU box's queue", err=True)


WAIT = click.option("--wait", is_flag=True, hidden=True, expose_value=False, is_eager=True, callback=_wait_note,
                    help="No effect: jobs wait in the box's queue (accepted for scripts that pass it).")


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


def _upscale_config(cfg, upscale_prompt: str | None):
    """--upscale-prompt as a layer of the config: it wins over the prompt's _upscale and UPSCALE_PROMPT."""
    from .render import UPSCALE_PROMPT_OPTION

    return cfg.with_overrides({"UPSCALE_PROMPT": upscale_prompt}, source=UPSCALE_PROMPT_OPTION)


UPSCALE_PROMPT = click.option("--upscale-prompt", default=None, metavar="TEXT",
                              help="Prompt of the 4K upscaler (wins over the prompt's _upscale and UPSCALE_PROMPT).")


def _session(cfg, prompt: Path, override: str | None = None, *, check: bool = False, **kwargs):
    from .cycle import Session
    from .plan import plan_prompt

    plan = plan_prompt(cfg, prompt, override, check=check, quiet=kwargs.get("quiet", False))
    return Session(cfg, plan, **kwargs)


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
def run_cmd(prompt: Path, detach: bool, num_gpu: int | None, force: bool) -> None:
    """Run PROMPT on the GPU box as a new run (outputs/runs/NAME-K) and stream its log (Ctrl-C stops the job).

    The job waits in the box's queue behind the jobs there ("queued behind N jobs") and starts when they end,
    with or without this client. It survives a dropped connection: `cosmos-tools attach NAME` re-attaches. A
    run that already finished ok with the same spec is not run again (--force: a new run); a running or queued
    one is re-attached.
    A run started (or tried) gets a line in notes/run_history.log.
    """
    from .cycle import Steps, run_attempt
    from .plan import plan_prompt

    cfg = _config(num_gpu)
    run_attempt(cfg, plan_prompt(cfg, prompt, check=False),
                Steps(upload=False, download=False, detach=detach, force=force))


@click.command("upscale")
@PROMPT
@click.argument("control_weight", required=False)
@UPSCALE_PROMPT
@WAIT
@GPUS
@interruptible
def upscale_cmd(prompt: Path, control_weight: str | None, upscale_prompt: str | None,
                num_gpu: int | None) -> None:
    """4K-upscale the latest run of PROMPT (outputs/NAME) into outputs/runs/<run id>_upscaled[-K]/
    (weight default UPSCALE_WEIGHT); outputs/NAME_upscaled links to the newest.

    Refused when the run has no output or its video is longer than 121 frames (what the upscaler handles).
    """
    from .cycle import Steps, run_attempt
    from .plan import check_upscaler, plan_prompt
    from .render import upscale_weight_of

    cfg = _upscale_config(_config(num_gpu), upscale_prompt)
    plan = plan_prompt(cfg, prompt, check=False)
    weight = upscale_weight_of(cfg, plan.prompt, control_weight)
    check_upscaler(cfg, plan)
    run_attempt(cfg, plan,
                Steps(upload=False, run=False, upscale=weight, download=False))


@click.command("download")
@PROMPT
@interruptible
def download_cmd(prompt: Path) -> None:
    """Fetch the latest run of PROMPT and its latest upscale (outputs/runs/...; verified, identical files skipped),
    and point outputs/NAME and outputs/NAME_upscaled at them."""
    from .remote.paths import RUN, UPSCALE

    cfg = load_config()
    session = _session(cfg, prompt)
    try:
        box = session.probe()
        jobs = [session.current(RUN), session.current(UPSCALE)]
        for job in jobs:
            if job.container in box.running:
                raise UserError(f"{job.label} is still running on the box: follow it with `cosmos-tools attach "
                                f"{shlex.quote(job.name)}` and download when it has finished")
        session.download(jobs[0], missing_ok=False)
        if jobs[1].run_id:
            session.download(jobs[1], missing_ok=True)
    finally:
        session.close()


@click.command("cycle")
@click.argument("prompts", nargs=-1, required=True, metavar="PROMPT [VIDEOS_SUBDIR] | PROMPT... | MANIFEST")
@click.option("--no-upscale", "upscale", flag_value=False, default=None, help="Skip the 4K upscale (one prompt).")
@click.option("--upscale", "upscale", flag_value=True, help="Upscale every variant that ended ok (several prompts).")
@click.option("--upscale-weight", default=None, metavar="W", help="Control weight of the upscaler (default "
              "UPSCALE_WEIGHT).")
@UPSCALE_PROMPT
@WAIT
@GPUS
@click.option("--force", is_flag=True, help="A new run even if the latest one finished ok with the same spec.")
@click.option("--dry-run", is_flag=True, help="Check the prompts and show how the runs are grouped; run nothing.")
@click.option("--detach", is_flag=True, help="Upload and queue every job on the box, say what was queued, and "
              "return; the same command again collects the results.")
@click.option("--no-review", "review", flag_value=False, default=True,
              help="Several prompts: skip the review page and contact sheet written at the end.")
@click.option("--critique", is_flag=True, help="Several prompts: score the variants that ended ok with the video "
              "critic (advisory; before the review page, which shows the scores).")
@click.option("--upscale-best", type=click.IntRange(min=1), default=None, metavar="K",
              help="Several prompts: upscale the K best-scored variants (implies --critique).")
@interruptible
def cycle_cmd(prompts: tuple[str, ...], upscale: bool | None, upscale_weight: str | None,
              upscale_prompt: str | None, num_gpu: int | None, force: bool, dry_run: bool, detach: bool,
              review: bool, critique: bool, upscale_best: int | None) -> None:
    """Upload, run (live log), upscale, download, and append a line to notes/run_history.log.

    Each run gets its own folder, outputs/runs/NAME-K (outputs/NAME links to the latest). Re-running after a
    failure or a dropped connection resumes: what is done is not done again (and adds no history line) and a
    running job is re-attached. Exit codes: 0 ok, 1 run failed, 3 GPU box or connection problem, 130 Ctrl-C.

    Several prompt files, or a sweep manifest (inputs/sweeps/NAME.json), make an experiment: one connection,
    one upload, variants that differ only in what a batch line carries (prompt, input video, control fields)
    run as one batch job (one model load), the others one after another; one history line per variant and a
    table at the end. No 4K upscale unless --upscale. --dry-run shows the grouping. --critique scores the
    variants with the video critic as the last step (critic.json per run; advisory: nothing is hidden);
    --upscale-best K then upscales only the K best-scored ones.

    --detach (one prompt too, which then is not upscaled): upload and queue every job on the box, print the run ids
    and queue positions, exit 0. Running the same command again later re-attaches: it collects what finished,
    follows what runs, queues nothing twice, then downloads, writes the history lines and the review.
    """
    cfg = _upscale_config(_config(num_gpu), upscale_prompt)
    paths = [Path(p) for p in prompts]
    single = len(paths) == 1 or (len(paths) == 2 and not prompts[1].endswith(".json"))
    if upscale and upscale_best:
        raise click.UsageError("--upscale upscales every variant, --upscale-best K the K best: give one of them")
    if detach and (critique or upscale_best):
        raise click.UsageError("--detach returns before any result exists: give --critique or --upscale-best to the "
                               "command that collects the results (the same command without --detach)")
    if single and not dry_run and not detach:
        from .experiment import read_inputs

        if len(paths) == 2 or read_inputs(cfg, paths[:1])[1] == paths:
            if critique or upscale_best:
                raise click.UsageError("--critique and --upscale-best rank the variants of several prompts or of a "
                                       "sweep manifest; score one run with `cosmos-tools critique RUN_ID`")
            from .cycle import run_cycle

            run_cycle(cfg, paths[0], override=prompts[1] if len(paths) == 2 else None, upscale=upscale is not False,
                      weight=upscale_weight, force=force)
            return
    if len(paths) == 2 and single:
        raise click.UsageError("--dry-run and --detach take prompt files or a manifest, not a videos_subdir")
    from .experiment import run_experiment

    run_experiment(cfg, paths, upscale=bool(upscale) and not detach, upscale_weight=upscale_weight, force=force,
                   dry_run=dry_run, detach=detach, review=review, critique=critique, upscale_best=upscale_best or 0)


@click.command("rerun")
@click.argument("run_id")
@click.option("--no-upscale", is_flag=True, help="Skip the 4K upscale.")
@WAIT
@GPUS
@interruptible
def rerun_cmd(run_id: str, no_upscale: bool, num_gpu: int | None) -> None:
    """Run RUN_ID's exact spec again, as a new run of the same prompt (history: rerun_of=RUN_ID).

    The spec comes from the run's local folder outputs/runs/RUN_ID/ (controlnet_spec.json, prompt_spec.json),
    never from the prompt file, which may have changed since. The shot is uploaded if the box lacks it.
    """
    from .cycle import Steps, run_attempt
    from .plan import check_upscale_length, plan_rerun
    from .render import upscale_weight_of

    cfg = _config(num_gpu)
    plan = plan_rerun(cfg, run_id)
    weight = None if no_upscale else upscale_weight_of(cfg, plan.prompt)
    if weight is not None:
        check_upscale_length(cfg, plan)
    run_attempt(cfg, plan, Steps(upscale=weight, force=True, rerun_of=run_id))


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


def _box_rows(read, as_json: bool, empty: str) -> list:
    """The rows ``read(remote)`` gets from the box; with --json they are printed here (and [] returned), and
    ``empty`` is said when there are none."""
    remote = _remote(load_config())
    try:
        rows = read(remote)
    finally:
        remote.close()
    if as_json:
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return []
    if not rows:
        click.echo(empty, err=True)
    return rows


@click.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list for tools.")
@interruptible
def status_cmd(as_json: bool) -> None:
    """List the jobs on the GPU box: running, ok, blocked or failed (with exit code)."""
    from .jobs import job_rows

    rows = _box_rows(job_rows, as_json, "no jobs on the box yet")
    if not rows:
        return
    table = [("STATE", "EXIT", "UPDATED", "JOB")]
    for row in rows:
        job = _shown(row["job"]) + (f" (batch {_shown(row['batch'])}: {_variants(row)})" if row["batch"] else "")
        table.append((row["state"], "" if row["exit_code"] is None else str(row["exit_code"]), row["updated"], job))
    widths = [max(len(r[i]) for r in table) for i in range(3)]
    for r in table:
        click.echo("  ".join(c.ljust(w) for c, w in zip(r[:3], widths, strict=True)) + "  " + r[3])


@click.command("attach")
@click.argument("run")
@interruptible
def attach_cmd(run: str) -> None:
    """Re-attach to the live log of job RUN (a run name or its prompt file) and follow it to the end.

    A prompt whose run is a line of a batch job follows that batch (its verdict is the line's); RUN may also name a
    batch (`cosmos-tools queue` lists them).
    """
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
    """Remove job RUN from the GPU box's queue, or stop it if it runs.

    RUN is a run id (that run and its upscales), a run name or its prompt file (its run and upscale).
    """
    from .jobs import kill

    cfg = load_config()
    remote = _remote(cfg)
    try:
        done = kill(remote, _name_of(run))
    finally:
        remote.close()
    for line in done:
        click.echo(line)


@click.command("queue")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list for tools.")
@interruptible
def queue_cmd(as_json: bool) -> None:
    """Show the GPU box's queue: the running job, the queued ones in order, the last finished ones.

    Jobs start one after another on the box, without a client: close the laptop, come back with
    `cosmos-tools attach NAME` or re-run the cycle to collect the results. `kill RUN_ID` removes a queued job.
    """
    from .jobs import queue_rows

    rows = _box_rows(queue_rows, as_json, "the queue on the box is empty")
    if not rows:
        return
    slurm = load_config(warn=False)["BACKEND"] == "slurm"
    table = [("POS", "STATE", "EXIT", "RUN ID", "KIND", *(("SLURM JOB",) if slurm else ()))]
    for row in rows:
        waits = slurm and row["state"] == "queued" and row["note"]
        state = f"{row['state']} ({row['note']})" if waits else row["state"]
        kind = f"batch ({_variants(row)})" if row["batch"] else "upscale" if row["kind"] == "up" else "run"
        table.append(("" if row["position"] is None else str(row["position"]), state,
                      "" if row["exit_code"] is None else str(row["exit_code"]), _shown(row["run_id"]), kind,
                      *((str(row["number"]),) if slurm else ())))
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    for r in table:
        click.echo("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


def _variants(row: dict) -> str:
    """A batch row's variants: the run ids of its lines."""
    return ", ".join(_shown(run_id) for run_id in row["variants"])


@click.command("history")
@click.option("--status", type=click.Choice(["ok", "failed", "blocked", "cancelled", "detached"]),
              help="Only this status.")
@click.option("--shot", help="Only runs of this shot.")
@click.option("--since", metavar="DATE", help="From this date (YYYY-MM-DD or ISO time, UTC).")
@click.option("--until", metavar="DATE", help="Up to this date (a bare date includes the whole day).")
@click.option("--grep", metavar="TEXT", help="Only records containing TEXT (any field, case-insensitive).")
@click.option("--limit", type=click.IntRange(min=1), help="Only the last N matching records.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of records for tools.")
def history_cmd(status, shot, since, until, grep, limit, as_json) -> None:
    """Show notes/run_history.log as a table (one row per run attempt), filtered.

    `--json` rows always carry run_id, prompt, output, status, spec_sha256, seed, image_id, code_version,
    tool_version, shot_sha256 and rerun_of ("" when a line does not say), and critic_score (the run's
    critic.json score, 0 to 1; null when it was not scored: `cosmos-tools critique`).
    """
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
        click.echo(json.dumps([history.with_critic_score(cfg, history.typed(r)) for r in kept], indent=2,
                              ensure_ascii=False))
        return
    if not records:
        click.echo(f"no runs recorded yet in {path}", err=True)
        return
    click.echo(history.format_table(kept))


@click.command("show")
@click.argument("run_id")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object for tools.")
def show_cmd(run_id: str, as_json: bool) -> None:
    """Everything known about run RUN_ID, without a connection: its history line(s), provenance, files, and
    where it lives here and on the GPU box."""
    from .runs import describe

    info = describe(load_config(), run_id)
    if as_json:
        click.echo(json.dumps(info, indent=2, ensure_ascii=False))
        return
    click.echo(f"run {_shown(info['run_id'])} of prompt {_shown(info['prompt_name'])}")
    click.echo(f"here:   {_shown(info['local'] or '(not downloaded)')}")
    click.echo(f"on box: {_shown(info['box'])}")
    if info["critic"]:
        score, judged = info["critic_score"], info["critic"]
        shown = "no score" if score is None else f"{score:.2f}"
        click.echo(f"critic: {shown} ({_shown(judged.get('answer', ''))}; {judged.get('critic', '')}, advisory)")
    for record in info["history"]:
        click.echo(f"history: {record['ts']} status={record['status']} total_s={record.get('total_s', '')}")
    for key, value in info["provenance"].items():
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        click.echo(f"  {key}: {_shown(text)}")
    for folder in info["folders"]:
        click.echo(f"{_shown(folder['path'])}/")
        for file in folder["files"]:
            click.echo(f"  {file['size']:>12}  {_shown(file['name'])}")


COMMANDS = [upload_cmd, run_cmd, upscale_cmd, download_cmd, cycle_cmd, rerun_cmd, status_cmd, queue_cmd, attach_cmd,
            kill_cmd, history_cmd, show_cmd]
