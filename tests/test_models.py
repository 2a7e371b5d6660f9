"""Model profiles: the Cosmos-Transfer2.5-2B profile end to end (new prompt, check, render, stand-in, full cycle)
and the dispatch between profiles (``_model`` key, MODEL setting)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from prompt_fixtures import make_video, project_config, prompt_problems, with_changes, write_prompt_json
from test_cycle import add_shot, records, script

from cosmos_tools.errors import UserError
from cosmos_tools.prompts import new_prompt, read_prompt
from cosmos_tools.render import render_run, render_upscale
from cosmos_tools.validate import check_prompt

MODEL25 = "transfer2.5-2b"
NAME = "city25"  # the prompt file the check tests write
STAND_IN = Path(__file__).resolve().parents[1] / "cosmos_tools" / "rehearsal" / "stand_in" / "inference25.py"


def prompt25(shot: str = "shot1", **changes) -> dict:
    videos = f"inputs/videos/{shot}"
    spec = {"_model": MODEL25, "name": "city", "prompt": "a city at dusk", "video_path": f"{videos}/color.mp4",
            "edge": {"control_weight": 0.5}, "depth": {"control_weight": 0.5, "control_path": f"{videos}/depth.mp4"}}
    return with_changes(spec, changes)


@pytest.fixture
def cfg25(project, monkeypatch):
    return project_config(project, monkeypatch, MODEL=MODEL25)


def test_new_prompt_writes_the_models_record(project, cfg25):
    add_shot(project)
    path = new_prompt(cfg25, "shot1", 'rain "heavy"')
    spec = json.loads(path.read_text())
    assert spec == {"_model": MODEL25, "name": "shot1", "prompt": 'rain "heavy"',
                    "video_path": "inputs/videos/shot1/color.mp4",
                    "vis": {"control_weight": 0.25}, "edge": {"control_weight": 0.25},
                    "depth": {"control_weight": 0.25, "control_path": "inputs/videos/shot1/depth.mp4"},
                    "seg": {"control_weight": 0.25, "control_path": "inputs/videos/shot1/segmentation.mp4"}}
    assert check_prompt(read_prompt(path), cfg25).errors == []


def test_a_valid_25_prompt_passes(project, cfg25):
    add_shot(project, frames=100)
    assert [p for p in prompt_problems(project, cfg25, prompt25(resolution="720", sigma_max="70", guidance=3.0), NAME)
            if not p.warning] == []


@pytest.mark.parametrize("changes, key, message", [
    ({"input_video_path": "inputs/videos/shot1/color.mp4"}, "input_video_path", 'calls it "video_path"'),
    ({"promt": "x"}, "promt", 'extra_forbidden.*did you mean "prompt"'),
    ({"name": None}, "name", "Field required"),
    ({"name": "a/b"}, "name", "without '/'"),
    ({"prompt": None}, "prompt", "Field required"),
    ({"video_path": None}, "video_path", "Field required"),
    ({"guidance": 3.5}, "guidance", "whole number from 0 to 7"),
    ({"guidance": 8}, "guidance", "0 to 7"),
    ({"sigma_max": 70}, "sigma_max", "valid string"),
    ({"resolution": 720}, "resolution", "valid string"),
    ({"resolution": "4k"}, "resolution", "not a resolution"),
    ({"num_conditional_frames": 3}, "num_conditional_frames", "0, 1 or 2"),
    ({"num_steps": 0}, "num_steps", ">= 1"),
    ({"seed": True}, "seed", "whole number"),
    ({"edge": {"control_weight": 1.5}}, "edge.control_weight", "from 0 to 1"),
    ({"edge": {"control_weight": 0.5, "input_control": "x.mp4"}}, "edge.input_control", 'calls it "control_path"'),
    ({"edge": {"preset_blur_strength": "low"}}, "edge.preset_blur_strength", "unknown field for edge"),
    ({"edge": {"preset_edge_threshold": "ultra"}}, "edge.preset_edge_threshold", "very_low"),
    ({"edge": None, "depth": None}, "controls", "No controls provided"),
    ({"vis": {}, "image_context_path": "inputs/videos/shot1/color.mp4"}, "image_context_path", "vis"),
    ({"keypoint": {"control_weight": 0.5}}, "keypoint", "extra_forbidden"),
    ({"_upscale": {"prompt": "4K"}}, "_upscale", "no 4K upscaler"),
    ({"_model": "cosmos9"}, "_model", "not a model"),
])
def test_25_rules_are_one_line_errors(project, cfg25, changes, key, message):
    import re

    add_shot(project)
    found = [p for p in prompt_problems(project, cfg25, prompt25(**changes), NAME) if not p.warning]
    assert any(p.key == key and re.search(message, p.message) for p in found), found
    assert all("\n" not in p.message for p in found)


def test_25_frame_rules(project, cfg25):
    add_shot(project, frames=40)
    make_video(project / "inputs" / "videos" / "shot1" / "depth.mp4", frames=20)
    found = prompt_problems(project, cfg25, prompt25(), NAME)
    assert any(p.key == "depth.control_path" and "No input frames" in p.message and not p.warning for p in found)
    assert any(p.key == "video_path" and "93-frame chunk" in p.message and p.warning for p in found)


def test_check_warns_when_the_prompt_is_not_for_model(project, cfg):
    add_shot(project)
    found = prompt_problems(project, cfg, prompt25(), NAME)
    assert [p.key for p in found if not p.warning] == []
    assert any(p.key == "_model" and "MODEL=transfer2.5-2b" in p.message for p in found)
    with pytest.raises(UserError, match="this prompt is for transfer2.5-2b but MODEL is transfer1-7b"):
        render_run("n", prompt25(), cfg)


@pytest.mark.parametrize("gpus, settings, tail", [
    (1, {}, ["--offload-guardrail-models"]),
    (4, {"DISABLE_GUARDRAILS": "yes", "OFFLOAD": ""}, ["--disable-guardrails"]),
])
def test_25_render_argv(project, monkeypatch, gpus, settings, tail):
    cfg = project_config(project, monkeypatch, MODEL=MODEL25, **settings)
    rendered = render_run("city25", prompt25(), cfg.with_overrides({"NUM_GPU": gpus}, source="--num-gpu"),
                          run_id="city25-1")
    assert rendered.command == ["torchrun", "--nproc_per_node", str(gpus), "examples/inference.py",
                                "-i", "outputs/runs/city25-1/controlnet_spec.json", "-o", "outputs/runs/city25-1",
                                *tail]
    assert rendered.spec == {"name": "output", "prompt": "a city at dusk",
                             "video_path": "../../../inputs/videos/shot1/color.mp4", "edge": {"control_weight": 0.5},
                             "depth": {"control_weight": 0.5,
                                       "control_path": "../../../inputs/videos/shot1/depth.mp4"}}
    docker = rendered.docker
    assert "PYTHONPATH=/workspace" not in docker and "--num_gpus" not in rendered.command
    assert docker[docker.index("-e", docker.index("HF_HOME=/hf-cache") - 1) + 1] == "HF_HOME=/hf-cache"
    assert any(word.endswith(":/hf-cache") for word in docker)
    assert rendered.spec_used()["model"] == MODEL25 and rendered.spec_used()["model_commit"] == "2ff49d0"


def test_25_has_no_upscaler(project, cfg25):
    with pytest.raises(UserError, match="transfer2.5-2b has no 4K upscaler; pass --no-upscale"):
        render_upscale("n", cfg25, run_prompt=prompt25())


def stand_in(folder: Path, *args: str):
    return subprocess.run([sys.executable, str(STAND_IN), *args], cwd=folder, capture_output=True, text=True,
                          env={"COSMOS_STANDIN_SECONDS": "0", "PATH": "/usr/bin:/bin"}, timeout=60)


@pytest.mark.parametrize("record, message", [
    ({"input_video_path": "v.mp4"}, "Extra inputs are not permitted"),
    ({"guidance": 3.5}, "Input should be a valid integer"),
    ({"sigma_max": 70}, "Input should be a valid string"),
    ({"edge": {"control_weight": 2}}, "less than or equal to 1"),
    ({"video_path": "missing.mp4"}, "Path does not point to a file"),
    ({"name": None}, "name\n  Field required"),
])
def test_stand_in_rejects_what_upstream_rejects(tmp_path, record, message):
    make_video(tmp_path / "v.mp4", frames=10)
    spec = {"name": "s", "prompt": "p", "video_path": "v.mp4", "edge": {"control_weight": 0.5}, **record}
    spec = {k: v for k, v in spec.items() if v is not None}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    done = stand_in(tmp_path, "-i", "spec.json", "-o", "out")
    assert done.returncode == 1 and "Error validating parameters from 'spec.json' at line 1" in done.stderr
    assert message in done.stderr and not (tmp_path / "out").exists()


def test_stand_in_refuses_no_controls_duplicates_and_unknown_flags(tmp_path):
    make_video(tmp_path / "v.mp4", frames=10)
    base = {"name": "s", "prompt": "p", "video_path": "v.mp4"}
    (tmp_path / "none.json").write_text(json.dumps(base))
    assert "No controls provided" in stand_in(tmp_path, "-i", "none.json", "-o", "out").stderr
    line = json.dumps({**base, "edge": {}})
    (tmp_path / "twice.jsonl").write_text(f"{line}\n{line}\n")
    assert "samplename s is not unique" in stand_in(tmp_path, "-i", "twice.jsonl", "-o", "out").stderr
    assert stand_in(tmp_path, "-i", "twice.jsonl", "-o", "out", "--num_gpus", "2").returncode == 2


def test_stand_in_writes_upstreams_names(tmp_path):
    make_video(tmp_path / "in" / "v.mp4", frames=10)
    (tmp_path / "in" / "spec.json").write_text(json.dumps(
        {"name": "s", "prompt": "p", "video_path": "v.mp4", "edge": {}, "vis": {"control_weight": 0.2}}))
    done = stand_in(tmp_path, "-i", "in/spec.json", "-o", "out")
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "config.yaml", "s.json", "s.mp4", "s.txt", "s_control_edge.mp4", "s_control_vis.mp4"]


def test_full_cycle_of_a_25_prompt_on_the_rehearsal_host(project, rehearsal_host):
    add_shot(project, frames=8)
    prompt = write_prompt_json(project, prompt25(), NAME)
    refused = script(project, "full_cycle.sh", prompt.relative_to(project), env={"MODEL": MODEL25})
    assert refused.returncode != 0 and "transfer2.5-2b has no 4K upscaler; pass --no-upscale" in refused.stderr
    wrong = script(project, "full_cycle.sh", prompt.relative_to(project), "--no-upscale")
    assert wrong.returncode != 0 and "MODEL=transfer2.5-2b" in wrong.stderr
    done = script(project, "full_cycle.sh", prompt.relative_to(project), "--no-upscale", env={"MODEL": MODEL25})
    assert done.returncode == 0, done.stderr
    run = project / "outputs" / "runs" / "city25-1"
    assert (run / "output.mp4").stat().st_size > 0 and (run / "output.txt").read_text() == "a city at dusk"
    assert (run / "output_control_depth.mp4").is_file()
    provenance = json.loads((run / "provenance.json").read_text())
    assert provenance["run_id"] == "city25-1" and provenance["prompt_name"] == "city25"
    used = json.loads((run / "spec_used.json").read_text())
    assert used["model"] == MODEL25 and used["command"][3] == "examples/inference.py"
    assert provenance["model"] == MODEL25 and provenance["model_commit"] == used["model_commit"]
    assert [r["status"] for r in records(project)] == ["ok"]


def test_a_25_run_the_guardrail_blocks_is_reported_blocked(project, rehearsal_host):
    add_shot(project, frames=8)
    prompt = write_prompt_json(project, prompt25(prompt="a city GUARDRAIL_BLOCK_ME at dusk"), "blocked25")
    done = script(project, "full_cycle.sh", prompt.relative_to(project), "--no-upscale", env={"MODEL": MODEL25})
    assert done.returncode == 1
    assert "guardrail blocked it" in done.stderr and "Guardrail blocked generation" in done.stderr
    assert [r["status"] for r in records(project)] == ["blocked"]


def test_upscale_prompt_option_reaches_the_upscale_spec(project, rehearsal_host):
    from test_cycle import write_prompt

    add_shot(project, frames=8)
    prompt = write_prompt(project, "city_up", "shot1")
    done = script(project, "full_cycle.sh", prompt, "--upscale-prompt", "crisp 4K")
    assert done.returncode == 0, done.stderr
    spec = json.loads((project / "outputs" / "runs" / "city_up-1_upscaled" / "controlnet_spec.json").read_text())
    assert spec["prompt"] == "crisp 4K"


def test_a_cycles_upscale_plays_at_the_runs_fps_with_the_prompts_upscale_settings(project, rehearsal_host):
    from test_cycle import write_prompt

    add_shot(project, frames=8)
    prompt = write_prompt(project, "city_fps", "shot1", fps=30, _upscale={"control_weight": 0.3, "seed": 5})
    done = script(project, "full_cycle.sh", prompt)
    assert done.returncode == 0, done.stderr
    up = project / "outputs" / "runs" / "city_fps-1_upscaled"
    command = json.loads((up / "spec_used.json").read_text())["command"]
    assert command[command.index("--fps") + 1] == "30"
    spec = json.loads((up / "controlnet_spec.json").read_text())
    assert spec["upscale"]["control_weight"] == 0.3 and spec["seed"] == 5
    assert records(project)[-1]["upscale"] == "0.3"


def test_rehearsal_config_names_the_model(rehearsal_host, tmp_path):
    from cosmos_tools.config import parse_config_text
    from cosmos_tools.rehearsal.host import config_text

    text = config_text(rehearsal_host, MODEL25)
    assert parse_config_text(text, "config.sh")["MODEL"][0] == MODEL25
    assert (Path(rehearsal_host.remote_dir) / "examples" / "inference.py").is_file()


def test_25_spec_renders_the_same_when_rerun(project, cfg25):
    first = render_run("city25", prompt25(), cfg25, run_id="city25-1").spec
    assert render_run("city25", first, cfg25, run_id="city25-2").spec == first


def test_a_rerun_of_a_25_run_uploads_its_shot_again(project, rehearsal_host):
    import shutil

    from test_cycle import remote_path

    shot = add_shot(project, "shot25_rerun", frames=8)
    prompt = write_prompt_json(project, prompt25(shot), "rerun25")
    env = {"MODEL": MODEL25}
    done = script(project, "full_cycle.sh", prompt.relative_to(project), "--no-upscale", env=env)
    assert done.returncode == 0, done.stderr
    shutil.rmtree(remote_path(rehearsal_host, f"inputs/videos/{shot}"))  # a new box, or its disk cleaned
    again = script(project, "rerun.sh", "rerun25-1", "--no-upscale", env=env)
    assert again.returncode == 0, again.stderr
    assert "upload: 3 sent" in again.stderr  # the shot folder (the video and depth control the spec names)
    assert remote_path(rehearsal_host, f"inputs/videos/{shot}/color.mp4").is_file()
    lines = records(project)
    assert [(r["run_id"], r["status"], r.get("rerun_of")) for r in lines] == [("rerun25-1", "ok", None),
                                                                              ("rerun25-2", "ok", "rerun25-1")]
    assert lines[1]["shot"] == shot and lines[1]["spec_sha256"] == lines[0]["spec_sha256"]
