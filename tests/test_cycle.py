"""The full cycle as a user runs it (scripts/*.sh in a subprocess) against the rehearsal host's real sshd.

Only the GPU model and the Docker engine are stood in for (the rehearsal host's docker and transfer.py).
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from prompt_fixtures import make_video

from cosmos_tools import history, transport
from cosmos_tools.prompts import MODALITY_FILES
from cosmos_tools.rehearsal.host import set_stand_in_seconds

REPO = Path(__file__).resolve().parents[1]
HOSTILE_NAME = 'we"ird $(touch HACKED) `touch HACKED2` ü\nline'
HOSTILE_SHOT = "sh'o\"t $(touch HACKED3) ü"


def add_shot(root: Path, shot: str = "shot1", frames: int = 8) -> str:
    for name in MODALITY_FILES.values():
        make_video(root / "inputs" / "videos" / shot / name, frames=frames)
    return shot


def write_prompt(root: Path, name: str, shot: str, text: str = "a city at dusk", **extra) -> Path:
    """A prompt as new_prompt writes it, under any file name."""
    videos = f"inputs/videos/{shot}"
    spec = {"prompt": text, "input_video_path": f"{videos}/color.mp4",
            "vis": {"control_weight": 0.25}, "edge": {"control_weight": 0.25},
            "depth": {"control_weight": 0.25, "input_control": f"{videos}/depth.mp4"},
            "seg": {"control_weight": 0.25, "input_control": f"{videos}/segmentation.mp4"}, **extra}
    path = root / "inputs" / "prompts" / f"{name}.json"
    path.write_text(json.dumps(spec, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def script(root: Path, name: str, *args: str, timeout: float = 120, env: dict | None = None):
    """Run scripts/<name> from the project root as a user would; CompletedProcess with text output."""
    return subprocess.run([str(REPO / "scripts" / name), *map(str, args)], cwd=root, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})})


def tool(root: Path, *args: str, timeout: float = 120):
    return subprocess.run([str(REPO / ".venv" / "bin" / "cosmos-tools"), *map(str, args)], cwd=root,
                          capture_output=True, text=True, timeout=timeout)


def start(root: Path, name: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen([str(REPO / "scripts" / name), *map(str, args)], cwd=root, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def cut_sessions(host) -> None:
    """Kill every SSH session process of the rehearsal host's sshd: the client's connection drops."""
    sessions = subprocess.run(["pgrep", "-P", str(host.pid)], capture_output=True, text=True).stdout.split()
    assert sessions, "no sshd session process to cut"
    for pid in sessions:
        os.kill(int(pid), signal.SIGKILL)


def wait_for_line(proc: subprocess.Popen, needle: str, timeout: float = 60) -> str:
    """Read the process's stderr until a line contains ``needle``; the text read so far."""
    seen = ""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stderr], [], [], 0.5)
        if ready:
            line = proc.stderr.readline()
            if not line and proc.poll() is not None:
                break
            seen += line
            if needle in line:
                return seen
    raise AssertionError(f"{needle!r} never appeared; stderr so far:\n{seen}")


def records(root: Path) -> list[dict]:
    return history.read_records(root / "notes" / "run_history.log", warn=pytest.fail)


def remote_path(host, rel: str) -> Path:
    return Path(host.remote_dir) / rel


@pytest.fixture
def slow_jobs(rehearsal_host):
    """Stand-in inference that takes a few seconds, so a test can act while a job runs."""
    set_stand_in_seconds(rehearsal_host.dir, 2)
    yield
    set_stand_in_seconds(rehearsal_host.dir, 0.3)


@pytest.fixture
def endless_jobs(rehearsal_host):
    """Jobs that run until they are stopped; any left queued or running are dropped afterwards (they would hold
    the box's queue)."""
    set_stand_in_seconds(rehearsal_host.dir, 600)
    yield
    set_stand_in_seconds(rehearsal_host.dir, 0.3)
    empty_queue(rehearsal_host)


