"""Filesystem helpers: atomic writes and appends that never leave partial files, and a forgiving JSON read."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from pathlib import Path

from .constants import JSON_INDENT


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# mkstemp/mkdtemp make private (0600/0700) files; what we publish gets the modes the user's umask gives.
FILE_MODE = 0o666 & ~_read_umask()
DIR_MODE = 0o777 & ~_read_umask()


@contextlib.contextmanager
def atomic_path(target: Path):
    """Yield a temporary path beside ``target``; rename it over ``target`` only if the block succeeds."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_text_atomic(target: Path, text: str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")


def json_text(data: object) -> str:
    """JSON as cosmos-tools writes it (files and --json output): indented, unicode kept, newline-terminated."""
    return json.dumps(data, indent=JSON_INDENT, ensure_ascii=False) + "\n"


def write_json_atomic(target: Path, data: object) -> None:
    write_text_atomic(target, json_text(data))


def create_exclusive(target: Path, text: str) -> bool:
    """Write ``text`` to ``target`` only if it does not exist yet; False (nothing written) if it does."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, FILE_MODE)
        try:
            os.link(tmp, target)  # atomic, and fails instead of overwriting
        except FileExistsError:
            return False
        return True
    finally:
        os.unlink(tmp)


def append_line_locked(target: Path, line: str) -> None:
    """Append one line with O_APPEND under an exclusive lock; the file is never rewritten."""
    if "\n" in line:
        raise ValueError("a log line must not contain a newline")
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        data = (line + "\n").encode("utf-8")
        written = os.write(fd, data)
        if written != len(data):
            raise OSError(f"short write to {target}")
        os.fsync(fd)
    finally:
        os.close(fd)  # closing releases the lock


def read_json_object(path: Path) -> dict:
    """The JSON object in ``path``; {} if the file is missing, unreadable, not JSON or not an object."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
