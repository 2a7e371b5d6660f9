"""Commands for prompt JSONs: new-prompt, check, render (dry run). No network, no paramiko."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import TypedDict

import click

from .config import MODELS, load_config
from .fsutil import json_text


@click.command("new-prompt")
@click.argument("args", nargs=-1, metavar="BASE_NAME PROMPT_TEXT")
@click.option("--duplicate", "existing", type=click.Path(dir_okay=False, path_type=Path),
              help="Copy this prompt JSON under a new timestamp (its shot is kept).")
@click.option("--shot", help="Shot folder under inputs/videos/ when it differs from BASE_NAME.")
@click.option("--model", type=click.Choice(MODELS), default=None,
              help="Write this model's spec format (default MODEL from config.sh).")
def new_prompt_cmd(args: tuple[str, ...], existing: Path | None, shot: str | None, model: str | None) -> None:
    """Write inputs/prompts/BASE_NAME_<YYYYmmdd_HHMMSS>.json and create outputs/<name>/.

    The spec uses the modalities present in inputs/videos/<shot>/ (color.mp4 is the input video; depth.mp4
    and segmentation.mp4 become depth and seg controls; vis and edge are computed by cosmos). Existing files
    are never overwritten: a clash in the same second adds _2, _3, ...
    BASE_NAME may be at most 194 bytes in UTF-8: the timestamp and the run's files add the rest of the
    255 a file name holds.

    The defaults come from the model's template, cosmos_tools/templates/prompt.json.j2 (transfer1-7b),
    prompt_transfer25.json.j2 (transfer2.5-2b) or prompt_cosmos3.json.j2 (cosmos3-*: the shot's depth and
    segmentation as precomputed hints, tier, aspect, fps and frames from shot.json, the text in a structured
    caption); copy it to inputs/prompts/prompt_template.json.j2 (or prompt_template.<model>.json.j2) and edit
    it to change them. Prints the new file's path.
    """
    from .prompts import duplicate_prompt, new_prompt

    cfg = load_config().with_overrides({"MODEL": model}, source="--model")
    if existing is not None:
        if args or shot is not None:
            raise click.UsageError("--duplicate takes only the existing prompt: new-prompt --duplicate FILE.json")
        path = duplicate_prompt(cfg, existing)
    else:
        if len(args) != 2:
            raise click.UsageError('give BASE_NAME and "PROMPT TEXT" (quote the text), or --duplicate FILE.json')
        path = new_prompt(cfg, args[0], args[1], shot=shot)
    click.echo(_shown(path, cfg.root))


def _shown(path: Path, root: Path) -> str:
    """A path relative to the project when it is inside it."""
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


@click.command("check")
@click.argument("prompts", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help='Print {"ok", "problems", "warnings"} per prompt on stdout.')
def check_cmd(prompts: tuple[Path, ...], as_json: bool) -> None:
    """Check prompt JSONs before any GPU time is spent.

    Applies cosmos-transfer1's own rules and the ones it forgets (files exist and stay in the project, frame
    counts and aspect ratios agree, types, unknown keys). One line per problem on stderr,
    PATH: KEY: message; warnings start with "warning:" and do not fail. Exit 0 only if every prompt would run.
    Unknown keys are errors; keys starting with "_" are comments (kept out of the spec sent to cosmos).
    The file's name without .json is the run name: at most 214 bytes in UTF-8 (the run's files add to it).
    """
    from .validate import check_path

    cfg = load_config()
    failed = False
    for path in prompts:
        checked = check_path(path, cfg)
        errors, warnings = checked.errors, checked.warnings
        failed = failed or bool(errors)
        for p in warnings:
            click.echo(f"warning: {path}: {p.key}: {_one_line(p.message)}", err=True)
        for p in errors:
            click.echo(f"{path}: {p.key}: {_one_line(p.message)}", err=True)
        if as_json:
            click.echo(json.dumps({"path": str(path), "ok": not errors,
                                   "problems": [{"key": p.key, "message": p.message} for p in errors],
                                   "warnings": [{"key": p.key, "message": p.message} for p in warnings]},
                                  ensure_ascii=False))
        elif not errors:
            click.echo(f"ok: {path}")
    if failed:
        raise SystemExit(1)


def _one_line(text: str) -> str:
    return " ".join(text.split("\n"))


@click.command("render")
@click.argument("prompt", type=click.Path(path_type=Path))
@click.option("--upscale", is_flag=True, help="Render the 4K upscale of this prompt's run instead.")
@click.option("--weight", help="Control weight of the upscaler (default UPSCALE_WEIGHT).")
@click.option("--num-gpu", type=click.IntRange(min=1), help="GPUs for this run (default NUM_GPU).")
@click.option("--json", "as_json", is_flag=True,
              help='Print one object: {"spec", "command", "docker", ...} (argv lists).')
def render_cmd(prompt: Path, upscale: bool, weight: str | None, num_gpu: int | None, as_json: bool) -> None:
    """Dry run: print the spec, the transfer command and the docker command a run would use.

    Nothing is sent or started. With DOCKER_USER=auto the --user flag is left out, since only the GPU box
    knows its uid (a real run asks it). PROMPT may be a sweep manifest: then the grouping of its variants into
    jobs (batches share one model load) and each batch's JSONL are shown.
    """
    from .experiment import read_inputs
    from .prompts import read_prompt
    from .render import render_run, render_upscale, upscale_weight

    cfg = load_config().with_overrides({"NUM_GPU": num_gpu}, source="--num-gpu")
    name, prompts = read_inputs(cfg, [prompt])
    if prompts != [prompt]:
        if upscale or weight is not None:
            raise click.UsageError("--upscale and --weight are for one prompt, not a sweep manifest")
        _render_grouping(cfg, name, [read_prompt(p) for p in prompts], as_json)
        return
    source = read_prompt(prompt)
    spec, name = source.data, source.name
    if weight is not None and not upscale:
        raise click.UsageError("--weight is for --upscale")
    if upscale:
        rendered = render_upscale(name, cfg, weight=None if weight is None else upscale_weight(weight),
                                  run_prompt=spec)
    else:
        rendered = render_run(name, spec, cfg)
    if cfg["DOCKER_USER"].strip() == "auto":
        click.echo("note: DOCKER_USER=auto: --user is added at run time from the GPU box's id -u:id -g", err=True)
    if as_json:
        data = {"spec": rendered.spec, "command": rendered.command, "docker": rendered.docker,
                "name": rendered.name, "kind": rendered.kind, "container": rendered.container,
                "output_dir": rendered.output_dir, "spec_path": rendered.spec_path,
                "log_path": rendered.log_path, "exit_code_path": rendered.exit_code_path, "env": rendered.env}
        click.echo(json_text(data), nl=False)
        return
    click.echo(f"# dry run of {'the 4K upscale of ' if upscale else ''}{name!r}: nothing is sent or started")
    click.echo(f"# spec, uploaded as {rendered.spec_path}:")
    click.echo(json_text(rendered.spec), nl=False)
    click.echo("# command, inside the container (cwd /workspace):")
    click.echo(shlex.join(rendered.command))
    click.echo(f"# docker, on the GPU box (container {rendered.container}, log {rendered.log_path}):")
    click.echo(shlex.join(rendered.docker))


class _GroupedJob(TypedDict):
    """One job of a sweep's dry run, as ``render --json`` prints it."""

    variants: list[str]
    batch: bool
    differs: list[str]
    alone: str | None
    lines: list[dict] | None  # the batch's JSONL lines; None for a single run