def empty_queue(host) -> None:
    """Drop the rehearsal box's queued jobs, kill its running containers, wait until its queue runner has let go."""
    queue = remote_path(host, ".cosmos-tools/queue")
    for job in queue.glob("pending/*"):
        job.unlink(missing_ok=True)
    docker = [sys.executable, str(Path(host.bin_dir) / "docker")]
    running = subprocess.run([*docker, "ps", "-q"], capture_output=True, text=True).stdout.split()
    if running:
        subprocess.run([*docker, "kill", *running], capture_output=True)
    deadline = time.monotonic() + 30
    while any(queue.glob("running/*")) and time.monotonic() < deadline:
        time.sleep(0.2)


def test_full_cycle_then_rerun_does_nothing_again(project, rehearsal_host):
    shot = add_shot(project)
    prompt = write_prompt(project, "city_v1", shot)
    done = script(project, "full_cycle.sh", prompt.relative_to(project))
    assert done.returncode == 0, done.stderr
    out = project / "outputs" / "city_v1"
    assert out.is_symlink() and os.readlink(out) == "runs/city_v1-1"  # the latest view links to the run's folder
    for name in ("output.mp4", "run.log", "spec_used.json", "prompt_spec.json", "controlnet_spec.json", "exit_code",
                 "provenance.json"):
        assert (out / name).is_file(), name
    assert (project / "outputs" / "city_v1_upscaled" / "output.mp4").stat().st_size > 0
    assert (out / "prompt_spec.json").read_bytes() == prompt.read_bytes()
    used = json.loads((out / "spec_used.json").read_text())
    assert used["command"][:2] == ["python3", "cosmos_transfer1/diffusion/inference/transfer.py"]
    assert used["env"]["CUDA_VISIBLE_DEVICES"] == "0" and "--name" in used["docker"]
    assert "Saved video to outputs/runs/city_v1-1/output.mp4" in done.stdout  # the live log reached the terminal
    assert "status: ok" in done.stdout and "result: outputs/runs/city_v1-1/output.mp4" in done.stdout
    (line,) = records(project)
    assert line["status"] == "ok" and line["run"] == "city_v1" and line["shot"] == shot and line["upscale"] == "0.5"
    assert line["weights"] == "vis=0.25,edge=0.25,depth=0.25,seg=0.25" and line["exit"] == "0"
    assert line["run_id"] == "city_v1-1" and line["output"] == "outputs/runs/city_v1-1"
    assert line["upscaled"] == "outputs/runs/city_v1-1_upscaled"
    assert all(float(line[k]) >= 0 for k in ("upload_s", "run_s", "upscale_s", "download_s"))
    log_before = remote_path(rehearsal_host, "outputs/runs/city_v1-1/run.log").read_bytes()

    # Again, in this process, to count connections: nothing is sent, run or fetched again.
    from cosmos_tools.config import load_config
    from cosmos_tools.cycle import run_cycle

    opened = transport.CONNECTIONS_OPENED
    echoed = []
    run_cycle(load_config(), prompt, echo=echoed.append)  # ok: returns (a failure raises)
    assert transport.CONNECTIONS_OPENED - opened == 1
    assert echoed == []  # no job ran, so no live log
    assert remote_path(rehearsal_host, "outputs/runs/city_v1-1/run.log").read_bytes() == log_before
    again = script(project, "full_cycle.sh", prompt)
    assert again.returncode == 0, again.stderr
    assert "upload: 0 sent" in again.stderr and again.stderr.count("already finished ok") == 2
    assert "0 fetched" in again.stderr
    assert "run: city_v1-1 (outputs/runs/city_v1-1), found already done" in again.stdout
    assert "nothing new, no line added" in again.stdout
    assert [r["status"] for r in records(project)] == ["ok"]  # nothing new is not a run: no line
    table = tool(project, "history", "--status", "ok")
    assert table.returncode == 0 and table.stdout.count("city_v1-1") == 1
    shutil.rmtree(project / "outputs" / "runs" / "city_v1-1")
    out.unlink()
    fetched = script(project, "download_results.sh", prompt)
    assert fetched.returncode == 0, fetched.stderr
    assert (out / "output.mp4").read_bytes() == \
        remote_path(rehearsal_host, "outputs/runs/city_v1-1/output.mp4").read_bytes()
    finished = tool(project, "attach", str(prompt))  # a prompt path works too; a finished job is judged
    assert finished.returncode == 0 and "ended ok" in finished.stderr and "outputs/city_v1_upscaled: ok" in \
        finished.stdout


