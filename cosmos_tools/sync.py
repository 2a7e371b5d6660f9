"""Verified, skip-if-same transfers between the project and REMOTE_DIR.

Every file travels under a temporary name of its own (``.<name>.<token>.cosmos-part``, so two
clients sending the same file never write into one temporary file), is checked (size and sha256
computed on the receiving side against the sha256 of the bytes read on the sending side), and only
then renamed over its real name: an interrupted transfer never leaves a truncated file under the
real name. Files already identical on the other side are not sent. One remote command hashes all
targets at once, so an unchanged re-upload costs one round trip.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import posixpath
import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from .errors import RemoteError, UserError
from .progress import Progress
from .remote import script
from .remote.codes import ScriptExit
from .transport import Transport

PART_SUFFIX = ".cosmos-part"

# A temporary file nobody has written to for this long is a leftover of an interrupted upload.
STALE_PART_SECONDS = 600
# Temporary files of this process's uploads that a dropped connection interrupted: removed on the next upload.
_abandoned_parts: set[str] = set()

# How long remote/sync_follow.py waits for a file being uploaded to grow before it gives up.
FOLLOW_IDLE_SECONDS = 20

# The box's system python3 first: a user's pyenv/conda shim can cost a few hundred ms per start.
PYTHON = ["sh", "-c", 'if [ -x /usr/bin/python3 ]; then exec /usr/bin/python3 "$@"; fi; exec python3 "$@"', "sh"]

Digest = tuple[int, str]  # (size, sha256 hex)


@dataclass
class SyncReport:
    sent: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    bytes_sent: int = 0
    seconds: float = 0.0
    digests: dict[str, str] = field(default_factory=dict)  # upload: sha256 of every file, by remote path


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


def remote_digests(t: Transport, paths: list[str], clean_stale: bool = False) -> list[Digest | None]:
    """(size, sha256) of each remote path, None where there is no regular file; one remote command.

    ``clean_stale`` also removes the paths' temporary files left by interrupted uploads.
    """
    if not paths:
        return []
    stale = str(STALE_PART_SECONDS if clean_stale else 0)
    out = t.run([*PYTHON, "-c", script("sync_hash.py"), stale, *paths]).stdout.decode().splitlines()
    if len(out) != len(paths):
        raise RemoteError(f"hashing files on {t.describe()} gave {len(out)} answers for {len(paths)} files; "
                          "is python3 installed there?")
    return [_parse_digest(line) for line in out]


def part_name(path: str) -> str:
    """A fresh temporary name for a file to travel under, beside its target."""
    folder, name = posixpath.split(path)
    return posixpath.join(folder, f".{name}.{secrets.token_hex(4)}{PART_SUFFIX}")


def _check_relative(rel: str) -> None:
    parts = rel.split("/")
    if not rel or rel.startswith("/") or any(p in ("", ".", "..") for p in parts) or "\0" in rel:
        raise ValueError(f"not a clean path relative to REMOTE_DIR: {rel!r}")


def upload_files(t: Transport, files: list[tuple[Path, str]], *, progress: bool = True) -> SyncReport:
    """Send each local file to its path relative to REMOTE_DIR, skipping files already there."""
    start = time.monotonic()
    for local, rel in files:
        _check_relative(rel)
        if not Path(local).is_file():
            raise UserError(f"{local}: file to upload not found")
    targets = [t.abspath(rel) for _, rel in files]
    if _abandoned_parts:
        t.run(["rm", "-f", "--", *sorted(_abandoned_parts)], check=False)
        _abandoned_parts.clear()
    sizes = [Path(p).stat().st_size for p, _ in files]
    stops = [threading.Event() for _ in files]
    with ThreadPoolExecutor(1) as pool:  # hash here while the box hashes there
        local = [pool.submit(local_digest, Path(p), stop) for (p, _), stop in zip(files, stops, strict=True)]
        remote = remote_digests(t, targets, clean_stale=True)
        for stop, size, theirs in zip(stops, sizes, remote, strict=True):
            if theirs is None or theirs[0] != size:
                stop.set()  # it will be sent anyway: no need to finish hashing it
    report = SyncReport()
    todo = []
    for (path, rel), target, size, mine, theirs in zip(files, targets, sizes, local, remote, strict=True):
        if theirs is not None and theirs[0] == size and mine.result() == theirs:
            report.skipped.append(rel)
            report.digests[rel] = theirs[1]
        else:
            todo.append((Path(path), rel, target, size))
    with Progress(sum(size for *_, size in todo), "upload", unit="B", enabled=progress) as bar:
        for folder in sorted({posixpath.dirname(target) for _, _, target, _ in todo}):
            t.makedirs(folder)
        for path, rel, target, size in todo:
            sent, report.digests[rel] = _upload_one(t, path, rel, target, size, bar)
            report.bytes_sent += sent
            report.sent.append(rel)
    report.seconds = time.monotonic() - start
    return report


def _upload_one(t: Transport, path: Path, rel: str, target: str, size: int, bar: Progress) -> Digest:
    """Send one file under its temporary name, check it on the box, rename it; return (bytes sent, sha256).

    The box hashes the temporary file while it arrives (remote/sync_follow.py), so the check costs no extra
    pass over the data; if that hash is missing or differs, the file is hashed again after the upload.
    """
    part = part_name(target)
    followed: list = []

    def follow() -> None:  # best effort: without its answer the part file is hashed again afterwards
        with contextlib.suppress(Exception):
            done = t.run([*PYTHON, "-c", script("sync_follow.py"), part, str(size), str(FOLLOW_IDLE_SECONDS)],
                         check=False)
            if done.rc == 0:
                followed.append(_parse_digest(done.stdout.decode().strip()))

    follower = threading.Thread(target=follow, name="cosmos-verify", daemon=True)
    follower.start()
    sent = 0

    def count(n: int) -> None:
        nonlocal sent
        sent += n
        bar.update(n)

    _abandoned_parts.add(part)
    digest = t.put(path, part, count)
    if sent == size:
        follower.join(FOLLOW_IDLE_SECONDS + 30)
    arrived = followed[0] if followed else None
    if arrived != (sent, digest) or t.size(part) != sent:
        (arrived,) = remote_digests(t, [part])
    if arrived != (sent, digest):
        raise RemoteError(f"upload of {rel} arrived damaged on {t.describe()} (sent {sent} bytes sha256 {digest[:12]}, "
                          f"found {arrived}); run the upload again")
    t.rename(part, target)
    _abandoned_parts.discard(part)
    return sent, digest


def _parse_digest(line: str) -> Digest | None:
    if line == "-":
        return None
    size, sha = line.split()
    return int(size), sha


def remote_sizes(t: Transport, remote_rel_dir: str) -> dict[str, int] | None:
    """{relative path: size} of every file under a remote folder; None if it does not exist."""
    done = t.run([*PYTHON, "-c", script("sync_list.py"), t.abspath(remote_rel_dir)], check=False)
    if done.rc == ScriptExit.NOT_A_FOLDER:
        return None
    if done.rc != 0:
        tail = done.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no error output"]
        raise RemoteError(f"listing {remote_rel_dir} on {t.describe()} failed (exit {done.rc}): {tail[0]}")
    sizes = {}
    for record in done.stdout.split(b"\0")[:-1]:
        size, rel = record.split(b" ", 1)
        sizes[os.fsdecode(rel)] = int(size)
    return sizes


def download_tree(t: Transport, remote_rel_dir: str, local_dir: Path, *, progress: bool = True,
                  missing_ok: bool = False, keep: tuple[str, ...] = ()) -> SyncReport:
    """Bring a remote folder (relative to REMOTE_DIR) into ``local_dir``, skipping identical files.

    The box hashes its files while they travel; each one is checked against that hash before it
    replaces its local name. Local files of the same size are hashed here and skipped if identical.
    Files named in ``keep`` are fetched only when there is no local copy (a local copy adds to them).
    """
    start = time.monotonic()
    sizes = remote_sizes(t, remote_rel_dir)
    if sizes is None:
        if missing_ok:
            return SyncReport(seconds=time.monotonic() - start)
        raise RemoteError(f"{t.abspath(remote_rel_dir)} does not exist on {t.describe()}: nothing to download "
                          "(has the run started and finished?)")
    base = t.abspath(remote_rel_dir)
    kept = [rel for rel in keep if rel in sizes and (Path(local_dir) / rel).is_file()]
    for rel in kept:
        del sizes[rel]
    rels = sorted(sizes)
    for rel in rels:
        _check_relative(rel)
    targets = {rel: Path(local_dir) / rel for rel in rels}
    maybe_same = [r for r in rels if targets[r].is_file() and targets[r].stat().st_size == sizes[r]]
    report = SyncReport(skipped=list(kept))
    fetched: list[tuple[str, Path, Digest]] = []
    try:
        with ThreadPoolExecutor(1) as pool, \
                Progress(sum(sizes[r] for r in rels if r not in maybe_same), "download", unit="B",
                         enabled=progress) as bar:
            remote = pool.submit(remote_digests, t, [posixpath.join(base, r) for r in rels])
            fetched += [_fetch(t, base, rel, targets[rel], bar) for rel in rels if rel not in maybe_same]
            local = {rel: local_digest(targets[rel]) for rel in maybe_same}
            hashes = dict(zip(rels, remote.result(), strict=True))
            for rel in maybe_same:
                if local[rel] == hashes[rel]:
                    report.skipped.append(rel)
                else:
                    bar.total += sizes[rel]
                    fetched.append(_fetch(t, base, rel, targets[rel], bar))
        for rel, _part, got in fetched:
            if got != hashes[rel]:
                raise RemoteError(f"download of {rel} does not match the box's copy ({got[0]} bytes sha256 "
                                  f"{got[1][:12]}, box has {hashes[rel]}); was it still being written? "
                                  "run the download again")
        for rel, part, got in fetched:
            try:
                os.replace(part, targets[rel])
            except OSError as exc:
                raise UserError(f"{targets[rel]}: cannot replace it ({exc.strerror}); move it away and download "
                                "again") from None
            report.sent.append(rel)
            report.bytes_sent += got[0]
    finally:
        for _, part, _ in fetched:
            with contextlib.suppress(FileNotFoundError):
                part.unlink()
    report.seconds = time.monotonic() - start
    return report


def _fetch(t: Transport, base: str, rel: str, target: Path, bar: Progress) -> tuple[str, Path, Digest]:
    """Copy one remote file to a temporary name beside ``target``: (rel, temporary path, (size, sha256))."""
    target.parent.mkdir(parents=True, exist_ok=True)
    part = Path(part_name(str(target)))
    got = 0

    def count(n: int) -> None:
        nonlocal got
        got += n
        bar.update(n)

    try:
        digest = t.get(posixpath.join(base, rel), part, count)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            part.unlink()
        raise
    return rel, part, (got, digest)
