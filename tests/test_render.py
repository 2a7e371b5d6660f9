"""Rendering: transfer.py flags checked against the real parser, the docker argv, the runner run by real bash,
and hostile names and prompts proven to stay data by running the rendered words through a real shell."""

from __future__ import annotations

import argparse
import json
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from prompt_fixtures import HOSTILE_NAMES, cli_env, make_project, project_config

from cosmos_tools.errors import UserError
from cosmos_tools.remote import script
from cosmos_tools.remote.account import BoxAccount
from cosmos_tools.remote.paths import container_name
from cosmos_tools.render import Rendered, render_run, render_upscale

REFERENCE = Path(__file__).resolve().parents[2] / "shared/reference/cosmos-transfer1.md"
PRESETS = ["very_low", "low", "medium", "high", "very_high"]
# transfer.py's parse_arguments() (cosmos-transfer1 main, see reference/cosmos-transfer1.md §1): flag -> type.
# None marks store_true flags. Types and choices as upstream.
REAL_FLAGS: dict[str, object] = {
    "--prompt": str, "--negative_prompt": str, "--input_video_path": str, "--num_input_frames": int,
    "--sigma_max": float, "--blur_strength": str, "--canny_threshold": str, "--controlnet_specs": str,
    "--is_av_sample": None, "--checkpoint_dir": str, "--tokenizer_dir": str, "--video_save_name": str,
    "--video_save_folder": str, "--batch_input_path": str, "--batch_size": int, "--num_steps": int,
    "--guidance": float, "--fps": int, "--seed": int, "--num_gpus": int, "--offload_diffusion_transformer": None,
    "--offload_text_encoder_model": None, "--offload_guardrail_models": None, "--upsample_prompt": None,
    "--offload_prompt_upsampler": None, "--use_distilled": None, "--save_input_noise": None, "--benchmark": None,
}
TRANSFER_PY = "cosmos_transfer1/diffusion/inference/transfer.py"


def real_parser() -> argparse.ArgumentParser:
    """A replica of transfer.py's argparse (flags, types, choices, the one required flag)."""
    parser = argparse.ArgumentParser(prog="transfer.py", conflict_handler="resolve", exit_on_error=False,
                                     allow_abbrev=False)
    for flag, kind in REAL_FLAGS.items():
        if kind is None:
            parser.add_argument(flag, action="store_true")
            continue
        extra = {}
        if flag in ("--blur_strength", "--canny_threshold"):
            extra["choices"] = PRESETS
        if flag == "--num_input_frames":
            extra["choices"] = [1]
        parser.add_argument(flag, type=kind, required=flag == "--controlnet_specs", **extra)
    return parser


@pytest.mark.skipif(not REFERENCE.is_file(), reason="reference fact sheet not beside the project")
def test_flag_list_matches_the_reference():
    text = REFERENCE.read_text(encoding="utf-8")
    table = text[text.index("| Flag | Type"):text.index("Flags that are **not** on the command line")]
    rows = re.findall(r"^\| `(--[a-z_]+)` \| (\w+) \|", table, re.M)
    kinds = {"str": str, "int": int, "float": float, "flag": None}
    assert {flag: kinds[kind] for flag, kind in rows} == REAL_FLAGS


@pytest.fixture
def project(tmp_path):
    return make_project(tmp_path / "proj")


@pytest.fixture
def cfg(project, monkeypatch):
    return project_config(project, monkeypatch)


def transfer_args(command: list[str]) -> list[str]:
    """The words after transfer.py, checking the launcher in front of it."""
    index = command.index(TRANSFER_PY)
    launcher = command[:index]
    assert launcher == ["python3"] or (launcher[0] == "torchrun" and launcher[2:] == ["--nnodes=1", "--node_rank=0"]
                                       and re.fullmatch(r"--nproc_per_node=\d+", launcher[1]))
    return command[index + 1:]


def parse_like_transfer_py(command: list[str]) -> argparse.Namespace:
    args = transfer_args(command)
    for word in args:
        if word.startswith("--"):
            assert "=" not in word, f"{word}: transfer.py only sees two-token flags (`--key value`)"
            assert word in REAL_FLAGS, f"{word} is not a transfer.py flag"
    return real_parser().parse_args(args)


