"""The queue on the rehearsal box: order, clients that die, two clients at once, kill, docker failures."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest
from test_cycle import (  # noqa: F401 (fixtures)
    REPO,
    add_shot,
    empty_queue,
    endless_jobs,
    records,
    remote_path,
    script,
    start,
    tool,
    wait_for_line,
    write_prompt,
)

from cosmos_tools.rehearsal.host import set_stand_in_seconds
from cosmos_tools.remote.codes import QueueCode


@pytest.fixture
def long_jobs(rehearsal_host):
    """Stand-in inference long enough for three clients to queue behind one another (each needs a few seconds)."""
    set_stand_in_seconds(rehearsal_host.dir, 8)
    yield
    set_stand_in_seconds(rehearsal_host.dir, 0.3)


def queue_files(host, state: str) -> list[Path]:
    return sorted(remote_path(host, f".cosmos-tools/queue/{state}").glob("*"))


def folder_of(job: Path) -> str:
    return job.read_bytes().split(b"\0")[0].decode()


def wait_until_idle(host, timeout: float = 120) -> None:
    """Until the box's queue has nothing pending or running."""
    deadline = time.monotonic() + timeout
    while queue_files(host, "pending") or queue_files(host, "running"):
        assert time.monotonic() < deadline, "the queue did not drain"
        time.sleep(0.2)


