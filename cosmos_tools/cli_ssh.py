"""Commands: ``ssh`` (OpenSSH with the toolkit's settings) and ``trust`` (record the host keys of the GPU box and
of its jump hosts)."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path

import click

from .config import load_config
from .errors import UserError
from .fsutil import append_line_locked, write_text_atomic


@click.command("ssh", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def ssh(command: tuple[str, ...]) -> None:
    """Open a shell on the GPU box, or run COMMAND there.

    Each word of COMMAND reaches the box as one word, quoted (names with spaces or $ stay data);
    for shell syntax pass it to a shell yourself: ssh_remote.sh bash -c 'nvidia-smi; docker ps'.

    Uses OpenSSH, which reads ~/.ssh/config itself (alias, ProxyJump, IdentityFile), with the toolkit's
    settings on top: config.sh's values, both known_hosts files for the box and every jump host, strict
    host key checking, no agent forwarding. With TRANSPORT=local, runs in REMOTE_DIR on this machine.
    """
    from .ssh import interactive_argv

    cfg = load_config()
    if cfg["TRANSPORT"] == "local":
        try:
            os.chdir(cfg["REMOTE_DIR"])
        except OSError as exc:
            raise UserError(f"REMOTE_DIR {cfg['REMOTE_DIR']}: {exc.strerror}; fix REMOTE_DIR in config.sh") from None
        argv = list(command) or [os.environ.get("SHELL", "/bin/sh")]
    else:
        argv = interactive_argv(cfg, list(command))
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execvp(argv[0], argv)  # noqa: S606 (argv list, no shell)
    except OSError as exc:
        raise UserError(f"cannot run {argv[0]}: {exc.strerror}") from None


def _record(path: Path, line: str, name: str, replace: bool) -> None:
    """Append ``line`` to a known_hosts file; with ``replace``, first drop the lines for host ``name``."""
    if replace and path.is_file():
        from paramiko import HostKeys

        def names(text: str) -> list[str]:
            fields = text.split()
            return fields[0].split(",") if fields and not text.lstrip().startswith("#") else []

        def is_host(entry: str) -> bool:
            return entry == name or (entry.startswith("|1|") and HostKeys.hash_host(name, entry) == entry)

        kept = [ln for ln in path.read_text().splitlines(keepends=True) if not any(map(is_host, names(ln)))]
        write_text_atomic(path, "".join(kept))
    append_line_locked(path, line)


def _confirm(question: str) -> bool:
    try:
        return click.confirm(question, default=False)
    except click.Abort:  # no answer (end of input, Ctrl-C): not recorded
        click.echo("", err=True)
        return False


class _Unrecorded(Exception):
    """A jump host's key was shown but not recorded (--json without --yes): the hosts behind it stay unreached."""


@click.command("trust")
@click.option("--yes", is_flag=True, help="Record the keys without asking.")
@click.option("--replace", is_flag=True,
              help="Replace a different key recorded for this host in KNOWN_HOSTS (check it with your provider first).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object; records only with --yes.")
def trust(yes: bool, replace: bool, as_json: bool) -> None:
    """Show the GPU box's host key (type and SHA256 fingerprint) and record it in KNOWN_HOSTS when you confirm.

    Behind ProxyJump hosts, each jump host's key is shown and asked about first, in order (the box can only be
    reached through hosts we trust); keys already known are not asked about again.
    """
    from paramiko import HostKeys

    from .hostkeys import check_host_key, classify_host_key, fingerprint
    from .ssh import close_hops, reach
    from .ssh_config import resolve

    cfg = load_config()
    if cfg["TRANSPORT"] == "local":
        raise UserError("TRANSPORT is local: there is no SSH host key to trust")
    route = resolve(cfg)
    project_file = cfg.local_path("KNOWN_HOSTS")
    results: dict[int, dict] = {}
    recorded = HostKeys()  # keys recorded during this walk: a host met twice on the route is asked about once

    def judge(end, key, known) -> None:
        name = end.key_name
        label = end.label if end.hop else ""
        status, where, _old = classify_host_key(name, key, [*known, (project_file, recorded)])
        kind, fp = fingerprint(key).split(" ", 1)
        result = results[end.hop] = {"host": name, "key_type": kind, "fingerprint": fp, "status": status,
                                     "file": str(where or project_file), "recorded": False}
        if not as_json:
            click.echo(f"{name}{f' ({label})' if label else ''} presents host key {kind} {fp}")
        if status == "changed" and not (replace and where == project_file):
            check_host_key(name, key, known, label)  # raises the one-line warning with the fix
        if status == "known":
            if not as_json:
                click.echo(f"already trusted ({where})")
        elif yes or (not as_json and _confirm(f"Trust it and record it in {project_file}?")):
            _record(project_file, f"{name} {key.get_name()} {key.get_base64()}", name, replace=status == "changed")
            recorded.add(name, key.get_name(), key)
            result.update(recorded=True, file=str(project_file))
            if not as_json:
                click.echo(f"recorded in {project_file}")
        elif not as_json:
            raise UserError(f"not recorded: connections {f'through {label}' if label else 'to the box'} stay refused "
                            "until you trust its key (cosmos-tools trust --yes records it without asking)")
        elif end.hop:
            raise _Unrecorded

    with contextlib.suppress(_Unrecorded):
        close_hops(reach(cfg, route, judge, login_box=False))
    if as_json:
        box = results.get(0, {"host": route.box.key_name, "key_type": None, "fingerprint": None,
                              "status": "unreached", "file": None, "recorded": False})
        hops = [results[hop.hop] for hop in route.hops if hop.hop in results]
        click.echo(json.dumps({**box, "hops": hops} if route.hops else box))


COMMANDS = [ssh, trust]
