"""The ``cosmos-tools`` command line. Each command is thin: parse, call the library, print."""

from __future__ import annotations

import json
import os
import sys

import click

from . import __version__
from .config import SETTINGS, Config, load_config
from .errors import ExitStatus, UserError

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group(context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, prog_name="cosmos-tools")
def cli() -> None:
    """Turn PNG renders into Cosmos-Transfer1 runs on a GPU box, and bring the results back.

    Settings come from config.sh in the project root (or $COSMOS_CONFIG); environment variables
    override it. See `cosmos-tools config`.
    """


@cli.command("config")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object for tools.")
@click.option("--example", is_flag=True, help="Print config.sh.example, generated from the settings list.")
def config_cmd(as_json: bool, example: bool) -> None:
    """Show the effective settings and where each came from, then any warnings (unknown keys, CRLF)."""
    if example:
        from .config import example_text

        click.echo(example_text(), nl=False)
        return
    cfg = load_config(warn=False)
    values, sources = dict(cfg.values), dict(cfg.sources)
    warnings, details = list(cfg.warnings), _ssh_config_layer(cfg, values, sources)
    if isinstance(details, UserError):
        warnings.append(str(details))
        details = []
    if as_json:
        data = {k: {"value": values[k], "source": sources[k]} for k in values}
        click.echo(json.dumps({"config": str(cfg.path), "root": str(cfg.root), "settings": data, "ssh_config": details,
                               "warnings": warnings}, indent=2))
        return
    click.echo(f"# project {cfg.root}")
    click.echo(f"# config  {cfg.path}{'' if cfg.path.is_file() else ' (missing: using defaults)'}")
    width = max(len(s.key) for s in SETTINGS)
    for s in SETTINGS:
        click.echo(f"{s.key:<{width}}  {values[s.key]!r:<40}  {sources[s.key]}")
    for line in details:
        click.echo(f"# ssh: {line}")
    for line in warnings:
        click.echo(f"# warning: {line}")


def _ssh_config_layer(cfg: Config, values: dict[str, str], sources: dict[str, str]) -> list[str] | UserError:
    """What ~/.ssh/config gives REMOTE_HOST, laid over ``values``/``sources``: the lines about it, or the error."""
    from .ssh_config import resolve, user_config_path

    if cfg["TRANSPORT"] != "ssh" or not cfg["REMOTE_HOST"] or not user_config_path().is_file():
        return []
    try:
        route = resolve(cfg)
    except UserError as exc:
        return exc
    box = route.box
    values.update(REMOTE_USER=box.user, REMOTE_PORT=str(box.port), SSH_TIMEOUT=f"{box.timeout:g}",
                  SSH_ALIVE_TIMEOUT=f"{route.alive:g}")
    if box.keys_from != "SSH_KEY" and box.keys:
        values["SSH_KEY"] = " ".join(str(key) for key in box.keys)
    sources.update({key: value for key, value in route.sources.items() if key in sources})
    if "HOSTNAME" in route.sources:
        sources["REMOTE_HOST"] += f" (HostName {box.hostname}: {route.sources['HOSTNAME']})"
    return list(route.details)


def _register() -> None:
    from . import (
        cli_convert,
        cli_critic,
        cli_experiments,
        cli_prompts,
        cli_rehearsal,
        cli_remote,
        cli_review,
        cli_ssh,
    )

    for module in (cli_prompts, cli_convert, cli_remote, cli_ssh, cli_rehearsal, cli_experiments, cli_review,
                   cli_critic):
        for command in module.COMMANDS:
            cli.add_command(command)


_register()


def main() -> None:
    """Console entry point: honours NO_COLOR and turns unexpected errors into one line."""
    color = False if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb" else None
    try:
        cli.main(prog_name="cosmos-tools", color=color, standalone_mode=True)
    except UserError as exc:  # raised outside click's own handling (e.g. during registration)
        exc.show()
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(ExitStatus.INTERRUPTED)
    except Exception as exc:  # a bug, not a user error: one line unless debugging
        if os.environ.get("COSMOS_DEBUG"):
            raise
        click.echo(f"internal error: {type(exc).__name__}: {exc} (re-run with COSMOS_DEBUG=1 for a traceback "
                   "and report it)", err=True)
        sys.exit(ExitStatus.INTERNAL)
