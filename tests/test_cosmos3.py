"""The Cosmos 3 transfer profiles (cosmos3-nano, -super, -edge): new prompt, check, render, the stand-in inference
CLI and a full cycle on the rehearsal host."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from prompt_fixtures import (
    HOSTILE_NAMES,
    make_project,
    make_video,
    project_config,
    prompt_problems,
    with_changes,
    write_prompt_json,
)
from test_cycle import add_shot, records, script

from cosmos_tools.config import ConfigError
from cosmos_tools.errors import UserError
from cosmos_tools.prompts import new_prompt, read_prompt
from cosmos_tools.remote import script as remote_script
from cosmos_tools.render import render_run, render_upscale
from cosmos_tools.validate import check_prompt

NANO = "cosmos3-nano"
NAME = "city3"  # the prompt file the check tests write
STAND_IN = Path(__file__).resolve().parents[1] / "cosmos_tools" / "rehearsal" / "stand_in" / "cosmos3_inference.py"


def prompt3(shot: str = "shot1", **changes) -> dict:
    videos = f"inputs/videos/{shot}"
    spec = {"_model": NANO, "name": "city", "prompt": "a city at dusk", "vision_path": f"{videos}/color.mp4",
            "resolution": "720", "aspect_ratio": "16,9", "guidance": 3.0, "control_guidance": 1.5,
            "depth": {"control_path": f"{videos}/depth.mp4", "weight": 0.5},
            "seg": {"control_path": f"{videos}/segmentation.mp4", "weight": 0.5}}
    return with_changes(spec, changes)


@pytest.fixture
def root(tmp_path):
    return make_project(tmp_path / "project")


@pytest.fixture
def cfg3(root, monkeypatch):
    return project_config(root, monkeypatch, MODEL=NANO)


def test_new_prompt_writes_a_transfer_spec_from_the_shot(root, cfg3):
    add_shot(root, frames=30)
    (root / "inputs/videos/shot1/shot.json").write_text(json.dumps({"width": 64, "height": 36, "frames": 30,
                                                                     "fps": 30}))
    path = new_prompt(cfg3, "shot1", 'rain "heavy"')
    spec = json.loads(path.read_text())
    assert spec["_model"] == NANO and spec["prompt"]["temporal_caption"] == 'rain "heavy"'
    assert (spec["vision_path"], spec["resolution"], spec["aspect_ratio"], spec["fps"], spec["max_frames"]) == \
        ("inputs/videos/shot1/color.mp4", "256", "16,9", 30, 30)
    assert spec["depth"] == {"control_path": "inputs/videos/shot1/depth.mp4", "weight": 0.5}
    assert spec["seg"] == {"control_path": "inputs/videos/shot1/segmentation.mp4", "weight": 0.5}
    assert "edge" not in spec
    found = check_prompt(read_prompt(path), cfg3).problems
    assert [p for p in found if not p.warning] == []
    assert [p.key for p in found] == ["vision_path"]  # 30 frames: padded to one 93-frame chunk


def test_new_prompt_without_shot_json_probes_the_shot_and_picks_the_edge_tier(root, monkeypatch):
    cfg = project_config(root, monkeypatch, MODEL="cosmos3-edge")
    make_video(root / "inputs/videos/tall/color.mp4", frames=10, size=(36, 64), fps=12)
    spec = json.loads(new_prompt(cfg, "tall", "x").read_text())
    assert (spec["_model"], spec["resolution"], spec["aspect_ratio"], spec["fps"], spec["max_frames"]) == \
        ("cosmos3-edge", "256", "9,16", 12, 10)
    assert spec["edge"] == {"weight": 1.0}  # no rendered passes: edge computed from the shot's color


def test_a_valid_prompt_passes_and_the_model_key_picks_the_profile(root, monkeypatch):
    add_shot(root, frames=100)
    cfg = project_config(root, monkeypatch)  # MODEL=transfer1-7b: the _model key decides
    found = prompt_problems(root, cfg, prompt3(), NAME)
    assert [p for p in found if not p.warning] == []
    assert any(p.key == "_model" and "MODEL=cosmos3-nano" in p.message for p in found)


@pytest.mark.parametrize("changes, key, message", [
    ({"promt": "x"}, "promt", 'extra_forbidden.*did you mean "prompt"'),
    ({"video_path": "inputs/videos/shot1/color.mp4"}, "video_path", 'did you mean "vision_path"'),
    ({"vis": {"weight": 1}}, "vis", 'did you mean "blur"'),
    ({"depth": {"control_path": "inputs/videos/shot1/depth.mp4", "control_weight": 0.5}}, "depth.control_weight",
     'did you mean "weight"'),
    ({"depth": {"weight": 0.5}}, "depth.control_path", "Missing pre-computed control input for 'depth'"),
    ({"vision_path": None, "edge": {"weight": 1.0}}, "edge.control_path", "requires 'vision_path' or a pre-computed"),
    ({"depth": None, "seg": None}, "controls", "requires at least one control hint"),
    ({"depth": {"control_path": "inputs/videos/shot1/depth.mp4", "weight": -1}}, "depth.weight", ">= 0"),
    ({"depth": {"control_path": "inputs/videos/shot1/depth.mp4", "weight": 0},
      "seg": {"control_path": "inputs/videos/shot1/segmentation.mp4", "weight": 0}}, "depth", "positive sum"),
    ({"edge": {"preset_blur_strength": "low"}}, "edge.preset_blur_strength", "unknown field for edge"),
    ({"edge": {"preset_edge_threshold": "ultra"}}, "edge.preset_edge_threshold", "very_low"),
    ({"resolution": "1080"}, "resolution", "not a video resolution of Cosmos3-Nano"),
    ({"resolution": 720}, "resolution", "JSON string"),
    ({"_model": "cosmos3-edge"}, "resolution", "not a video resolution of Cosmos3-Edge; use one of 256, 480"),
    ({"aspect_ratio": "21,9"}, "aspect_ratio", "16,9"),
    ({"aspect_ratio": [16, 9]}, "aspect_ratio", "16,9"),
    ({"guidance": 8}, "guidance", "from 0 to 7"),
    ({"control_guidance": 11}, "control_guidance", "from 0 to 10"),
    ({"num_conditional_frames": 93}, "num_conditional_frames", "less than the 93-frame chunk"),
    ({"vision_path": None, "num_first_chunk_conditional_frames": 1}, "num_first_chunk_conditional_frames",
     "add vision_path"),
    ({"vision_path": "inputs/videos/shot1/color.mov"}, "vision_path", "Invalid vision extension"),
    ({"depth": {"control_path": "https://example.com/d.mp4"}}, "depth.control_path", "is a URL"),
    ({"depth": {"control_path": "/abs/depth.mp4"}}, "depth.control_path", "absolute"),
    ({"depth": {"control_path": "../depth.mp4"}}, "depth.control_path", "'..'"),
    ({"depth": {"control_path": "inputs/videos/shot1/nope.mp4"}}, "depth.control_path", "not found"),
    ({"max_num_seqs": 2}, "max_num_seqs", "Batching is not supported"),
    ({"batch_size": 2}, "batch_size", "batch size 1"),
    ({"num_outputs": 2}, "num_outputs", "batch size 1"),
    ({"model_mode": "reasoner"}, "model_mode", "video2video"),
    ({"prompt_path": "inputs/videos/shot1/color.mp4"}, "prompt_path", "only one of prompt and prompt_path"),
    ({"prompt": ["x"]}, "prompt", "text or a structured caption object"),
    ({"seed": "x"}, "seed", "whole number"),
    ({"name": "a/b"}, "name", "without '/'"),
    ({"control_guidance_interval": [500, 100]}, "control_guidance_interval", "low <= high"),
    ({"defaults_file": "inputs/defaults.json"}, "defaults_file", "not found"),
    ({"show_input": "yes"}, "show_input", "true or false"),
    ({"_upscale": {"prompt": "4K"}}, "_upscale", "no 4K upscaler"),
    ({"_model": "cosmos3-nano-sim-transfer"}, "_model", "not registered in cosmos-framework"),
])
def test_cosmos3_rules_are_one_line_errors(root, cfg3, changes, key, message):
    add_shot(root)
    found = [p for p in prompt_problems(root, cfg3, prompt3(**changes), NAME) if not p.warning]
    assert any(p.key == key and re.search(message, p.message) for p in found), found
    assert all("\n" not in p.message for p in found)


def test_cosmos3_frames_chunks_and_geometry(root, cfg3):
    add_shot(root, frames=40)
    make_video(root / "inputs/videos/shot1/segmentation.mp4", frames=20)
    spec = prompt3(num_video_frames_per_chunk=100, aspect_ratio="4,3", guidance=None)
    found = prompt_problems(root, cfg3, spec, NAME)
    errors = {p.key: p.message for p in found if not p.warning}
    warnings = {p.key: p.message for p in found if p.warning}
    assert "20 frames but the run uses 40 of vision_path" in errors["seg.control_path"]
    assert "rounded up to 101" in warnings["num_video_frames_per_chunk"]
    assert "padded to one 101-frame chunk" in warnings["vision_path"]
    assert "centre-crops every input to 4,3" in warnings["aspect_ratio"]
    assert "falls back to guidance 6.0" in warnings["guidance"]


def test_cosmos3_keys_without_effect_are_warnings(root, cfg3):
    add_shot(root)
    spec = prompt3(num_frames=121, negative_prompt_file="neg.json", prompt={"mood": "x"},
                   depth={"control_path": "inputs/videos/shot1/depth.mp4", "weight": 0})
    found = prompt_problems(root, cfg3, spec, NAME)
    assert [p for p in found if not p.warning] == []
    warned = {p.key: p.message for p in found}
    assert "does not set the length" in warned["num_frames"] and "negative_prompt" in warned["negative_prompt_file"]
    assert "caption schema" in warned["prompt.mood"] and "switches depth off" in warned["depth.weight"]


def test_the_caption_sweeps_and_a_controls_only_spec_names_its_shot(root, cfg3):
    from cosmos_tools.prompts import shot_of
    from cosmos_tools.sweep import build_sweep

    add_shot(root)
    base = write_prompt_json(root, prompt3(prompt={"temporal_caption": "rain", "lighting": {"conditions": ""}}), NAME)
    sweep = build_sweep(cfg3, base, ["prompt.lighting.conditions=dusk,noon"])
    assert not [p for _, p in sweep.problems if not p.warning] and [v.values for v in sweep.variants] == [
        {"prompt.lighting.conditions": "dusk"}, {"prompt.lighting.conditions": "noon"}]
    assert shot_of(prompt3(vision_path=None)) == "shot1"


def test_sim_transfer_is_refused_as_model(root, monkeypatch):
    with pytest.raises(ConfigError, match="MODEL=cosmos3-nano-sim-transfer is not supported: .* not registered"):
        project_config(root, monkeypatch, MODEL="cosmos3-nano-sim-transfer")


def rendered(root, monkeypatch, name="city3", gpus=1, **settings):
    settings.setdefault("MODEL", NANO)
    cfg = project_config(root, monkeypatch, **settings).with_overrides({"NUM_GPU": gpus}, source="--num-gpu")
    return render_run(name, prompt3(_model=settings["MODEL"]), cfg, run_id=f"{name}-1")


@pytest.mark.parametrize("gpus, settings, flags", [
    (1, {}, ["--parallelism-preset", "latency", "--guardrails", "--offload-guardrail-models", "--no-diffusion-cache"]),
    (3, {"DISABLE_GUARDRAILS": "yes", "COSMOS3_DIFFUSION_CACHE": "yes"},
     ["--parallelism-preset", "latency", "--cfgp-size", "1", "--cp-size", "3", "--no-guardrails", "--diffusion-cache"]),
    (4, {"MODEL": "cosmos3-super", "OFFLOAD": ""},
     ["--parallelism-preset", "latency", "--guardrails", "--no-diffusion-cache"]),
])
def test_render_argv(root, monkeypatch, gpus, settings, flags):
    job = rendered(root, monkeypatch, gpus=gpus, **settings)
    checkpoint = "Cosmos3-Super" if settings.get("MODEL") == "cosmos3-super" else "Cosmos3-Nano"
    wrapper, inference = job.command[:6], job.command[6:]
    assert wrapper == ["bash", "-c", remote_script("cosmos3_collect.sh"), "cosmos3-collect", "outputs/runs/city3-1",
                       "output"]
    assert inference == ["torchrun", "--nproc-per-node", str(gpus), "-m", "cosmos_framework.scripts.inference",
                         "-i", "outputs/runs/city3-1/controlnet_spec.json", "-o", "outputs/runs/city3-1",
                         "--checkpoint-path", checkpoint, *flags]
    assert job.spec == {"name": "output", "prompt": "a city at dusk",
                        "vision_path": "../../../inputs/videos/shot1/color.mp4", "resolution": "720",
                        "aspect_ratio": "16,9", "guidance": 3.0, "control_guidance": 1.5,
                        "depth": {"control_path": "../../../inputs/videos/shot1/depth.mp4", "weight": 0.5},
                        "seg": {"control_path": "../../../inputs/videos/shot1/segmentation.mp4", "weight": 0.5}}
    docker = job.docker
    for word in ("HF_HOME=/hf-cache", "UV_CACHE_DIR=/hf-cache/uv", "NCCL_NET_PLUGIN=none", "LD_LIBRARY_PATH="):
        assert docker[docker.index(word) - 1] == "-e"
    assert docker[docker.index("/workspace/.venv") - 1] == "-v" and "PYTHONPATH=/workspace" not in docker
    assert job.spec_used()["model_commit"] == "5eee9ed"


def test_render_caption_checkpoint_and_refusals(root, monkeypatch):
    cfg = project_config(root, monkeypatch, MODEL=NANO, COSMOS3_CHECKPOINT="checkpoints/Cosmos3-Nano")
    caption = {"temporal_caption": 'rain "heavy"', "lighting": {"conditions": "dusk"}}
    job = render_run("c", prompt3(prompt=caption), cfg, run_id="c-1")
    assert job.spec["prompt"] == '{"temporal_caption":"rain \\"heavy\\"","lighting":{"conditions":"dusk"}}'
    assert job.command[job.command.index("--checkpoint-path") + 1] == "checkpoints/Cosmos3-Nano"
    with pytest.raises(UserError, match="cosmos3-super needs at least 4 GPUs .* --num-gpu 4"):
        render_run("c", prompt3(_model="cosmos3-super"), cfg.with_overrides({"MODEL": "cosmos3-super"}, source="t"),
                   run_id="c-1")
    with pytest.raises(UserError, match="cosmos3-nano has no 4K upscaler; pass --no-upscale"):
        render_upscale("c", cfg, run_prompt=prompt3())


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_render_keeps_hostile_names_as_data(root, monkeypatch, name):
    job = rendered(root, monkeypatch, name=name)
    inference = job.command[6:]
    assert job.command[4] == f"outputs/runs/{name}-1" == inference[inference.index("-o") + 1]
    assert inference[inference.index("-i") + 1] == f"outputs/runs/{name}-1/controlnet_spec.json"
    assert re.fullmatch(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*", job.container)
    assert job.spec["name"] == "output"


def test_collect_moves_upstreams_names_into_the_run_folder(tmp_path):
    folder = tmp_path / "run $(x)"
    sample = folder / "output"
    sample.mkdir(parents=True)
    code = ("import pathlib, sys; d = pathlib.Path(sys.argv[1]); "
            "[(d / n).write_text(n) for n in ('vision.mp4', 'control_depth.mp4', 'sample_args.json')]; sys.exit(3)")
    done = subprocess.run(["bash", "-c", remote_script("cosmos3_collect.sh"), "cosmos3-collect", str(folder),
                           "output", sys.executable, "-c", code, str(sample)], capture_output=True, text=True)
    assert done.returncode == 3, done.stderr
    assert sorted(p.name for p in folder.iterdir()) == ["output.mp4", "output_control_depth.mp4", "sample_args.json"]
    assert (folder / "output.mp4").read_text() == "vision.mp4"


def stand_in(folder: Path, *args: str, env: dict | None = None):
    return subprocess.run([sys.executable, str(STAND_IN), *args], cwd=folder, capture_output=True, text=True,
                          env={"COSMOS_STANDIN_SECONDS": "0", "PATH": "/usr/bin:/bin", **(env or {})}, timeout=60)


@pytest.fixture
def sample_dir(tmp_path):
    make_video(tmp_path / "v.mp4", frames=10)
    make_video(tmp_path / "d.mp4", frames=10)
    return tmp_path


@pytest.mark.parametrize("record, message", [
    ({"video_path": "v.mp4"}, "video_path\n  Extra inputs are not permitted"),
    ({"depth": {"control_path": "d.mp4", "control_weight": 0.5}}, "depth.control_weight\n  Extra inputs"),
    ({"guidance": 8}, "less than or equal to 7"),
    ({"resolution": 720}, "Input should be '256', '480', '720', '768'"),
    ({"vision_path": "v.mov"}, "Invalid vision extension: .mov"),
    ({"depth": {"control_path": "missing.mp4"}}, "Path does not point to a file"),
    ({"depth": None, "max_frames": 10}, "transfer inference requires at least one control hint"),
])
def test_stand_in_rejects_what_upstream_rejects(sample_dir, record, message):
    spec = {"prompt": "p", "vision_path": "v.mp4", "depth": {"control_path": "d.mp4", "weight": 1.0}, **record}
    (sample_dir / "spec.json").write_text(json.dumps(spec))
    done = stand_in(sample_dir, "-i", "spec.json", "-o", "out", "--checkpoint-path", "Cosmos3-Nano")
    assert done.returncode == 1 and "validation error" in done.stderr and "for OmniSampleOverrides" in done.stderr
    assert message in done.stderr


def test_stand_in_setup_and_load_time_errors(sample_dir):
    spec = {"prompt": "p", "vision_path": "v.mp4", "depth": {"control_path": "d.mp4"}}
    (sample_dir / "a.json").write_text(json.dumps(spec))
    (sample_dir / "b.jsonl").write_text(json.dumps({**spec, "name": "a"}) + "\n")
    base = ["-i", "a.json", "-o", "out", "--checkpoint-path", "Cosmos3-Nano"]
    assert stand_in(sample_dir, *base, "--vis-weight", "1").returncode == 2
    assert stand_in(sample_dir, "-i", "a.json", "-o", "out").returncode == 2  # --checkpoint-path is required
    assert "Checkpoint directory does not exist: Nope" in stand_in(
        sample_dir, "-i", "a.json", "-o", "out", "--checkpoint-path", "Nope").stderr
    assert "cp_size(1) * cfgp_size(2) must divide WORLD_SIZE(3)" in stand_in(
        sample_dir, *base, env={"WORLD_SIZE": "3"}).stderr
    assert stand_in(sample_dir, *base, "--cfgp-size", "1", "--cp-size", "3", env={"WORLD_SIZE": "3"}).returncode == 0
    assert "Duplicate name: 'a'" in stand_in(sample_dir, "-i", "a.json", "b.jsonl", "-o", "o2",
                                             "--checkpoint-path", "Cosmos3-Nano").stderr
    (sample_dir / "c.json").write_text(json.dumps({"prompt": "p", "vision_path": "v.mp4", "seg": {}}))
    done = stand_in(sample_dir, "-i", "c.json", "-o", "o3", "--checkpoint-path", "Cosmos3-Nano")
    assert done.returncode == 1 and "Missing pre-computed control input for 'seg'" in done.stderr
    assert (sample_dir / "o3" / "c" / "sample_args.json").is_file()  # written before generation, as upstream


def test_stand_in_writes_upstreams_names(sample_dir):
    (sample_dir / "in").mkdir()
    (sample_dir / "in" / "s.json").write_text(json.dumps(
        {"prompt": "p", "vision_path": "../v.mp4", "resolution": "256", "edge": {},
         "depth": {"control_path": "../d.mp4", "weight": 0.5}}))
    done = stand_in(sample_dir, "-i", "in/s.json", "-o", "out", "--checkpoint-path", "Cosmos3-Nano")
    assert done.returncode == 0, done.stderr
    assert "STAND-IN" in done.stdout
    assert sorted(p.name for p in (sample_dir / "out").iterdir()) == ["console.log", "debug.log", "s"]
    assert sorted(p.name for p in (sample_dir / "out" / "s").iterdir()) == [
        "control_depth.mp4", "control_edge.mp4", "sample_args.json", "sample_outputs.json", "vision.mp4"]
    assert json.loads((sample_dir / "out" / "s" / "sample_outputs.json").read_text())["status"] == "success"
    size = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=width,height", "-of", "csv=p=0",
                           str(sample_dir / "out" / "s" / "vision.mp4")], capture_output=True, text=True).stdout
    assert size.strip() == "320,192"  # the 256 tier's 16:9 bucket


def test_stand_in_hands_reasoner_samples_to_its_sibling(tmp_path, sample_dir):
    spec = {"model_mode": "reasoner", "prompt": "plausible?", "vision_path": "v.mp4"}
    (sample_dir / "r.json").write_text(json.dumps(spec))
    args = ["-i", str(sample_dir / "r.json"), "-o", str(sample_dir / "out"), "--checkpoint-path", "Cosmos3-Nano"]
    copy = tmp_path / "box" / "inference.py"
    copy.parent.mkdir()
    copy.write_bytes(STAND_IN.read_bytes())
    run = [sys.executable, str(copy), *args]
    env = {"COSMOS_STANDIN_SECONDS": "0", "PATH": "/usr/bin:/bin"}
    refused = subprocess.run(run, capture_output=True, text=True, env=env)
    assert refused.returncode == 1 and "model_mode 'reasoner' needs" in refused.stderr
    (copy.parent / "reasoner_stand_in.py").write_text(
        "import json, os\n"
        "def run(records, output_dir):\n"
        "    with open(os.path.join(output_dir, 'seen.json'), 'w') as f:\n"
        "        json.dump(records, f)\n")
    done = subprocess.run(run, capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    seen = json.loads((sample_dir / "out" / "seen.json").read_text())
    assert seen == [{**spec, "name": "r", "vision_path": str(sample_dir / "v.mp4")}]


def test_full_cycle_of_a_cosmos3_prompt_on_the_rehearsal_host(project, rehearsal_host):
    add_shot(project, frames=8)
    prompt = write_prompt_json(project, prompt3(resolution="256"), NAME)
    refused = script(project, "full_cycle.sh", prompt.relative_to(project), env={"MODEL": NANO})
    assert refused.returncode != 0 and "cosmos3-nano has no 4K upscaler; pass --no-upscale" in refused.stderr
    done = script(project, "full_cycle.sh", prompt.relative_to(project), "--no-upscale", env={"MODEL": NANO})
    assert done.returncode == 0, done.stderr
    run = project / "outputs" / "runs" / "city3-1"
    assert (run / "output.mp4").stat().st_size > 0
    for name in ("output_control_depth.mp4", "output_control_seg.mp4", "sample_args.json", "sample_outputs.json",
                 "console.log"):
        assert (run / name).is_file(), name
    assert not (run / "output").exists()
    used = json.loads((run / "spec_used.json").read_text())
    assert used["model"] == NANO and "cosmos_framework.scripts.inference" in used["command"]
    provenance = json.loads((run / "provenance.json").read_text())
    assert provenance["model"] == NANO and provenance["model_commit"] == "5eee9ed"
    assert "STAND-IN Cosmos 3" in (run / "run.log").read_text()
    assert [(r["status"], r["weights"]) for r in records(project)] == [("ok", "depth=0.5,seg=0.5")]


def test_a_run_spec_maps_back_to_the_project_paths_a_rerun_uploads():
    from cosmos_tools.models import profile

    nano = profile(NANO)
    prompt = prompt3(depth={"control_path": "inputs/videos/shot1/depth.mp4", "weight": 0.5})
    spec_path = "outputs/runs/city-3/controlnet_spec.json"
    used = nano.run_spec(prompt, spec_path)
    assert used["vision_path"] == "../../../inputs/videos/shot1/color.mp4"
    back = nano.project_spec(used, spec_path)
    assert back["vision_path"] == "inputs/videos/shot1/color.mp4"
    assert back["depth"] == {"control_path": "inputs/videos/shot1/depth.mp4", "weight": 0.5}
    assert back["seg"]["control_path"] == "inputs/videos/shot1/segmentation.mp4"
