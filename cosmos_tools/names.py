"""Names that become one file or folder here and on the GPU box: runs, shots, prompt base names.

One set of rules with one message style (``<what> <name!r> is not a folder name: <why>; <fix>``):

- ``check_name``: anything but empty, ``.``, ``..``, ``/`` and NUL. Spaces, quotes, ``$(...)``, unicode and
  even newlines are data and must work end to end (runs are named after existing prompt files).
- ``check_new_name``: a name cosmos-tools is about to create a file or folder from: also no control
  characters (a newline in a new file name helps nobody).
"""

from __future__ import annotations

import re

from .errors import UserError

_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")


def _refuse(name, what: str, why: str, fix: str) -> UserError:
    return UserError(f"{what} {name!r} is not a folder name: {why}; {fix}")


def check_name(name: str, what: str, fix: str) -> str:
    """``name`` if it can name one folder (anything but empty, '.', '..', '/' and NUL), else a UserError."""
    if not isinstance(name, str) or name in ("", ".", ".."):
        raise _refuse(name, what, "it is empty, '.' or '..'", fix)
    if "/" in name:
        raise _refuse(name, what, "it contains '/' (give a plain name, not a path)", fix)
    if "\0" in name:
        raise _refuse(name, what, "it contains NUL", fix)
    return name


def check_new_name(name: str, what: str, fix: str) -> str:
    """``check_name``, and no control characters (newline, tab, ...): for names cosmos-tools creates."""
    check_name(name, what, fix)
    if _CONTROL_CHARS.search(name):
        raise _refuse(name, what, "it contains a control character (newline, tab, ...)", fix)
    return name


def check_run_name(name: str) -> str:
    """A run name (a prompt file's stem): results go to outputs/<name>/ here and on the GPU box."""
    return check_name(name, "run name", "rename the prompt file")