def test_upload_checks_first_and_resends_nothing(project, rehearsal_host, tmp_path):
    shot = add_shot(project, "upload_shot")  # the rehearsal host lives for the session: a shot of its own
    bad = write_prompt(project, "bad", shot, vis={"control_weight": -1})
    refused = script(project, "upload_prompt.sh", bad)
    assert refused.returncode == 1 and "control_weight" in refused.stderr and "nothing was sent" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert not remote_path(rehearsal_host, "inputs/prompts/bad.json").exists()
    good = write_prompt(project, "good", shot)
    first = script(project, "upload_prompt.sh", good)
    assert first.returncode == 0, first.stderr
    assert "upload: 4 sent" in first.stderr
    for name in ("color.mp4", "depth.mp4", "segmentation.mp4"):
        assert remote_path(rehearsal_host, f"inputs/videos/{shot}/{name}").read_bytes() == \
            (project / "inputs" / "videos" / shot / name).read_bytes()
    outside = tmp_path / "elsewhere" / "outside.json"  # a prompt outside inputs/prompts goes there on the box
    outside.parent.mkdir()
    outside.write_bytes(good.read_bytes())
    assert script(project, "upload_prompt.sh", outside, "--quiet").returncode == 0
    assert remote_path(rehearsal_host, "inputs/prompts/outside.json").read_bytes() == good.read_bytes()
    quiet = script(project, "upload_prompt.sh", good, "--quiet")
    assert quiet.returncode == 0 and quiet.stdout == "" and quiet.stderr == ""
    again = script(project, "upload_prompt.sh", good)
    assert "upload: 0 sent" in again.stderr and "4 already on the box" in again.stderr


def test_videos_subdir_override_must_match_the_prompt(project, rehearsal_host):
    add_shot(project, "shot_a")
    add_shot(project, "shot_b")
    prompt = write_prompt(project, "over", "shot_a")
    wrong = script(project, "upload_prompt.sh", prompt, "shot_b")
    assert wrong.returncode == 1 and "points at shot 'shot_a', not at 'shot_b'" in wrong.stderr
    right = script(project, "upload_prompt.sh", prompt, "shot_a")
    assert right.returncode == 0, right.stderr
    assert not remote_path(rehearsal_host, "inputs/videos/shot_b").exists()


