"""Errors a user can cause or meet: each prints one line on stderr and exits with its ExitStatus."""

from __future__ import annotations

from enum import IntEnum

import click


class ExitStatus(IntEnum):
    """The exit status of every command: the one table errors map to (scripts/*.sh pass it on)."""

    OK = 0
    FAILED = 1  # bad input, or the job ran and failed
    USAGE = 2  # bad arguments (click)
    REMOTE = 3  # the GPU box could not be reached or refused what we asked
    LOCAL = 4  # the local machine's environment (disk, permissions) is at fault
    INTERNAL = 70  # a bug in cosmos-tools (EX_SOFTWARE): please report it
    INTERRUPTED = 130  # Ctrl-C


class UserError(click.ClickException):
    """An expected failure: one line saying what is wrong, where, and how to fix it."""

    exit_code = ExitStatus.FAILED

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split("\n")))

    def show(self, file=None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


class RemoteError(UserError):
    """The GPU box could not be reached or refused what we asked of it."""

    exit_code = ExitStatus.REMOTE


class LocalError(UserError):
    """The local machine's environment (disk, permissions) is at fault."""

    exit_code = ExitStatus.LOCAL


class Interrupted(UserError):
    """The user pressed Ctrl-C."""

    exit_code = ExitStatus.INTERRUPTED


class JobFailed(UserError):
    """A job ran and failed; its failure line and the tail of its log are already on stderr."""

    def show(self, file=None) -> None:
        pass
