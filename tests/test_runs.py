"""Run ids, provenance, history, `show` and `rerun` (issue 8), on the rehearsal host as a user meets them."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from net_faults import cut_connections
from test_cycle import (  # noqa: F401 (fixtures)
    REPO,
    add_shot,
    records,
    remote_path,
    script,
    slow_jobs,
    start,
    tool,
    wait_for_line,
    write_prompt,
)

from cosmos_tools import history, jobs, provenance
from cosmos_tools.config import load_config
from cosmos_tools.rehearsal.host import DOCKER_IMAGE


def runs(root: Path) -> list[str]:
    folder = root / "outputs" / "runs"
    return sorted(os.listdir(folder)) if folder.is_dir() else []


def test_two_edits_keep_both_results_and_history_carries_provenance(project, rehearsal_host):
    shot = add_shot(project, "edits_shot")
    prompt = write_prompt(project, "edits", shot)
    assert script(project, "full_cycle.sh", prompt, "--no-upscale").returncode == 0
    write_prompt(project, "edits", shot, depth={"control_weight": 0.7,
                                                "input_control": f"inputs/videos/{shot}/depth.mp4"})
    second = script(project, "full_cycle.sh", prompt, "--no-upscale")
    assert second.returncode == 0, second.stderr
    assert runs(project) == ["edits-1", "edits-2"]
    for run_id in ("edits-1", "edits-2"):
        assert (project / "outputs" / "runs" / run_id / "output.mp4").stat().st_size > 0
        assert remote_path(rehearsal_host, f"outputs/runs/{run_id}/output.mp4").is_file()
    assert os.readlink(project / "outputs" / "edits") == "runs/edits-2"
    assert os.readlink(remote_path(rehearsal_host, "outputs/edits")) == "runs/edits-2"
    weights = [json.loads((project / "outputs" / "runs" / r / "controlnet_spec.json").read_text())["depth"]
               ["control_weight"] for r in ("edits-1", "edits-2")]
    assert weights == [0.25, 0.7]  # each folder holds exactly the result of its own settings

    rows = json.loads(tool(project, "history", "--json").stdout)
    assert [r["run_id"] for r in rows] == ["edits-1", "edits-2"]
    for row in rows:
        folder = project / row["output"]
        prov = json.loads((folder / "provenance.json").read_text())
        assert row["output"] == f"outputs/runs/{row['run_id']}" and row["status"] == "ok"
        assert row["spec_sha256"] == hashlib.sha256((folder / "controlnet_spec.json").read_bytes()).hexdigest()
        assert row["spec_sha256"] == prov["spec_sha256"] and row["seed"] == prov["seed"] == 1
        assert row["image_id"].startswith("sha256:") and row["image_id"] == prov["image_id"]
        assert prov["image_digests"] and prov["image_digests"][0].startswith("cosmos-transfer1")
        assert prov["docker_image"] == DOCKER_IMAGE
        assert row["code_version"] == prov["code_version"] == "unknown"  # the rehearsal checkout is no git checkout
        assert row["tool_version"] == prov["tool_version"] and row["tool_version"].startswith("0.1.0")
        assert row["gpu"] == prov["gpu"] and prov["gpu"].endswith("(cosmos-tools rehearsal stand-in) x 8")
        assert row["rerun_of"] == "" and row["prompt_text"] == "a city at dusk" == prov["prompt_text"]
        assert set(prov["timings"]) >= {"upload", "run", "download", "total"}
    assert rows[0]["spec_sha256"] != rows[1]["spec_sha256"]
    assert rows[0]["shot_sha256"] == rows[1]["shot_sha256"] == _shot_sha(project, shot)
    table = tool(project, "history").stdout.splitlines()
    assert table[0].split()[:6] == ["ts", "status", "run", "weights", "seed", "total_s"]
    assert "edits-2" in table[2] and "depth=0.7" in table[2]


def _shot_sha(root: Path, shot: str) -> str:
    """The documented fingerprint: sha256 over "<path in the shot>\\0<sha256>\\n" per file, sorted."""
    folder = root / "inputs" / "videos" / shot
    lines = sorted(f"{p.relative_to(folder).as_posix()}\0{hashlib.sha256(p.read_bytes()).hexdigest()}\n"
                   for p in folder.rglob("*") if p.is_file())
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def test_force_is_a_new_run_and_a_taken_run_id_is_skipped(project, rehearsal_host):
    shot = add_shot(project, "force_shot")
    prompt = write_prompt(project, "forced", shot)
    assert script(project, "upload_prompt.sh", prompt, "--quiet").returncode == 0
    taken = remote_path(rehearsal_host, "outputs/runs/forced-1")  # another client took forced-1 meanwhile
    taken.mkdir(parents=True)
    first = script(project, "run_inference_remote.sh", prompt)
    assert first.returncode == 0, first.stderr
    assert "started forced-2" in first.stderr and not list(taken.iterdir())
    same = script(project, "run_inference_remote.sh", prompt)
    assert same.returncode == 0 and "already finished ok" in same.stderr
    forced = script(project, "run_inference_remote.sh", prompt, "--force")
    assert forced.returncode == 0 and "started forced-3" in forced.stderr
    assert [(r["run_id"], r["status"]) for r in records(project)] == [("forced-2", "ok"), ("forced-3", "ok")]
    assert os.readlink(remote_path(rehearsal_host, "outputs/forced")) == "runs/forced-3"
    rows = [r for r in json.loads(tool(project, "status", "--json").stdout) if r["run"] == "forced"]
    assert sorted((r["job"], r["run_id"], r["state"]) for r in rows) == [
        ("outputs/runs/forced-2", "forced-2", "ok"), ("outputs/runs/forced-3", "forced-3", "ok")]  # links: no rows


def test_rerun_reproduces_the_first_spec_after_the_prompt_changed(project, rehearsal_host):
    shot = add_shot(project, "rerun_shot")
    prompt = write_prompt(project, "again", shot, text="first text")
    first = script(project, "full_cycle.sh", prompt)
    assert first.returncode == 0, first.stderr
    write_prompt(project, "again", shot, text="second text")
    assert script(project, "full_cycle.sh", prompt, "--no-upscale").returncode == 0
    original = (project / "outputs" / "runs" / "again-1" / "controlnet_spec.json").read_bytes()
    prompt.write_text("{ not json: the prompt file must not be read")
    done = script(project, "rerun.sh", "again-1")
    assert done.returncode == 0, done.stderr
    assert "started again-3" in done.stderr and "run: again-3 (outputs/runs/again-3)" in done.stdout
    assert (project / "outputs" / "runs" / "again-3" / "controlnet_spec.json").read_bytes() == original
    assert (project / "outputs" / "runs" / "again-3_upscaled" / "output.mp4").is_file()
    lines = records(project)
    assert [r["run_id"] for r in lines] == ["again-1", "again-2", "again-3"]
    assert lines[2]["rerun_of"] == "again-1" and lines[2]["spec_sha256"] == lines[0]["spec_sha256"]
    assert lines[2]["prompt"] == "outputs/runs/again-1/prompt_spec.json"
    prov = json.loads((project / "outputs" / "runs" / "again-3" / "provenance.json").read_text())
    assert prov["rerun_of"] == "again-1" and prov["prompt_text"] == "first text"
    missing = script(project, "rerun.sh", "again-9")
    assert missing.returncode == 1 and "run 'again-9' is not here" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1 and len(records(project)) == 3

    shown = tool(project, "show", "again-3", "--json")
    assert shown.returncode == 0, shown.stderr
    info = json.loads(shown.stdout)
    assert info["local"] == "outputs/runs/again-3" and info["box"].endswith("/outputs/runs/again-3")
    assert [h["rerun_of"] for h in info["history"]] == ["again-1"]
    assert info["provenance"]["spec_sha256"] == lines[0]["spec_sha256"]
    files = {f["name"]: f["size"] for f in info["folders"][0]["files"]}
    assert files["output.mp4"] > 0 and "provenance.json" in files and "run.log" in files
    assert info["folders"][1]["path"] == "outputs/runs/again-3_upscaled"
    text = tool(project, "show", "again-3")
    assert text.returncode == 0 and "rerun_of: again-1" in text.stdout and "output.mp4" in text.stdout
    unknown = tool(project, "show", "nope-1")
    assert unknown.returncode == 1 and "no run 'nope-1'" in unknown.stderr and "Traceback" not in unknown.stderr


def test_a_new_upscale_never_replaces_a_finished_one(project, rehearsal_host):
    shot = add_shot(project, "up_shot")
    prompt = write_prompt(project, "ups", shot)
    assert script(project, "full_cycle.sh", prompt).returncode == 0
    again = script(project, "run_upscale_remote.sh", prompt, "0.8")
    assert again.returncode == 0, again.stderr
    assert remote_path(rehearsal_host, "outputs/runs/ups-1_upscaled/output.mp4").is_file()
    assert remote_path(rehearsal_host, "outputs/runs/ups-1_upscaled-2/output.mp4").is_file()
    assert os.readlink(remote_path(rehearsal_host, "outputs/ups_upscaled")) == "runs/ups-1_upscaled-2"
    lines = records(project)
    assert [(r["run_id"], r["upscale"], r.get("upscaled")) for r in lines] == [
        ("ups-1", "0.5", "outputs/runs/ups-1_upscaled"), ("ups-1", "0.8", "outputs/runs/ups-1_upscaled-2")]


@pytest.mark.usefixtures("slow_jobs")
def test_connection_cut_mid_run_resumes_into_the_same_run_id(project, rehearsal_host):
    shot = add_shot(project, "cut_shot")
    prompt = write_prompt(project, "resumed", shot)
    proc = start(project, "full_cycle.sh", prompt, "--no-upscale")
    wait_for_line(proc, "started resumed-1 as container")
    time.sleep(0.5)
    cut_connections(rehearsal_host)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    assert "connection lost; reconnecting" in stderr and "started resumed-2" not in stderr
    assert runs(project) == ["resumed-1"]
    assert sorted(os.listdir(remote_path(rehearsal_host, "outputs/runs"))).count("resumed-1") == 1
    assert not remote_path(rehearsal_host, "outputs/runs/resumed-2").exists()
    assert [(r["run_id"], r["status"]) for r in records(project)] == [("resumed-1", "ok")]


@pytest.mark.usefixtures("slow_jobs")
def test_a_run_whose_client_died_gets_its_one_line_from_the_attempt_that_finds_it(project, rehearsal_host):
    shot = add_shot(project, "orphan_shot")
    prompt = write_prompt(project, "orphan", shot)
    proc = start(project, "full_cycle.sh", prompt, "--no-upscale")
    wait_for_line(proc, "started orphan-1 as container")
    proc.kill()  # SIGKILL: no history line
    proc.communicate()
    code = remote_path(rehearsal_host, "outputs/runs/orphan-1/exit_code")
    deadline = time.monotonic() + 60
    while not code.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert code.exists() and records(project) == []
    found = script(project, "full_cycle.sh", prompt, "--no-upscale")
    assert found.returncode == 0 and "already finished ok" in found.stderr
    assert [(r["run_id"], r["status"]) for r in records(project)] == [("orphan-1", "ok")]
    again = script(project, "full_cycle.sh", prompt, "--no-upscale")
    assert again.returncode == 0 and len(records(project)) == 1  # now it is recorded: nothing new, no line


def _old_run(folder: Path, spec: bytes) -> None:
    folder.mkdir(parents=True)
    (folder / "controlnet_spec.json").write_bytes(spec)
    (folder / "run.log").write_text("an old run\n")
    (folder / "exit_code").write_text("0\n")
    (folder / "output.mp4").write_bytes(b"old video")


def test_a_folder_of_the_old_layout_is_moved_to_run_0_on_both_sides(project, rehearsal_host):
    shot = add_shot(project, "legacy_shot")
    prompt = write_prompt(project, "legacy", shot)
    for root in (project, Path(rehearsal_host.remote_dir)):
        _old_run(root / "outputs" / "legacy", b"{}\n")
        (root / "outputs" / "legacy_upscaled").mkdir()
        (root / "outputs" / "legacy_upscaled" / "output.mp4").write_bytes(b"old 4k")
    done = script(project, "full_cycle.sh", prompt, "--no-upscale")
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("(results of the version before run ids)") == 4  # 2 folders here, 2 on the box
    for root in (project, Path(rehearsal_host.remote_dir)):
        assert (root / "outputs" / "runs" / "legacy-0" / "output.mp4").read_bytes() == b"old video"
        assert (root / "outputs" / "runs" / "legacy-0_upscaled" / "output.mp4").read_bytes() == b"old 4k"
        assert os.readlink(root / "outputs" / "legacy") == "runs/legacy-1"  # the new run is the latest
        assert os.readlink(root / "outputs" / "legacy_upscaled") == "runs/legacy-0_upscaled"
    assert [r["run_id"] for r in records(project)] == ["legacy-1"]


def test_an_old_run_with_the_same_spec_is_found_not_run_again(project, rehearsal_host):
    from cosmos_tools.jobs import spec_bytes
    from cosmos_tools.models.transfer1 import run_spec

    shot = add_shot(project, "same_shot")
    prompt = write_prompt(project, "kept", shot)
    spec = spec_bytes(run_spec(json.loads(prompt.read_text()), ""))
    _old_run(remote_path(rehearsal_host, "outputs/kept"), spec)
    done = script(project, "full_cycle.sh", prompt, "--no-upscale")
    assert done.returncode == 0, done.stderr
    assert "already finished ok" in done.stderr and "run: kept-0 (outputs/runs/kept-0)" in done.stdout
    assert (project / "outputs" / "kept" / "output.mp4").read_bytes() == b"old video"
    assert records(project) == []


def test_old_history_lines_still_parse_and_show(tmp_path):
    log = tmp_path / "notes" / "run_history.log"
    log.parent.mkdir()
    log.write_text('ts=2026-11-22T14:30:00Z run=shot1_v2 prompt=inputs/prompts/shot1_v2.json shot=shot1 host=10.0.0.5 '
                   'gpus=1 weights="vis=0.25,edge=0.25" upscale=0.5 status=ok exit=0 upload_s=1.2 run_s=301.4 '
                   'upscale_s=95.0 download_s=3.1 total_s=401.0 output=outputs/shot1_v2 '
                   'upscaled=outputs/shot1_v2_upscaled\n')
    history.append_record(log, {"run": "new", "run_id": "new-1", "status": "ok", "seed": 7, "total_s": "2.0"})
    env = {"COSMOS_PROJECT_ROOT": str(tmp_path), "PATH": "/usr/bin:/bin", "COSMOS_CONFIG": str(tmp_path / "none.sh")}
    (tmp_path / "none.sh").write_text("")
    run = [sys.executable, "-m", "cosmos_tools", "history"]
    rows = json.loads(subprocess.run([*run, "--json"], capture_output=True, text=True, env=env, check=True).stdout)
    assert rows[0]["run"] == "shot1_v2" and rows[0]["output"] == "outputs/shot1_v2" and rows[0]["total_s"] == 401.0
    for field in history.ROW_FIELDS:
        assert field in rows[0] and field in rows[1]
    assert rows[0]["run_id"] == rows[0]["seed"] == rows[0]["image_id"] == ""
    assert rows[1]["run_id"] == "new-1" and rows[1]["seed"] == 7
    table = subprocess.run(run, capture_output=True, text=True, env=env, check=True).stdout.splitlines()
    assert table[1].split()[:3] == ["2026-11-22T14:30:00Z", "ok", "shot1_v2"] and "new-1" in table[2]


def test_the_probe_reads_image_checkout_and_gpus_as_the_box_answers(project, rehearsal_host):
    remote = jobs.Remote(load_config(project))
    try:
        facts = remote.probe([], image=DOCKER_IMAGE).facts
    finally:
        remote.close()
    assert facts.image_id.startswith("sha256:") and len(facts.image_id) == 71
    assert facts.image_digests[0].startswith("cosmos-transfer1") and "@sha256:" in facts.image_digests[0]
    assert facts.gpu == "NVIDIA H100 80GB HBM3 (cosmos-tools rehearsal stand-in) x 8"
    assert facts.code_version == "unknown"


def test_the_probe_says_unknown_for_what_a_box_lacks_and_reads_its_git_commit(project, local, tmp_path, monkeypatch):
    box = Path(local.abspath("."))
    subprocess.run(["git", "init", "-q", str(box)], check=True)
    subprocess.run(["git", "-C", str(box), "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q",
                    "--allow-empty", "-m", "x"], check=True)
    head = subprocess.run(["git", "-C", str(box), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    docker = tmp_path / "docker"
    docker.write_text('#!/bin/sh\n[ "$1" = ps ] && exit 0\necho "Error: No such image: $4" >&2; exit 1\n')
    docker.chmod(0o755)
    monkeypatch.setenv("DOCKER_CMD", str(docker))
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    bare = jobs.Remote(load_config(project), transport=local).probe([], image="no/such:image").facts
    assert (bare.code_version, bare.image_id, bare.image_digests, bare.gpu) == (head, "unknown", (), "unknown")


def test_stand_ins_answer_as_the_real_tools(rehearsal_host):
    bin_dir = Path(rehearsal_host.bin_dir)
    smi = subprocess.run([sys.executable, str(bin_dir / "nvidia-smi"), "--query-gpu=name",
                          "--format=csv,noheader"], capture_output=True, text=True)
    assert smi.returncode == 0 and smi.stdout.splitlines()[0].startswith("NVIDIA H100") and "stand-in" in smi.stdout
    bad = subprocess.run([sys.executable, str(bin_dir / "nvidia-smi"), "--query-gpu=nope", "--format=csv"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and 'Field "nope" is not a valid field to query.' in bad.stderr
    docker = [sys.executable, str(bin_dir / "docker"), "image", "inspect"]
    found = subprocess.run([*docker, "-f", "{{.Id}} {{json .RepoDigests}}", DOCKER_IMAGE], capture_output=True,
                           text=True)
    image_id, digests = found.stdout.split(" ", 1)
    assert found.returncode == 0 and image_id.startswith("sha256:") and json.loads(digests)
    missing = subprocess.run([*docker, "no/such:image"], capture_output=True, text=True)
    assert missing.returncode == 1 and "No such image: no/such:image" in missing.stderr


def test_shot_fingerprint_and_seed():
    digests = {"inputs/videos/s/b.mp4": "2" * 64, "inputs/videos/s/a.mp4": "1" * 64, "inputs/prompts/p.json": "x"}
    expected = hashlib.sha256(f"a.mp4\0{'1' * 64}\nb.mp4\0{'2' * 64}\n".encode()).hexdigest()
    assert provenance.shot_fingerprint("s", digests) == expected
    assert provenance.shot_fingerprint(None, digests) == ""
    assert provenance.seed_of({"seed": 42}) == 42
    assert provenance.seed_of({}) == provenance.seed_of({"seed": True}) == provenance.DEFAULT_SEED == 1


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_rerun_script_answers_help(flag):
    done = subprocess.run([str(REPO / "scripts" / "rerun.sh"), flag], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0 and done.stdout.startswith("Usage: rerun.sh") and "-h, --help" in done.stdout
    shellcheck = Path(sys.executable).with_name("shellcheck")
    assert subprocess.run([str(shellcheck), "-x", "scripts/rerun.sh"], cwd=REPO).returncode == 0


def test_an_unwritable_history_after_a_good_run_says_where_the_result_is(project, rehearsal_host):
    shot = add_shot(project, "nohist_shot")
    prompt = write_prompt(project, "nohist", shot)
    (project / "notes" / "run_history.log").mkdir()
    done = script(project, "full_cycle.sh", prompt, "--no-upscale")
    assert done.returncode == 4, done.stderr
    assert "result: outputs/runs/nohist-1/output.mp4" in done.stdout
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "run_history.log: cannot append to the run history" in errors[0]
    assert "Traceback" not in done.stderr
    assert (project / "outputs" / "runs" / "nohist-1" / "output.mp4").stat().st_size > 0
