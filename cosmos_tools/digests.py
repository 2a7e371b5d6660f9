"""The sha256 of local files, kept between runs (``.cosmos/sha256.json``): an unchanged re-upload hashes nothing here.

A recorded digest is used while the file's inode, size, mtime and ctime are those recorded with it. No file's ctime
can be set back (writing to it, or restoring its mtime, moves it), so a changed file is always hashed again. Only
files whose mtime and ctime are SETTLED_SECONDS old are recorded: a change within the clock's resolution of the
hashing could otherwise leave all four the same. The box keeps the same kind of record (remote/sync_hash.py).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
import time
from pathlib import Path
from typing import overload

from .fsutil import read_json_object, write_json_atomic

Digest = tuple[int, str]  # (size, sha256 hex)

SETTLED_SECONDS = 2.0
KEEP = 20000  # entries kept (the newest)


@overload
def local_digest(path: Path, stop: None = None) -> Digest: ...
@overload
def local_digest(path: Path, stop: threading.Event | None) -> Digest | None: ...
def local_digest(path: Path, stop: threading.Event | None = None) -> Digest | None:
    """(size, sha256) of a local file; None if ``stop`` is set before the end."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        while block := handle.read(1024 * 1024):
            if stop is not None and stop.is_set():
                return None
            digest.update(block)
            size += len(block)
    return size, digest.hexdigest()


class DigestCache:
    """Recorded digests of local files, by absolute path; ``save`` writes them back (atomically) if any changed."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.entries: dict[str, list] = read_json_object(path)
        self.changed = False
        self.lock = threading.Lock()

    def digest(self, path: Path, stop: threading.Event | None = None) -> Digest | None:
        """The recorded digest while the file is unchanged, else ``local_digest`` (recorded once settled)."""
        name = str(Path(path).absolute())
        info = os.stat(path)
        key = [info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns]
        entry = self.entries.get(name)
        if isinstance(entry, list) and entry[:4] == key:
            return info.st_size, entry[4]
        began = time.time()
        found = local_digest(path, stop)
        if found and found[0] == info.st_size and \
                max(info.st_mtime_ns, info.st_ctime_ns) < (began - SETTLED_SECONDS) * 1e9:
            with self.lock:
                self.entries.pop(name, None)
                self.entries[name] = [*key, found[1]]
                self.changed = True
        return found

    def save(self) -> None:
        """Best effort: without the record, the next run hashes again."""
        if self.changed:
            with contextlib.suppress(OSError):
                write_json_atomic(self.path, dict(list(self.entries.items())[-KEEP:]))
            self.changed = False
