"""BACKEND=slurm rendering: the sbatch options, the launcher (pyxis, apptainer, singularity, none) and the command
words, with hostile names kept as data; every bad setting refused with one line naming it and the fix."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from prompt_fixtures import HOSTILE_NAMES, cli_env, make_project, project_config

from cosmos_tools import critic
from cosmos_tools.config import ConfigError
from cosmos_tools.errors import UserError
from cosmos_tools.remote import script
from cosmos_tools.remote.account import BoxAccount
from cosmos_tools.remote.paths import container_name
from cosmos_tools.render import render_batch, render_run, render_upscale
from cosmos_tools.slurm import split_launch

ACCOUNT = BoxAccount(uid="1000", gid="1000", home="/home/ann")
PROMPT = {"prompt": "a city at dusk", "input_video_path": "inputs/videos/s/color.mp4", "vis": {"control_weight": 0.5}}


def slurm_cfg(tmp_path, monkeypatch, **settings):
    return project_config(make_project(tmp_path / "p"), monkeypatch, BACKEND="slurm",
                          REMOTE_DIR="/shared/ann/cosmos-transfer1", **settings)


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_a_run_is_sbatch_then_the_launch_with_names_as_data(tmp_path, monkeypatch, name):
    cfg = slurm_cfg(tmp_path, monkeypatch, SLURM_CONTAINER="none", NUM_GPU=2, SLURM_PARTITION="gpu",
                    SLURM_ACCOUNT="proj-7", SLURM_TIME="2:00:00", SLURM_EXTRA_ARGS="--qos=high '--comment=a b'")
    rendered = render_run(name, PROMPT, cfg, account=ACCOUNT, run_id=f"{name}-3")
    sbatch, launch = split_launch(rendered.docker)
    folder = f"outputs/runs/{name}-3"
    assert sbatch == ["sbatch", "--parsable", f"--job-name={container_name(name, 'run')}", "--gres=gpu:2",
                      "--output=.cosmos-tools/slurm/%j.out", "--open-mode=append", "--partition=gpu",
                      "--account=proj-7", "--time=2:00:00", "--qos=high", "--comment=a b"]
    env_end = launch.index("bash")
    assert launch[0] == "env" and "CUDA_VISIBLE_DEVICES" not in " ".join(launch[:env_end])  # Slurm sets it
    assert "PYTHONPATH=/shared/ann/cosmos-transfer1" in launch[:env_end]  # no container: the checkout's own paths
    assert launch[env_end:env_end + 6] == ["bash", "-c", script("runner.sh"), "cosmos-run", f"{folder}/run.log",
                                           f"{folder}/command_exit_code"]
    assert launch[env_end + 6:] == rendered.command and f"{folder}/controlnet_spec.json" in rendered.command
    assert rendered.exit_code_path == f"{folder}/exit_code"  # the batch script writes it from the runner's


def test_container_launchers(tmp_path, monkeypatch):
    pyxis = render_run("x", PROMPT, slurm_cfg(tmp_path, monkeypatch, SLURM_IMAGE="images/cosmos.sqsh"),
                       account=ACCOUNT, run_id="x-1")
    _, launch = split_launch(pyxis.docker)
    mounts = "/shared/ann/cosmos-transfer1:/workspace,/home/ann/.cache/huggingface:/hf-cache"
    assert launch[:6] == ["srun", "--ntasks=1", "--container-image=/home/ann/images/cosmos.sqsh",
                          f"--container-mounts={mounts}", "--container-workdir=/workspace", "env"]
    assert "PYTHONPATH=/workspace" in launch  # inside the container
    for kind in ("apptainer", "singularity"):
        cfg = project_config(tmp_path / "p", monkeypatch, BACKEND="slurm", REMOTE_DIR="/shared/ann/cosmos-transfer1",
                             SLURM_CONTAINER=kind, SLURM_IMAGE="/images/cosmos.sif")
        up = render_upscale("x", cfg, account=ACCOUNT, run_id="x-1", leaf="x-1_upscaled", run_prompt=PROMPT)
        _, launch = split_launch(up.docker)
        assert launch[:8] == [kind, "exec", "--nv", "--bind", mounts, "--pwd", "/workspace", "/images/cosmos.sif"]
        assert "--job-name=ct1-up-x-" in " ".join(up.docker)


def test_a_batch_runner_writes_the_command_exit_code_of_its_own_folder(tmp_path, monkeypatch):
    cfg = slurm_cfg(tmp_path, monkeypatch, SLURM_CONTAINER="none")
    rendered = render_batch("exp~batch1", PROMPT, cfg, account=ACCOUNT, leaf="exp~batch1-1")
    _, launch = split_launch(rendered.docker)
    runner = launch.index("cosmos-run")
    assert launch[runner + 1:runner + 3] == ["outputs/batches/runs/exp~batch1-1/run.log",
                                             "outputs/batches/runs/exp~batch1-1/command_exit_code"]


def critique_launch(cfg) -> tuple[list[str], list[str]]:
    job = critic.make_job(cfg, "critique", "critique-2", [critic.Item("v001", "a-1")], 2, ACCOUNT)
    assert json.loads(job.files["spec_used.json"])["docker"] == job.docker
    return split_launch(job.docker)


def test_a_critique_is_an_sbatch_job_in_each_launcher(tmp_path, monkeypatch):
    folder = "outputs/critiques/runs/critique-2"
    own = {"CRITIC": "reason1", "CRITIC_DIR": "/shared/ann/cosmos-reason1", "CRITIC_IMAGE": "reason1.sqsh"}
    sbatch, launch = critique_launch(slurm_cfg(tmp_path, monkeypatch, SLURM_IMAGE="cosmos.sqsh", **own))
    assert sbatch[:4] == ["sbatch", "--parsable", f"--job-name={container_name('critique', 'critic')}",
                          "--gres=gpu:1"]
    mounts = ("/shared/ann/cosmos-reason1:/workspace,/home/ann/.cache/huggingface:/hf-cache,"
              "/shared/ann/cosmos-transfer1:/project")
    assert launch[:6] == ["srun", "--ntasks=1", "--container-image=/home/ann/reason1.sqsh",
                          f"--container-mounts={mounts}", "--container-workdir=/workspace", "env"]
    runner = launch.index("cosmos-run")
    assert launch[runner + 1:] == [f"/project/{folder}/run.log", f"/project/{folder}/command_exit_code",
                                   "python3", f"/project/{folder}/critic_run.py", f"/project/{folder}"]
    _, launch = critique_launch(slurm_cfg(tmp_path, monkeypatch, SLURM_CONTAINER="apptainer",
                                          SLURM_IMAGE="/images/cosmos.sif"))
    assert launch[:8] == ["apptainer", "exec", "--nv", "--bind",
                          "/shared/ann/cosmos-transfer1:/workspace,/home/ann/.cache/huggingface:/hf-cache",
                          "--pwd", "/workspace", "/images/cosmos.sif"]  # no CRITIC_IMAGE: SLURM_IMAGE
    assert launch[-1] == f"/workspace/{folder}"
    _, launch = critique_launch(slurm_cfg(tmp_path, monkeypatch, SLURM_CONTAINER="none", **own))
    assert launch[:2] == ["env", "--chdir=/shared/ann/cosmos-reason1"]  # the critic's checkout, no container
    assert "HF_HOME=/home/ann/.cache/huggingface" in launch
    runner = launch.index("cosmos-run")
    project = "/shared/ann/cosmos-transfer1"
    assert launch[runner + 1:] == [f"{project}/{folder}/run.log", f"{project}/{folder}/command_exit_code",
                                   "python3", f"{project}/{folder}/critic_run.py", f"{project}/{folder}"]
    _, launch = critique_launch(slurm_cfg(tmp_path, monkeypatch, SLURM_CONTAINER="none"))
    assert launch[0] == "env" and not any(word.startswith("--chdir") for word in launch)  # the checkout: cwd


def test_a_critique_refuses_a_bad_critic_image_as_its_setting(tmp_path, monkeypatch):
    cfg = slurm_cfg(tmp_path, monkeypatch, SLURM_IMAGE="cosmos.sqsh", CRITIC_IMAGE="a,b.sqsh")
    with pytest.raises(UserError, match=r"CRITIC_IMAGE \(.*'a,b.sqsh' contains a newline or ','"):
        critique_launch(cfg)


def test_the_launch_survives_a_real_shell_word_for_word(tmp_path, monkeypatch):
    """What slurm_submit.sh writes into the job file and slurm_job.sh reads back: NUL-separated, never parsed."""
    name = HOSTILE_NAMES[5] + " " + HOSTILE_NAMES[7]
    cfg = slurm_cfg(tmp_path, monkeypatch, SLURM_CONTAINER="none")
    _, launch = split_launch(render_run(name, PROMPT, cfg, account=ACCOUNT, run_id=f"{name}-1").docker)
    job = tmp_path / "job"
    subprocess.run(["bash", "-c", 'printf "%s\\0" "$@" >"$0"', str(job), *launch], check=True)
    read = subprocess.run(["bash", "-c", 'mapfile -d "" w <"$1"; printf "%s\\0" "${w[@]}"', "-", str(job)],
                          check=True, capture_output=True).stdout
    assert read.split(b"\0")[:-1] == [w.encode() for w in launch]
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize(("settings", "message"), [
    ({"SLURM_EXTRA_ARGS": "-q high"}, "SLURM_EXTRA_ARGS (env SLURM_EXTRA_ARGS): '-q' is not an sbatch option written"),
    ({"SLURM_EXTRA_ARGS": "--output=x.log"}, "--output=x.log is set by cosmos-tools (from run.log); remove it"),
    ({"SLURM_EXTRA_ARGS": "--gpus=2"}, "--gpus=2 is set by cosmos-tools (from NUM_GPU)"),
    ({"SLURM_EXTRA_ARGS": "--qos='x"}, "SLURM_EXTRA_ARGS (env SLURM_EXTRA_ARGS): cannot split it into words"),
    ({"SLURM_TIME": "2 hours"}, "SLURM_TIME='2 hours' (env SLURM_TIME) is not a Slurm time; write minutes, MM:SS"),
    ({"SLURM_PARTITION": "gpu;rm"}, "SLURM_PARTITION='gpu;rm' (env SLURM_PARTITION) is not a Slurm partition name"),
    ({"SLURM_CONTAINER": "pyxis"}, "SLURM_CONTAINER=pyxis (env SLURM_CONTAINER) needs SLURM_IMAGE: set it to a .sqsh"),
    ({"SLURM_CONTAINER": "apptainer", "SLURM_IMAGE": "a,b.sif"}, "contains a newline or ','"),
])
def test_bad_slurm_settings_are_one_line_each(tmp_path, monkeypatch, settings, message):
    cfg = slurm_cfg(tmp_path, monkeypatch, **{"SLURM_CONTAINER": "none", **settings})
    with pytest.raises(UserError) as caught:
        render_run("x", PROMPT, cfg, account=ACCOUNT, run_id="x-1")
    assert message in caught.value.format_message() and "\n" not in caught.value.format_message()


@pytest.mark.parametrize(("key", "value", "message"), [
    ("BACKEND", "kubernetes", "BACKEND must be docker or slurm, got 'kubernetes'"),
    ("SLURM_CONTAINER", "docker", "SLURM_CONTAINER must be one of pyxis, apptainer, singularity, none, got 'docker'"),
])
def test_bad_backend_settings_are_refused_when_read(tmp_path, monkeypatch, key, value, message):
    with pytest.raises(ConfigError, match=message):
        project_config(make_project(tmp_path / "p"), monkeypatch, **{key: value})


def test_config_shows_the_backend_settings(tmp_path):
    root = make_project(tmp_path / "p")
    (root / "config.sh").write_text("BACKEND=slurm\nSLURM_EXTRA_ARGS='--qos=high --mem=64G'\n")
    done = subprocess.run([sys.executable, "-m", "cosmos_tools", "config"], capture_output=True, text=True,
                          env=cli_env(root), cwd=root)
    assert done.returncode == 0, done.stderr
    assert "BACKEND" in done.stdout and "slurm" in done.stdout and "--qos=high --mem=64G" in done.stdout


@pytest.mark.parametrize(("note", "verdict", "says"), [
    ("timeout", "timed out", "timed out: Slurm stopped it at its time limit"),
    ("cancelled", "stopped", "stopped by a signal (Slurm cancelled it)"),
    ("NODE_FAIL", "lost", "the Slurm job ended NODE_FAIL without an exit code"),
])
def test_a_slurm_job_gone_without_an_exit_code_is_judged_from_what_slurm_left(note, verdict, says):
    from cosmos_tools.jobs import parse_box

    folder = "outputs/runs/x-1"
    queue = ["done", "000000000042", folder, "ct1-run-x", note]
    job = [folder, "", "", "120", "1700000000", "0", "0", "", "last line", ""]
    box = parse_box("\0".join(["0", "0", "/root", "", "1", *queue, *job, ""]).encode())
    state = box.jobs[folder]
    assert state.verdict == verdict and says in state.failure("x-1")
