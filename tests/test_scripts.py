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
SCRIPTS = sorted(p.name for p in (REPO / "scripts").glob("*.sh") if p.name != "lib.sh")  # every script, new ones too


@pytest.mark.parametrize("name", SCRIPTS)
@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_every_script_answers_help(name, flag):
    script = REPO / "scripts" / name
    assert os.access(script, os.X_OK), f"{name} must be executable (git mode 100755)"
    done = subprocess.run([str(script), flag], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"Usage: {name}"), done.stdout
    assert "-h, --help" in done.stdout


USAGE = {
    "convert_png_sequences.sh": "usage: scripts/convert_png_sequences.sh <input_directory> <output_name> [frame_count]"
                                " [options]",
    "new_prompt.sh": 'usage: scripts/new_prompt.sh <base_name> "<prompt text>"\n'
                     "   or: scripts/new_prompt.sh --duplicate <existing.json>",
    "upload_prompt.sh": "usage: scripts/upload_prompt.sh <prompt.json> [videos_subdir_override] [--quiet]",
    "run_inference_remote.sh": "usage: scripts/run_inference_remote.sh <prompt.json> [--detach] [--wait]"
                               " [--num-gpu N] [--force]",
    "run_upscale_remote.sh": "usage: scripts/run_upscale_remote.sh <prompt.json> [control_weight] [--wait]"
                             " [--num-gpu N]",
    "download_results.sh": "usage: scripts/download_results.sh <prompt.json>",
    "full_cycle.sh": "usage: scripts/full_cycle.sh <prompt.json> [videos_subdir_override] [--no-upscale]"
                     " [--upscale-weight W] [--wait] [--num-gpu N] [--force]\n"
                     "   or: scripts/full_cycle.sh <prompt.json> <prompt.json>... [--upscale] [--upscale-weight W]"
                     " [--wait] [--num-gpu N] [--force] [--dry-run] [--detach] [--critique] [--upscale-best K]\n"
                     "   or: scripts/full_cycle.sh inputs/sweeps/<name>.json [same options as several prompts]",
    "rerun.sh": "usage: scripts/rerun.sh <run id> [--no-upscale] [--wait] [--num-gpu N]",
    "sweep.sh": "usage: scripts/sweep.sh <prompt.json> --set KEY=V1,V2,... [--set KEY=...] [--zip] [--name NAME]",
    "critique.sh": "usage: scripts/critique.sh <run id>... [--trials N] [--num-gpu N]\n"
                   "   or: scripts/critique.sh --sweep NAME [--trials N] [--num-gpu N]",
}


def run_script(name, *args, env=None):
    return subprocess.run([str(REPO / "scripts" / name), *args], capture_output=True, text=True, timeout=30,
                          env={**os.environ, "COSMOS_CONFIG": "/nonexistent/config.sh", **(env or {})})


@pytest.mark.parametrize("name", sorted(USAGE))
def test_a_missing_argument_gets_the_scripts_own_usage_line(name):
    done = run_script(name)
    assert (done.returncode, done.stdout, done.stderr) == (2, "", USAGE[name] + "\n")


@pytest.mark.parametrize("name, args", [
    ("convert_png_sequences.sh", ["renders/alley"]),
    ("convert_png_sequences.sh", ["--fps", "24", "renders/alley", "--fit"]),
    ("full_cycle.sh", ["--num-gpu", "2", "--no-upscale"]),
    ("full_cycle.sh", ["--upscale-weight", "0.5"]),
    ("full_cycle.sh", ["--upscale-best", "2", "--critique"]),
    ("critique.sh", ["--trials", "2"]),
    ("new_prompt.sh", ["alley"]),
    ("new_prompt.sh", ["--shot", "alley", "text"]),
])
def test_an_option_value_is_not_taken_for_an_argument(name, args):
    done = run_script(name, *args)
    assert (done.returncode, done.stderr) == (2, USAGE[name] + "\n")


@pytest.mark.parametrize("args", [["--duplicate", "inputs/prompts/missing.json"],
                                  ["--duplicate=inputs/prompts/missing.json"]])
def test_new_prompt_duplicate_needs_no_base_name(tmp_path, args):
    (tmp_path / "config.sh").write_text("")
    done = run_script("new_prompt.sh", *args, env={"COSMOS_CONFIG": str(tmp_path / "config.sh"),
                                                   "COSMOS_PROJECT_ROOT": str(tmp_path)})
    assert "usage: scripts/" not in done.stderr
    assert "missing.json" in done.stderr and done.returncode != 0


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


SCRIPT_ARGS = {
    "convert_png_sequences.sh": ["art/none", "shot1"], "new_prompt.sh": ["shot1", "text"],
    "upload_prompt.sh": ["inputs/prompts/p.json"], "run_inference_remote.sh": ["inputs/prompts/p.json"],
    "run_upscale_remote.sh": ["inputs/prompts/p.json"], "download_results.sh": ["inputs/prompts/p.json"],
    "full_cycle.sh": ["inputs/prompts/p.json"], "ssh_remote.sh": ["true"],
    "sweep.sh": ["inputs/prompts/p.json", "--set", "seed=1,2"], "rerun.sh": ["p-1"], "review.sh": ["--last", "1"],
    "critique.sh": ["p-1"],
}


@pytest.mark.parametrize("name", SCRIPTS)
@pytest.mark.parametrize("line", ['REMOTE_HOST=$(touch "$MARK")', 'REMOTE_HOST=`touch "$MARK"`',
                                  'REMOTE_HOST=gpu touch "$MARK"', 'X=foo touch "$MARK"'])
def test_no_script_runs_config_sh(tmp_path, name, line):
    """config.sh is data: nothing in it runs through any script, and the strict reader names the line."""
    for folder in ("inputs/prompts", "inputs/videos", "outputs"):
        (tmp_path / folder).mkdir(parents=True)
    (tmp_path / "inputs/prompts/p.json").write_text('{"prompt": "x"}')
    mark = tmp_path / "ran"
    config = tmp_path / "config.sh"
    config.write_text(f"REMOTE_USER=alice\n{line}\n")
    done = run_script(name, *SCRIPT_ARGS[name], env={"COSMOS_CONFIG": str(config), "COSMOS_PROJECT_ROOT": str(tmp_path),
                                                     "MARK": str(mark)})
    assert not mark.exists()
    assert done.returncode == 1 and f"{config}:2: " in done.stderr and done.stderr.count("\n") == 1, done.stderr
