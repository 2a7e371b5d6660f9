"""The remote job protocol: the scripts run on the GPU box, their exit codes and a job's paths.

Every script is a real file in this folder (``*.sh`` run as ``bash -c TEXT NAME ARGS...``, ``*.py`` run
as ``python3 -c TEXT ARGS...``); data travels only as positional arguments or stdin, never in the text.
docs/ARCHITECTURE.md, "The remote protocol", lists what each one reads and prints.
"""

from __future__ import annotations

import functools
from importlib import resources


@functools.cache
def script(name: str) -> str:
    """The text of the packaged script ``name`` (e.g. ``"follow.sh"``), read once.

    Whole-line comments of the bash scripts are dropped: they are for people and shellcheck, and the
    text travels on every call (inside the docker argv for ``runner.sh``). None of them has a heredoc.
    """
    text = resources.files(__package__).joinpath(name).read_text(encoding="utf-8")
    if name.endswith(".sh"):
        text = "".join(line for line in text.splitlines(keepends=True) if not line.lstrip().startswith("#"))
    return text
