"""Names that become one file or folder here and on the GPU box: runs, shots, prompt base names.

One set of rules with one message style (``<what> <name!r> is not a folder name: <why>; <fix>``):

- ``check_name``: anything but empty, ``.``, ``..``, ``/`` and NUL. Spaces, quotes, ``$(...)``, unicode and
  even newlines are data and must work end to end (runs are named after existing prompt files).
- ``check_new_name``: a name cosmos-tools is about to create a file or folder from: also no control
  characters (a newline in a new file name helps nobody).

Length, in UTF-8 bytes (what file systems count): no name may exceed ``NAME_MAX`` (255). A run name gets
more added in the files the toolkit makes from it, so its limit is ``MAX_RUN_NAME_BYTES`` (214): 255 minus
the longest affixes together: an upload's temporary name ``.<name>.json.<8 hex>.cosmos-part`` (+27), a
run id ``-9999`` (+5) and the upscale folder's ``_upscaled`` (+9). A new prompt's base name also gets
``_YYYYmmdd_HHMMSS_999`` (+20): ``MAX_BASE_NAME_BYTES`` (194). Beyond these, the OS refuses the file
minutes into a run ("File name too long", or "Bad message" from sshd), so they are checked up front.
"""

from __future__ import annotations

import re

from .errors import UserError

_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")
NAME_MAX = 255  # bytes in one file name (ext4, xfs, btrfs, APFS, NTFS as UTF-16 units)
_UPLOAD_TEMP = len(".") + len(".json") + len(".12345678") + len(".cosmos-part")  # sync's temporary prompt name
_RUN_ID = len("-9999")
_UPSCALED = len("_upscaled")
MAX_RUN_NAME_BYTES = NAME_MAX - _UPLOAD_TEMP - _RUN_ID - _UPSCALED
MAX_BASE_NAME_BYTES = MAX_RUN_NAME_BYTES - len("_YYYYmmdd_HHMMSS_999")  # new_prompt's stamp and clash number


def name_bytes(name: str) -> int:
    """The length of ``name`` as a file system counts it: UTF-8 bytes (undecodable bytes kept as they were)."""
    return len(name.encode("utf-8", "surrogateescape"))


def _refuse(name, what: str, why: str, fix: str) -> UserError:
    shown = f"{name[:40]!r}..." if isinstance(name, str) and len(name) > 60 else repr(name)
    return UserError(f"{what} {shown} is not a folder name: {why}; {fix}")


def check_name(name: str, what: str, fix: str, max_bytes: int = NAME_MAX) -> str:
    """``name`` if it can name one folder (anything but empty, '.', '..', '/' and NUL, at most ``max_bytes``
    UTF-8 bytes), else a UserError."""
    if not isinstance(name, str) or name in ("", ".", ".."):
        raise _refuse(name, what, "it is empty, '.' or '..'", fix)
    if "/" in name:
        raise _refuse(name, what, "it contains '/' (give a plain name, not a path)", fix)
    if "\0" in name:
        raise _refuse(name, what, "it contains NUL", fix)
    if name_bytes(name) > max_bytes:
        why = (f"a file name holds {NAME_MAX} bytes and cosmos-tools adds up to {NAME_MAX - max_bytes} to this one"
               if max_bytes < NAME_MAX else "a file name holds no more")
        raise _refuse(name, what, f"it is {name_bytes(name)} bytes in UTF-8, over the limit of {max_bytes} ({why})",
                      f"shorten it; {fix}")
    return name


def check_new_name(name: str, what: str, fix: str, max_bytes: int = NAME_MAX) -> str:
    """``check_name``, and no control characters (newline, tab, ...): for names cosmos-tools creates."""
    check_name(name, what, fix, max_bytes)
    if _CONTROL_CHARS.search(name):
        raise _refuse(name, what, "it contains a control character (newline, tab, ...)", fix)
    return name


def check_run_name(name: str) -> str:
    """A run name (a prompt file's stem): results go to outputs/<name>/ here and on the GPU box."""
    return check_name(name, "run name", "rename the prompt file", MAX_RUN_NAME_BYTES)
