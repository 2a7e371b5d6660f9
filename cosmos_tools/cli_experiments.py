"""Commands for experiments of many runs: sweep. No network, no paramiko."""

from __future__ import annotations

import json
from pathlib import Path

import click

from .config import load_config
from .errors import UserError
from .fsutil import json_text


@click.command("sweep")
@click.argument("prompt", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--set", "sets", multiple=True, metavar="KEY=V1,V2,...",
              help="Sweep KEY (a dotted path such as edge.control_weight) over these values; repeatable. "
                   "A KEY given several times takes each value whole (for texts with commas).")
@click.option("--zip", "zip_axes", is_flag=True, help="Pair the axes element by element instead of their product.")
@click.option("--name", help="Sweep name (default: the base prompt's name and a timestamp).")
@click.option("--max", "limit", type=click.IntRange(min=1), default=None,
              help="Allow more variants than the default limit of 256 (each variant is one GPU job).")
@click.option("--dry-run", is_flag=True, help="Build and check the variants, print them, write nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the manifest on stdout.")
def sweep_cmd(prompt: Path, sets: tuple[str, ...], zip_axes: bool, name: str | None, limit: int | None,
              dry_run: bool, as_json: bool) -> None:
    """Write one prompt JSON per variant of PROMPT, plus the manifest inputs/sweeps/NAME.json.

    Values are JSON literals (0.5, null, "0.5", [1, 2]), else text. A KEY given once is split on its
    top-level commas (not inside [...], {...} or "..."); a KEY given several times takes each value whole:
    --set 'prompt=a pier, at night' --set 'prompt=a pier at noon' is two values. Variants are the product
    of the axes (or --zip), each named <base>__<key>-<value>__... in inputs/prompts/. Every variant is
    checked as `check` would before anything is written; existing files are never overwritten.
    """
    from .sweep import MAX_VARIANTS, build_sweep, check_targets, project_path, write_sweep

    cfg = load_config()
    sweep = build_sweep(cfg, prompt, sets, zip_axes=zip_axes, name=name,
                        limit=MAX_VARIANTS if limit is None else limit)
    for line in _grouped(sweep.warnings):
        click.echo(f"warning: {line}", err=True)
    if sweep.errors:
        for line in _grouped(sweep.errors):
            click.echo(line, err=True)
        failing = len({variant for variant, _ in sweep.errors})
        raise UserError(f"{failing} of {len(sweep.variants)} variants fail the checks; nothing was written; fix the "
                        f"values or the base prompt {prompt}")
    if dry_run:
        check_targets(sweep)
    else:
        write_sweep(sweep)
    if as_json:
        click.echo(json_text(sweep.manifest), nl=False)
        return
    how = "zipped" if zip_axes else " x ".join(str(len(axis.values)) for axis in sweep.axes)
    if dry_run:
        click.echo(f"# dry run of sweep {sweep.name!r}: {len(sweep.variants)} variants ({how}); nothing written")
    for variant in sweep.variants:
        shown = variant.name if dry_run else project_path(variant.path, cfg.root)
        values = " ".join(f"{key}={json.dumps(value, ensure_ascii=False)}" for key, value in variant.values.items())
        click.echo(f"{shown}  {values}")
    if not dry_run:
        click.echo(f"sweep {sweep.name!r}: {len(sweep.variants)} variants ({how}); manifest "
                   f"{project_path(sweep.manifest_path, cfg.root)}")


def _grouped(findings) -> list[str]:
    """One line per distinct (key, message): the first variant that has it, and how many more do."""
    groups: dict[tuple[str, str], list[str]] = {}
    for variant, problem in findings:
        groups.setdefault((problem.key, " ".join(problem.message.split("\n"))), []).append(variant)
    lines = []
    for (key, message), variants in groups.items():
        others = len(variants) - 1
        also = f" (also in {others} other variant{'s' if others > 1 else ''})" if others else ""
        lines.append(f"{variants[0]}: {key}: {message}{also}")
    return lines


COMMANDS = [sweep_cmd]
