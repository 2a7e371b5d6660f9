"""Experiments end to end against the rehearsal host: several prompts or a sweep manifest, one connection,
batchable variants in one batch job, the others one after another, one run folder and history line each."""

from __future__ import annotations

import json
import os

from test_cycle import add_shot, records, remote_path, script, write_prompt


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