def _render_grouping(cfg, name: str, prompts: list, as_json: bool) -> None:
    """How the variants of sweep ``name`` run: one line per job, and each batch's JSONL."""
    from . import models
    from .batch import BatchPaths, batch_lines, describe, group_variants
    from .remote.paths import run_id_of
    from .render import run_spec

    specs = [run_spec(p.name, p.data, cfg) for p in prompts]
    model = models.of_prompt(prompts[0].data, cfg).NAME  # render follows the prompt's own model, as for one prompt
    groups = group_variants(specs, model)
    folder = BatchPaths.of_batch(name, run_id_of(name, 1)).folder  # where a batch's records are (for their paths)
    jobs: list[_GroupedJob] = [
        {"variants": [prompts[i].name for i in g.members], "batch": g.batch, "differs": g.differs,
         "alone": g.alone or None,
         "lines": batch_lines(model, [prompts[i].data for i in g.members], [specs[i] for i in g.members],
                              folder) if g.batch else None}
        for g in groups]
    if as_json:
        click.echo(json_text({"name": name, "jobs": jobs}), nl=False)
        return
    click.echo(f"# dry run of sweep {name!r}: {len(prompts)} variants in {len(groups)} job(s); nothing is sent")
    for text, job in zip(describe(groups, [p.name for p in prompts]), jobs, strict=True):
        click.echo(text)
        for line in job["lines"] or ():
            click.echo("  " + json.dumps(line, ensure_ascii=False))


COMMANDS = [new_prompt_cmd, check_cmd, render_cmd]
