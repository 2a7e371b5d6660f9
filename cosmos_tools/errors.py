"""Errors a user can cause or meet: each prints one line on stderr and exits non-zero."""

from __future__ import annotations

import click


class UserError(click.ClickException):
    """An expected failure: one line saying what is wrong, where, and how to fix it."""

    exit_code = 1

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(" ".join(message.split("\n")))
        if exit_code is not None:
            self.exit_code = exit_code

    def show(self, file=None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


class RemoteError(UserError):
    """The GPU box could not be reached or refused what we asked of it."""

    exit_code = 3
