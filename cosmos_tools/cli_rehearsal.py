"""Commands: `rehearsal up/down/status`, the stand-in GPU host on 127.0.0.1."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import click

from .config import MODELS

DIR_ARG = click.argument("dir", type=click.Path(path_type=Path))


@click.group()
def rehearsal() -> None:
    """A rehearsal GPU host: real sshd on 127.0.0.1, stand-in docker and transfer.py (no GPU, no model)."""


@rehearsal.command("up")
@DIR_ARG
@click.option("--seconds", type=click.FloatRange(min=0), default=None,
              help="How long each stand-in inference takes (default about 3).")
@click.option("--model", type=click.Choice(MODELS), default=None,
              help="MODEL written into DIR/config.sh (default transfer1-7b); the stand-in checkout runs both.")
@click.option("--load-seconds", type=click.FloatRange(min=0), default=None, metavar="L",
              help="The stand-in's model load, once per inference process (default 0.2 x --seconds).")
@click.option("--sample-seconds", type=click.FloatRange(min=0), default=None, metavar="S",
              help="The stand-in's generation time per video, per batch item too (default 0.7 x --seconds).")
@click.option("--slurm", is_flag=True,
              help="Also start a real Slurm (munge, slurmctld, slurmd; 4 stand-in GPUs) behind it: BACKEND=slurm.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object for tools.")
def up_cmd(dir: Path, seconds: float | None, model: str | None, load_seconds: float | None,
           sample_seconds: float | None, slurm: bool, as_json: bool) -> None:
    """Start the rehearsal host in DIR and write DIR/config.sh pointing at it."""
    from .rehearsal.host import up

    info = up(dir, seconds=seconds, model=model, load_seconds=load_seconds, sample_seconds=sample_seconds,
              slurm=slurm)
    if as_json:
        click.echo(json.dumps(info.to_json(), indent=2))
        return
    state = "already running" if info.reused else "started"
    click.echo(f"rehearsal host {state}: sshd on 127.0.0.1:{info.port} (pid {info.pid}), user {info.user}"
               + (", with a Slurm cluster (4 stand-in GPUs)" if info.slurm else ""))
    click.echo(f"config: {info.config}")
    click.echo(f"use it:  COSMOS_CONFIG={shlex.quote(str(info.config))} ./scripts/full_cycle.sh ...")
    click.echo(f"stop it: cosmos-tools rehearsal down {shlex.quote(str(info.dir))}")


@rehearsal.command("down")
@DIR_ARG
def down_cmd(dir: Path) -> None:
    """Stop the rehearsal host in DIR and its Slurm, if any (its files stay)."""
    from .rehearsal.host import down

    if down(dir):
        click.echo(f"rehearsal host in {dir} stopped")
    else:
        click.echo(f"no rehearsal host running in {dir}")


@rehearsal.command("status")
@DIR_ARG
def status_cmd(dir: Path) -> None:
    """Say whether the rehearsal host in DIR is running (exit 1 if not)."""
    from .rehearsal.host import status

    info = status(dir)
    if info is None:
        click.echo(f"no rehearsal host running in {dir}")
        raise SystemExit(1)
    click.echo(f"running: sshd on 127.0.0.1:{info.port} (pid {info.pid})" + (" with its Slurm" if info.slurm else "")
               + f"; config {info.config}")


COMMANDS = [rehearsal]
