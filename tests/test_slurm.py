"""BACKEND=slurm against a real Slurm (munge, slurmctld, slurmd with 4 stand-in GPUs) behind the rehearsal sshd:
the whole cycle, a sweep side by side, kill of a running and of a pending job, a cut connection, a time-out, a
Cosmos 3 cycle and critiques (both critics) as Slurm jobs."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
import time

import pytest
from prompt_fixtures import write_prompt_json
from test_cosmos3 import NANO, prompt3
from test_critic import stand_in, two_runs, use_critic
from test_cycle import (
    HOSTILE_NAME,
    REPO,
    add_shot,
    cut_sessions,
    records,
    remote_path,
    script,
    start,
    tool,
    wait_for_line,
    write_prompt,
)

from cosmos_tools import critic
from cosmos_tools.rehearsal import slurm as rehearsal_slurm
from cosmos_tools.rehearsal.host import set_stand_in_seconds
from cosmos_tools.remote.codes import QueueCode


def squeue(host) -> list[list[str]]:
    """This cluster's jobs: [id, state, reason] each."""
    done = subprocess.run(["squeue", "-h", "-o", "%i %T %r"], env=rehearsal_slurm.client_env(host.dir),
                          capture_output=True, text=True, check=True)
    return [line.split() for line in done.stdout.splitlines()]


def alive(pid: int) -> bool:
    """True if ``pid`` runs (a zombie its parent has not reaped yet is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_until(what: str, ready, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise AssertionError(f"never: {what}")
        time.sleep(0.2)


@pytest.fixture
def timed_jobs(slurm_host):
    """Set the stand-in's seconds per run (``timed_jobs(s)``); afterwards every job left is cancelled."""
    yield lambda seconds: set_stand_in_seconds(slurm_host.dir, seconds)
    set_stand_in_seconds(slurm_host.dir, 0.3)
    subprocess.run(["scancel", "--user", "root" if os.geteuid() == 0 else os.environ.get("USER", "")],
                   env=rehearsal_slurm.client_env(slurm_host.dir), capture_output=True)
    wait_until("the cluster is empty", lambda: not squeue(slurm_host))


def queue_rows(project) -> dict[str, dict]:
    done = tool(project, "queue", "--json")
    assert done.returncode == 0, done.stderr
    return {row["run_id"]: row for row in json.loads(done.stdout)}


def test_full_cycle_through_slurm_with_a_hostile_name(slurm_project, slurm_host):
    shot = add_shot(slurm_project)
    prompt = write_prompt(slurm_project, HOSTILE_NAME, shot)
    done = script(slurm_project, "full_cycle.sh", prompt.relative_to(slurm_project))
    assert done.returncode == 0, done.stderr
    out = slurm_project / "outputs" / "runs" / f"{HOSTILE_NAME}-1"
    assert (out / "output.mp4").stat().st_size > 0
    assert (out.parent / f"{HOSTILE_NAME}-1_upscaled" / "output.mp4").is_file()
    assert not list(slurm_project.glob("HACKED*")) and not list(slurm_host.remote_dir.glob("HACKED*"))
    slurm_id = (out / "slurm_job_id").read_text().strip()
    assert f"submitted {HOSTILE_NAME}-1 to Slurm as job {slurm_id}" in done.stderr
    assert json.loads((out / "provenance.json").read_text())["slurm_job_id"] == slurm_id
    used = json.loads((out / "spec_used.json").read_text())
    assert used["docker"][:4] == ["sbatch", "--parsable", f"--job-name={used['container']}", "--gres=gpu:1"]
    log = remote_path(slurm_host, f"outputs/runs/{HOSTILE_NAME}-1/run.log").read_text()
    assert f"Slurm job {slurm_id} started on" in log and "Saved video to" in done.stdout
    assert (out / "exit_code").read_text() == "0\n"
    (line,) = records(slurm_project)
    assert line["status"] == "ok" and line["run_id"] == f"{HOSTILE_NAME}-1" and line["slurm_job"] == slurm_id
    again = script(slurm_project, "full_cycle.sh", prompt)
    assert again.returncode == 0 and again.stderr.count("already finished ok") == 2, again.stderr
    assert len(records(slurm_project)) == 1
    status = json.loads(tool(slurm_project, "status", "--json").stdout)
    assert {row["run_id"]: row["state"] for row in status}[f"{HOSTILE_NAME}-1"] == "ok"
    finished = tool(slurm_project, "attach", str(prompt))
    assert finished.returncode == 0 and "ended ok" in finished.stderr


