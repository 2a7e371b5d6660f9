"""Batches: grouping rules, the JSONL and the batch job's command (pure), the stand-in's batch mode, and the
mapping of video_<N> back to run folders (remote/batch_map.py, run as the container runs it)."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from prompt_fixtures import project_config
from test_rehearsal import make_video, run_transfer

from cosmos_tools.batch import (
    TRANSFER1,
    TRANSFER25,
    batch_line,
    batch_lines,
    describe,
    group_variants,
    jsonl,
    line_item,
    read_mapping,
)
from cosmos_tools.remote import script
from cosmos_tools.render import render_batch

V = "inputs/videos/s"


def spec(prompt="a pier", video=f"{V}/color.mp4", **extra):
    return {"prompt": prompt, "input_video_path": video, "edge": {"control_weight": 0.5},
            "depth": {"control_weight": 0.5, "input_control": f"{V}/depth.mp4"}, **extra}


# ---------------------------------------------------------------------------------------------- grouping


def test_variants_differing_in_prompt_video_and_control_fields_share_one_batch():
    specs = [spec(), spec(prompt="a pier at noon"), spec(video="inputs/videos/t/color.mp4"),
             spec(edge={"control_weight": 0.9}), spec(depth={"control_weight": 0.5})]
    (group,) = group_variants(specs)
    assert group.batch and group.members == [0, 1, 2, 3, 4]
    assert group.differs == ["prompt", "input_video_path", "edge.control_weight", "depth.input_control"]


@pytest.mark.parametrize("change", [{"seed": 2}, {"sigma_max": 80}, {"num_steps": 10}, {"guidance": 7},
                                    {"negative_prompt": "ugly"}, {"fps": 12}, {"blur_strength": "low"},
                                    {"regional_prompts": [{"prompt": "x", "region_definitions_path": [[0, 0, 1, 1]]}]},
                                    {"vis": {"control_weight": 0.5}},
                                    {"edge": {"control_weight": 0.5, "ckpt_path": "x"}}])
def test_what_batch_mode_shares_splits_the_variants_into_consecutive_jobs(change):
    groups = group_variants([spec(), spec(prompt="b"), spec(**change)])
    assert [g.members for g in groups] == [[0, 1], [2]]


def test_a_control_missing_from_a_variant_splits_it_off():
    other = spec()
    del other["depth"]
    assert [g.members for g in group_variants([spec(), other, spec(prompt="c")])] == [[0, 2], [1]]


def test_variants_without_a_prompt_or_input_video_run_alone_and_say_why():
    no_prompt = spec()
    del no_prompt["prompt"]
    no_video = spec(input_video_path=None, sigma_max=80)
    groups = group_variants([no_prompt, spec(), no_video, spec(prompt="b")])
    assert [g.members for g in groups] == [[0], [1, 3], [2]]
    text = describe(groups, ["a", "b", "c", "d"])
    assert text[0] == "job 1: single run: a (no prompt text (a batch line needs its own prompt))"
    assert text[1].startswith("job 2: batch of 2 (one model load; lines differ in prompt): b, d")


def test_batch_lines_carry_exactly_what_differs():
    shared = spec()
    assert batch_line(shared, shared) == {"visual_input": f"{V}/color.mp4", "prompt": "a pier"}
    line = batch_line(shared, spec(prompt='say "hi"\nüber', edge={"control_weight": 0.9},
                                   depth={"control_weight": 0.5}))
    assert line["control_overrides"] == {"edge": {"control_weight": 0.9}, "depth": {"input_control": None}}
    data = jsonl([line, line])
    assert data.count(b"\n") == 2 and all(json.loads(x) == line for x in data.splitlines())  # one object per line


def test_mapping_must_name_every_line_in_order():
    rows = [{"line": 0, "dir": "a", "status": "ok"}, {"line": 1, "dir": "b", "status": "pending"}]
    assert read_mapping(json.dumps(rows), 2) == rows
    assert read_mapping(json.dumps(rows), 3) is None and read_mapping("{", 2) is None
    assert read_mapping(json.dumps(rows[::-1]), 2) is None


# ---------------------------------------------------------------------------------------------- the command


def test_the_batch_command_wraps_transfer_py_and_writes_into_the_batch_folder(tmp_path, monkeypatch):
    cfg = project_config(tmp_path, monkeypatch, DOCKER_USER="root")
    rendered = render_batch("pier~batch1", spec(fps=12), cfg, leaf="pier~batch1-3")
    folder = "outputs/batches/runs/pier~batch1-3"
    assert rendered.output_dir == folder and rendered.log_path == f"{folder}/run.log"
    assert rendered.command[:4] == ["python3", f"{folder}/batch_map.py", folder, "--"]
    transfer = rendered.command[4:]
    assert transfer[transfer.index("--video_save_folder") + 1] == folder
    assert transfer[transfer.index("--controlnet_specs") + 1] == f"{folder}/controlnet_spec.json"
    assert transfer[-2:] == ["--batch_input_path", f"{folder}/batch.jsonl"]
    assert transfer[transfer.index("--fps") + 1] == "12" and "--batch_size" not in transfer
    docker = rendered.docker
    assert docker[-len(rendered.command) - 2:] == [f"{folder}/run.log", f"{folder}/exit_code", *rendered.command]
    assert "cosmos-tools.run=pier~batch1" in docker and "runs/" not in " ".join(docker).replace(folder, "")


# ---------------------------------------------------------------------------------------------- stand-in


@pytest.fixture(scope="module")
def clips(rehearsal_host):
    """A 3-frame clip inside the stand-in checkout (a path relative to it, as specs use them)."""
    return make_video(rehearsal_host.remote_dir / "inputs/videos/batch/color.mp4", "64x48", 3).relative_to(
        rehearsal_host.remote_dir)


def _batch_files(host, clip, lines, text=None, extra=None):
    folder = f"outputs/t-{uuid.uuid4().hex[:8]}"
    (host.remote_dir / folder).mkdir(parents=True)
    body = text if text is not None else "".join(json.dumps(x) + "\n" for x in lines)
    (host.remote_dir / folder / "batch.jsonl").write_text(body)
    shared = {"input_video_path": str(clip), "edge": {"control_weight": 0.5}, **(extra or {})}
    return folder, shared


@pytest.mark.parametrize("text", ['{\n  "prompt": "a"\n}\n', '{"prompt": "a", "visual_input": "x"}\n\n'])
def test_stand_in_batch_file_must_be_one_object_per_line(rehearsal_host, clips, text):
    folder, shared = _batch_files(rehearsal_host, clips, [], text=text)
    done = run_transfer(rehearsal_host, shared, "--batch_input_path", f"{folder}/batch.jsonl", folder=folder)
    assert done.returncode == 1 and "json.decoder.JSONDecodeError" in done.stderr


def test_stand_in_guardrail_crash_keeps_the_lines_before_it(rehearsal_host, clips):
    lines = [{"visual_input": str(clips), "prompt": p} for p in ("one", "GUARDRAIL_BLOCK_ME", "three")]
    folder, shared = _batch_files(rehearsal_host, clips, lines)
    done = run_transfer(rehearsal_host, shared, "--batch_input_path", f"{folder}/batch.jsonl", folder=folder)
    assert done.returncode == 1 and "GUARDRAIL BLOCKED" in done.stdout
    assert (done.folder / "video_0" / "output.mp4").stat().st_size > 0
    assert not (done.folder / "video_1" / "output.mp4").exists() and not (done.folder / "video_2").exists()


def test_stand_in_upscale_batch_runs_one_item_at_a_time(rehearsal_host, clips):
    lines = [{"visual_input": str(clips), "prompt": "a"}]
    folder, _ = _batch_files(rehearsal_host, clips, lines)
    shared = {"input_video_path": str(clips), "upscale": {"control_weight": 0.5}}
    done = run_transfer(rehearsal_host, shared, "--batch_input_path", f"{folder}/batch.jsonl", "--batch_size", "2",
                        folder=folder)
    assert done.returncode == 0, done.stderr
    assert "Setting batch_size=1 as upscale does not support batch generation" in done.stdout


# ---------------------------------------------------------------------------------------------- mapping


def _map(tmp_path: Path, lines: list[str], command: list[str], model: str = TRANSFER1) -> tuple[int, list[dict]]:
    """Run remote/batch_map.py in ``tmp_path`` (as /workspace) around ``command``; (exit code, mapping rows)."""
    folder = "outputs/batches/runs/b-1"
    (tmp_path / folder).mkdir(parents=True)
    (tmp_path / "outputs" / "runs").mkdir(exist_ok=True)
    items = [{"dir": f"outputs/runs/v{i}-1", "latest": f"outputs/v{i}", "files": {"prompt_spec.json": "{}\n"},
              **line_item(model, i)} for i in range(len(lines))]
    (tmp_path / folder / "items.json").write_text(json.dumps(items))
    (tmp_path / folder / "run.log").write_text("".join(lines))
    rc = subprocess.run([sys.executable, "-c", script("batch_map.py"), folder, "--", *command], cwd=tmp_path,
                        capture_output=True, text=True).returncode
    return rc, json.loads((tmp_path / folder / "mapping.json").read_text())


def _saver(folder: str, saved: int, rc: int) -> list[str]:
    code = "import os,sys\n" + "".join(
        f"os.makedirs('{folder}/video_{i}', exist_ok=True)\nopen('{folder}/video_{i}/output.mp4','w').write('v{i}')\n"
        f"open('{folder}/video_{i}/prompt.txt','w').write('p{i}')\n" for i in range(saved)) + f"sys.exit({rc})\n"
    return [sys.executable, "-c", code]


def test_mapping_moves_each_video_to_its_own_run_folder(tmp_path):
    folder = "outputs/batches/runs/b-1"
    log = [f"Saved prompt to {folder}/video_{i}/prompt.txt\n" for i in range(2)]
    rc, rows = _map(tmp_path, log, _saver(folder, 2, 0))
    assert rc == 0 and [r["status"] for r in rows] == ["ok", "ok"]
    for i in range(2):
        run = tmp_path / "outputs" / "runs" / f"v{i}-1"
        assert (run / "output.mp4").read_text() == f"v{i}" and (run / "output.txt").read_text() == f"p{i}"
        assert (run / "exit_code").read_text() == "0\n" and (run / "prompt_spec.json").read_text() == "{}\n"
        assert (tmp_path / "outputs" / f"v{i}").readlink() == Path(f"runs/v{i}-1")
        assert f"video_{i}/prompt.txt" in (run / "run.log").read_text()
    assert not (tmp_path / folder / "video_0").exists()


def test_mapping_after_a_guardrail_block_leaves_the_later_lines_pending(tmp_path):
    folder = "outputs/batches/runs/b-1"
    log = [f"Saved prompt to {folder}/video_0/prompt.txt\n", "GUARDRAIL BLOCKED: no\n", "TypeError\n"]
    rc, rows = _map(tmp_path, log, _saver(folder, 1, 1))
    assert rc == 1 and [r["status"] for r in rows] == ["ok", "blocked", "pending"]
    runs = tmp_path / "outputs" / "runs"
    assert "GUARDRAIL BLOCKED" in (runs / "v1-1" / "run.log").read_text()
    assert "GUARDRAIL BLOCKED" not in (runs / "v0-1" / "run.log").read_text()
    assert (runs / "v1-1" / "exit_code").read_text() == "1\n" and not (runs / "v2-1").exists()


def test_mapping_after_another_failure_fails_every_line_left_and_never_reuses_a_folder(tmp_path):
    (tmp_path / "outputs" / "runs" / "v0-1").mkdir(parents=True)  # another client's run
    (tmp_path / "outputs" / "runs" / "v0-1" / "keep").write_text("theirs")
    folder = "outputs/batches/runs/b-1"
    rc, rows = _map(tmp_path, ["boom\n"] * 3, _saver(folder, 0, 3))
    assert rc == 3 and [r["status"] for r in rows] == ["taken", "failed", "failed"]
    assert (tmp_path / "outputs" / "runs" / "v0-1" / "keep").read_text() == "theirs"
    assert "not processed: line 0 ended the batch" in (tmp_path / "outputs/runs/v2-1/run.log").read_text()



# ---------------------------------------------------------------------------------------------- Transfer2.5


def record(prompt="a pier", **extra):
    return {"name": "output", "prompt": prompt, "video_path": "../../../inputs/videos/s/color.mp4",
            "edge": {"control_weight": 0.5}, **extra}


def test_25_records_share_a_batch_unless_their_control_keys_differ():
    specs = [record(), record(prompt="b", seed=3, guidance=7, resolution="480", num_steps=10),
             record(edge={"control_weight": 0.9}), record(depth={"control_weight": 0.3}),
             record(video_path="../../../inputs/videos/t/color.mp4", sigma_max="80")]
    groups = group_variants(specs, TRANSFER25)
    assert [g.members for g in groups] == [[0, 1, 2, 4], [3]]  # edge+depth loads the multi-control model
    assert groups[0].differs == ["prompt", "video_path", "seed", "guidance", "resolution", "num_steps", "sigma_max",
                                 "edge.control_weight"]
    assert describe(groups, list("abcde"))[0].startswith("job 1: batch of 4 (one model load; lines differ in prompt")


def test_25_records_are_each_variants_own_spec_relative_to_the_batch_folder():
    prompts = [{"_model": TRANSFER25, "name": "mine", "prompt": p, "video_path": "inputs/videos/s/color.mp4",
                "depth": {"control_path": "inputs/videos/s/depth.mp4"}, "_upscale": {}} for p in ("a", "b")]
    lines = batch_lines(TRANSFER25, prompts, [], "outputs/batches/runs/x~batch1-2")
    assert [r["name"] for r in lines] == ["line_0", "line_1"] and [r["prompt"] for r in lines] == ["a", "b"]
    assert lines[0]["video_path"] == "../../../../inputs/videos/s/color.mp4" and "_model" not in lines[0]
    assert lines[0]["depth"] == {"control_path": "../../../../inputs/videos/s/depth.mp4"}


def test_the_25_batch_command_reads_the_records_as_its_input(tmp_path, monkeypatch):
    cfg = project_config(tmp_path, monkeypatch, DOCKER_USER="root", MODEL=TRANSFER25)
    rendered = render_batch("pier~batch1", record(), cfg, leaf="pier~batch1-3")
    folder = "outputs/batches/runs/pier~batch1-3"
    assert rendered.command[:4] == ["python3", f"{folder}/batch_map.py", folder, "--"]
    model = rendered.command[4:]
    assert model[model.index("-i") + 1] == f"{folder}/batch.jsonl" and model[model.index("-o") + 1] == folder
    assert "--batch_input_path" not in model and model[3] == "examples/inference.py"


def _records_saver(folder: str, saved: list[int], rc: int) -> list[str]:
    code = "import sys\n" + "".join(
        f"open('{folder}/line_{i}.json','w').write('{{}}')\n"
        f"open('{folder}/line_{i}.mp4','w').write('v{i}')\nopen('{folder}/line_{i}.txt','w').write('p{i}')\n"
        f"open('{folder}/line_{i}_control_edge.mp4','w').write('c{i}')\n" for i in saved) + f"sys.exit({rc})\n"
    return [sys.executable, "-c", code]


def test_25_mapping_takes_each_records_files_and_goes_on_after_a_blocked_one(tmp_path):
    folder = "outputs/batches/runs/b-1"
    log = [f"Saved video to {folder}/line_0.mp4\n", "Guardrail blocked generation for sample line_1\n",
           "Generating line_2\n", f"Saved video to {folder}/line_2.mp4\n"]
    rc, rows = _map(tmp_path, log[:2] + log[2:], _records_saver(folder, [0, 2], 0), model=TRANSFER25)
    assert rc == 0 and [r["status"] for r in rows[:3]] == ["ok", "blocked", "ok"]
    runs = tmp_path / "outputs" / "runs"
    for i in (0, 2):
        assert sorted(p.name for p in (runs / f"v{i}-1").iterdir()) == [
            "exit_code", "output.json", "output.mp4", "output.txt", "output_control_edge.mp4", "prompt_spec.json",
            "run.log"]
        assert (runs / f"v{i}-1" / "output.mp4").read_text() == f"v{i}"
    assert "Generating line_2" in (runs / "v2-1" / "run.log").read_text()
    blocked = runs / "v1-1"
    assert "Guardrail blocked" in (blocked / "run.log").read_text() and not (blocked / "output.mp4").exists()
    assert (blocked / "exit_code").read_text() == "1\n"


def test_25_mapping_after_a_crash_fails_the_records_left(tmp_path):
    folder = "outputs/batches/runs/b-1"
    log = [f"Saved video to {folder}/line_0.mp4\n", "RuntimeError: No input frames; cannot pad.\n", "x\n"]
    rc, rows = _map(tmp_path, log, _records_saver(folder, [0], 1), model=TRANSFER25)
    assert rc == 1 and [r["status"] for r in rows] == ["ok", "failed", "failed"]
    assert "not processed: line 1 ended the batch" in (tmp_path / "outputs/runs/v2-1/run.log").read_text()


def test_25_stand_in_loads_once_for_every_record_and_refuses_what_upstream_refuses(tmp_path):
    from test_models import stand_in

    make_video(tmp_path / "v.mp4", "64x48", 3)
    records = [{"name": f"line_{i}", "prompt": p, "video_path": "v.mp4", "edge": {"control_weight": 0.5}}
               for i, p in enumerate(("one", "two GUARDRAIL_BLOCK_ME", "three"))]
    (tmp_path / "batch.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    done = stand_in(tmp_path, "-i", "batch.jsonl", "-o", "out")
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("Loading the edge model once for 3 sample(s)") == 1
    assert "Guardrail blocked generation for sample line_1" in done.stdout
    assert sorted(p.name for p in (tmp_path / "out").glob("line_*.mp4")) == [
        "line_0.mp4", "line_0_control_edge.mp4", "line_2.mp4", "line_2_control_edge.mp4"]
    (tmp_path / "blank.jsonl").write_text(json.dumps(records[0]) + "\n\n" + json.dumps(records[2]) + "\n")
    blank = stand_in(tmp_path, "-i", "blank.jsonl", "-o", "out2")
    assert blank.returncode == 1 and "Error validating parameters from 'blank.jsonl' at line 2" in blank.stderr
    same = [records[0], {**records[2], "name": "line_0"}]
    (tmp_path / "same.jsonl").write_text("".join(json.dumps(r) + "\n" for r in same))
    assert "Inference samplename line_0 is not unique" in stand_in(tmp_path, "-i", "same.jsonl", "-o", "o3").stderr
    (tmp_path / "out4").mkdir()
    mixed = [records[0], {**records[2], "depth": {"control_weight": 0.2}}]
    (tmp_path / "mixed.jsonl").write_text("".join(json.dumps(r) + "\n" for r in mixed))
    assert "the multi-control model is loaded" in stand_in(tmp_path, "-i", "mixed.jsonl", "-o", "out4").stdout