@pytest.mark.parametrize("num_gpu", [1, 2, 4, 8])
def test_run_command_against_the_real_parser(cfg, num_gpu):
    rendered = render_run("shot1_20261122_143000", {"prompt": "x"},
                          cfg.with_overrides({"NUM_GPU": num_gpu}, source="--num-gpu"))
    ns = parse_like_transfer_py(rendered.command)
    assert ns.checkpoint_dir == "checkpoints"
    assert ns.video_save_folder == "outputs/shot1_20261122_143000"
    assert ns.controlnet_specs == "outputs/shot1_20261122_143000/controlnet_spec.json"
    assert ns.fps == 24 and ns.num_steps is None
    assert ns.offload_text_encoder_model and ns.offload_guardrail_models and not ns.offload_diffusion_transformer
    if num_gpu == 1:
        assert rendered.command[:2] == ["python3", TRANSFER_PY] and "--num_gpus" not in rendered.command
        assert rendered.env["CUDA_VISIBLE_DEVICES"] == "0" and rendered.env["RANK"] == "0"
    else:
        assert rendered.command[:4] == ["torchrun", f"--nproc_per_node={num_gpu}", "--nnodes=1", "--node_rank=0"]
        assert ns.num_gpus == num_gpu  # must equal --nproc_per_node
        assert rendered.env["CUDA_VISIBLE_DEVICES"] == ",".join(map(str, range(num_gpu)))
        assert "RANK" not in rendered.env  # torchrun sets it per worker


def test_upscale_against_the_real_parser(cfg):
    rendered = render_upscale("shot1_x", cfg)
    ns = parse_like_transfer_py(rendered.command)
    assert ns.num_steps == 10
    assert ns.video_save_folder == rendered.output_dir == "outputs/shot1_x_upscaled"
    assert ns.controlnet_specs == "outputs/shot1_x_upscaled/controlnet_spec.json"
    assert rendered.spec == {"input_video_path": "outputs/shot1_x/output.mp4", "seed": 1,
                             "upscale": {"control_weight": 0.5}}
    assert rendered.kind == "up" and rendered.log_path == "outputs/shot1_x_upscaled/run.log"
    assert rendered.exit_code_path == "outputs/shot1_x_upscaled/exit_code"
    assert render_upscale("n", cfg, prompt="4K, sharp").spec["prompt"] == "4K, sharp"


@pytest.mark.parametrize("weight, expected", [(0.8, 0.8), ("0.3", 0.3), (0, 0.0), (None, 0.5)])
def test_upscale_weights(cfg, weight, expected):
    assert render_upscale("n", cfg, weight=weight).spec["upscale"]["control_weight"] == expected


@pytest.mark.parametrize("weight", [-0.1, "abc", True, float("nan"), float("inf"), "0.5$(id)", [0.5]])
def test_upscale_refuses_bad_weights(cfg, weight):
    with pytest.raises(UserError, match="upscale weight"):
        render_upscale("n", cfg, weight=weight)


def test_upscale_weight_from_config(project, monkeypatch):
    assert render_upscale("n", project_config(project, monkeypatch, UPSCALE_WEIGHT="0.7")).spec["upscale"] == {
        "control_weight": 0.7}


def test_prompt_fps_wins_over_config(cfg):
    ns = parse_like_transfer_py(render_run("n", {"fps": 30}, cfg).command)
    assert ns.fps == 30
    assert parse_like_transfer_py(render_run("n", {"fps": "30"}, cfg).command).fps == 24


def test_spec_is_the_prompt_without_comment_keys(cfg):
    prompt = {"prompt": "x", "_comment": {"a": 1}, "edge": {"control_weight": 0.5}}
    rendered = render_run("n", prompt, cfg)
    assert rendered.spec == {"prompt": "x", "edge": {"control_weight": 0.5}}
    assert set(rendered.spec_used()) == {"spec", "command", "docker", "env", "container", "kind", "name", "model"}
    assert rendered.spec_used()["model"] == "transfer1-7b"
    assert isinstance(rendered, Rendered) and rendered.spec_path == "outputs/n/controlnet_spec.json"


