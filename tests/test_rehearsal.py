"""The rehearsal GPU host: real sshd, stand-in docker/torchrun/transfer.py held to upstream's behaviour."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from cosmos_tools.config import load_config, parse_config_text
from cosmos_tools.rehearsal.host import TRANSFER_PY

TOOL = Path(sys.executable).with_name("cosmos-tools")
REAL_DOCKER = shutil.which("docker", path="/usr/local/bin:/usr/bin:/bin")


def tool(*args, **kwargs):
    return subprocess.run([str(TOOL), *args], capture_output=True, text=True, timeout=60, **kwargs)


def ssh(host, command: str, **kwargs):
    return subprocess.run(host.ssh_argv(command), capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL, **kwargs)


def make_video(path: Path, size: str, frames: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc=size={size}:rate=24",
                    "-frames:v", str(frames), "-pix_fmt", "yuv420p", str(path)], check=True)
    return path


def probe(path: Path) -> tuple[int, int, int]:
    out = subprocess.run(["ffprobe", "-v", "error", "-count_packets", "-show_entries",
                          "stream=width,height,nb_read_packets", "-of", "json", str(path)],
                         capture_output=True, text=True, check=True).stdout
    s = json.loads(out)["streams"][0]
    return int(s["width"]), int(s["height"]), int(s["nb_read_packets"])


@pytest.fixture(scope="session")
def videos(rehearsal_host):
    """Small shots inside the stand-in checkout (paths relative to it, as specs use them)."""
    root = rehearsal_host.remote_dir
    return {
        "wide": make_video(root / "inputs/videos/wide/color.mp4", "64x36", 25).relative_to(root),
        "wide_short": make_video(root / "inputs/videos/wide/edge.mp4", "64x36", 17).relative_to(root),
        "tv": make_video(root / "inputs/videos/tv/color.mp4", "64x48", 9).relative_to(root),
        "wide3": make_video(root / "inputs/videos/wide3/color.mp4", "64x36", 3).relative_to(root),
        "tv3": make_video(root / "inputs/videos/tv3/color.mp4", "64x48", 3).relative_to(root),
        "long": make_video(root / "inputs/videos/long/color.mp4", "32x18", 125).relative_to(root),
    }


def run_transfer(host, spec: dict | None, *flags: str, launcher=("python3",), env=None, folder=None):
    """Run the stand-in transfer.py in the checkout as the container would (cwd = the checkout)."""
    folder = folder or f"outputs/t-{uuid.uuid4().hex[:8]}"
    (host.remote_dir / folder).mkdir(parents=True, exist_ok=True)
    spec_args = []
    if spec is not None:
        (host.remote_dir / folder / "spec.json").write_text(json.dumps(spec))
        spec_args = ["--controlnet_specs", f"{folder}/spec.json"]
    environ = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    environ.update(PATH=f"{host.bin_dir}:{os.environ['PATH']}", COSMOS_STANDIN_SECONDS="0.05", **(env or {}))
    done = subprocess.run([*launcher, TRANSFER_PY, "--video_save_folder", folder, *spec_args, *flags],
                          cwd=host.remote_dir, env=environ, capture_output=True, text=True, timeout=120)
    done.folder = host.remote_dir / folder
    return done


def last_error(done) -> str:
    return done.stderr.strip().splitlines()[-1]


# ---------------------------------------------------------------------------------------------- the host


def test_up_status_down_through_the_cli(tmp_path):
    folder = tmp_path / "a b 'q' $(x) é%"
    up = tool("rehearsal", "up", str(folder), "--json", "--seconds", "0.5")
    assert up.returncode == 0, up.stderr
    info = json.loads(up.stdout)
    try:
        assert not info["reused"]
        again = tool("rehearsal", "up", str(folder))
        assert again.returncode == 0 and "already running" in again.stdout
        assert f"127.0.0.1:{info['port']}" in again.stdout
        assert "COSMOS_CONFIG=" in again.stdout and "full_cycle.sh" in again.stdout
        assert tool("rehearsal", "status", str(folder)).returncode == 0
        assert (folder / "sshd.pid").read_text().strip() == str(info["pid"])
        # bash and the strict parser read config.sh the same way, and it points at this host
        config = folder / "config.sh"
        bash = subprocess.run(["bash", "-c", 'source "$1" && printf "%s\\n" "$REMOTE_PORT" "$SSH_KEY" "$REMOTE_DIR"',
                               "bash", str(config)], capture_output=True, text=True, check=True).stdout.splitlines()
        parsed = {k: v for k, (v, _) in parse_config_text(config.read_text(), "config.sh").items()}
        assert bash == [parsed["REMOTE_PORT"], parsed["SSH_KEY"], parsed["REMOTE_DIR"]]
        assert parsed["REMOTE_PORT"] == str(info["port"]) and parsed["REMOTE_HOST"] == "127.0.0.1"
        assert parsed["KNOWN_HOSTS"] == str(folder / "known_hosts")
        assert "rehearsal" in config.read_text().splitlines()[0].lower()
        # a container still running when the host goes down is stopped with it
        docker = folder / "remote" / "bin" / "docker"
        started = subprocess.run([str(docker), "run", "-d", "--name", "left", "-v", f"{folder}:/workspace", "-w",
                                  "/workspace", "cosmos-transfer1:rehearsal", "sleep", "300"],
                                 capture_output=True, text=True)
        assert started.returncode == 0, started.stderr
        left = json.loads(subprocess.run([str(docker), "inspect", "left"], capture_output=True).stdout)[0]
        assert json.loads((folder / "remote/docker-state/engine.json").read_text()) == {
            "env": {"COSMOS_STANDIN_SECONDS": "0.5"}, "images": [parsed["DOCKER_IMAGE"]]}
    finally:
        down = tool("rehearsal", "down", str(folder))
    assert down.returncode == 0 and "stopped" in down.stdout
    assert not list(_in_session(left["State"]["Pid"]))
    assert not Path(f"/proc/{info['pid']}").exists() or "Z" in Path(f"/proc/{info['pid']}/stat").read_text()
    status = tool("rehearsal", "status", str(folder))
    assert status.returncode == 1 and "no rehearsal host running" in status.stdout
    assert tool("rehearsal", "down", str(folder)).stdout.startswith("no rehearsal host running")


@pytest.mark.parametrize("bad", ["file", "new\nline"])
def test_up_refuses_unusable_folders_in_one_line(tmp_path, bad):
    target = tmp_path / bad
    if bad == "file":
        target.write_text("x")
    done = tool("rehearsal", "up", str(target))
    assert done.returncode == 1
    assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1, done.stderr
    assert "Traceback" not in done.stderr


def test_up_without_the_openssh_client_says_what_to_install(tmp_path):
    done = tool("rehearsal", "up", str(tmp_path / "box"), env={**os.environ, "PATH": str(TOOL.parent)})
    assert done.returncode == 1
    assert done.stderr == "error: ssh not found on PATH: install the OpenSSH client (apt-get install openssh-client)\n"


def test_config_loads_and_ssh_checks_the_host_key_strictly(rehearsal_host, project, tmp_path):
    cfg = load_config(project)
    assert cfg["REMOTE_DIR"] == str(rehearsal_host.remote_dir) and cfg.int("REMOTE_PORT") == rehearsal_host.port
    base = ["ssh", "-F", "/dev/null", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o",
            "StrictHostKeyChecking=yes", "-i", cfg["SSH_KEY"], "-p", cfg["REMOTE_PORT"],
            f"{cfg['REMOTE_USER']}@{cfg['REMOTE_HOST']}"]
    # the written known_hosts (path has a space and quotes: pass it through a copy ssh can parse)
    plain = tmp_path / "known_hosts"
    shutil.copyfile(cfg["KNOWN_HOSTS"], plain)
    key = tmp_path / "key"
    shutil.copyfile(cfg["SSH_KEY"], key)
    key.chmod(0o600)
    base[base.index("-i") + 1] = str(key)
    ok = subprocess.run([*base[:1], "-o", f"UserKnownHostsFile={plain}", *base[1:], "command -v docker; echo $HOME"],
                        capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.splitlines() == [str(rehearsal_host.bin_dir / "docker"), str(rehearsal_host.remote_home)]
    # another host key under the same name is refused
    other = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    plain.write_text(f"[127.0.0.1]:{rehearsal_host.port} {other.with_suffix('.pub').read_text()}")
    bad = subprocess.run([*base[:1], "-o", f"UserKnownHostsFile={plain}", *base[1:], "true"],
                         capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert bad.returncode == 255 and "HOST IDENTIFICATION HAS CHANGED" in bad.stderr


# ---------------------------------------------------------------------------------------------- docker


def docker_run(host, name: str, *command: str, extra: tuple[str, ...] = ()) -> list[str]:
    remote = str(host.remote_dir)
    return ["docker", "run", "-d", "--rm", "--name", name, "--label", f"cosmos-tools.run={name} x",
            "--label", "cosmos-tools.kind=run", "--gpus", "all", "--ipc", "host", "--shm-size", "16g",
            "--user", f"{os.getuid()}:{os.getgid()}", "-e", "PYTHONPATH=/workspace", "-e", "HOME=/tmp",
            "-v", f"{remote}:/workspace", "-v", f"{host.remote_home}:/hf-cache", "-w", "/workspace", *extra,
            "cosmos-transfer1:rehearsal", *command]


def test_docker_run_logs_wait_ps_and_auto_remove(rehearsal_host):
    name = f"ct1-run-{uuid.uuid4().hex[:8]}"
    go = rehearsal_host.remote_dir / f"go-{name}"
    script = ('echo "cwd=$PWD"; echo "pp=$PYTHONPATH"; echo "args:$#:$1"; command -v python torchrun; '
              f'while [ ! -e {go.name} ]; do sleep 0.02; done; exit 3')
    started = ssh(rehearsal_host, shlex.join(docker_run(rehearsal_host, name, "bash", "-c", script, "sh",
                                                        "it's $(x)")))
    assert started.returncode == 0, started.stderr
    assert len(started.stdout.strip()) == 64 and int(started.stdout, 16) >= 0
    listing = ssh(rehearsal_host, "docker ps -a --filter label=cosmos-tools.kind=run "
                                  "--format '{{.Names}}|{{.Label \"cosmos-tools.run\"}}'")
    assert f"{name}|{name} x" in listing.stdout.splitlines()
    follow = subprocess.Popen(rehearsal_host.ssh_argv(f"docker logs -f {name}"), stdout=subprocess.PIPE,
                              stdin=subprocess.DEVNULL, text=True)
    assert follow.stdout.readline().startswith("[stand-in docker]")
    go.touch()
    lines = ["[stand-in docker] no GPU", *follow.stdout.read().splitlines()]
    assert follow.wait(timeout=60) == 0
    assert lines[0].startswith("[stand-in docker]") and "no GPU" in lines[0]
    assert f"cwd={rehearsal_host.remote_dir}" in lines and f"pp={rehearsal_host.remote_dir}" in lines
    assert "args:1:it's $(x)" in lines
    assert str(rehearsal_host.bin_dir / "torchrun") in lines
    # --rm: gone once it exited, as with docker
    gone = ssh(rehearsal_host, f"docker wait {name}; docker inspect {name}")
    assert f"No such container: {name}" in gone.stderr or "No such object" in gone.stderr
    assert name not in ssh(rehearsal_host, "docker ps -a --format '{{.Names}}'").stdout


def test_docker_stop_terminates_and_wait_reports_the_code(rehearsal_host):
    name = f"ct1-stop-{uuid.uuid4().hex[:8]}"
    # TERM is ignored by the main process: stop must SIGKILL the whole container after -t
    script = "trap '' TERM; sleep 300 & sleep 300; wait"
    command = shlex.join(docker_run(rehearsal_host, name, "bash", "-c", script)).replace(" --rm", "")
    assert ssh(rehearsal_host, command).returncode == 0
    state = json.loads(ssh(rehearsal_host, f"docker inspect {name}").stdout)[0]
    assert state["State"]["Running"] is True and state["Config"]["Labels"]["cosmos-tools.kind"] == "run"
    pid = state["State"]["Pid"]
    refused = ssh(rehearsal_host, f"docker rm {name}")
    assert refused.returncode == 1 and "container is running" in refused.stderr
    stopped = ssh(rehearsal_host, f"docker stop -t 1 {name} && docker wait {name} && "
                                  f"docker inspect -f '{{{{.State.Running}}}} {{{{.State.Status}}}}' {name}")
    assert stopped.stdout.split() == [name, "137", "false", "exited"], stopped.stderr
    assert not any(_in_session(pid))
    assert ssh(rehearsal_host, f"docker rm {name}").returncode == 0
    assert ssh(rehearsal_host, f"docker inspect {name}").returncode == 1


def _in_session(sid: int):
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) == sid and fields[0] != "Z":
                yield int(entry.name)


def test_docker_name_conflict_and_stop_of_a_polite_process(rehearsal_host):
    name = f"ct1-dup-{uuid.uuid4().hex[:8]}"
    first = ssh(rehearsal_host, shlex.join(docker_run(rehearsal_host, name, "sleep", "300")))
    assert first.returncode == 0
    second = ssh(rehearsal_host, shlex.join(docker_run(rehearsal_host, name, "true")))
    assert second.returncode == 125
    assert f'Conflict. The container name "/{name}" is already in use' in second.stderr
    done = ssh(rehearsal_host, f"docker stop {name}; docker ps -q --filter name={name}")
    assert done.stdout.split() == [name]


BAD_RUNS = [
    ["run", "--foo", "img"],
    ["run", "-z", "img"],
    ["run", "--name"],
    ["run", "--gpus", "lots", "img"],
    ["run", "--shm-size", "big", "img"],
    ["run", "-e", "=x", "img"],
    ["run"],
    ["frob"],
    ["stop", "-t", "x", "a"],
    ["ps", "--filter", "bogus"],
    ["ps", "--format", "{{.Foo}}"],
    ["logs"],
]


@pytest.mark.parametrize("argv", BAD_RUNS, ids=" ".join)
def test_docker_refuses_bad_flags_like_docker(rehearsal_host, argv):
    done = subprocess.run([str(rehearsal_host.bin_dir / "docker"), *argv], capture_output=True, text=True)
    assert done.returncode in (1, 125) and done.stderr and not done.stdout
    if REAL_DOCKER:  # the real CLI parses before it needs a daemon: same first line and exit code
        real = subprocess.run([REAL_DOCKER, *argv], capture_output=True, text=True,
                              env={**os.environ, "DOCKER_HOST": "unix:///nonexistent.sock"})
        assert (done.returncode, done.stderr.splitlines()[0]) == (real.returncode, real.stderr.splitlines()[0])


def test_docker_flag_forms_and_missing_containers(rehearsal_host):
    name = f"ct1-form-{uuid.uuid4().hex[:8]}"
    remote = rehearsal_host.remote_dir
    argv = ["run", "-d", f"--name={name}", "--rm=false", "-l", "k=v", f"--volume={remote}:/workspace",
            "-w/workspace", "--env=A=1", "--ulimit", "memlock=-1", "-it", "cosmos-transfer1:rehearsal", "sh", "-c",
            'echo "A=$A"']
    docker = str(rehearsal_host.bin_dir / "docker")
    assert subprocess.run([docker, *argv], capture_output=True).returncode == 0
    assert subprocess.run([docker, "wait", name], capture_output=True, text=True).stdout == "0\n"
    logs = subprocess.run([docker, "logs", name], capture_output=True, text=True).stdout
    assert "A=1" in logs and "[stand-in docker] ignored: --interactive --tty --ulimit" in logs
    assert subprocess.run([docker, "rm", name], capture_output=True).returncode == 0
    for verb in ("logs", "wait", "stop", "rm"):
        missing = subprocess.run([docker, verb, name], capture_output=True, text=True)
        assert missing.returncode == 1
        assert missing.stderr.strip() == f"Error response from daemon: No such container: {name}"


@pytest.mark.parametrize(("image", "error"), [
    ("cosmos-transfer1:latest", "Unable to find image 'cosmos-transfer1:latest' locally"),
    ("Cosmos", "docker: invalid reference format: repository name must be lowercase"),
])
def test_docker_runs_only_the_image_it_has(rehearsal_host, image, error):
    remote = rehearsal_host.remote_dir
    done = subprocess.run([str(rehearsal_host.bin_dir / "docker"), "run", "-d", "-v", f"{remote}:/workspace", "-w",
                           "/workspace", image, "true"], capture_output=True, text=True)
    assert done.returncode == 125 and done.stderr.splitlines()[0] == error


# ---------------------------------------------------------------------------------------------- transfer.py


def test_transfer_upstream_single_control_example(rehearsal_host, videos):
    spec = {"prompt": "a street at dusk", "input_video_path": str(videos["wide"]), "edge": {"control_weight": 1.0}}
    done = run_transfer(rehearsal_host, spec, "--checkpoint_dir", "./checkpoints", "--offload_text_encoder_model",
                        "--offload_guardrail_models", "--num_gpus", "1")
    assert done.returncode == 0, done.stderr
    assert "STAND-IN" in done.stdout and "Using random seed 1." in done.stdout
    assert done.stdout.startswith("[")
    assert "|INFO|cosmos_transfer1/diffusion/inference/transfer.py:" in done.stdout
    assert f"Saved video to {done.folder.relative_to(rehearsal_host.remote_dir)}/output.mp4" in done.stdout
    assert probe(done.folder / "output.mp4") == (1280, 704, 25)
    assert (done.folder / "output.txt").read_text() == "a street at dusk"
    assert (done.folder / "edge_input_control_0.mp4").is_file()


def test_transfer_upstream_torchrun_example(rehearsal_host, videos):
    spec = {"prompt": "x", "input_video_path": str(videos["tv"]), "vis": {"control_weight": 0.3},
            "edge": {"control_weight": 0.7, "input_control": str(videos["tv"])}}
    torchrun = (str(rehearsal_host.bin_dir / "torchrun"), "--nproc_per_node=2", "--nnodes=1", "--node_rank=0")
    done = run_transfer(rehearsal_host, spec, "--num_gpus", "2", launcher=torchrun)
    assert done.returncode == 0, done.stderr
    assert "[stand-in torchrun]" in done.stderr
    assert probe(done.folder / "output.mp4") == (960, 704, 9)
    mismatch = run_transfer(rehearsal_host, spec, "--num_gpus", "1", launcher=torchrun)
    assert mismatch.returncode == 1 and "they must be equal" in last_error(mismatch)
    alone = run_transfer(rehearsal_host, spec, "--num_gpus", "2")
    assert alone.returncode == 1 and "needs torchrun" in last_error(alone)
    unknown = run_transfer(rehearsal_host, spec, launcher=(*torchrun, "--max_restarts=3"))
    assert unknown.returncode == 2 and "unrecognized arguments: --max_restarts=3" in unknown.stderr


@pytest.mark.parametrize(("shot", "size"), [("wide3", (3840, 2112)), ("tv3", (2880, 2112))])
def test_transfer_upscaler_example_writes_three_times_the_bucket(rehearsal_host, videos, shot, size):
    spec = {"input_video_path": str(videos[shot]), "upscale": {"control_weight": 0.5}}
    done = run_transfer(rehearsal_host, spec, "--num_steps", "10", "--batch_size", "4")
    assert done.returncode == 0, done.stderr
    assert "Setting batch_size=1 as upscale does not support batch generation" in done.stdout
    width, height, _ = probe(done.folder / "output.mp4")
    assert (width, height) == size


def test_transfer_upscale_fails_past_one_chunk_like_upstream(rehearsal_host, videos):
    spec = {"input_video_path": str(videos["long"]), "upscale": {"control_weight": 0.5}}
    done = run_transfer(rehearsal_host, spec)
    assert done.returncode == 1
    assert last_error(done) == "RuntimeError: input tensor must fit into 32-bit index math"
    assert not (done.folder / "output.mp4").exists()


def test_transfer_trims_to_the_shortest_control(rehearsal_host, videos):
    spec = {"prompt": "x", "input_video_path": str(videos["wide"]),
            "edge": {"control_weight": "0.5", "input_control": str(videos["wide_short"])}}
    done = run_transfer(rehearsal_host, spec, "--fps", "30")
    assert done.returncode == 0, done.stderr
    assert probe(done.folder / "output.mp4") == (1280, 704, 17)


UPSTREAM_ERRORS = [
    ({"edge": {}, "foo": {"a": 1}}, (), "ValueError: Invalid hint_key: foo. Must be one of {"),
    ({"edge": {"input_control": "x.mp4"}}, (), "ValueError: Must have 'input_video' specified if sigma_max < 80"),
    ({"sigma_max": 80, "depth": {}}, (),
     "ValueError: depth controlnet must have 'input_control' video specified if no 'input_video' specified."),
    ({"input_video_path": "V", "seg": {"control_weight": -1}}, (),
     "ValueError: Control weight for seg must be a valid non-negative float or a path to a .pt file."),
    ({"input_video_path": "V", "vis": {"control_weight": "heavy"}}, (),
     "ValueError: Control weight for vis must be a valid non-negative float or a path to a .pt file."),
    ({"input_video_path": "V", "vis": {}}, ("--use_distilled",),
     "ValueError: No default distilled checkpoint for vis. Users must specify ckpt_path in config."),
    ({"input_video_path": "inputs/videos/missing.mp4", "edge": {}}, (),
     "FileNotFoundError: [Errno 2] No such file or directory: 'inputs/videos/missing.mp4'"),
    ({"input_video_path": "V", "edge": {"ckpt_path": "nope.pt"}}, (),
     "FileNotFoundError: [Errno 2] No such file or directory: 'checkpoints/nope.pt'"),
]


@pytest.mark.parametrize(("spec", "flags", "error"), UPSTREAM_ERRORS, ids=lambda v: str(v)[:40])
def test_transfer_rejects_bad_specs_with_upstream_messages(rehearsal_host, videos, spec, flags, error):
    spec = {k: (str(videos["wide"]) if v == "V" else v) for k, v in spec.items()}
    done = run_transfer(rehearsal_host, spec, *flags)
    assert done.returncode == 1
    assert "Traceback (most recent call last)" in done.stderr
    assert last_error(done).startswith(error), done.stderr
    assert not (done.folder / "output.mp4").exists()


@pytest.mark.parametrize(("flags", "error"), [
    (("--num_input_frames", "2"), "argument --num_input_frames: invalid choice: 2 (choose from 1)"),
    (("--blur_strength", "ultra"), "argument --blur_strength: invalid choice: 'ultra'"),
    (("--fps", "24.5"), "argument --fps: invalid int value: '24.5'"),
    (("--disable_guardrail",), "unrecognized arguments: --disable_guardrail"),
    (("--num_video_frames", "121"), "unrecognized arguments: --num_video_frames 121"),
])
def test_transfer_argparse_refuses_what_upstream_refuses(rehearsal_host, videos, flags, error):
    spec = {"input_video_path": str(videos["wide"]), "edge": {}}
    done = run_transfer(rehearsal_host, spec, *flags)
    assert done.returncode == 2 and error in done.stderr, done.stderr
    bare = run_transfer(rehearsal_host, None)
    assert bare.returncode == 2 and "the following arguments are required: --controlnet_specs" in bare.stderr


def test_transfer_merge_rule_exact_flag_string_wins(rehearsal_host, videos):
    spec = {"prompt": "x", "input_video_path": str(videos["tv"]), "edge": {}, "fps": 30, "num_steps": 7}
    spaced = run_transfer(rehearsal_host, spec, "--fps", "24")
    joined = run_transfer(rehearsal_host, spec, "--fps=24")

    def final(done):
        text = done.stdout.split("final args: ", 1)[1]
        return json.loads(text[:text.index("\n}") + 2])

    assert spaced.returncode == 0 and joined.returncode == 0, spaced.stderr + joined.stderr
    assert (final(spaced)["fps"], final(joined)["fps"]) == (24, 30)  # --fps=24 is not seen: JSON wins
    assert final(spaced)["num_steps"] == 7
    assert "No control weight specified for edge. Setting to 0.5." in spaced.stdout


def test_transfer_batch_mode_names_outputs_per_line(rehearsal_host, videos):
    spec = {"input_video_path": str(videos["tv3"]), "edge": {"control_weight": 0.5}}
    folder = f"outputs/t-{uuid.uuid4().hex[:8]}"
    (rehearsal_host.remote_dir / folder).mkdir(parents=True)
    lines = [{"visual_input": str(videos["tv3"]), "prompt": "one"},
             {"visual_input": str(videos["wide3"]), "prompt": "two", "control_overrides": {"seg": {}}}]
    (rehearsal_host.remote_dir / folder / "batch.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    done = run_transfer(rehearsal_host, spec, "--batch_input_path", f"{folder}/batch.jsonl", folder=folder)
    assert done.returncode == 0, done.stderr
    assert "Ignoring unknown control key in override: seg" in done.stdout
    assert probe(done.folder / "video_1" / "output.mp4")[:2] == (1280, 704)
    assert [(done.folder / f"video_{i}" / "prompt.txt").read_text() for i in (0, 1)] == ["one", "two"]


def test_transfer_guardrail_block_crashes_like_upstream(rehearsal_host, videos):
    spec = {"prompt": "please GUARDRAIL_BLOCK_ME now", "input_video_path": str(videos["tv"]), "edge": {}}
    done = run_transfer(rehearsal_host, spec)
    assert done.returncode == 1
    assert "|CRITICAL|" in done.stdout and "GUARDRAIL BLOCKED: " in done.stdout
    assert "Input text prompt 0 is not safe" in done.stdout
    assert last_error(done) == "TypeError: cannot unpack non-iterable NoneType object"
    assert not (done.folder / "output.mp4").exists() and "Saved video to" not in done.stdout


def test_transfer_stops_promptly_on_sigterm(rehearsal_host, videos):
    folder = rehearsal_host.remote_dir / f"outputs/t-{uuid.uuid4().hex[:8]}"
    folder.mkdir(parents=True)
    (folder / "spec.json").write_text(json.dumps({"input_video_path": str(videos["tv"]), "edge": {}}))
    env = {**os.environ, "COSMOS_STANDIN_SECONDS": "600"}
    proc = subprocess.Popen(["python3", "-u", TRANSFER_PY, "--controlnet_specs", str(folder / "spec.json"),
                             "--video_save_folder", str(folder)], cwd=rehearsal_host.remote_dir, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    for line in proc.stdout:
        if "Loading base model" in line:
            break
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == -signal.SIGTERM
    assert not (folder / "output.mp4").exists()


def test_full_job_through_ssh_and_docker(rehearsal_host, videos):
    """The documented docker command shape, run over SSH: inference output lands in the checkout."""
    name = f"ct1-run-e2e-{uuid.uuid4().hex[:8]}"
    folder = f"outputs/e2e {uuid.uuid4().hex[:6]}"
    (rehearsal_host.remote_dir / folder).mkdir(parents=True)
    spec = {"prompt": "it's a \"test\" $(x)", "input_video_path": str(videos["tv"]), "edge": {"control_weight": 1}}
    (rehearsal_host.remote_dir / folder / "controlnet_spec.json").write_text(json.dumps(spec))
    command = ["python3", TRANSFER_PY, "--checkpoint_dir", "checkpoints", "--video_save_folder", folder,
               "--controlnet_specs", f"{folder}/controlnet_spec.json", "--fps", "24"]
    argv = docker_run(rehearsal_host, name, *command)
    argv[argv.index("-w"):argv.index("-w")] = ["-e", "COSMOS_STANDIN_SECONDS=0.05"]
    assert ssh(rehearsal_host, shlex.join(argv)).returncode == 0
    logs = ssh(rehearsal_host, f"docker logs -f {name}")
    assert f"Saved video to {folder}/output.mp4" in logs.stdout, logs.stdout + logs.stderr
    out = rehearsal_host.remote_dir / folder
    assert probe(out / "output.mp4") == (960, 704, 9)
    assert (out / "output.txt").read_text() == spec["prompt"]
    # a host path that is not mounted does not exist inside a container
    spec["input_video_path"] = str(rehearsal_host.remote_dir / videos["tv"])
    (out / "controlnet_spec.json").write_text(json.dumps(spec))
    argv[argv.index("--name") + 1] = name + "-2"
    argv.remove("--rm")
    assert ssh(rehearsal_host, shlex.join(argv)).returncode == 0, argv
    logs = ssh(rehearsal_host, f"docker wait {name}-2 && docker logs {name}-2 && docker rm {name}-2")
    assert logs.stdout.startswith("1\n")
    assert f"FileNotFoundError: [Errno 2] No such file or directory: {spec['input_video_path']!r}" in logs.stdout
