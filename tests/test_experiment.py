"""Experiments end to end against the rehearsal host: several prompts or a sweep manifest, one connection,
batchable variants in one batch job, the others one after another, one run folder and history line each."""

from __future__ import annotations

import json
import os
import signal

import pytest
from test_cycle import (  # noqa: F401 (fixtures)
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

from cosmos_tools.rehearsal.host import set_stand_in_seconds


def test_batchable_sweep_runs_as_one_batch_with_a_run_folder_and_history_line_per_variant(project, rehearsal_host):
    shot = add_shot(project)
    prompts = [write_prompt(project, f"city_{i}", shot, text=f"a city at dusk, take {i}",
                            edge={"control_weight": 0.1 * (i + 1)}) for i in range(3)]
    done = script(project, "full_cycle.sh", *(p.relative_to(project) for p in prompts))
    assert done.returncode == 0, done.stderr
    assert "job 1: batch of 3" in done.stdout
    assert "--batch_input_path" in done.stdout  # the batch's live log reached the terminal
    lines = records(project)
    assert [r["run_id"] for r in lines] == ["city_0-1", "city_1-1", "city_2-1"]
    assert all(r["status"] == "ok" and r["upscale"] == "no" for r in lines)
    for i in range(3):
        folder = project / "outputs" / "runs" / f"city_{i}-1"
        for name in ("output.mp4", "output.txt", "run.log", "controlnet_spec.json", "prompt_spec.json",
                     "spec_used.json", "provenance.json", "exit_code"):
            assert (folder / name).is_file(), (i, name)
        assert (folder / "output.txt").read_text() == f"a city at dusk, take {i}"
        spec = json.loads((folder / "controlnet_spec.json").read_text())
        assert spec["edge"] == {"control_weight": 0.1 * (i + 1)}  # the variant's own spec, as a single run's
        assert (folder / "prompt_spec.json").read_bytes() == prompts[i].read_bytes()
        assert os.readlink(project / "outputs" / f"city_{i}") == f"runs/city_{i}-1"
        prov = json.loads((folder / "provenance.json").read_text())
        assert prov["batch_line"] == i and prov["run_id"] == f"city_{i}-1"
    batches = list((remote_path(rehearsal_host, "outputs/batches/runs")).iterdir())
    assert len([b for b in batches if b.name.startswith("city_0~batch1-")]) >= 1
    table = done.stdout[done.stdout.index("variant"):]
    assert "city_2-1" in table and "ok" in table
    page = project / "outputs" / "review" / "experiment_city_0.html"  # the experiment ends with its review
    assert f"review: {page.relative_to(project)}" in done.stdout
    assert all(f"city_{i}-1" in page.read_text() for i in range(3)) and page.with_suffix(".png").is_file()


def test_a_blocked_line_keeps_the_results_before_it_and_requeues_the_lines_after_it(project, rehearsal_host):
    shot = add_shot(project)
    texts = ["a quiet street", "a street GUARDRAIL_BLOCK_ME", "a busy street", "a wet street"]
    prompts = [write_prompt(project, f"street_{i}", shot, text=text) for i, text in enumerate(texts)]
    done = script(project, "full_cycle.sh", *(p.relative_to(project) for p in prompts))
    assert done.returncode == 1, done.stderr
    assert "queueing the 2 line(s) after it again as a new batch" in done.stderr
    assert "job 1: batch of 4" in done.stdout
    by_run = {r["run_id"]: r for r in records(project)}
    assert {k: r["status"] for k, r in by_run.items()} == {"street_0-1": "ok", "street_1-1": "blocked",
                                                          "street_2-1": "ok", "street_3-1": "ok"}
    runs = project / "outputs" / "runs"
    assert (runs / "street_0-1" / "output.txt").read_text() == "a quiet street"
    assert (runs / "street_2-1" / "output.txt").read_text() == "a busy street"  # mapped to its own line, not shifted
    assert (runs / "street_3-1" / "output.txt").read_text() == "a wet street"
    blocked = runs / "street_1-1"
    assert not (blocked / "output.mp4").exists() and "GUARDRAIL BLOCKED" in (blocked / "run.log").read_text()
    assert "GUARDRAIL BLOCKED" not in (runs / "street_0-1" / "run.log").read_text()
    assert by_run["street_2-1"]["output"] == "outputs/runs/street_2-1"
    # The first batch's lines after the blocked one were never processed: they got no folder from it.
    first = json.loads(next(remote_path(rehearsal_host, "outputs/batches/runs").glob("street_0~batch1-*/mapping.json"))
                       .read_text())
    assert [row["status"] for row in first] == ["ok", "blocked", "pending", "pending"]


def test_a_sweep_of_seeds_runs_as_consecutive_single_jobs(project, rehearsal_host):
    shot = add_shot(project)
    base = write_prompt(project, "pier", shot, text="a pier")
    made = script(project, "sweep.sh", base.relative_to(project), "--set", "seed=1,2", "--name", "pier_seeds")
    assert made.returncode == 0, made.stderr
    manifest = project / "inputs" / "sweeps" / "pier_seeds.json"
    dry = script(project, "full_cycle.sh", manifest.relative_to(project), "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "job 1: single run" in dry.stdout and "job 2: single run" in dry.stdout and not records(project)
    done = script(project, "full_cycle.sh", manifest.relative_to(project))
    assert done.returncode == 0, done.stderr
    assert "job 2: single run" in done.stdout and "--batch_input_path" not in done.stdout
    lines = records(project)
    assert len(lines) == 2 and all(r["status"] == "ok" for r in lines)
    assert sorted(r["seed"] for r in lines) == ["1", "2"]
    assert not remote_path(rehearsal_host, "outputs/batches").exists() or not any(
        remote_path(rehearsal_host, "outputs/batches/runs").glob("pier*"))
    again = script(project, "full_cycle.sh", manifest.relative_to(project), "--no-review")  # nothing run again
    assert again.returncode == 0, again.stderr
    assert "review:" not in again.stdout
    assert "found done" in again.stdout and len(records(project)) == 2


def test_upscale_after_a_batch_gives_each_ok_variant_its_4k_upscale_with_its_own_settings(project, rehearsal_host):
    shot = add_shot(project)
    own = {"control_weight": 0.3, "seed": 7, "prompt": "a crisp dock"}
    prompts = [write_prompt(project, f"dock_{i}", shot, text=f"a dock, take {i}", **({"_upscale": own} if i else {}))
               for i in range(2)]
    done = script(project, "full_cycle.sh", *(p.relative_to(project) for p in prompts), "--upscale")
    assert done.returncode == 0, done.stderr
    assert "job 1: batch of 2" in done.stdout  # _upscale is ours: it does not split the batch
    for i in range(2):
        assert (project / "outputs" / "runs" / f"dock_{i}-1_upscaled" / "output.mp4").stat().st_size > 0
    lines = records(project)
    assert [(r["upscale"], r["upscaled"]) for r in lines] == [(w, f"outputs/runs/dock_{i}-1_upscaled")
                                                              for i, w in enumerate(("0.5", "0.3"))]
    spec = json.loads((project / "outputs/runs/dock_1-1_upscaled/controlnet_spec.json").read_text())
    assert (spec["upscale"]["control_weight"], spec["seed"], spec["prompt"]) == (0.3, 7, "a crisp dock")
    plain = json.loads((project / "outputs/runs/dock_0-1_upscaled/controlnet_spec.json").read_text())
    assert plain["upscale"]["control_weight"] == 0.5 and plain.get("prompt") != "a crisp dock"
    forced = script(project, "full_cycle.sh", *(p.relative_to(project) for p in prompts), "--upscale",
                    "--upscale-weight", "0.8", "--no-review")  # the command line wins: new upscales of both runs
    assert forced.returncode == 0, forced.stderr
    assert [r["upscale"] for r in records(project)[2:]] == ["0.8", "0.8"]


def test_render_of_a_manifest_shows_the_grouping_and_each_batch_line(project):
    shot = add_shot(project)
    base = write_prompt(project, "quay", shot, text="a quay")
    made = script(project, "sweep.sh", base.relative_to(project), "--set", "edge.control_weight=0.2,0.8",
                  "--set", "seed=1,2", "--name", "quay_mix")
    assert made.returncode == 0, made.stderr
    manifest = project / "inputs" / "sweeps" / "quay_mix.json"
    done = tool(project, "render", manifest)
    assert done.returncode == 0, done.stderr
    assert "4 variants in 2 job(s)" in done.stdout
    assert done.stdout.count("batch of 2 (one model load; lines differ in edge.control_weight)") == 2
    assert '"control_overrides": {"edge": {"control_weight": 0.8}}' in done.stdout
    data = json.loads(tool(project, "render", manifest, "--json").stdout)
    assert [job["batch"] for job in data["jobs"]] == [True, True] and data["name"] == "quay_mix"
    refused = tool(project, "render", manifest, "--upscale")
    assert refused.returncode == 2 and "not a sweep manifest" in refused.stderr


def test_refusals_before_anything_is_sent(project, rehearsal_host):
    shot = add_shot(project)
    good = write_prompt(project, "lane_ok", shot).relative_to(project)
    bad = project / "inputs" / "prompts" / "lane_bad.json"
    bad.write_text(json.dumps({"prompt": "x", "input_video_path": f"inputs/videos/{shot}/color.mp4",
                               "edge": {"control_weight": -1}}))
    done = script(project, "full_cycle.sh", good, bad.relative_to(project))
    assert done.returncode == 1 and "fix the prompt (nothing was sent)" in done.stderr.splitlines()[-1]
    assert not remote_path(rehearsal_host, "inputs/prompts/lane_ok.json").exists() and not records(project)
    twice = script(project, "full_cycle.sh", good, good)
    assert twice.returncode == 1 and "give each prompt once" in twice.stderr
    made = script(project, "sweep.sh", good, "--set", "seed=1,2", "--name", "lane_seeds")
    assert made.returncode == 0, made.stderr
    mixed = script(project, "full_cycle.sh", "inputs/sweeps/lane_seeds.json", good)
    assert mixed.returncode == 1 and "is a sweep manifest: give it alone" in mixed.stderr
    broken = project / "inputs" / "sweeps" / "broken.json"
    broken.write_text(json.dumps({"name": "broken", "base": str(good), "variants": "none"}))
    refused = script(project, "full_cycle.sh", broken.relative_to(project))
    assert refused.returncode == 1 and '"variants" must be a non-empty list' in refused.stderr
    assert "Traceback" not in refused.stderr + mixed.stderr + twice.stderr + done.stderr


def test_one_connection_per_experiment_and_nothing_run_twice(project, rehearsal_host):
    from cosmos_tools import transport
    from cosmos_tools.config import load_config
    from cosmos_tools.experiment import run_experiment

    shot = add_shot(project)
    prompts = [write_prompt(project, f"yard_{i}", shot, text=f"a yard, take {i}") for i in range(2)]
    prompts.append(write_prompt(project, "yard_seed", shot, text="a yard", seed=5))
    opened = transport.CONNECTIONS_OPENED
    run_experiment(load_config(project), prompts, echo=lambda data: None)
    assert transport.CONNECTIONS_OPENED - opened == 1
    assert len(records(project)) == 3
    opened = transport.CONNECTIONS_OPENED
    run_experiment(load_config(project), prompts, echo=lambda data: None)  # everything found done
    assert transport.CONNECTIONS_OPENED - opened == 1 and len(records(project)) == 3
    assert sorted(p.name for p in (project / "outputs" / "runs").iterdir()) == ["yard_0-1", "yard_1-1", "yard_seed-1"]


def test_a_rerun_after_the_client_was_killed_reattaches_to_the_running_batch(project, rehearsal_host):
    shot = add_shot(project)
    prompts = [write_prompt(project, f"mill_{i}", shot, text=f"a mill, take {i}",
                            edge={"control_weight": 0.1 * (i + 1)}) for i in range(3)]
    args = [p.relative_to(project) for p in prompts]
    set_stand_in_seconds(rehearsal_host.dir, 4)  # the batch runs long enough to be found running
    try:
        client = start(project, "full_cycle.sh", *args)
        wait_for_line(client, "started mill_0~batch1 as container")
        client.kill()  # SIGKILL: the batch keeps running on the box, no history line
        client.communicate()
        assert records(project) == []
        again = script(project, "full_cycle.sh", *args)
    finally:
        set_stand_in_seconds(rehearsal_host.dir, 0.3)
    assert again.returncode == 0, again.stderr
    assert "batch mill_0~batch1 is already running on the box" in again.stderr and "re-attaching" in again.stderr
    assert "one model load" not in again.stderr  # no new batch was started
    assert len(list(remote_path(rehearsal_host, "outputs/batches/runs").glob("mill_0~batch1-*"))) == 1
    assert sorted(p.name for p in remote_path(rehearsal_host, "outputs/runs").glob("mill_*")) == \
        ["mill_0-1", "mill_1-1", "mill_2-1"]
    assert [(r["run_id"], r["status"]) for r in records(project)] == [(f"mill_{i}-1", "ok") for i in range(3)]
    for i in range(3):
        assert (project / "outputs" / "runs" / f"mill_{i}-1" / "output.mp4").is_file()


def test_detach_queues_every_job_and_the_same_command_collects_them(project, rehearsal_host):
    shot = add_shot(project)
    prompts = [write_prompt(project, f"wharf_{i}", shot, text=f"a wharf, take {i}") for i in range(3)]
    prompts.append(write_prompt(project, "wharf_seed", shot, text="a wharf", seed=9))
    args = [p.relative_to(project) for p in prompts]
    set_stand_in_seconds(rehearsal_host.dir, 3)  # still queued or running when the client comes back
    try:
        detached = script(project, "full_cycle.sh", *args, "--detach", "--upscale")
        assert detached.returncode == 0, detached.stderr
        table = detached.stdout[detached.stdout.index("variant"):]
        for i in range(3):
            assert f"wharf_{i}-1" in table
        assert "wharf_seed-1" in table and "queued behind 1 job" in table  # behind the batch
        assert "detached: 4 variant(s) queued or running on the box" in detached.stderr
        assert records(project) == [] and "review:" not in detached.stdout
        rows = json.loads(tool(project, "queue", "--json").stdout)
        assert {r["run_id"] for r in rows if r["state"] in ("queued", "running")} <= {"wharf_0~batch1-1",
                                                                                    "wharf_seed-1"}
        again = script(project, "full_cycle.sh", *args)
    finally:
        set_stand_in_seconds(rehearsal_host.dir, 0.3)
    assert again.returncode == 0, again.stderr
    assert "one model load" not in again.stderr and "started wharf_seed-2" not in again.stderr  # nothing queued twice
    assert len(list(remote_path(rehearsal_host, "outputs/batches/runs").glob("wharf_0~batch1-*"))) == 1
    assert sorted(p.name for p in remote_path(rehearsal_host, "outputs/runs").glob("wharf*")) == \
        ["wharf_0-1", "wharf_1-1", "wharf_2-1", "wharf_seed-1"]
    assert sorted((r["run_id"], r["status"]) for r in records(project)) == \
        [("wharf_0-1", "ok"), ("wharf_1-1", "ok"), ("wharf_2-1", "ok"), ("wharf_seed-1", "ok")]
    assert all((project / "outputs" / "runs" / f"wharf_{x}-1" / "output.mp4").is_file() for x in ("0", "1", "seed"))
    assert "review: outputs/review/experiment_wharf_0.html" in again.stdout
    third = script(project, "full_cycle.sh", *args, "--no-review")
    assert third.returncode == 0 and "found done" in third.stdout and len(records(project)) == 4


def test_a_killed_client_of_a_requeued_batch_runs_nothing_twice(project, rehearsal_host):
    shot = add_shot(project)
    texts = ["a calm canal", "a canal GUARDRAIL_BLOCK_ME", "a misty canal", "a canal at noon"]
    prompts = [write_prompt(project, f"canal_{i}", shot, text=text) for i, text in enumerate(texts)]
    args = [p.relative_to(project) for p in prompts]
    set_stand_in_seconds(rehearsal_host.dir, 4)  # the requeued batch runs long enough to be found running
    try:
        client = start(project, "full_cycle.sh", *args)
        wait_for_line(client, "started canal_0~batch2 as container")
        client.kill()  # SIGKILL while the lines after the blocked one run again
        client.communicate()
        assert [(r["run_id"], r["status"]) for r in records(project)] == [("canal_0-1", "ok"),
                                                                          ("canal_1-1", "blocked")]
        again = script(project, "full_cycle.sh", *args)
    finally:
        set_stand_in_seconds(rehearsal_host.dir, 0.3)
    assert again.returncode == 1, again.stderr  # canal_1 stays blocked
    assert "batch canal_0~batch2 is already running on the box" in again.stderr
    assert "canal_1-1 was blocked by the guardrail with the same spec" in again.stderr
    assert "one model load" not in again.stderr  # no new batch: the pending lines re-attached
    batches = sorted(p.name for p in remote_path(rehearsal_host, "outputs/batches/runs").glob("canal_0~batch*"))
    assert [b.rsplit("-", 1)[0] for b in batches] == ["canal_0~batch1", "canal_0~batch2"]
    assert sorted(p.name for p in remote_path(rehearsal_host, "outputs/runs").glob("canal_*")) == \
        ["canal_0-1", "canal_1-1", "canal_2-1", "canal_3-1"]
    assert [(r["run_id"], r["status"]) for r in records(project)] == [
        ("canal_0-1", "ok"), ("canal_1-1", "blocked"), ("canal_2-1", "ok"), ("canal_3-1", "ok")]
    table = again.stdout[again.stdout.index("variant"):]
    assert "blocked (found blocked)" in table and "ok (found done)" in table


@pytest.mark.usefixtures("endless_jobs")
def test_ctrl_c_during_a_batch_gives_each_variant_a_cancelled_line(project, rehearsal_host):
    shot = add_shot(project)
    prompts = [write_prompt(project, f"quay_{i}", shot, text=f"a quay, take {i}") for i in range(3)]
    client = start(project, "full_cycle.sh", *(p.relative_to(project) for p in prompts))
    wait_for_line(client, "started quay_0~batch1 as container")
    client.send_signal(signal.SIGINT)
    out, err = client.communicate(timeout=120)
    assert client.returncode == 130, err
    assert "interrupted: stopped quay_0~batch1 on the box" in err and "Traceback" not in err
    lines = records(project)
    assert [(r["run_id"], r["status"]) for r in lines] == [(f"quay_{i}-1", "cancelled") for i in range(3)]
    for i in range(3):
        assert (project / "outputs" / "runs" / f"quay_{i}-1" / "run.log").is_file()
    assert "quay_2-1" in out[out.index("variant"):]


@pytest.mark.usefixtures("endless_jobs")
def test_a_batch_killed_while_queued_gives_each_variant_a_cancelled_line(project, rehearsal_host):
    shot = add_shot(project)
    blocker = write_prompt(project, "lock_blocker", shot)
    assert script(project, "upload_prompt.sh", blocker, "--quiet").returncode == 0
    assert script(project, "run_inference_remote.sh", blocker, "--detach").returncode == 0  # holds the box
    prompts = [write_prompt(project, f"lock_{i}", shot, text=f"a lock, take {i}") for i in range(2)]
    client = start(project, "full_cycle.sh", *(p.relative_to(project) for p in prompts), "--no-review")
    wait_for_line(client, "lock_0~batch1 queued behind 1 job")
    rows = json.loads(tool(project, "queue", "--json").stdout)
    batch = next(r for r in rows if r["run"] == "lock_0~batch1")
    assert batch["state"] == "queued" and batch["variants"] == ["lock_0-1", "lock_1-1"]
    killed = tool(project, "kill", "lock_0~batch1")
    assert killed.returncode == 0 and "removed lock_0~batch1-1 from the queue" in killed.stdout
    out, err = client.communicate(timeout=120)
    assert client.returncode == 1, err
    lines = [r for r in records(project) if r["run"].startswith("lock_") and r["run"] != "lock_blocker"]
    assert [(r["run"], r["status"], r.get("run_id")) for r in lines] == [("lock_0", "cancelled", None),
                                                                         ("lock_1", "cancelled", None)]
    assert "removed from the queue before it started" in lines[0]["error"]


@pytest.mark.usefixtures("endless_jobs")
def test_status_queue_and_attach_know_a_batch_and_its_variants(project, rehearsal_host):
    import subprocess

    from test_cycle import REPO

    shot = add_shot(project)
    prompts = [write_prompt(project, f"harbor_{i}", shot, text=f"a harbor, take {i}") for i in range(2)]
    client = start(project, "full_cycle.sh", *(p.relative_to(project) for p in prompts))
    wait_for_line(client, "started harbor_0~batch1 as container")
    client.kill()  # the batch keeps running on the box
    client.communicate()
    queue = tool(project, "queue")
    (line,) = [line for line in queue.stdout.splitlines() if "harbor_0~batch1-1" in line]
    assert queue.returncode == 0 and line.split()[0] == "running"
    assert line.endswith("batch (harbor_0-1, harbor_1-1)")
    (row,) = [r for r in json.loads(tool(project, "status", "--json").stdout) if r["batch"] == "harbor_0~batch1"]
    assert row["kind"] == "batch" and row["job"] == "outputs/batches/runs/harbor_0~batch1-1"
    assert (row["batch"], row["state"], row["variants"]) == ("harbor_0~batch1", "running", ["harbor_0-1", "harbor_1-1"])
    assert "(batch harbor_0~batch1: harbor_0-1, harbor_1-1)" in tool(project, "status").stdout
    attach = subprocess.Popen([str(REPO / ".venv" / "bin" / "cosmos-tools"), "attach", "harbor_1"], cwd=project,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for_line(attach, "harbor_1 is a line of batch harbor_0~batch1")
    assert tool(project, "kill", "harbor_0~batch1").returncode == 0
    _, err = attach.communicate(timeout=120)
    assert attach.returncode == 1 and "harbor_1-1: stopped by a signal" in err
    assert remote_path(rehearsal_host, "outputs/runs/harbor_1-1/exit_code").is_file()


def test_25_variants_run_as_one_multi_record_job_mapped_back_to_their_run_folders(project, rehearsal_host):
    from prompt_fixtures import write_prompt_json
    from test_models import MODEL25, prompt25

    shot = add_shot(project, "shot25_batch")
    texts = ["a bridge at dawn", "a bridge GUARDRAIL_BLOCK_ME", "a bridge in fog"]
    prompts = [write_prompt_json(project, prompt25(shot, prompt=text, seed=i), f"bridge_{i}")
               for i, text in enumerate(texts)]
    prompts.append(write_prompt_json(project, prompt25(shot, depth=None, prompt="a bridge, edges only"), "bridge_edge"))
    args = [p.relative_to(project) for p in prompts]
    env = {"MODEL": MODEL25}
    dry = script(project, "full_cycle.sh", *args, "--dry-run", env=env)
    assert dry.returncode == 0, dry.stderr
    assert "job 1: batch of 3 (one model load; lines differ in prompt, seed)" in dry.stdout
    assert "job 2: single run: bridge_edge" in dry.stdout  # another control set: another model
    made = script(project, "sweep.sh", args[0], "--set", "seed=1,2", "--name", "bridge_seeds")
    assert made.returncode == 0, made.stderr
    shown = json.loads(tool(project, "render", "inputs/sweeps/bridge_seeds.json", "--json").stdout)
    assert [[r["name"] for r in job["lines"]] for job in shown["jobs"]] == [["line_0", "line_1"]]
    done = script(project, "full_cycle.sh", *args, env=env)
    assert done.returncode == 1, done.stderr  # bridge_1 was blocked
    assert "Loading the edge+depth model once for 3 sample(s)" in done.stdout and "queueing" not in done.stderr
    assert [(r["run_id"], r["status"]) for r in records(project)] == [
        ("bridge_0-1", "ok"), ("bridge_1-1", "blocked"), ("bridge_2-1", "ok"), ("bridge_edge-1", "ok")]
    runs = project / "outputs" / "runs"
    for i in (0, 2):
        assert (runs / f"bridge_{i}-1" / "output.txt").read_text() == texts[i]
        assert (runs / f"bridge_{i}-1" / "output_control_depth.mp4").is_file()
        spec = json.loads((runs / f"bridge_{i}-1" / "controlnet_spec.json").read_text())
        assert spec["name"] == "output" and spec["seed"] == i  # the spec a single run of it would use
    assert "Guardrail blocked generation" in (runs / "bridge_1-1" / "run.log").read_text()
    assert not (runs / "bridge_1-1" / "output.mp4").exists()
    again = script(project, "full_cycle.sh", *args, "--no-review", env=env)  # found done or blocked: nothing runs
    assert again.returncode == 1 and len(records(project)) == 4 and "one model load" not in again.stderr


def test_detach_of_one_prompt_queues_its_run_and_a_plain_cycle_collects_it(project, rehearsal_host):
    shot = add_shot(project)
    prompt = write_prompt(project, "jetty", shot).relative_to(project)
    detached = script(project, "full_cycle.sh", prompt, "--detach")
    assert detached.returncode == 0, detached.stderr
    assert "jetty-1" in detached.stdout and records(project) == []
    collected = script(project, "full_cycle.sh", prompt, "--no-upscale")
    assert collected.returncode == 0, collected.stderr
    assert [(r["run_id"], r["status"]) for r in records(project)] == [("jetty-1", "ok")]
    assert (project / "outputs" / "runs" / "jetty-1" / "output.mp4").is_file()
    assert not remote_path(rehearsal_host, "outputs/runs/jetty-2").exists()