def expected_docker(name: str, kind: str, command: list[str], *, head=("docker",), user=(), env_extra=(),
                    remote_dir="/home/ubuntu/cosmos-transfer1", hf="/home/ubuntu/.cache/huggingface",
                    ipc=("--ipc", "host"), gpus=("--gpus", "all"), extra=(), out=None) -> list[str]:
    out = out or f"outputs/{name}"
    shm = () if ipc == ("--ipc", "host") else ("--shm-size", "16g")  # --shm-size has no effect next to --ipc host
    return [*head, "run", "-d", "--rm", "--name", container_name(name, kind),
            "--label", f"cosmos-tools.run={name}", "--label", f"cosmos-tools.kind={kind}",
            *gpus, *ipc, *shm, *user,
            "-e", "CUDA_VISIBLE_DEVICES=0", "-e", "PYTHONPATH=/workspace", "-e", "HF_HOME=/hf-cache",
            "-e", "HOME=/tmp", *env_extra, "-v", f"{remote_dir}:/workspace", "-v", f"{hf}:/hf-cache",
            "-w", "/workspace", *extra, "cosmos-transfer1:latest", "bash", "-c", script("runner.sh"), "cosmos-run",
            f"{out}/run.log", f"{out}/exit_code", *command]


def test_docker_command_layout(cfg):
    rendered = render_run("shot1_a", {}, cfg)
    assert rendered.docker == expected_docker("shot1_a", "run", rendered.command, env_extra=("-e", "RANK=0"))
    up = render_upscale("shot1_a", cfg)
    assert up.docker == expected_docker("shot1_a", "up", up.command, env_extra=("-e", "RANK=0"),
                                        out="outputs/shot1_a_upscaled")


@pytest.mark.parametrize("settings, kwargs, changes", [
    ({"DOCKER_CMD": "sudo docker"}, {}, {"head": ("sudo", "docker")}),
    ({"DOCKER_USER": "root"}, {}, {"user": ("--user", "0:0")}),
    ({"DOCKER_USER": "1001:1002"}, {}, {"user": ("--user", "1001:1002")}),
    ({}, {"account": BoxAccount("1000", "1000", "")}, {"user": ("--user", "1000:1000")}),
    ({"DOCKER_IPC": ""}, {}, {"ipc": ()}),
    ({"DOCKER_GPUS": ""}, {}, {"gpus": ()}),
    ({"DOCKER_GPUS": '"device=0,1"'}, {}, {"gpus": ("--gpus", '"device=0,1"')}),
    ({"DOCKER_EXTRA_ARGS": "--env 'A=b c' --ulimit memlock=-1"}, {},
     {"extra": ("--env", "A=b c", "--ulimit", "memlock=-1")}),
    ({"REMOTE_USER": "root", "REMOTE_DIR": "ct1"}, {}, {"remote_dir": "/root/ct1", "hf": "/root/.cache/huggingface"}),
    ({"HF_CACHE_REMOTE": "/data/hf", "DOCKER_USER": "root"}, {"account": BoxAccount("1", "1", "/home/me")},
     {"user": ("--user", "0:0"), "hf": "/data/hf"}),
    ({"DOCKER_USER": "root"}, {"account": BoxAccount("1", "1", "/home/me")},
     {"user": ("--user", "0:0"), "hf": "/home/me/.cache/huggingface"}),
])
def test_docker_settings(project, monkeypatch, settings, kwargs, changes):
    cfg = project_config(project, monkeypatch, **settings)
    rendered = render_run("n", {}, cfg, **kwargs)
    assert rendered.docker == expected_docker("n", "run", rendered.command, env_extra=("-e", "RANK=0"), **changes)


@pytest.mark.parametrize("settings, overrides, message", [
    ({"DOCKER_USER": "bob"}, {}, "DOCKER_USER"),
    ({"REMOTE_DIR": "/data/a:b"}, {}, "REMOTE_DIR"),
    ({"HF_CACHE_REMOTE": ""}, {}, "HF_CACHE_REMOTE"),
    ({"OFFLOAD": "text_encoder_model everything"}, {}, "OFFLOAD.*everything"),
    ({"CUDA_VISIBLE_DEVICES": "0"}, {"NUM_GPU": 2}, "lists 1"),
    ({"CUDA_VISIBLE_DEVICES": "0;id"}, {}, "CUDA_VISIBLE_DEVICES"),
    ({"DOCKER_EXTRA_ARGS": "--env 'A"}, {}, "DOCKER_EXTRA_ARGS"),
    ({"DOCKER_CMD": " "}, {}, "DOCKER_CMD"),
    ({}, {"NUM_GPU": 0}, "--num-gpu: NUM_GPU must be a whole number >= 1"),
])
def test_bad_settings_are_one_line_errors(project, monkeypatch, settings, overrides, message):
    cfg = project_config(project, monkeypatch, **settings)
    with pytest.raises(UserError, match=message):
        render_run("n", {}, cfg.with_overrides(overrides, source="--num-gpu"))


