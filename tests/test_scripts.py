"""The bash scripts and the CLI as a user meets them: --help everywhere, shellcheck-clean, one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import click
import pytest

from cosmos_tools.cli import cli

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = ["convert_png_sequences.sh", "new_prompt.sh", "upload_prompt.sh", "run_inference_remote.sh",
           "run_upscale_remote.sh", "download_results.sh", "full_cycle.sh", "ssh_remote.sh", "review.sh"]


@pytest.mark.parametrize("name", SCRIPTS)
@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_every_script_answers_help(name, flag):
    script = REPO / "scripts" / name
    assert os.access(script, os.X_OK), f"{name} must be executable (git mode 100755)"
    done = subprocess.run([str(script), flag], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"Usage: {name}"), done.stdout
    assert "-h, --help" in done.stdout


def test_scripts_are_shellcheck_clean():
    shellcheck = Path(sys.executable).with_name("shellcheck")
    done = subprocess.run([str(shellcheck), "-x", *[f"scripts/{n}" for n in SCRIPTS], "scripts/lib.sh", ".ci/run"],
                          cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_scripts_are_tracked_executable():
    listed = subprocess.run(["git", "ls-files", "-s", "scripts", ".ci/run"], cwd=REPO, capture_output=True,
                            text=True).stdout
    for line in listed.splitlines():
        mode, *_, path = line.split(maxsplit=3)
        if path == ".ci/run" or (path.endswith(".sh") and not path.endswith("lib.sh")):
            assert mode == "100755", f"{path} is tracked as {mode}"


def all_commands(group: click.Group, prefix=()):
    for name, command in group.commands.items():
        yield (*prefix, name)
        if isinstance(command, click.Group):
            yield from all_commands(command, (*prefix, name))


@pytest.mark.parametrize("words", list(all_commands(cli)), ids=" ".join)
def test_every_command_answers_help(words):
    done = subprocess.run([sys.executable, "-m", "cosmos_tools", *words, "--help"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "Usage:" in done.stdout


def test_help_does_not_import_paramiko():
    code = "import sys; from cosmos_tools.cli import cli; sys.exit('paramiko' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_script_errors_are_one_line_and_respect_no_color(tmp_path):
    env = {**os.environ, "NO_COLOR": "1", "COSMOS_CONFIG": str(tmp_path / "missing.sh")}
    done = subprocess.run([str(REPO / "scripts/new_prompt.sh"), "shot", "text"], capture_output=True, text=True,
                          env=env)
    assert done.returncode != 0
    assert "\x1b[" not in done.stderr and "Traceback" not in done.stderr
    assert done.stderr.strip().count("\n") == 0, done.stderr