def test_changed_prompt_runs_again_and_a_guardrail_block_is_reported_with_the_log_tail(project, rehearsal_host):
    shot = add_shot(project)
    prompt = write_prompt(project, "blocked", shot)
    assert script(project, "full_cycle.sh", prompt, "--no-upscale").returncode == 0
    write_prompt(project, "blocked", shot, text="GUARDRAIL_BLOCK_ME please")  # edited: the spec changed
    done = script(project, "full_cycle.sh", prompt)
    assert done.returncode == 1
    assert "guardrail blocked it" in done.stderr and "last" in done.stderr and "GUARDRAIL BLOCKED" in done.stderr
    out = project / "outputs" / "blocked"
    assert os.readlink(out) == "runs/blocked-2"  # the edit is a new run; the latest view points at it
    assert "GUARDRAIL BLOCKED" in (out / "run.log").read_text()  # the failed run's log came back
    assert not (out / "output.mp4").exists() and not (out / "output.mp4.prev").exists()  # no stale result
    first_run = project / "outputs" / "runs" / "blocked-1"
    assert (first_run / "output.mp4").stat().st_size > 0, "the first edit's result is kept"
    assert "GUARDRAIL" not in (first_run / "controlnet_spec.json").read_text()
    assert remote_path(rehearsal_host, "outputs/runs/blocked-1/output.mp4").is_file()
    assert not remote_path(rehearsal_host, "outputs/runs/blocked-2/run.log.prev").exists()
    assert "result:" not in done.stdout
    assert not (project / "outputs" / "blocked_upscaled").exists()
    first, second = records(project)
    assert first["status"] == "ok" and second["status"] == "blocked" and "guardrail" in second["error"]
    assert (first["run_id"], second["run_id"]) == ("blocked-1", "blocked-2")
    assert (first["output"], second["output"]) == ("outputs/runs/blocked-1", "outputs/runs/blocked-2")
    assert first["spec_sha256"] != second["spec_sha256"]
    assert second["upscale"] == "0.5" and "upscaled" not in second


def test_run_refused_by_transfer_py_fails_with_its_error(project, rehearsal_host):
    shot = add_shot(project)
    prompt = write_prompt(project, "negative", shot, vis={"control_weight": -1})
    assert script(project, "upload_prompt.sh", write_prompt(project, "ok", shot)).returncode == 0
    done = script(project, "run_inference_remote.sh", prompt)  # run does not re-check: the stand-in refuses it
    assert done.returncode == 1
    assert "FAILED negative-1: exit 1" in done.stderr
    assert "Control weight for vis must be a valid non-negative float" in done.stderr


def test_upscale_refusals(project, rehearsal_host):
    shot = add_shot(project, "long", frames=122)
    prompt = write_prompt(project, "long_run", shot)
    no_run = script(project, "run_upscale_remote.sh", prompt)
    assert no_run.returncode == 1 and "output.mp4 is missing on the GPU box" in no_run.stderr
    upfront = script(project, "full_cycle.sh", prompt)
    assert upfront.returncode == 1 and "122 frames" in upfront.stderr and "--no-upscale" in upfront.stderr
    assert not remote_path(rehearsal_host, "inputs/prompts/long_run.json").exists()
    assert records(project) == []
    bad_weight = script(project, "run_upscale_remote.sh", prompt, "lots")
    assert bad_weight.returncode == 1 and "give a number >= 0" in bad_weight.stderr
    # A finished run of that shot, as the box's files show it (the output has the input's length).
    run_dir = remote_path(rehearsal_host, "outputs/long_run")
    run_dir.mkdir(parents=True)
    shutil.copyfile(project / "inputs" / "videos" / shot / "color.mp4", run_dir / "output.mp4")
    (run_dir / "run.log").write_text("finished\n")
    (run_dir / "exit_code").write_text("0\n")
    too_long = script(project, "run_upscale_remote.sh", prompt, "0.3")
    assert too_long.returncode == 1 and "has 122 frames" in too_long.stderr and "at most 121" in too_long.stderr
    assert not remote_path(rehearsal_host, "outputs/long_run_upscaled").exists()


def test_hostile_prompt_and_shot_names_through_the_whole_cycle(project, rehearsal_host):
    shot = add_shot(project, HOSTILE_SHOT)
    prompt = write_prompt(project, HOSTILE_NAME, shot, text='say "$(rm -rf /)" `id` \\ ünï')
    done = script(project, "full_cycle.sh", prompt, shot)
    assert done.returncode == 0, done.stderr
    out = project / "outputs" / HOSTILE_NAME
    assert (out / "output.mp4").stat().st_size > 0
    assert (project / "outputs" / f"{HOSTILE_NAME}_upscaled" / "output.mp4").stat().st_size > 0
    assert remote_path(rehearsal_host, f"inputs/videos/{HOSTILE_SHOT}/color.mp4").is_file()
    assert json.loads((out / "controlnet_spec.json").read_text())["prompt"] == 'say "$(rm -rf /)" `id` \\ ünï'
    (line,) = records(project)
    assert line["run"] == HOSTILE_NAME and line["shot"] == HOSTILE_SHOT and line["status"] == "ok"
    for root in (project, Path(rehearsal_host.dir), Path.cwd()):
        assert not list(root.rglob("HACKED*")), "a name was executed somewhere"
    status = tool(project, "status", "--json")
    assert any(row["run"] == HOSTILE_NAME and row["state"] == "ok" for row in json.loads(status.stdout))


