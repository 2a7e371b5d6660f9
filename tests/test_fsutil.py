"""Atomic writes: never a partial file, never an overwrite where none is wanted, usual modes."""

from __future__ import annotations

import pytest

from cosmos_tools.fsutil import FILE_MODE, append_line_locked, atomic_path, create_exclusive, write_json_atomic


def test_atomic_files_get_the_users_usual_mode(tmp_path):
    write_json_atomic(tmp_path / "a.json", {"a": 1})
    assert create_exclusive(tmp_path / "b.json", "{}")
    for name in ("a.json", "b.json"):
        assert (tmp_path / name).stat().st_mode & 0o777 == FILE_MODE


def test_failed_write_leaves_the_old_file_and_no_temp(tmp_path):
    target = tmp_path / "spec.json"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["spec.json"]


def test_create_exclusive_never_overwrites(tmp_path):
    target = tmp_path / "p.json"
    assert create_exclusive(target, "first")
    assert not create_exclusive(target, "second")
    assert target.read_text() == "first"
    assert [p.name for p in tmp_path.iterdir()] == ["p.json"]


def test_append_refuses_multi_line_records(tmp_path):
    log = tmp_path / "run_history.log"
    append_line_locked(log, "a=1")
    with pytest.raises(ValueError):
        append_line_locked(log, "a=1\nb=2")
    assert log.read_text() == "a=1\n"