def test_a_four_seed_sweep_runs_side_by_side_on_the_four_gpus(slurm_project, slurm_host, timed_jobs):
    timed_jobs(4)
    shot = add_shot(slurm_project)
    prompts = [write_prompt(slurm_project, f"seed_{i}", shot, seed=i) for i in range(1, 5)]
    most, stop = [0], threading.Event()

    def watch():
        while not stop.is_set():
            most[0] = max(most[0], sum(state == "RUNNING" for _, state, _ in squeue(slurm_host)))
            time.sleep(0.2)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        done = script(slurm_project, "full_cycle.sh", *prompts, "--no-upscale", timeout=180)
    finally:
        stop.set()
        watcher.join()
    assert done.returncode == 0, done.stderr
    assert most[0] == 4  # all four held a GPU at once
    assert done.stderr.index("submitted seed_4-1") < done.stderr.index("started seed_1-1")  # submitted together
    lines = records(slurm_project)
    assert sorted(r["run_id"] for r in lines) == [f"seed_{i}-1" for i in range(1, 5)]
    assert {r["status"] for r in lines} == {"ok"} and len({r["slurm_job"] for r in lines}) == 4


def test_kill_a_running_and_a_pending_job(slurm_project, slurm_host, timed_jobs):
    timed_jobs(600)
    shot = add_shot(slurm_project)
    big, small = (write_prompt(slurm_project, name, shot, seed=i) for i, name in enumerate(["all gpus", "waits"]))
    for prompt in (big, small):
        assert script(slurm_project, "upload_prompt.sh", prompt, "--quiet").returncode == 0
    first = script(slurm_project, "run_inference_remote.sh", big, "--detach", env={"NUM_GPU": "4"})
    assert first.returncode == 0, first.stderr
    wait_until("the 4-GPU job runs", lambda: queue_rows(slurm_project)["all gpus-1"]["state"] == "running")
    assert script(slurm_project, "run_inference_remote.sh", small, "--detach").returncode == 0
    wait_until("the 1-GPU job waits for a GPU", lambda: queue_rows(slurm_project)["waits-1"]["note"] == "Resources")
    table = tool(slurm_project, "queue").stdout
    assert "queued (Resources)" in table and "SLURM JOB" in table
    removed = tool(slurm_project, "kill", "waits-1")
    assert removed.returncode == 0 and removed.stdout.strip() == "removed waits-1 from the queue", removed.stderr
    assert remote_path(slurm_host, "outputs/runs/waits-1/exit_code").read_text() == f"{QueueCode.CANCELLED}\n"
    stopped = tool(slurm_project, "kill", "all gpus-1")
    assert stopped.returncode == 0 and stopped.stdout.startswith("stopped ct1-run-all-gpus-"), stopped.stderr
    code = remote_path(slurm_host, "outputs/runs/all gpus-1/exit_code")
    wait_until("the stopped job wrote its exit code", code.exists, timeout=60)
    assert code.read_text().strip() in ("130", "137", "143")
    states = {row["run_id"]: row["state"] for row in json.loads(tool(slurm_project, "status", "--json").stdout)}
    assert states["all gpus-1"] == "stopped" and states["waits-1"] == "cancelled"
    assert "Slurm job" in remote_path(slurm_host, "outputs/runs/waits-1/run.log").read_text()
    assert "started on" not in remote_path(slurm_host, "outputs/runs/waits-1/run.log").read_text()  # never ran
    wait_until("the cluster is empty", lambda: not squeue(slurm_host))
    again = tool(slurm_project, "kill", "waits-1")
    assert again.returncode == 1 and "is running or queued" in again.stderr


def test_a_cut_connection_mid_run_reattaches_without_losing_or_repeating_log(slurm_project, slurm_host, timed_jobs):
    timed_jobs(4)
    shot = add_shot(slurm_project)
    prompt = write_prompt(slurm_project, "cut", shot)
    proc = start(slurm_project, "full_cycle.sh", prompt, "--no-upscale")
    wait_for_line(proc, "started cut-1 as Slurm job")
    time.sleep(0.5)
    cut_sessions(slurm_host)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    assert "connection lost; reconnecting" in stderr
    log = remote_path(slurm_host, "outputs/runs/cut-1/run.log").read_text()
    assert stdout.startswith(log) and log.count("started on") == 1  # every byte once, one Slurm job
    (line,) = records(slurm_project)
    assert line["status"] == "ok"


