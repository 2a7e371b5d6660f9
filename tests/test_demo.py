"""`make demo` from a checkout without config.sh: the whole cycle on a rehearsal host it starts and stops."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from cosmos_tools import history
from cosmos_tools.rehearsal.host import status

REPO = Path(__file__).resolve().parents[1]


def test_demo_runs_the_whole_cycle_and_leaves_the_host_down(tmp_path):
    root = tmp_path / "fresh clone"
    root.mkdir()
    (root / "scripts").symlink_to(REPO / "scripts")
    for sub in ("inputs/videos", "inputs/prompts", "outputs", "notes"):
        (root / sub).mkdir(parents=True)
    env = {**os.environ, "PATH": f"{REPO / '.venv' / 'bin'}{os.pathsep}{os.environ['PATH']}",
           "REMOTE_HOST": "gpu.example.invalid"}  # a setting in the environment must not leak into the demo
    done = subprocess.run([sys.executable, "-m", "cosmos_tools.demo", "--root", str(root), "--seconds", "0.1",
                           "--frames", "8"], cwd=root, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    (record,) = history.read_records(root / "notes" / "run_history.log")
    assert record["status"] == "ok" and record["shot"] == "demo_shot" and record["host"] == "127.0.0.1"
    assert (root / record["output"] / "output.mp4").is_file()
    assert (root / record["upscaled"] / "output.mp4").is_file()
    assert "rehearsal host stopped" in done.stderr
    assert status(root / ".cosmos" / "rehearsal") is None
    assert not (root / "config.sh").exists()