def test_cuda_devices_setting(project, monkeypatch):
    cfg = project_config(project, monkeypatch, CUDA_VISIBLE_DEVICES="2,3", NUM_GPU="2")
    rendered = render_run("n", {}, cfg)
    assert rendered.env["CUDA_VISIBLE_DEVICES"] == "2,3" and "CUDA_VISIBLE_DEVICES=2,3" in rendered.docker


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "nul\0"])
def test_unusable_names_are_refused(cfg, name):
    with pytest.raises(UserError, match="run name"):
        render_run(name, {}, cfg)
    with pytest.raises(UserError, match="run name"):
        render_upscale(name, cfg)


@pytest.mark.parametrize("name", HOSTILE_NAMES + ["x" * 200, "a b", "a-b", "..."])
@pytest.mark.parametrize("kind", ["run", "up"])
def test_container_names(name, kind):
    got = container_name(name, kind)
    assert re.fullmatch(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*", got) and got.startswith(f"ct1-{kind}-")
    assert len(got) <= len("ct1-run-") + 40 + 11
    assert got == container_name(name, kind)
    assert got != container_name(name + " ", kind)


def test_container_name_examples():
    assert container_name("shot1_20261122_143000", "run").startswith("ct1-run-shot1_20261122_143000-")
    assert container_name("a b", "run") != container_name("a-b", "run")


def bash_words(words: list[str]) -> list[str]:
    """What a real bash receives as "$@" when handed ``words`` as argv."""
    out = subprocess.run(["bash", "-c", 'printf "%s\\0" "$@"', "_", *words], capture_output=True, check=True).stdout
    return out.decode("utf-8", "surrogateescape").split("\0")[:-1]


def bash_reparsed(words: list[str]) -> list[str]:
    """What bash gets when it parses ``shlex.join(words)`` as shell text (the remote-command path)."""
    script = 'printf "%s\\0" ' + shlex.join(words)
    out = subprocess.run(["bash", "-c", script], capture_output=True, check=True).stdout
    return out.decode("utf-8", "surrogateescape").split("\0")[:-1]


HOSTILE_PROMPTS = ['he said "run $(rm -rf ~)" `id`', "it's\nmultiline\ttabbed", "ünïcødé 鏡 🎬 \\ back"]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_hostile_names_and_prompts_stay_data(cfg, name, tmp_path):
    prompt = {"prompt": HOSTILE_PROMPTS[0], "negative_prompt": HOSTILE_PROMPTS[1], "edge": {}}
    for rendered in (render_run(name, prompt, cfg), render_upscale(name, cfg, prompt=HOSTILE_PROMPTS[2])):
        for words in (rendered.command, rendered.docker):
            assert all(isinstance(w, str) for w in words)
            assert bash_words(words) == words
            assert bash_reparsed(words) == words
        assert f"cosmos-tools.run={name}" in rendered.docker
        assert rendered.output_dir.startswith("outputs/" + name)
    assert render_run(name, prompt, cfg).spec["prompt"] == HOSTILE_PROMPTS[0]
    assert not (tmp_path / "pwned").exists() and not Path("pwned").exists()


FAKE_TRANSFER = """\
import json, sys
spec = json.load(open(sys.argv[sys.argv.index("--controlnet_specs") + 1], encoding="utf-8"))
print("ARGV " + json.dumps(sys.argv[1:]))
print("SPEC " + json.dumps(spec))
"""


@pytest.mark.parametrize("name", ["$(touch pwned) `touch pwned2` it's \"q\"", "new\nline ü", "-dash",
                                  "trailing newline\n", "back\\slash *"])
def test_container_part_of_the_docker_argv_runs_in_real_bash(cfg, tmp_path, name):
    """Run `bash -c runner.sh cosmos-run LOG CODE COMMAND...` as the container would, with a stand-in transfer.py."""
    workspace = tmp_path / "workspace"
    (workspace / "cosmos_transfer1/diffusion/inference").mkdir(parents=True)
    (workspace / TRANSFER_PY).write_text(FAKE_TRANSFER)
    rendered = render_run(name, {"prompt": HOSTILE_PROMPTS[0], "edge": {}}, cfg)
    (workspace / rendered.output_dir).mkdir(parents=True)
    (workspace / rendered.spec_path).write_text(json.dumps(rendered.spec), encoding="utf-8")
    inside = rendered.docker[rendered.docker.index("cosmos-transfer1:latest") + 1:]
    done = subprocess.run(inside, cwd=workspace, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    log = (workspace / rendered.log_path).read_text(encoding="utf-8")
    argv = json.loads(next(line for line in log.splitlines() if line.startswith("ARGV "))[5:])
    assert argv == rendered.command[2:]
    assert json.loads(next(line for line in log.splitlines() if line.startswith("SPEC "))[5:]) == rendered.spec
    assert (workspace / rendered.exit_code_path).read_text() == "0\n"
    assert not any(p.name.startswith("pwned") for p in tmp_path.rglob("*"))


def run_runner(tmp_path: Path, *command: str) -> tuple[subprocess.Popen, Path, Path]:
    log, code = tmp_path / "out dir/run.log", tmp_path / "out dir/exit_code"
    proc = subprocess.Popen(["bash", "-c", script("runner.sh"), "cosmos-run", str(log), str(code), *command])
    return proc, log, code


def wait_for(path: Path, text: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.is_file() and text in path.read_text():
            return
        time.sleep(0.02)
    raise AssertionError(f"{text!r} never appeared in {path}")


def test_runner_records_output_and_exit_code(tmp_path):
    proc, log, code = run_runner(tmp_path, "sh", "-c", 'echo "to out $1"; echo to err >&2; exit 3', "sh", "a b")
    assert proc.wait(timeout=60) == 3
    assert code.read_text() == "3\n"
    text = log.read_text()
    assert "to out a b\n" in text and "to err\n" in text and "exit code 3" in text
    code.write_text("stale\n")
    proc, log, code = run_runner(tmp_path, "true")
    assert proc.wait(timeout=60) == 0 and code.read_text() == "0\n"
    assert "to out a b" in log.read_text()  # appended, never truncated
    assert not list(code.parent.glob("exit_code.tmp*"))


def test_runner_missing_command_is_recorded(tmp_path):
    proc, log, code = run_runner(tmp_path, "no-such-command-here")
    assert proc.wait(timeout=60) == 127 and code.read_text() == "127\n"
    assert "command not found" in log.read_text()


@pytest.mark.parametrize("sig, expected", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_runner_forwards_signals_and_records_the_kill(tmp_path, sig, expected):
    script = "import time; print('ready', flush=True); time.sleep(120)"
    proc, log, code = run_runner(tmp_path, sys.executable, "-c", script)
    wait_for(log, "ready\n")
    assert not code.exists()
    proc.send_signal(sig)
    assert proc.wait(timeout=60) == expected
    assert code.read_text() == f"{expected}\n"


def test_runner_records_the_childs_own_exit_after_term(tmp_path):
    script = ("import signal, sys, time\n"
              "signal.signal(signal.SIGTERM, lambda *a: sys.exit(7))\n"
              "print('ready', flush=True)\ntime.sleep(120)")
    proc, log, code = run_runner(tmp_path, sys.executable, "-c", script)
    wait_for(log, "ready\n")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 7 and code.read_text() == "7\n"


def cosmos_tools(project: Path, *args: str, **settings) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-X", "importtime", "-m", "cosmos_tools", *args], capture_output=True,
                          text=True, cwd=project, env=cli_env(project, **settings), timeout=120)


def test_cli_render_json(project):
    prompt = project / "inputs/prompts/it's $(x)_20261122_143000.json"
    prompt.write_text(json.dumps({"prompt": "a \"car\"", "_c": 1, "edge": {"control_weight": 0.5}}))
    done = cosmos_tools(project, "render", "--json", "--num-gpu", "2", str(prompt))
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert {"spec", "command", "docker"} <= set(data)
    assert data["spec"] == {"prompt": 'a "car"', "edge": {"control_weight": 0.5}}
    ns = parse_like_transfer_py(data["command"])
    assert ns.num_gpus == 2 and ns.video_save_folder == "outputs/it's $(x)_20261122_143000"
    assert data["docker"][-len(data["command"]):] == data["command"]
    assert "DOCKER_USER=auto" in done.stderr and "paramiko" not in done.stderr
    done = cosmos_tools(project, "render", "--json", "--upscale", "--weight", "0.25", str(prompt))
    data = json.loads(done.stdout)
    assert data["spec"] == {"input_video_path": "outputs/it's $(x)_20261122_143000/output.mp4",
                            "seed": 1, "upscale": {"control_weight": 0.25}}
    assert parse_like_transfer_py(data["command"]).num_steps == 10


def test_cli_render_human(project, monkeypatch):
    prompt = project / "inputs/prompts/p.json"
    prompt.write_text('{"prompt": "x", "edge": {}}')
    done = cosmos_tools(project, "render", str(prompt), DOCKER_USER="root")
    assert done.returncode == 0, done.stderr
    rendered = render_run("p", {"prompt": "x", "edge": {}}, project_config(project, monkeypatch, DOCKER_USER="root"))
    assert shlex.join(rendered.command) in done.stdout and shlex.join(rendered.docker) in done.stdout
    assert "nothing is sent or started" in done.stdout and "DOCKER_USER" not in done.stderr


@pytest.mark.parametrize("args, message", [
    (["render", "missing.json"], "error: missing.json: no such prompt file"),
    (["render", "--upscale", "--weight", "-1", "inputs/prompts/p.json"], "error: upscale weight '-1'"),
    (["render", "inputs/prompts/bad.json"], "error: inputs/prompts/bad.json:1:2: invalid JSON"),
])
def test_cli_render_errors_are_one_line(project, args, message):
    (project / "inputs/prompts/p.json").write_text("{}")
    (project / "inputs/prompts/bad.json").write_text("{x")
    done = cosmos_tools(project, *args)
    assert done.returncode == 1 and done.stdout == ""
    lines = [line for line in done.stderr.splitlines() if not line.startswith("import time:")]
    assert lines == [lines[0]] and lines[0].startswith(message), done.stderr


def test_runner_quotes_readably():
    assert "'" not in script("runner.sh")  # shlex.join shows it as one '...' word in dry runs


def test_upscale_plays_at_the_runs_fps(cfg):
    assert parse_like_transfer_py(render_upscale("n", cfg, run_prompt={"fps": 30}).command).fps == 30
    assert parse_like_transfer_py(render_upscale("n", cfg).command).fps == 24


def test_upscale_settings_cli_over_prompt_over_config(project, monkeypatch):
    from cosmos_tools.render import UPSCALE_PROMPT_OPTION

    cfg = project_config(project, monkeypatch, UPSCALE_PROMPT="from config", UPSCALE_SEED="3", UPSCALE_STEPS="8")
    plain = render_upscale("n", cfg)
    assert plain.spec["prompt"] == "from config" and plain.spec["seed"] == 3
    assert parse_like_transfer_py(plain.command).num_steps == 8
    own = {"_upscale": {"prompt": "from prompt", "seed": 5, "num_steps": 12, "control_weight": 0.4}}
    mine = render_upscale("n", cfg, run_prompt=own)
    assert (mine.spec["prompt"], mine.spec["seed"], mine.spec["upscale"]) == ("from prompt", 5, {"control_weight": 0.4})
    assert parse_like_transfer_py(mine.command).num_steps == 12
    assert render_upscale("n", cfg, run_prompt=own, weight=0.9).spec["upscale"] == {"control_weight": 0.9}
    cli = cfg.with_overrides({"UPSCALE_PROMPT": "from cli"}, source=UPSCALE_PROMPT_OPTION)
    assert render_upscale("n", cli, run_prompt=own).spec["prompt"] == "from cli"


def test_prompt_offload_false_wins_over_offload(cfg):
    command = render_run("n", {"offload_guardrail_models": False}, cfg).command
    assert "--offload_guardrail_models" not in command and "--offload_text_encoder_model" in command
    assert "--offload_diffusion_transformer" not in render_run("n", {"offload_diffusion_transformer": True},
                                                               cfg).command  # the JSON value applies
