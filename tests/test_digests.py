"""Recorded digests (cosmos_tools/digests.py here, remote/sync_hash.py on the box): an unchanged file is not hashed
again, a changed one always is, even with its size and mtime restored."""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from pathlib import Path

import pytest
from test_sync import make_file

from cosmos_tools import digests, sync
from cosmos_tools.errors import RemoteError


def rewrite_keeping_size_and_mtime(path: Path) -> None:
    before = path.stat()
    data = bytearray(path.read_bytes())
    data[100] ^= 0xFF
    path.write_bytes(bytes(data))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_an_unchanged_file_is_not_hashed_again_and_a_changed_one_is(tmp_path, monkeypatch):
    monkeypatch.setattr(digests, "SETTLED_SECONDS", 0.0)
    src = make_file(tmp_path / "color.mp4", 300_000)
    record = tmp_path / "sha256.json"
    first = digests.DigestCache(record)
    assert first.digest(src) == (300_000, sha(src))
    first.save()

    def no_hashing(path, stop=None):
        raise AssertionError("hashed again")

    with monkeypatch.context() as patch:
        patch.setattr(digests, "local_digest", no_hashing)
        assert digests.DigestCache(record).digest(src) == (300_000, sha(src))
    rewrite_keeping_size_and_mtime(src)
    assert digests.DigestCache(record).digest(src) == (300_000, sha(src))  # the ctime moved: hashed again


def test_a_file_changed_just_now_is_not_recorded(tmp_path):
    src = make_file(tmp_path / "color.mp4", 1000)
    cache = digests.DigestCache(tmp_path / "sha256.json")
    assert cache.digest(src) == (1000, sha(src))
    cache.save()
    assert not (tmp_path / "sha256.json").exists()  # within SETTLED_SECONDS of a change: not trusted yet


def test_the_box_records_settled_files_and_never_serves_a_changed_one(ssh, rehearsal_host):
    remote = rehearsal_host.remote_dir / f"inputs/videos/d-{uuid.uuid4().hex[:8]}/color.mp4"
    make_file(remote, 300_000)
    time.sleep(2.1)  # older than the box's SETTLED: it will be recorded
    assert sync.remote_digests(ssh, [str(remote)], cached=True) == [(300_000, sha(remote))]
    recorded = json.loads((rehearsal_host.remote_dir.parent / "home/.cache/cosmos-tools/sha256.json").read_text())
    assert recorded[str(remote)][4] == sha(remote)
    rewrite_keeping_size_and_mtime(remote)
    assert sync.remote_digests(ssh, [str(remote)], cached=True) == [(300_000, sha(remote))]


def test_a_target_folder_that_cannot_be_made_is_one_line(ssh, rehearsal_host, tmp_path):
    blocker = f"inputs/videos/d-{uuid.uuid4().hex[:8]}"
    make_file(rehearsal_host.remote_dir / blocker, 10)  # a file where the folder should be
    src = make_file(tmp_path / "color.mp4", 1000)
    with pytest.raises(RemoteError, match=f"cannot create folder .*{blocker}"):
        sync.upload_files(ssh, [(src, f"{blocker}/shot/color.mp4")], progress=False)