def test_a_job_over_slurm_time_reads_timed_out_with_its_log_tail(slurm_project, slurm_host, timed_jobs):
    """Slurm counts time limits in whole minutes and checks them every 30 s: about 1.5 minutes."""
    timed_jobs(600)
    shot = add_shot(slurm_project)
    prompt = write_prompt(slurm_project, "too long", shot)
    done = script(slurm_project, "full_cycle.sh", prompt, "--no-upscale", timeout=300, env={"SLURM_TIME": "0:05"})
    assert done.returncode == 1, done.stderr
    assert "FAILED too long-1: timed out: Slurm stopped it at its time limit (SLURM_TIME)" in done.stderr
    assert "--- last" in done.stderr and "reached its time limit" in done.stderr  # the log tail
    assert remote_path(slurm_host, "outputs/runs/too long-1/exit_code").read_text() == f"{QueueCode.TIMED_OUT}\n"
    (line,) = records(slurm_project)
    assert line["status"] == "failed" and "timed out" in line["error"]
    states = {row["run_id"]: row["state"] for row in json.loads(tool(slurm_project, "status", "--json").stdout)}
    assert states["too long-1"] == "timed out"


def test_ctrl_c_cancels_the_slurm_job_and_a_killed_client_reattaches(slurm_project, slurm_host, timed_jobs):
    timed_jobs(600)
    shot = add_shot(slurm_project)
    prompt = write_prompt(slurm_project, "interrupted", shot)
    proc = start(slurm_project, "full_cycle.sh", prompt, "--no-upscale")
    wait_for_line(proc, "started interrupted-1 as Slurm job")
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "interrupted: stopped interrupted-1 on the box" in stderr, stderr
    assert records(slurm_project)[-1]["status"] == "cancelled"
    wait_until("the cluster is empty", lambda: not squeue(slurm_host))
    timed_jobs(3)
    proc = start(slurm_project, "full_cycle.sh", prompt, "--no-upscale")
    wait_for_line(proc, "started interrupted-2 as Slurm job")
    proc.kill()  # no chance to cancel: the job goes on, the next cycle follows it instead of submitting again
    proc.communicate()
    again = script(slurm_project, "full_cycle.sh", prompt, "--no-upscale")
    assert again.returncode == 0, again.stderr
    assert "submitted" not in again.stderr and "interrupted-2" in again.stderr
    assert [r["status"] for r in records(slurm_project)] == ["cancelled", "ok"]


def test_rehearsal_slurm_hosts_coexist_and_down_stops_everything(slurm_host, tmp_path):
    from cosmos_tools.rehearsal.host import down, up

    second = up(tmp_path / "second", slurm=True)
    try:
        assert second.port != slurm_host.port
        for info in (slurm_host, second):
            done = subprocess.run(["sinfo", "-h", "-o", "%P %G"], env=rehearsal_slurm.client_env(info.dir),
                                  capture_output=True, text=True, check=True)
            assert done.stdout.split() == ["rehearsal*", "gpu:4"]
        pids = [int((second.dir / "slurm" / name).read_text()) for name in
                ("slurmctld.pid", "slurmd.pid", "munge/munged.pid")]
        for pid in pids:
            assert str(second.dir).encode() in open(f"/proc/{pid}/cmdline", "rb").read()
    finally:
        assert down(second.dir)
    assert not any(alive(pid) for pid in pids)
    assert rehearsal_slurm.running(slurm_host.dir)  # the other cluster goes on


def test_rehearsal_slurm_refuses_a_folder_slurm_conf_cannot_hold(tmp_path):
    done = subprocess.run([str(REPO / ".venv/bin/cosmos-tools"), "rehearsal", "up", str(tmp_path / "a b"), "--slurm"],
                          capture_output=True, text=True)
    assert done.returncode == 1 and "slurm.conf cannot hold a path with spaces" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and not (tmp_path / "a b").exists()