def test_unknown_host_key_is_refused(project, rehearsal_host, tmp_path):
    shot = add_shot(project)
    prompt = write_prompt(project, "keyed", shot)
    empty = tmp_path / "known_hosts_empty"
    empty.write_text("")
    done = script(project, "full_cycle.sh", prompt, env={"KNOWN_HOSTS": str(empty)})
    assert done.returncode == 3
    assert "host key of [127.0.0.1]" in done.stderr and "is not known" in done.stderr and "cosmos-tools trust" in \
        done.stderr
    assert not remote_path(rehearsal_host, "inputs/prompts/keyed.json").exists()
    (line,) = records(project)
    assert line["status"] == "failed" and "not known" in line["error"]
    assert "run_id" not in line and "output" not in line  # no run id was allocated: no run folder to name


def test_client_killed_mid_run_then_rerun_reattaches_and_finishes(project, rehearsal_host, slow_jobs):
    shot = add_shot(project)
    prompt = write_prompt(project, "dropped", shot)
    proc = start(project, "full_cycle.sh", prompt, "--no-upscale")
    wait_for_line(proc, "started dropped-1 as container")
    proc.kill()  # SIGKILL: no chance to stop the job or write history
    proc.communicate()
    assert records(project) == []
    again = script(project, "full_cycle.sh", prompt, "--no-upscale")
    assert again.returncode == 0, again.stderr
    assert "already running on the box; re-attaching" in again.stderr or "already finished ok" in again.stderr
    if "re-attaching" in again.stderr:
        assert "Saved video to outputs/runs/dropped-1/output.mp4" in again.stdout
    assert (project / "outputs" / "dropped" / "output.mp4").is_file()
    assert remote_path(rehearsal_host, "outputs/dropped/run.log").read_text().count("[cosmos-run]") == 2  # one job
    assert [(r["status"], r["run_id"]) for r in records(project)] == [("ok", "dropped-1")]  # the same run


def test_connection_cut_mid_run_reconnects_without_losing_or_repeating_log(project, rehearsal_host, slow_jobs):
    shot = add_shot(project)
    prompt = write_prompt(project, "cut", shot)
    proc = start(project, "full_cycle.sh", prompt, "--no-upscale")
    wait_for_line(proc, "started cut-1 as container")
    time.sleep(0.5)
    cut_sessions(rehearsal_host)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    assert "connection lost; reconnecting" in stderr
    log = remote_path(rehearsal_host, "outputs/cut/run.log").read_text()
    assert stdout.startswith(log)  # every byte of the log exactly once, in order
    (line,) = records(project)
    assert line["status"] == "ok" and line["upscale"] == "no" and "upscaled" not in line


