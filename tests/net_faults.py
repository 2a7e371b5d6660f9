"""Network faults for tests: cut every live SSH connection to the rehearsal host, as a dropped link would."""

from __future__ import annotations

import os
import signal
from pathlib import Path


def session_pids(info) -> list[int]:
    """The sshd processes serving connections to the rehearsal host (children of its listener)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == info.pid:
                    found.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue
    return found


def cut_connections(info) -> None:
    """Drop every live SSH connection to the rehearsal host."""
    for pid in session_pids(info):
        os.kill(pid, signal.SIGKILL)