def queue_json(root: Path) -> list[dict]:
    done = tool(root, "queue", "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def uploaded(project: Path, names: list[str], shot: str) -> list[Path]:
    prompts = [write_prompt(project, name, shot, seed=i + 1) for i, name in enumerate(names)]
    for prompt in prompts:
        assert script(project, "upload_prompt.sh", prompt, "--quiet").returncode == 0
    return prompts


@pytest.mark.usefixtures("long_jobs")
def test_jobs_run_in_the_order_they_were_queued(project, rehearsal_host):
    shot = add_shot(project, "order_shot")
    prompts = uploaded(project, ["order a", "order b", "order c"], shot)
    said = [script(project, "run_inference_remote.sh", prompt, "--detach").stderr for prompt in prompts]
    assert "started order a-1 as container" in said[0]
    assert "order b-1 queued behind 1 job " in said[1] and "order c-1 queued behind 2 jobs" in said[2]
    rows = {row["run_id"]: row for row in queue_json(project)}
    assert [rows[f"order {x}-1"]["state"] for x in "abc"] == ["running", "queued", "queued"]
    assert [rows[f"order {x}-1"]["position"] for x in "bc"] == [1, 2]
    table = tool(project, "queue").stdout.splitlines()
    assert table[0].split() == ["POS", "STATE", "EXIT", "RUN", "ID", "KIND"]
    wait_until_idle(rehearsal_host)
    finished = [remote_path(rehearsal_host, f"outputs/runs/order {x}-1/exit_code") for x in "abc"]
    assert [f.read_text() for f in finished] == ["0\n"] * 3
    times = [f.stat().st_mtime_ns for f in finished]
    assert times == sorted(times)
    assert [folder_of(job) for job in queue_files(rehearsal_host, "done")[-3:]] == \
        [f"outputs/runs/order {x}-1" for x in "abc"]
    rows = {row["run_id"]: row for row in queue_json(project)}
    assert [rows[f"order {x}-1"]["state"] for x in "abc"] == ["ok"] * 3


@pytest.mark.usefixtures("long_jobs")
def test_clients_killed_mid_run_the_queue_finishes_and_a_rerun_starts_nothing_twice(project, rehearsal_host):
    shot = add_shot(project, "killed_shot")
    names = ["killed a", "killed b", "killed c"]
    prompts = uploaded(project, names, shot)
    clients = []
    for i, prompt in enumerate(prompts):
        clients.append(start(project, "full_cycle.sh", prompt, "--no-upscale"))
        wait_for_line(clients[-1], "started killed a-1 as container" if i == 0 else f"queued behind {i} job")
    for client in clients:
        client.kill()  # SIGKILL: no Ctrl-C handling, no history line, the SSH sessions just vanish
        client.communicate()
    assert queue_files(rehearsal_host, "running") or queue_files(rehearsal_host, "pending")
    wait_until_idle(rehearsal_host)
    for name in names:
        assert remote_path(rehearsal_host, f"outputs/runs/{name}-1/exit_code").read_text() == "0\n"
    for prompt, name in zip(prompts, names, strict=True):
        again = script(project, "full_cycle.sh", prompt, "--no-upscale")
        assert again.returncode == 0, again.stderr
        assert "already finished ok" in again.stderr and "started" not in again.stderr
        assert (project / "outputs" / "runs" / f"{name}-1" / "output.mp4").is_file()
    assert sorted(p.name for p in remote_path(rehearsal_host, "outputs/runs").glob("killed *")) == \
        [f"{name}-1" for name in names]
    assert sorted(r["run_id"] for r in records(project)) == [f"{name}-1" for name in names]  # one line per run


@pytest.mark.usefixtures("endless_jobs")
def test_two_clients_enqueuing_at_once(project, rehearsal_host):
    shot = add_shot(project, "twin_shot")
    prompts = uploaded(project, ["twin a", "twin b", "twin c"], shot)
    assert script(project, "run_inference_remote.sh", prompts[0], "--detach").returncode == 0
    clients = [start(project, "run_inference_remote.sh", prompt, "--detach") for prompt in prompts[1:]]
    said = [client.communicate(timeout=120)[1] for client in clients]
    assert [client.returncode for client in clients] == [0, 0], said
    positions = sorted(int(re.search(r"queued behind (\d) job", text).group(1)) for text in said)
    assert positions == [1, 2], said  # each got its own place
    pending = queue_files(rehearsal_host, "pending")
    assert sorted(folder_of(job) for job in pending) == ["outputs/runs/twin b-1", "outputs/runs/twin c-1"]
    assert len({job.name for job in pending}) == 2
    for name in ("twin b", "twin c", "twin a"):
        assert tool(project, "kill", name).returncode == 0


@pytest.mark.usefixtures("endless_jobs")
def test_kill_removes_a_queued_job_and_stops_a_running_one(project, rehearsal_host):
    shot = add_shot(project, "kill_shot")
    running, queued, followed = uploaded(project, ["kill a", "kill b", "kill c"], shot)
    assert script(project, "run_inference_remote.sh", running, "--detach").returncode == 0
    assert script(project, "run_inference_remote.sh", queued, "--detach").returncode == 0
    removed = tool(project, "kill", "kill b-1")
    assert removed.returncode == 0 and removed.stdout.strip() == "removed kill b-1 from the queue"
    assert remote_path(rehearsal_host, "outputs/runs/kill b-1/exit_code").read_text() == f"{QueueCode.CANCELLED}\n"
    rows = {row["run_id"]: row for row in queue_json(project)}
    assert rows["kill b-1"]["state"] == "cancelled" and rows["kill a-1"]["state"] == "running"
    follower = start(project, "run_inference_remote.sh", followed)  # Ctrl-C while it waits in the queue
    wait_for_line(follower, "kill c-1 queued behind 1 job")
    follower.send_signal(2)
    _, stderr = follower.communicate(timeout=60)
    assert follower.returncode == 130 and "removed kill c-1 from the queue" in stderr
    assert records(project)[-1]["status"] == "cancelled"
    assert remote_path(rehearsal_host, "outputs/runs/kill c-1/exit_code").read_text() == f"{QueueCode.CANCELLED}\n"
    stopped = tool(project, "kill", "kill a-1")
    assert stopped.returncode == 0 and stopped.stdout.startswith("stopped ct1-run-kill-a-")
    wait_until_idle(rehearsal_host)
    runner_log = remote_path(rehearsal_host, ".cosmos-tools/queue/runner.log").read_text()
    assert "ct1-run-kill-a-" in runner_log and "ct1-run-kill-b-" not in runner_log  # removed: never started
    assert "ct1-run-kill-c-" not in runner_log
    again = tool(project, "kill", "kill b-1")
    assert again.returncode == 1 and "is running or queued" in again.stderr


def test_a_failing_docker_run_shows_its_cause(project, rehearsal_host):
    shot = add_shot(project, "refused_shot")
    (prompt,) = uploaded(project, ["refused"], shot)
    done = subprocess.run([str(REPO / "scripts" / "run_inference_remote.sh"), str(prompt)], cwd=project,
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "DOCKER_IMAGE": "nvcr.io/no/such-image:1"})
    assert done.returncode == 1
    assert "refused-1: docker could not start the container: docker: Error response from daemon: pull access " \
        "denied" in done.stderr
    log = remote_path(rehearsal_host, "outputs/runs/refused-1/run.log").read_text()
    assert "docker run failed" in log and "pull access denied" in log
    assert remote_path(rehearsal_host, "outputs/runs/refused-1/exit_code").read_text() == \
        f"{QueueCode.DOCKER_RUN_FAILED}\n"
    wait_until_idle(rehearsal_host)
    empty_queue(rehearsal_host)


def test_rehearsal_load_and_sample_seconds_are_engine_settings(tmp_path):
    from cosmos_tools.rehearsal.host import set_stand_in_timing

    engine = tmp_path / "remote" / "docker-state" / "engine.json"
    engine.parent.mkdir(parents=True)
    set_stand_in_timing(tmp_path, 4, 1)
    env = json.loads(engine.read_text())["env"]
    assert (env["COSMOS_STANDIN_LOAD_SECONDS"], env["COSMOS_STANDIN_SAMPLE_SECONDS"]) == ("4", "1")
    set_stand_in_timing(tmp_path, None, 0.5)  # None: unchanged
    assert json.loads(engine.read_text())["env"]["COSMOS_STANDIN_LOAD_SECONDS"] == "4"
    set_stand_in_seconds(tmp_path, 2)  # one total time again: the split is dropped
    assert json.loads(engine.read_text())["env"] == {"COSMOS_STANDIN_SECONDS": "2"}
