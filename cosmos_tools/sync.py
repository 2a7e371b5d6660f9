"""Verified, skip-if-same transfers between the project and REMOTE_DIR.

Every file travels under a temporary name (``.<name>.cosmos-part``), is checked (size and sha256
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
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from .errors import RemoteError, UserError
from .progress import Progress
from .transport import Transport

PART_SUFFIX = ".cosmos-part"

# Prints "<size> <sha256>" or "-" per argument, in order: file names never appear in the output.
HASH_SCRIPT = r"""
for f; do
  if [ -f "$f" ] && s=$(wc -c < "$f") && h=$(sha256sum < "$f"); then
    printf '%s %s\n' $s "${h%% *}"
  else
    echo -
  fi
done
"""

# In folder $1: "<size> <sha256> <relative path>\0" for every regular file (temporary files excluded).
LIST_SCRIPT = r"""
[ -d "$1" ] || exit 44
cd -- "$1" && find . -type f ! -name '*.cosmos-part' -exec sh -c '
for f; do
  s=$(wc -c < "$f") && h=$(sha256sum < "$f") && printf "%s %s %s\0" $s "${h%% *}" "${f#./}" || exit 1
done' _ {} +
"""
MISSING = 44

Digest = tuple[int, str]  # (size, sha256 hex)


@dataclass
class SyncReport:
    sent: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    bytes_sent: int = 0
    seconds: float = 0.0


def local_digest(path: Path) -> Digest:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        while block := handle.read(1024 * 1024):
            digest.update(block)
            size += len(block)
    return size, digest.hexdigest()


def remote_digests(t: Transport, paths: list[str]) -> list[Digest | None]:
    """(size, sha256) of each remote path, None where there is no regular file; one remote command."""
    if not paths:
        return []
    out = t.run(["sh", "-c", HASH_SCRIPT, "sh", *paths]).stdout.decode().splitlines()
    if len(out) != len(paths):
        raise RemoteError(f"hashing files on {t.describe()} gave {len(out)} answers for {len(paths)} files; "
                          "is sha256sum (coreutils) installed there?")
    return [None if line == "-" else (int(line.split()[0]), line.split()[1]) for line in out]


def part_name(path: str) -> str:
    """The temporary name a file travels under, beside its target."""
    folder, name = posixpath.split(path)
    return posixpath.join(folder, f".{name}{PART_SUFFIX}")


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
    with ThreadPoolExecutor(1) as pool:  # hash here while the box hashes there
        local_future = pool.submit(lambda: [local_digest(Path(p)) for p, _ in files])
        remote = remote_digests(t, targets)
        local = local_future.result()
    report = SyncReport()
    todo = []
    for (path, rel), target, mine, theirs in zip(files, targets, local, remote, strict=True):
        if mine == theirs:
            report.skipped.append(rel)
        else:
            todo.append((Path(path), rel, target, mine[0]))
    with Progress(sum(size for *_, size in todo), "upload", unit="B", enabled=progress) as bar:
        for folder in sorted({posixpath.dirname(target) for _, _, target, _ in todo}):
            t.makedirs(folder)
        for path, rel, target, _size in todo:
            report.bytes_sent += _upload_one(t, path, rel, target, bar)
            report.sent.append(rel)
    report.seconds = time.monotonic() - start
    return report


def _upload_one(t: Transport, path: Path, rel: str, target: str, bar: Progress) -> int:
    part = part_name(target)
    sent = 0

    def count(n: int) -> None:
        nonlocal sent
        sent += n
        bar.update(n)

    digest = t.put(path, part, count)
    (arrived,) = remote_digests(t, [part])
    if arrived != (sent, digest):
        raise RemoteError(f"upload of {rel} arrived damaged on {t.describe()} (sent {sent} bytes sha256 {digest[:12]}, "
                          f"found {arrived}); run the upload again")
    t.rename(part, target)
    return sent


def remote_tree(t: Transport, remote_rel_dir: str) -> dict[str, Digest] | None:
    """{relative path: (size, sha256)} of every file under a remote folder; None if it does not exist."""
    done = t.run(["sh", "-c", LIST_SCRIPT, "sh", t.abspath(remote_rel_dir)], check=False)
    if done.rc == MISSING:
        return None
    if done.rc != 0:
        tail = done.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no error output"]
        raise RemoteError(f"listing {remote_rel_dir} on {t.describe()} failed (exit {done.rc}): {tail[0]}")
    tree = {}
    for record in done.stdout.split(b"\0")[:-1]:
        size, sha, rel = record.split(b" ", 2)
        tree[os.fsdecode(rel)] = (int(size), sha.decode())
    return tree


def download_tree(t: Transport, remote_rel_dir: str, local_dir: Path, *, progress: bool = True,
                  missing_ok: bool = False) -> SyncReport:
    """Bring a remote folder (relative to REMOTE_DIR) into ``local_dir``, skipping identical files."""
    start = time.monotonic()
    tree = remote_tree(t, remote_rel_dir)
    if tree is None:
        if missing_ok:
            return SyncReport(seconds=time.monotonic() - start)
        raise RemoteError(f"{t.abspath(remote_rel_dir)} does not exist on {t.describe()}: nothing to download "
                          "(has the run started and finished?)")
    report = SyncReport()
    todo = []
    for rel, (size, sha) in sorted(tree.items()):
        _check_relative(rel)
        target = Path(local_dir) / rel
        if target.is_file() and target.stat().st_size == size and local_digest(target) == (size, sha):
            report.skipped.append(rel)
        else:
            todo.append((rel, target, size, sha))
    with Progress(sum(size for _, _, size, _ in todo), "download", unit="B", enabled=progress) as bar:
        for rel, target, size, sha in todo:
            _download_one(t, posixpath.join(t.abspath(remote_rel_dir), rel), rel, target, (size, sha), bar)
            report.sent.append(rel)
            report.bytes_sent += size
    report.seconds = time.monotonic() - start
    return report


def _download_one(t: Transport, remote: str, rel: str, target: Path, expected: Digest, bar: Progress) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(f".{target.name}{PART_SUFFIX}")
    got = 0

    def count(n: int) -> None:
        nonlocal got
        got += n
        bar.update(n)

    try:
        digest = t.get(remote, part, count)
        if (got, digest) != expected:
            raise RemoteError(f"download of {rel} does not match the box's copy ({got} bytes sha256 {digest[:12]}, "
                              f"expected {expected[0]} bytes {expected[1][:12]}); was it still being written? "
                              "run the download again")
        os.replace(part, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            part.unlink()
        raise