def test_ctrl_c_in_a_sweep_cancels_every_job_it_submitted(slurm_project, slurm_host, timed_jobs):
    timed_jobs(600)
    shot = add_shot(slurm_project)
    prompts = [write_prompt(slurm_project, f"stop_{i}", shot, seed=i) for i in range(1, 4)]
    proc = start(slurm_project, "full_cycle.sh", *prompts, "--no-upscale")
    wait_for_line(proc, "started stop_1-1 as Slurm job")
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "interrupted: stopped stop_1-1 on the box" in stderr
    assert "cancelled the 2 other submitted job(s) of this experiment" in stderr
    wait_until("the cluster is empty", lambda: not squeue(slurm_host), timeout=60)


@pytest.mark.parametrize("name", ["reason1", "cosmos3"])
def test_a_critique_of_finished_runs_is_a_slurm_job(slurm_project, slurm_host, name):
    run_ids = two_runs(slurm_project, f"judged_{name}")
    settings = {}
    if name == "reason1":  # a checkout of its own: the job works there and finds the videos in REMOTE_DIR
        script_path = remote_path(slurm_host, critic.REASON1_SCRIPT)
        checkout = slurm_host.remote_dir.parent / "reason1 checkout"
        (checkout / script_path.parent.relative_to(slurm_host.remote_dir)).mkdir(parents=True, exist_ok=True)
        shutil.copy2(script_path, checkout / critic.REASON1_SCRIPT)
        settings["CRITIC_DIR"] = f"'{checkout}'"
    use_critic(slurm_project, name, **settings)
    done = script(slurm_project, "critique.sh", *run_ids, "--trials", "2")
    assert done.returncode == 0, done.stderr
    job = json.loads((slurm_project / "outputs" / "runs" / run_ids[0] / "critic.json").read_text())["job"]
    slurm_id = remote_path(slurm_host, f"{job}/slurm_job_id").read_text().strip()
    assert f"to Slurm as job {slurm_id}" in done.stderr
    used = json.loads(remote_path(slurm_host, f"{job}/spec_used.json").read_text())
    assert used["docker"][0] == "sbatch" and "--gres=gpu:1" in used["docker"]
    if "CRITIC_DIR" in settings:
        assert f"--chdir={checkout}" in used["docker"]
    assert f"Slurm job {slurm_id} started on" in remote_path(slurm_host, f"{job}/run.log").read_text()
    assert remote_path(slurm_host, f"{job}/exit_code").read_text() == "0\n"
    for run_id in run_ids:
        data = json.loads((slurm_project / "outputs" / "runs" / run_id / "critic.json").read_text())
        video = (slurm_project / "outputs" / "runs" / run_id / "output.mp4").read_bytes()
        if name == "reason1":
            verdicts = [stand_in("video_critic").verdict(video, k) for k in (1, 2)]
            assert data["score"] == round(verdicts.count("No") / 2, 4)
        else:
            ratings = [stand_in("reasoner_stand_in").rating(video, seed) for seed in (1, 2)]
            assert data["score"] == round(sum((r - 1) / 4 for r in ratings) / 2, 4)
        assert data["critic"] == name and "STAND-IN" in data["reasoning"]
    table = done.stdout[done.stdout.index("rank"):]
    assert critic.ADVISORY in table


def test_a_cosmos3_cycle_through_slurm(slurm_project, slurm_host):
    add_shot(slurm_project, frames=8)
    prompt = write_prompt_json(slurm_project, prompt3(resolution="256"), "city3")
    done = script(slurm_project, "full_cycle.sh", prompt.relative_to(slurm_project), "--no-upscale",
                  env={"MODEL": NANO})
    assert done.returncode == 0, done.stderr
    run = slurm_project / "outputs" / "runs" / "city3-1"
    assert (run / "output.mp4").stat().st_size > 0 and (run / "output_control_depth.mp4").is_file()
    used = json.loads((run / "spec_used.json").read_text())
    assert used["docker"][0] == "sbatch" and used["model"] == NANO
    log = (run / "run.log").read_text()
    assert "STAND-IN Cosmos 3" in log and "[stand-in torchrun]" in log
    slurm_id = (run / "slurm_job_id").read_text().strip()
    (line,) = records(slurm_project)
    assert line["status"] == "ok" and line["slurm_job"] == slurm_id and line["weights"] == "depth=0.5,seg=0.5"
    provenance = json.loads((run / "provenance.json").read_text())
    assert provenance["model"] == NANO and provenance["slurm_job_id"] == slurm_id
