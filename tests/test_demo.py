"""`make demo` from a checkout without config.sh: the whole cycle in a demo project of its own, on a rehearsal host
it starts and stops, leaving the user's own project alone."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cosmos_tools import history
from cosmos_tools.rehearsal.host import status

REPO = Path(__file__).resolve().parents[1]
USER_TREE = ("inputs", "outputs", "art", "notes", "config.sh", ".cosmos")


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every path of the user's tree with its size and mtime."""
    seen = {}
    for name in USER_TREE:
        top = root / name
        for path in [top, *top.rglob("*")] if top.is_dir() else [top]:
            if path.exists() or path.is_symlink():
                info = path.lstat()
                seen[str(path.relative_to(root))] = (info.st_size, info.st_mtime_ns)
    return seen


def run_demo(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{REPO / '.venv' / 'bin'}{os.pathsep}{os.environ['PATH']}",
           "REMOTE_HOST": "gpu.example.invalid"}  # a setting in the environment must not leak into the demo
    return subprocess.run([sys.executable, "-m", "cosmos_tools.demo", *args], cwd=cwd, capture_output=True,
                          text=True, env=env, timeout=300)


@pytest.mark.integration
def test_demo_runs_the_whole_cycle_in_its_own_project_and_leaves_the_users_alone(tmp_path):
    demo = tmp_path / "demo project"
    before = snapshot(REPO)
    done = run_demo("--dir", str(demo), "--seconds", "0.1", "--frames", "8", cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert snapshot(REPO) == before, "make demo changed the user's own project"
    (record,) = history.read_records(demo / "notes" / "run_history.log")
    assert record["status"] == "ok" and record["shot"] == "demo_shot" and record["host"] == "127.0.0.1"
    assert (demo / record["output"] / "output.mp4").is_file()
    assert (demo / record["upscaled"] / "output.mp4").is_file()
    assert (demo / "art" / "demo_render" / "color.1001.png").is_file()
    assert str(demo / record["output"]) in done.stderr, "the demo must say where the results are"
    assert "rehearsal host stopped" in done.stderr
    assert status(demo / ".cosmos" / "rehearsal") is None
    assert not (demo / "config.sh").exists()


def test_demo_refuses_a_folder_that_is_not_empty(tmp_path):
    (tmp_path / "precious.txt").write_text("keep me")
    done = run_demo("--dir", str(tmp_path), cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "must be a new or empty folder" in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["precious.txt"]
