"""Detached jobs on the rehearsal host: detach/status/attach, kill, a queued run, Ctrl-C, and the job states."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from test_cycle import (  # noqa: F401 (fixtures)
    REPO,
    add_shot,
    endless_jobs,
    records,
    remote_path,
    script,
    start,
    tool,
    wait_for_line,
    write_prompt,
)

from cosmos_tools import jobs
from cosmos_tools.config import load_config
from cosmos_tools.errors import RemoteError
from cosmos_tools.jobs import JobState
from cosmos_tools.remote import script as remote_script
from cosmos_tools.remote.codes import QueueCode, ScriptExit
from cosmos_tools.remote.paths import RUN


def statuses(root) -> dict[str, dict]:
    done = tool(root, "status", "--json")
    assert done.returncode == 0, done.stderr
    return {row["run"]: row for row in json.loads(done.stdout) if row["kind"] == "run"}


@pytest.mark.usefixtures("endless_jobs")
def test_detach_status_attach_kill(project, rehearsal_host):
    shot = add_shot(project)
    prompt = write_prompt(project, "detached job", shot)
    assert script(project, "upload_prompt.sh", prompt, "--quiet").returncode == 0
    started = script(project, "run_inference_remote.sh", prompt, "--detach")
    assert started.returncode == 0, started.stderr
    assert "cosmos-tools attach 'detached job'" in started.stderr
    (line,) = records(project)  # it started a job: one line, which says it was left running
    assert (line["run_id"], line["status"]) == ("detached job-1", "detached")
    assert line["output"] == "outputs/runs/detached job-1"
    assert statuses(project)["detached job"]["state"] == "running"
    early = script(project, "download_results.sh", prompt)
    assert early.returncode == 1 and "still running on the box" in early.stderr
    table = tool(project, "status")
    assert table.stdout.splitlines()[0].split() == ["STATE", "EXIT", "UPDATED", "JOB"]
    attached = subprocess.Popen([str(REPO / ".venv" / "bin" / "cosmos-tools"), "attach", "detached job"], cwd=project,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for_line(attached, "attached to detached job")
    killed = tool(project, "kill", "detached job")
    assert killed.returncode == 0 and "stopped ct1-run-detached-job-" in killed.stdout
    stdout, stderr = attached.communicate(timeout=60)
    assert attached.returncode == 1 and "stopped by a signal" in stderr
    assert "[cosmos-run]" in stdout and "exit code 1" in stdout  # the live log reached the re-attached terminal
    row = statuses(project)["detached job"]
    assert row["state"] == "stopped" and row["exit_code"] in (130, 137, 143)
    again = tool(project, "kill", "detached job")
    assert again.returncode == 1 and "no job named 'detached job' is running" in again.stderr
    unknown = tool(project, "attach", "no such run")
    assert unknown.returncode == 1 and "no job named 'no such run'" in unknown.stderr


@pytest.mark.usefixtures("endless_jobs")
def test_a_second_run_is_queued_behind_the_first_and_starts_when_it_is_killed(project, rehearsal_host):
    shot = add_shot(project)
    first, second = write_prompt(project, "first", shot), write_prompt(project, "second", shot)
    assert script(project, "upload_prompt.sh", first, "--quiet").returncode == 0
    assert script(project, "run_inference_remote.sh", first, "--detach").returncode == 0
    queued = script(project, "run_inference_remote.sh", second, "--detach", "--wait")
    assert queued.returncode == 0, queued.stderr
    assert "second-1 queued behind 1 job" in queued.stderr and "--wait has no effect" in queued.stderr
    assert statuses(project)["second"]["state"] == "queued"
    follower = subprocess.Popen([str(REPO / ".venv" / "bin" / "cosmos-tools"), "attach", "second"], cwd=project,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for_line(follower, "attached to second-1 (queued behind 1 job)")
    assert tool(project, "kill", "first").returncode == 0
    wait_for_line(follower, "started second-1 as container")
    assert tool(project, "kill", "second").returncode == 0
    _, stderr = follower.communicate(timeout=60)
    assert follower.returncode == 1 and "stopped by a signal" in stderr


@pytest.mark.usefixtures("endless_jobs")
def test_ctrl_c_stops_the_remote_job(project, rehearsal_host):
    shot = add_shot(project)
    prompt = write_prompt(project, "interrupted", shot)
    assert script(project, "upload_prompt.sh", prompt, "--quiet").returncode == 0
    proc = start(project, "run_inference_remote.sh", prompt)
    wait_for_line(proc, "started interrupted-1 as container")
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "stopping interrupted-1 on the box" in stderr and "Traceback" not in stderr
    row = statuses(project)["interrupted"]
    assert row["state"] == "stopped"
    rerun = script(project, "run_inference_remote.sh", prompt, "--detach")  # a stopped job is run again
    assert rerun.returncode == 0, rerun.stderr
    assert "started interrupted-2" in rerun.stderr  # a new run: the stopped one keeps its folder and log
    assert "exit code 1" in remote_path(rehearsal_host, "outputs/runs/interrupted-1/run.log").read_text()  # 130/143
    assert tool(project, "kill", "interrupted").returncode == 0


def test_job_verdicts():
    assert JobState("d").verdict == "absent"
    assert JobState("d", running=True).verdict == "running"
    assert JobState("d", log_size=10).verdict == "lost"
    assert JobState("d", exit_code=0, output_size=5).verdict == "ok"
    assert JobState("d", exit_code=0).verdict == "failed"  # exit 0 without output (the origin's guardrail case)
    assert JobState("d", exit_code=0, output_size=5, blocked=True).verdict == "blocked"
    assert JobState("d", exit_code=143).verdict == "stopped"
    assert JobState("d", exit_code=1, output_size=5).verdict == "failed"
    assert "no d/output.mp4" in JobState("d", exit_code=0).failure("r")
    assert JobState("d", queued=2).verdict == "queued"
    assert JobState("d", exit_code=QueueCode.CANCELLED).verdict == "cancelled"
    assert "docker could not start the container: no such image" in JobState(
        "d", exit_code=QueueCode.DOCKER_RUN_FAILED, tail=["[cosmos-queue] docker run failed", "no such image"]
    ).failure("r")


def test_docker_that_does_not_answer_is_one_clear_line(project, rehearsal_host):
    done = subprocess.run([str(REPO / ".venv" / "bin" / "cosmos-tools"), "status"], cwd=project, capture_output=True,
                          text=True, env={**os.environ, "DOCKER_CMD": "no-such-docker"})
    assert done.returncode == 3
    assert done.stderr.startswith("error: docker does not answer") and "DOCKER_CMD" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


@pytest.mark.usefixtures("endless_jobs")
def test_box_gone_while_following_says_the_job_keeps_running(project, rehearsal_host, monkeypatch):
    shot = add_shot(project, "gone_shot")
    prompt = write_prompt(project, "gone", shot)
    assert script(project, "upload_prompt.sh", prompt, "--quiet").returncode == 0
    assert script(project, "run_inference_remote.sh", prompt, "--detach").returncode == 0
    monkeypatch.setattr(jobs, "RECONNECT_DELAYS", (0, 0))
    cfg = load_config()
    remote = jobs.Remote(cfg)
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))  # a port nobody listens on: every reconnect is refused
    monkeypatch.setitem(cfg.values, "REMOTE_PORT", str(dead.getsockname()[1]))
    threading.Timer(1.0, remote.t.close).start()  # the connection drops while the log streams
    runner = jobs.Runner(remote, echo=lambda data: None, say=lambda msg: None)
    try:
        with pytest.raises(RemoteError, match="could not reconnect.*keeps running.*cosmos-tools attach gone"):
            runner.follow(jobs.plain_job("gone", RUN), offset=0)
    finally:
        dead.close()
    assert statuses(project)["gone"]["state"] == "running"
    assert tool(project, "kill", "gone").returncode == 0


def test_a_stopped_leftover_container_of_the_same_name_does_not_block_the_run(project, rehearsal_host):
    from cosmos_tools.rehearsal.host import DOCKER_IMAGE
    from cosmos_tools.remote.paths import container_name

    shot = add_shot(project, "leftover_shot")
    prompt = write_prompt(project, "leftover", shot)
    assert script(project, "upload_prompt.sh", prompt, "--quiet").returncode == 0
    docker = [sys.executable, str(Path(rehearsal_host.bin_dir) / "docker")]
    made = subprocess.run([*docker, "run", "--name", container_name("leftover", "run"), "-v",
                           f"{rehearsal_host.remote_dir}:/workspace", "-w", "/workspace", DOCKER_IMAGE, "true"],
                          capture_output=True, text=True)  # exited, never removed (no --rm)
    assert made.returncode == 0, made.stderr
    ran = script(project, "run_inference_remote.sh", prompt)
    assert ran.returncode == 0, ran.stderr


def test_follower_gives_up_when_docker_stops_answering(tmp_path):
    """A follower whose docker never answers ends (DOCKER_SILENT) instead of polling for ever on the box."""
    log, code = tmp_path / "run.log", tmp_path / "exit_code"
    log.write_text("line\n")
    fast = "sleep() { command sleep 0.001; }\n" + remote_script("follow.sh")  # the same script, without its pauses
    done = subprocess.run(["bash", "-c", fast, "cosmos-follow", str(log), str(code), "0", "ct1-x", "1", "false"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == ScriptExit.DOCKER_SILENT
    assert done.stdout == "0\nline\n"


def test_parse_box_matches_a_latest_link_to_its_queue_entry_beside_it():
    def folder(d, target=""):
        return [d, "", "", "0", "0", "0", "0", "", "", target]

    fields = ["1000", "1000", "/home/u", "", "2",
              "running", "000000000001", "outputs/batches/runs/exp~batch1-2", "ct1-run-exp-batch1-x", "",
              "pending", "000000000002", "outputs/runs/solo-3", "ct1-run-solo-y", "",
              *folder("outputs/batches/exp~batch1", "runs/exp~batch1-2"), *folder("outputs/solo", "runs/solo-3"),
              *folder("outputs/exp", "runs/exp~batch1-2")]  # a prompt link never names a batch folder
    box = jobs.parse_box(b"".join(f.encode() + b"\0" for f in fields))
    assert box is not None
    batch, solo, other = (box.jobs[d] for d in ("outputs/batches/exp~batch1", "outputs/solo", "outputs/exp"))
    assert (batch.verdict, batch.running) == ("running", True)
    assert (solo.verdict, solo.queued) == ("queued", 1)
    assert other.verdict == "absent"