def test_two_cycles_at_once_both_finish_and_append_history(project, rehearsal_host, slow_jobs):
    shot = add_shot(project)
    prompts = [write_prompt(project, f"pair_{i}", shot) for i in range(2)]
    script(project, "upload_prompt.sh", prompts[0], "--quiet")  # the shared shot is on the box once
    first = start(project, "full_cycle.sh", prompts[0], "--no-upscale", "--wait")
    seen = wait_for_line(first, "started pair_0")  # the second cycle comes while the first job holds the box
    procs = [first, start(project, "full_cycle.sh", prompts[1], "--no-upscale", "--wait")]
    results = [p.communicate(timeout=180) for p in procs]
    results[0] = (results[0][0], seen + results[0][1])
    assert [p.returncode for p in procs] == [0, 0], [r[1] for r in results]
    assert "--wait has no effect" in results[1][1]  # the second job waited in the box's queue instead
    done = {p.read_bytes().split(b"\0")[0].decode(): p.name
            for p in remote_path(rehearsal_host, ".cosmos-tools/queue/done").iterdir()}
    assert done["outputs/runs/pair_0-1"] < done["outputs/runs/pair_1-1"]  # one after the other, in order
    lines = records(project)
    assert sorted(r["run"] for r in lines) == ["pair_0", "pair_1"] and {r["status"] for r in lines} == {"ok"}


def test_connection_cut_mid_upload_reconnects_and_finishes(project, rehearsal_host):
    shot = add_shot(project, "big_shot")
    big = project / "inputs" / "videos" / shot / "extra_plate.bin"  # uploaded with the shot folder
    with open(big, "wb") as handle:
        handle.truncate(160 * 1024 * 1024)
    prompt = write_prompt(project, "cut_upload", shot)
    folder = remote_path(rehearsal_host, f"inputs/videos/{shot}")
    proc = start(project, "full_cycle.sh", prompt, "--no-upscale")
    deadline = time.monotonic() + 60
    while not list(folder.glob(".extra_plate.bin.*.cosmos-part")) and proc.poll() is None \
            and time.monotonic() < deadline:
        time.sleep(0.005)
    assert list(folder.glob(".extra_plate.bin.*.cosmos-part")), "the upload never started"
    cut_sessions(rehearsal_host)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    assert "connection lost; reconnecting" in stderr
    sent = remote_path(rehearsal_host, f"inputs/videos/{shot}/extra_plate.bin")
    assert sent.stat().st_size == big.stat().st_size
    sent.unlink()  # 160 MB: not kept on the session's host
    assert not list(folder.glob(".extra_plate.bin.*.cosmos-part")), "the interrupted part file is cleaned up"
    (line,) = records(project)
    assert line["status"] == "ok"


def test_ctrl_c_during_a_cycle_stops_the_job_and_records_it_cancelled(project, rehearsal_host, endless_jobs):
    shot = add_shot(project)
    prompt = write_prompt(project, "cancelled", shot)
    proc = start(project, "full_cycle.sh", prompt)
    wait_for_line(proc, "started cancelled-1 as container")
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "interrupted: stopped cancelled-1 on the box" in stderr and "Traceback" not in stderr
    (line,) = records(project)
    assert line["status"] == "cancelled" and "interrupted" in line["error"]
    assert remote_path(rehearsal_host, "outputs/cancelled/exit_code").read_text().strip() in ("130", "137", "143")


def test_upload_plan_sends_the_files_a_spec_names_but_never_box_checkpoints(project):
    from cosmos_tools.config import load_config
    from cosmos_tools.plan import plan_prompt

    shot = add_shot(project, "plan_shot", frames=2)
    for rel in ("inputs/weights/my_seg.pt", "inputs/weights/seg_map.pt", "checkpoints/nvidia/big.pt"):
        (project / rel).parent.mkdir(parents=True, exist_ok=True)
        (project / rel).write_bytes(b"weights")
    prompt = write_prompt(project, "planned", shot, seg={"control_weight": "inputs/weights/seg_map.pt",
                                                         "ckpt_path": "inputs/weights/my_seg.pt",
                                                         "input_control": f"inputs/videos/{shot}/segmentation.mp4"},
                          edge={"control_weight": 0.2, "ckpt_path": "checkpoints/nvidia/big.pt"})
    sent = {rel for _, rel in plan_prompt(load_config(project), prompt, check=False).uploads}
    assert {"inputs/weights/my_seg.pt", "inputs/weights/seg_map.pt"} <= sent
    assert "checkpoints/nvidia/big.pt" not in sent
