"""Verified, skip-if-same transfers between the project and REMOTE_DIR.

Every file travels under a temporary name of its own (``.<name>.<token>.cosmos-part``, so two
clients sending the same file never write into one temporary file), is checked (size and sha256
computed on the receiving side against the sha256 of the bytes read on the sending side), and only
then renamed over its real name: an interrupted transfer never leaves a truncated file under the
real name. Files already identical on the other side are not sent. One remote command hashes all
targets at once, so an unchanged re-upload costs one round trip. A transfer cut by a dropped
connection goes on next time from the verified prefix of its part file; no other part file outlives
the next successful transfer (docs/transfers.md).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import posixpath
import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from .digests import Digest, DigestCache, local_digest
from .errors import LocalError, RemoteError, UserError
from .fsutil import write_json_atomic
from .progress import Progress
from .remote import script
from .remote.codes import ScriptExit
from .streams import CHUNK, PIECE_MIN, Piece, landed, split
from .transport import ConnectionLost, Resume, Started, Transport

PART_SUFFIX = ".cosmos-part"

# A temporary file nobody has written to for this long is a leftover of an interrupted upload.
STALE_PART_SECONDS = 600
# A download cut off by a dropped connection keeps its part file from this size on, to go on from it next time.
RESUME_MIN_BYTES = 1024 * 1024
# How long remote/sync_follow.py waits for a file being uploaded to grow before it gives up.
FOLLOW_IDLE_SECONDS = 20
# The niceness of that hash: a job running on the box keeps its CPU, and so do the box's sshd and sftp-server,
# which the upload needs first (the hash catches up as soon as they wait). On a 2-core loopback rehearsal the
# upload went from 1.04-1.14 to 1.10-1.19 of scp (median pairwise ratio, 8 alternating runs, 4 times each).
FOLLOW_NICENESS = 10

# The box's system python3 first: a user's pyenv/conda shim can cost a few hundred ms per start. The scripts use
# the standard library only: -I -S leaves out the box's PYTHON* variables, user site and site-packages, so nothing
# there can shadow a module they import.
# RUN_PYTHON is that choice as a shell text; the bash scripts that start python only when needed get it too.
RUN_PYTHON = 'if [ -x /usr/bin/python3 ]; then exec /usr/bin/python3 -I -S "$@"; fi; exec python3 -I -S "$@"'
PYTHON = ["sh", "-c", RUN_PYTHON, "sh"]


@dataclass
class SyncReport:
    sent: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    bytes_sent: int = 0
    seconds: float = 0.0
    digests: dict[str, str] = field(default_factory=dict)  # upload: sha256 of every file, by remote path


def remote_digests(t: Transport, paths: list[str], clean_stale: bool = False, make_folders: bool = False,
                   cached: bool = False) -> list[Digest | None]:
    """(size, sha256) of each remote path, None where there is no regular file; one remote command.

    ``clean_stale`` also removes the paths' temporary files left by interrupted uploads; ``make_folders`` first
    makes the folder of each path (an upload's targets); ``cached`` takes the digests of unchanged files from the
    box's record and records the others (remote/sync_hash.py), as ``DigestCache`` does here. When there is
    nothing to hash or clean, remote/sync_hash.sh answers without starting python.
    """
    if not paths:
        return []
    stale = str(STALE_PART_SECONDS if clean_stale else 0)
    options = ("f" if make_folders else "") + ("c" if cached else "") or "-"
    out = t.run(["bash", "-c", script("sync_hash.sh"), "sync_hash", RUN_PYTHON, stale, options,
                 script("sync_hash.py"), *paths]).stdout.decode().splitlines()
    if len(out) != len(paths):
        raise RemoteError(f"hashing files on {t.describe()} gave {len(out)} answers for {len(paths)} files; "
                          "is python3 installed there?")
    return [_parse_digest(line) for line in out]


def digest_cache(t: Transport) -> DigestCache:
    """The record of this project's local file digests (beside the upload records)."""
    return DigestCache(t.parts_dir.parent / "sha256.json")


def part_name(path: str) -> str:
    """A fresh temporary name for a file to travel under, beside its target."""
    folder, name = posixpath.split(path)
    return posixpath.join(folder, f".{name}.{secrets.token_hex(4)}{PART_SUFFIX}")


def _check_relative(rel: str) -> None:
    parts = rel.split("/")
    if not rel or rel.startswith("/") or any(p in ("", ".", "..") for p in parts) or "\0" in rel:
        raise ValueError(f"not a clean path relative to REMOTE_DIR: {rel!r}")


# Parts this process is writing right now (another thread's upload must not resume or remove them).
_sending: set[str] = set()


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        pass
    return True


class PartRecord:
    """The box's temporary files of this project's uploads, one small JSON file each under ``t.parts_dir``.

    A part recorded here is ours: the next upload resumes it (its target is being sent) or removes it,
    however fresh, unless the upload that writes it is still going on (a thread of this process, or
    another process of this project that is still running). Parts of other clients are removed only
    once stale (``STALE_PART_SECONDS``).
    """

    def __init__(self, t: Transport) -> None:
        self.t = t
        self.box = t.describe()

    def _entry(self, part: str) -> Path:
        key = hashlib.sha256(f"{self.box}\0{part}".encode()).hexdigest()[:20]
        return self.t.parts_dir / f"{key}.json"

    def load(self) -> dict[str, dict]:
        """{part path: its record} of this box's recorded parts that no running upload is writing; a record holds
        "target", and for a part sent in pieces also "pieces" ([start, end] each) and "source" ([size, mtime_ns]
        of the local file then)."""
        found = {}
        for entry in sorted(self.t.parts_dir.glob("*.json")) if self.t.parts_dir.is_dir() else []:
            with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
                data = json.loads(entry.read_text(encoding="utf-8"))
                pid, part = int(data["pid"]), data["part"]
                in_use = part in _sending if pid == os.getpid() else _running(pid)
                if data["box"] == self.box and not in_use and isinstance(data["target"], str):
                    found[part] = data
        return found

    def add(self, part: str, target: str, **extra: object) -> None:
        try:
            write_json_atomic(self._entry(part), {"box": self.box, "part": part, "target": target,
                                                  "pid": os.getpid(), **extra})
        except OSError as exc:
            raise LocalError(f"cannot record the upload in {self.t.parts_dir} ({exc.strerror or exc}); make the "
                             "project folder writable") from None

    def discard(self, part: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._entry(part).unlink()


@dataclass
class _Todo:
    path: Path
    rel: str
    target: str
    size: int
    part: str
    digest: Future[Digest | None] | None = None  # the local file's, being computed (None if it was stopped)
    resumed: int = 0  # sent in one stream: the verified prefix the box already has
    pieces: list[Piece] = field(default_factory=list)  # when sent in pieces: what of each the box has

    @property
    def offset(self) -> int:
        """Bytes already on the box."""
        if self.pieces:
            return sum(p.done for p in self.pieces)
        return self.resumed

    def local_digest(self) -> Digest:
        """The local file's (size, sha256), as hashed while it was being sent."""
        return (self.digest.result() if self.digest else None) or local_digest(self.path)


def _local_prefix(path: Path, length: int, start: int = 0) -> hashlib._Hash:
    """The sha256 state of ``length`` bytes of a local file from ``start`` (its first bytes by default)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        handle.seek(start)
        while length > 0 and (block := handle.read(min(1024 * 1024, length))):
            digest.update(block)
            length -= len(block)
    return digest


def upload_files(t: Transport, files: list[tuple[Path, str]], *, progress: bool = True) -> SyncReport:
    """Send each local file to its path relative to REMOTE_DIR, skipping files already there.

    A file whose earlier upload was cut goes on from the part of it already on the box once that
    part's hash matches the same prefix here; every other recorded part of ours is removed.
    """
    start = time.monotonic()
    for source, rel in files:
        _check_relative(rel)
        if not Path(source).is_file():
            raise UserError(f"{source}: file to upload not found")
    targets = [t.abspath(rel) for _, rel in files]
    record = PartRecord(t)
    ours = record.load()
    sizes = [Path(p).stat().st_size for p, _ in files]
    stops = [threading.Event() for _ in files]
    report = SyncReport()
    cache = digest_cache(t)
    with ThreadPoolExecutor(2) as pool:  # hash here while the box hashes there (and makes the folders); time the link
        try:
            streams = pool.submit(_streams_for, t, sum(sizes))
            local = [pool.submit(cache.digest, Path(p), stop) for (p, _), stop in zip(files, stops, strict=True)]
            answers = remote_digests(t, targets + list(ours), clean_stale=True, make_folders=True, cached=True)
            remote, parts = answers[:len(targets)], dict(zip(ours, answers[len(targets):], strict=True))
            todo = _differing(files, targets, sizes, remote, local, report)
            in_pieces = streams.result() > 1 and sum(item.size for item in todo) >= PIECE_MIN
            _resume_or_drop(t, record, todo, parts, ours, in_pieces)
            with Progress(sum(f.size - f.offset for f in todo), "upload", unit="B", enabled=progress) as bar:
                if in_pieces:
                    sent, digests = _upload_in_pieces(t, record, todo, bar)
                    report.bytes_sent += sent
                    report.digests.update(digests)
                    report.sent += [item.rel for item in todo]
                else:
                    for item in todo:
                        sent, report.digests[item.rel] = _upload_one(t, record, item, bar)
                        report.bytes_sent += sent
                        report.sent.append(item.rel)
        finally:
            for stop in stops:  # after a failure, hashing still going on ends now
                stop.set()
    cache.save()
    report.seconds = time.monotonic() - start
    return report


def _differing(files: list[tuple[Path, str]], targets: list[str], sizes: list[int], remote: list[Digest | None],
               local: list[Future[Digest | None]], report: SyncReport) -> list[_Todo]:
    """The files to send: those whose target is missing or different (the identical ones go to ``report`` as
    skipped). The hashing of a file to send goes on while it is sent: the box's digest of what arrived is checked
    against it."""
    todo = []
    for (path, rel), target, size, theirs, mine in zip(files, targets, sizes, remote, local, strict=True):
        if theirs is not None and theirs[0] == size and mine.result() == theirs:
            report.skipped.append(rel)
            report.digests[rel] = theirs[1]
            continue
        todo.append(_Todo(Path(path), rel, target, size, part_name(target), digest=mine))
    return todo


def _streams_for(t: Transport, size: int) -> int:
    """How many streams a transfer of ``size`` bytes uses; when several, start opening them (in the background)."""
    streams = t.streams() if size >= PIECE_MIN else 1
    if streams > 1:
        t.open_streams()
    return streams


def _resume_or_drop(t: Transport, record: PartRecord, todo: list[_Todo], parts: dict[str, Digest | None],
                    ours: dict[str, dict], in_pieces: bool) -> None:
    """Give each file to send the recorded part of its target that holds a verified beginning of it (sent in one
    stream: its content is a prefix of the file; sent in pieces: each piece's beginning on the box matches the
    local file); remove the rest. With ``in_pieces``, every file gets its pieces."""
    by_target = {item.target: item for item in todo}
    drop = []
    for part, entry in ours.items():
        item, found = by_target.get(entry["target"]), parts.get(part)
        if item and not item.resumed and not item.pieces and found and found[0] <= item.size:
            if "pieces" in entry:
                if in_pieces and _resume_pieces(t, item, part, entry):
                    continue
            elif found[0] and _local_prefix(item.path, found[0]).hexdigest() == found[1]:
                item.part, item.resumed = part, found[0]
                continue
        drop.append(part)
    if drop:
        t.run(["rm", "-f", "--", *drop], check=False)
        for part in drop:
            record.discard(part)
    for key, item in enumerate(todo):
        if in_pieces and not item.pieces:
            done = [Piece(key, 0, item.offset, item.offset)] if item.offset else []
            item.pieces = done + split(key, item.size, t.streams(), item.offset)
        for piece in item.pieces:
            piece.key = key


def _resume_pieces(t: Transport, item: _Todo, part: str, entry: dict) -> bool:
    """Take over a part an earlier upload sent in pieces, each piece going on from what the box has of it that
    matches the local file (asked in one remote command); False if the local file changed since."""
    stat = item.path.stat()
    bounds = entry["pieces"]
    if entry.get("source") != [stat.st_size, stat.st_mtime_ns] or not bounds:
        return False
    done = t.run([*PYTHON, "-c", script("sync_pieces.py"), part, str(CHUNK), *(str(n) for b in bounds for n in b)])
    item.part, item.pieces = part, []
    for (start, end), line in zip(bounds, done.stdout.decode().splitlines(), strict=True):
        length, sha = line.split()
        same = int(length) > 0 and _local_prefix(item.path, int(length), start).hexdigest() == sha
        item.pieces.append(Piece(0, start, end, int(length) if same else 0))
    return True


def _upload_one(t: Transport, record: PartRecord, item: _Todo, bar: Progress) -> tuple[int, str]:
    """Send one file (or the rest of it) under its temporary name, check it on the box, rename it; return the
    bytes sent and the whole file's sha256.

    The box hashes the temporary file while it arrives (remote/sync_follow.py, at FOLLOW_NICENESS) and reports
    how much has landed, which is what the progress bar shows; if its hash is missing or differs, the file is hashed
    again after the upload. A cut connection keeps the part (recorded) for the next upload to resume; any
    other failure removes it.
    """
    part, size, offset = item.part, item.size, item.offset
    followed: list[Digest | None] = []
    shown = 0

    def landed(n: int) -> None:
        nonlocal shown
        if n - offset > shown:
            bar.update(n - offset - shown)
            shown = n - offset

    def follow() -> None:  # best effort: without its answer the part file is hashed again afterwards
        with contextlib.suppress(Exception):
            lines = _Lines(landed)
            rc = t.stream(["nice", "-n", str(FOLLOW_NICENESS), *PYTHON, "-c", script("sync_follow.py"), part,
                           str(size), str(FOLLOW_IDLE_SECONDS)], on_output=lines.feed)
            if rc == 0 and lines.last:
                followed.append(_parse_digest(lines.last))

    follower = threading.Thread(target=follow, name="cosmos-verify", daemon=True)
    record.add(part, item.target)
    _sending.add(part)
    follower.start()
    sent = 0

    def count(n: int) -> None:
        nonlocal sent
        sent += n

    try:
        t.put(item.path, part, count, offset)
        if offset + sent == size:
            follower.join(FOLLOW_IDLE_SECONDS + 30)
        mine = item.local_digest()
        arrived = followed[0] if followed else None
        if arrived != mine or offset + sent != size:  # every write was acknowledged: the part holds what was sent
            (arrived,) = remote_digests(t, [part])
        if arrived != mine:
            raise RemoteError(
                f"upload of {item.rel} arrived damaged on {t.describe()} (sent {mine[0]} bytes sha256 {mine[1][:12]}, "
                f"found {arrived}); run the upload again")
        t.rename(part, item.target)
    except ConnectionLost:
        raise  # the part stays recorded: the next upload resumes it
    except RemoteError as exc:
        failure = _no_space(t, item, part) or exc
        _remove_part(t, record, part)
        raise failure from None
    except KeyboardInterrupt:
        _remove_part(t, record, part)
        raise
    finally:
        _sending.discard(part)
    record.discard(part)
    landed(size)
    return sent, mine[1]


def _upload_in_pieces(t: Transport, record: PartRecord, todo: list[_Todo],
                      bar: Progress) -> tuple[int, dict[str, str]]:
    """Send the files in pieces over several streams at once (``streams.py``), check every part's size and sha256
    on the box against the local file, rename them; return the bytes sent and each file's sha256.

    The bar counts what the box acknowledged. Each part is recorded with its pieces and the local file's size
    and mtime before it is written: after a cut connection (or a killed process) the next upload goes on from
    what the box has of each piece; any other failure removes the parts.
    """
    parts = [item.part for item in todo]
    sent = 0

    def acked(n: int) -> None:
        nonlocal sent
        sent += n
        bar.update(n)

    for item in todo:
        stat = item.path.stat()
        record.add(item.part, item.target, source=[stat.st_size, stat.st_mtime_ns],
                   pieces=[[p.start, p.end] for p in item.pieces])
    _sending.update(parts)
    try:
        answers, sent_digests = _send_and_check(t, todo, acked)
        for item, answer in zip(todo, answers, strict=True):
            if answer == "ok":
                record.discard(item.part)
                _sending.discard(item.part)
        for item, mine, answer in zip(todo, sent_digests, answers, strict=True):
            if answer != "ok":
                raise RemoteError(f"upload of {item.rel} arrived damaged on {t.describe()} (sent {item.size} bytes "
                                  f"sha256 {mine[1][:12]}, found {answer}); run the upload again")
    except ConnectionLost:
        raise  # the parts stay recorded: the next upload goes on from what the box has of each piece
    except RemoteError as exc:
        failure = next((found for item in todo if (found := _no_space(t, item, item.part))), exc)
        for part in parts:
            if part in _sending:  # not yet in place
                _remove_part(t, record, part)
        raise failure from None
    except KeyboardInterrupt:
        for part in parts:
            if part in _sending:
                _remove_part(t, record, part)
        raise
    finally:
        _sending.difference_update(parts)
    return sent, {item.rel: mine[1] for item, mine in zip(todo, sent_digests, strict=True)}


def _send_and_check(t: Transport, todo: list[_Todo], acked: Callable[[int], None]) -> tuple[list[str], list[Digest]]:
    """Send the pieces while the box checks each part against the local file's digest and renames it
    (``remote/sync_place.py``, started at once and given the digests as soon as they are known): a fresh part is
    checked when its last write lands, so the answer comes with the last acknowledgement. Returns the answer per
    file ("ok" or what the box found) and the digests."""

    def start() -> tuple[Started, list[Digest]]:
        names = [name for item in todo for name in (item.part, item.target)]
        started = t.start([*PYTHON, "-c", script("sync_place.py"), *names])
        try:
            digests = [item.local_digest() for item in todo]
            started.write("".join(f"{size} {sha}\n" for size, sha in digests).encode())
        except BaseException:
            started.cancel()
            raise
        return started, digests

    starter = ThreadPoolExecutor(1)
    place = starter.submit(start)
    starter.shutdown(wait=False)
    try:
        t.put_pieces([(item.path, item.part) for item in todo], [p for i in todo for p in i.pieces], acked)
    except BaseException:
        with contextlib.suppress(Exception):
            place.result()[0].cancel()  # it checks and renames nothing more
        raise
    started, digests = place.result()
    answers = dict(line.split(" ", 1) for line in started.finish(b"acked\n", len(todo)))
    return [answers.get(str(index), "-") for index in range(len(todo))], digests


def _remove_part(t: Transport, record: PartRecord, part: str) -> None:
    """Best effort: a part left behind stays recorded, so the next upload removes it."""
    with contextlib.suppress(Exception):
        t.remove(part)
        record.discard(part)


def _no_space(t: Transport, item: _Todo, part: str) -> RemoteError | None:
    """The error to show when the box's disk is too full for the rest of ``item``, else None."""
    folder = posixpath.dirname(item.target)
    with contextlib.suppress(Exception):
        done = t.run(["df", "-B1", "--output=avail", "--", folder], check=False)
        free = int(done.stdout.split()[-1])
        if free < item.size - (t.size(part) or 0) or free == 0:
            return RemoteError(f"no space left on the GPU box (REMOTE_DIR {t.remote_dir}: {folder} has {free} bytes "
                               f"free, {item.rel} needs {item.size}); free space there or point REMOTE_DIR at a "
                               "bigger disk, then upload again")
    return None


class _Lines:
    """Split the follower's output into lines: "+N" (bytes landed so far) goes to ``landed``, the rest is kept."""

    def __init__(self, landed: Callable[[int], None]) -> None:
        self.landed, self.buffer, self.last = landed, b"", ""

    def feed(self, data: bytes) -> None:
        *lines, self.buffer = (self.buffer + data).split(b"\n")
        for line in lines:
            text = line.decode("ascii", "replace").strip()
            if text.startswith("+") and text[1:].isdigit():
                self.landed(int(text[1:]))
            elif text:
                self.last = text


def _parse_digest(line: str) -> Digest | None:
    if line == "-":
        return None
    size, sha = line.split()
    return int(size), sha


def remote_sizes(t: Transport, remote_rel_dir: str) -> dict[str, int] | None:
    """{relative path: size} of every file under a remote folder; None if it does not exist."""
    done = t.run(["bash", "-c", script("sync_list.sh"), "sync_list", t.abspath(remote_rel_dir), RUN_PYTHON,
                  script("sync_list.py")], check=False)
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
    A file cut off by a dropped connection keeps its part file when it is large (``RESUME_MIN_BYTES``):
    the next download goes on from it; every other part file is removed, whatever went wrong.
    Files named in ``keep`` are fetched only when there is no local copy (a local copy adds to them).
    """
    start = time.monotonic()
    with ThreadPoolExecutor(1) as pool:  # time the link while the box lists the files
        streams = pool.submit(_streams_for, t, PIECE_MIN)
        sizes = remote_sizes(t, remote_rel_dir)
        streams.result()
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
    fetched: list[_Fetched] = []
    try:
        with ThreadPoolExecutor(1) as pool, \
                Progress(sum(sizes[r] for r in rels if r not in maybe_same), "download", unit="B",
                         enabled=progress) as bar:
            remote = pool.submit(remote_digests, t, [posixpath.join(base, r) for r in rels], cached=True)
            for rel in rels:
                if rel not in maybe_same:
                    fetched.append(_fetch(t, base, rel, targets[rel], sizes[rel], bar))
            cache = digest_cache(t)
            local = {rel: cache.digest(targets[rel]) for rel in maybe_same}
            cache.save()
            hashes = dict(zip(rels, remote.result(), strict=True))
            for rel in maybe_same:
                if local[rel] == hashes[rel]:
                    report.skipped.append(rel)
                    _remove_local_parts(targets[rel])
                else:
                    bar.total += sizes[rel]
                    fetched.append(_fetch(t, base, rel, targets[rel], sizes[rel], bar))
            for index, item in enumerate(fetched):
                if item.got != hashes[item.rel] and item.resumed:  # the box's file changed since: from the start
                    item.part.unlink()
                    bar.total += sizes[item.rel]
                    fetched[index] = item = _fetch(t, base, item.rel, targets[item.rel], sizes[item.rel], bar)
                if item.got != hashes[item.rel]:
                    raise RemoteError(f"download of {item.rel} does not match the box's copy ({item.got[0]} bytes "
                                      f"sha256 {item.got[1][:12]}, box has {hashes[item.rel]}); was it still being "
                                      "written? run the download again")
        for item in fetched:
            try:
                os.replace(item.part, targets[item.rel])
            except OSError as exc:
                raise UserError(f"{targets[item.rel]}: cannot replace it ({exc.strerror}); move it away and "
                                "download again") from None
            report.sent.append(item.rel)
            report.bytes_sent += item.got[0] - item.resumed
    finally:
        for item in fetched:
            with contextlib.suppress(FileNotFoundError):
                item.part.unlink()
    report.seconds = time.monotonic() - start
    return report


@dataclass
class _Fetched:
    rel: str
    part: Path
    got: Digest  # (size, sha256) of the whole local part
    resumed: int  # bytes the part already held before this download


def _local_parts(target: Path) -> list[Path]:
    """The part files beside ``target`` left by earlier downloads of it (names compared, never globbed)."""
    prefix = f".{target.name}."
    with contextlib.suppress(OSError):
        return [target.parent / n for n in os.listdir(target.parent) if n.startswith(prefix)
                and n.endswith(PART_SUFFIX) and len(n) == len(prefix) + 8 + len(PART_SUFFIX)]
    return []


def _remove_local_parts(target: Path, keep: Path | None = None) -> None:
    for part in _local_parts(target):
        if part != keep:
            with contextlib.suppress(FileNotFoundError):
                part.unlink()


def _fetch(t: Transport, base: str, rel: str, target: Path, size: int, bar: Progress) -> _Fetched:
    """Copy one remote file to a temporary name beside ``target``, going on from the largest part file an earlier
    download left (its bytes are hashed here; the whole is checked against the box's hash afterwards)."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LocalError(f"cannot create {target.parent} ({exc.strerror}); fix the permissions of "
                         f"{target.parent.parent}") from None
    earlier = [(p.stat().st_size, p) for p in _local_parts(target)]
    offset, part = max(earlier, default=(0, Path(part_name(str(target)))))
    _remove_local_parts(target, keep=part)
    if t.streams() > 1 and size >= PIECE_MIN and offset <= size:
        return _fetch_in_pieces(t, posixpath.join(base, rel), rel, part, size, bar)
    resume = None
    if 0 < offset <= size:
        resume = Resume(offset, _local_prefix(part, offset))
        bar.total -= offset
    elif offset:
        part.unlink()
        offset = 0
    got = 0

    def count(n: int) -> None:
        nonlocal got
        got += n
        bar.update(n)

    try:
        digest = t.get(posixpath.join(base, rel), part, size, count, resume)
    except BaseException as exc:
        if not (isinstance(exc, ConnectionLost) and part.is_file() and part.stat().st_size >= RESUME_MIN_BYTES):
            with contextlib.suppress(FileNotFoundError):
                part.unlink()
        raise
    return _Fetched(rel, part, (offset + got, digest), offset)


def _fetch_in_pieces(t: Transport, remote: str, rel: str, part: Path, size: int, bar: Progress) -> _Fetched:
    """Copy one remote file into ``part`` in pieces over several streams at once, each piece going on from what an
    earlier download left of it in ``part``; then hash the whole part here (the caller checks it against the box's
    hash and starts again from nothing on a mismatch). A cut connection keeps the part when it holds at least
    ``RESUME_MIN_BYTES``; anything else removes it."""
    pieces = split(0, size, t.streams())
    if part.is_file():
        landed(part, pieces)
    resumed = sum(p.done for p in pieces)
    bar.total -= resumed
    try:
        t.get_pieces(remote, part, pieces, bar.update)
    except BaseException as exc:
        if not (isinstance(exc, ConnectionLost) and sum(p.done for p in pieces) >= RESUME_MIN_BYTES):
            with contextlib.suppress(FileNotFoundError):
                part.unlink()
        raise
    return _Fetched(rel, part, local_digest(part), resumed)
