"""`check`: cosmos-transfer1's own spec rules and the ones it forgets, one clear line per problem."""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from prompt_fixtures import FULL_SHOT, VideoLibrary, cli_env, make_spec_project, project_config

from cosmos_tools.validate import Problem, check_path

GOOD = {
    "prompt": "a red car at night",
    "input_video_path": "inputs/videos/shot1/color.mp4",
    "vis": {"control_weight": 0.25},
    "edge": {"control_weight": 0.25},
    "depth": {"control_weight": 0.25, "input_control": "inputs/videos/shot1/depth.mp4"},
    "seg": {"control_weight": 0.25, "input_control": "inputs/videos/shot1/segmentation.mp4"},
}
DELETE = object()


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    return VideoLibrary(tmp_path_factory.mktemp("videos"))


@pytest.fixture
def project(tmp_path, videos):
    root = make_spec_project(tmp_path / "proj", videos)
    (root / "two.json").write_text("[[0, 0, 0.5, 1], [0.5, 0, 1, 1]]")
    (root / "bad.json").write_text('{"box": [0, 0, 1, 1]}')
    return root


@pytest.fixture
def cfg(project, monkeypatch):
    return project_config(project, monkeypatch)


def replace_shot_videos(project: Path, videos, kind: str) -> None:
    """Swap every video of inputs/videos/shot1 for one of another ``kind`` (frames, size or fps)."""
    for name in FULL_SHOT:
        os.unlink(project / "inputs/videos/shot1" / name)
        videos.put(kind, project / "inputs/videos/shot1" / name)


def write(project: Path, spec, name: str = "p.json") -> Path:
    path = project / "inputs/prompts" / name
    path.write_text(spec if isinstance(spec, str) else json.dumps(spec), encoding="utf-8")
    return path


def mutate(changes: dict) -> dict:
    """GOOD with dotted keys changed (DELETE removes them)."""
    spec = copy.deepcopy(GOOD)
    for dotted, value in changes.items():
        *parents, last = dotted.split(".")
        target = spec
        for part in parents:
            target = target[part]
        if value is DELETE:
            target.pop(last, None)
        else:
            target[last] = value
    return spec


def check(path: Path, cfg) -> list[Problem]:
    return check_path(path, cfg).problems


def errors(problems: list[Problem]) -> list[Problem]:
    return [p for p in problems if not p.warning]


def test_good_prompt_passes(project, cfg):
    assert check(write(project, GOOD), cfg) == []


GOOD_VARIANTS = {
    "numeric string weight": {"edge.control_weight": "0.5"},
    "integer weight": {"edge.control_weight": 1},
    "zero weight": {"edge.control_weight": 0},
    "pt weight map": {"depth.control_weight": "weights/mask.pt"},
    "pure noise without input": {"input_video_path": DELETE, "sigma_max": 80, "vis": DELETE, "edge": DELETE},
    "empty input with pure noise": {"input_video_path": "", "sigma_max": 95.5, "vis": DELETE, "edge": DELETE},
    "flags as json": {"sigma_max": 60, "guidance": 7.5, "num_steps": 20, "seed": 42, "fps": 24,
                      "blur_strength": "low", "canny_threshold": "very_high", "num_input_frames": 1,
                      "negative_prompt": "blurry", "upsample_prompt": True, "offload_prompt_upsampler": True},
    "comment key": {"_comment": "tried 0.3 first", "_notes": {"any": "thing"}},
    "box checkpoint": {"edge.ckpt_path": "checkpoints/nvidia/Cosmos-Transfer1-7B/edge_control.pt"},
    "local checkpoint": {"edge.ckpt_path": "weights/mask.pt"},
    "seg prompts": {"seg.input_control_prompt": "car . road", "seg.control_weight_prompt": "car"},
    "regional boxes": {"regional_prompts": [{"prompt": "a red car", "region_definitions_path": [0, 0, 0.5, 1]},
                                            {"prompt": "sky", "mask_prompt": "sky"}]},
    "regional file": {"regional_prompts": [{"prompt": "x", "region_definitions_path": "regions.json"}]},
    "auto seg and depth": {"seg.input_control": DELETE, "depth.input_control": DELETE},
    "keypoint": {"keypoint": {"control_weight": 0.2}},
    "distilled edge": {"use_distilled": True, "vis": DELETE, "depth": DELETE, "seg": DELETE},
    # issue 11: upstream accepts these
    "input_control null computes it": {"depth.input_control": None, "seg.input_control": None},
    "single-control ckpt_path under the checkpoint folder": {
        "vis": DELETE, "depth": DELETE, "seg": DELETE, "edge.ckpt_path": "nvidia/Cosmos-Transfer1-7B/edge_control.pt"},
    "upscale settings": {"_upscale": {"prompt": "4K", "seed": 7, "num_steps": 12, "control_weight": 0.4}},
}


@pytest.mark.parametrize("changes", GOOD_VARIANTS.values(), ids=GOOD_VARIANTS.keys())
def test_good_variants_pass(project, cfg, changes):
    assert errors(check(write(project, mutate(changes)), cfg)) == []


BAD = {
    # cosmos-transfer1's own rules (inference_utils.py)
    "dict under unknown key": ({"segmentation": {"control_weight": 0.5}}, "segmentation", "Invalid hint_key"),
    "no input video": ({"input_video_path": DELETE}, "input_video_path", "sigma_max < 80"),
    "empty input video": ({"input_video_path": ""}, "input_video_path", "sigma_max < 80"),
    "no input, no input_control": ({"input_video_path": DELETE, "sigma_max": 90}, "vis.input_control",
                                   "no input_video_path"),
    "negative weight": ({"edge.control_weight": -0.1}, "edge.control_weight", ">= 0"),
    "text weight": ({"edge.control_weight": "strong"}, "edge.control_weight", ".pt weight map"),
    "distilled non-edge": ({"use_distilled": True}, "vis", "no default distilled checkpoint"),
    # the ones it forgets or finds late
    "typo key": ({"promt": "x"}, "promt", 'did you mean "prompt"'),
    "unknown scalar key": ({"frames": 121}, "frames", "unknown key"),
    "control not an object": ({"edge": 0.5}, "edge", "must be an object"),
    "boolean weight": ({"edge.control_weight": True}, "edge.control_weight", "got true"),
    "null weight": ({"edge.control_weight": None}, "edge.control_weight", "got null"),
    "list weight": ({"edge.control_weight": [0.5]}, "edge.control_weight", "finite number"),
    "nan string weight": ({"edge.control_weight": "nan"}, "edge.control_weight", "finite number"),
    "inf string weight": ({"edge.control_weight": "inf"}, "edge.control_weight", "finite number"),
    "missing pt": ({"edge.control_weight": "weights/none.pt"}, "edge.control_weight", "weight map .* not found"),
    "unknown control field": ({"edge.wieght": 0.5}, "edge.wieght", "unknown field"),
    "hdmap without input_control": ({"hdmap": {"control_weight": 0.5}}, "hdmap.input_control", "no preprocessor"),
    "lidar without input_control": ({"lidar": {"control_weight": 0.5}, "is_av_sample": True},
                                    "lidar.input_control", "no preprocessor"),
    "input_control list": ({"depth.input_control": ["a.mp4", "b.mp4"]}, "depth.input_control", "multiview"),
    "input_control not text": ({"depth.input_control": 3}, "depth.input_control", "must be a path"),
    "missing input video": ({"input_video_path": "inputs/videos/shot2/color.mp4"}, "input_video_path",
                            "not found.*convert_png_sequences"),
    "missing control video": ({"depth.input_control": "inputs/videos/shot1/d.mp4"}, "depth.input_control",
                              "not found"),
    "folder as input": ({"input_video_path": "inputs/videos/shot1"}, "input_video_path", "is a folder"),
    "absolute path": ({"input_video_path": "/etc/passwd"}, "input_video_path", "absolute"),
    "dot dot": ({"input_video_path": "inputs/videos/../../outside/color.mp4"}, "input_video_path", r"'\.\.'"),
    "dot dot inside": ({"depth.input_control": "inputs/videos/shot1/../shot1/depth.mp4"}, "depth.input_control",
                       r"'\.\.'"),
    "missing local checkpoint": ({"edge.ckpt_path": "mine/edge.pt"}, "edge.ckpt_path",
                                 "not in the project, and a multi-control spec"),
    "checkpoint escaping": ({"edge.ckpt_path": "checkpoints/../../x.pt"}, "edge.ckpt_path", r"'\.\.'"),
    "no controls": ({"vis": DELETE, "edge": DELETE, "depth": DELETE, "seg": DELETE}, "controls", "no control"),
    "blur choice": ({"blur_strength": "ultra"}, "blur_strength", "very_low, low, medium"),
    "canny choice": ({"canny_threshold": 3}, "canny_threshold", "very_low"),
    "num_steps float": ({"num_steps": 35.5}, "num_steps", "whole number"),
    "num_steps string": ({"num_steps": "35"}, "num_steps", "whole number"),
    "num_steps bool": ({"num_steps": True}, "num_steps", "whole number"),
    "fps zero": ({"fps": 0}, "fps", "whole number >= 1"),
    "seed negative": ({"seed": -1}, "seed", "whole number from 0"),
    "guidance string": ({"guidance": "7"}, "guidance", "number >= 0"),
    "sigma_max string": ({"sigma_max": "90"}, "sigma_max", "number >= 0"),
    "num_input_frames": ({"num_input_frames": 2}, "num_input_frames", "must be 1"),
    "prompt not text": ({"prompt": ["a", "b"]}, "prompt", "must be a string"),
    "flag not bool": ({"upsample_prompt": "yes"}, "upsample_prompt", "true or false"),
    "num_gpus in json": ({"num_gpus": 4}, "num_gpus", "NUM_GPU"),
    "batch mode": ({"batch_input_path": "b.jsonl"}, "batch_input_path", "batch mode"),
    "save name": ({"video_save_name": "x"}, "video_save_name", "output.mp4"),
    "regional not list": ({"regional_prompts": {"prompt": "x"}}, "regional_prompts", "Invalid hint_key"),
    "regional scalar": ({"regional_prompts": "x"}, "regional_prompts", "must be a list"),
    "regional no prompt": ({"regional_prompts": [{"mask_prompt": "car"}]}, "regional_prompts[0].prompt",
                           "missing"),
    "regional both": ({"regional_prompts": [{"prompt": "x", "mask_prompt": "car",
                                             "region_definitions_path": [0, 0, 1, 1]}]},
                      "regional_prompts[0]", "exactly one"),
    "regional bad box": ({"regional_prompts": [{"prompt": "x", "region_definitions_path": [0, 0, 2]}]},
                         "regional_prompts[0].region_definitions_path", r"one box \[x1, y1, x2, y2\]"),
    "regional list of boxes": ({"regional_prompts": [{"prompt": "x", "region_definitions_path": [[0, 0, 1, 1]]}]},
                               "regional_prompts[0].region_definitions_path", r"one box"),
    "regional inverted box": ({"regional_prompts": [{"prompt": "x", "region_definitions_path": [0.5, 0, 0.2, 1]}]},
                              "regional_prompts[0].region_definitions_path", r"x1 < x2"),
    "regional file of two boxes": ({"regional_prompts": [{"prompt": "x", "region_definitions_path": "two.json"}]},
                                   "regional_prompts", "1 regional prompts but .* 2 regions"),
    "regional file not boxes": ({"regional_prompts": [{"prompt": "x", "region_definitions_path": "bad.json"}]},
                                "regional_prompts[0].region_definitions_path", "list of"),
    "regional other suffix": ({"regional_prompts": [{"prompt": "x", "region_definitions_path": "r.txt"}]},
                              "regional_prompts[0].region_definitions_path", "a .json file of boxes, an .mp4"),
    "regional missing file": ({"regional_prompts": [{"prompt": "x", "region_definitions_path": "r.json"}]},
                              "regional_prompts[0].region_definitions_path", "not found"),
    "regional unknown field": ({"regional_prompts": [{"prompt": "x", "mask_prompt": "c", "weight": 1}]},
                               "regional_prompts[0].weight", "unknown field"),
    "upscale without input": ({"input_video_path": DELETE, "sigma_max": 90, "vis": DELETE, "edge": DELETE,
                               "upscale": {"control_weight": 0.5}}, "input_video_path", "upscale"),
    "distilled with save_input_noise": ({"use_distilled": True, "save_input_noise": True, "vis": DELETE,
                                         "depth": DELETE, "seg": DELETE}, "use_distilled", "save_input_noise"),
    "distilled with two controls": ({"use_distilled": True, "vis": DELETE, "seg": DELETE}, "use_distilled",
                                    "exactly one control, got 2"),
    "hdmap input_control null": ({"hdmap": {"control_weight": 0.1, "input_control": None}, "is_av_sample": True},
                                 "hdmap.input_control", "no preprocessor"),
    "upscale settings not an object": ({"_upscale": "4K"}, "_upscale", "must be an object"),
    "upscale seed": ({"_upscale": {"seed": "x"}}, "_upscale.seed", "whole number"),
    "upscale unknown field": ({"_upscale": {"steps": 3}}, "_upscale.steps", "unknown field"),
    "distilled with av": ({"use_distilled": True, "is_av_sample": True, "vis": DELETE, "depth": DELETE,
                           "seg": DELETE}, "use_distilled", "is_av_sample"),
}


@pytest.mark.parametrize("changes, key, message", BAD.values(), ids=BAD.keys())
def test_bad_prompts_are_named(project, cfg, changes, key, message):
    found = errors(check(write(project, mutate(changes)), cfg))
    assert any(p.key == key for p in found), found
    assert any(re.search(message, p.message) for p in found if p.key == key), found


@pytest.mark.parametrize("text, message", [
    ('{"prompt": "x", "edge": {"control_weight": NaN}}', "finite number"),
    ('{"prompt": "x", "edge": {"control_weight": Infinity}}', "finite number"),
    ('{"prompt": "x", "edge": {"control_weight": -Infinity}}', "finite number"),
])
def test_non_finite_weights(project, cfg, text, message):
    spec = text.replace('"prompt": "x"', '"prompt": "x", "input_video_path": "inputs/videos/shot1/color.mp4"')
    found = errors(check(write(project, spec), cfg))
    assert [p.key for p in found] == ["edge.control_weight"] and message in found[0].message


def test_symlink_out_of_the_project_is_refused(project, cfg, tmp_path, videos):
    outside = videos.put("ok", tmp_path / "outside/color.mp4")
    (project / "inputs/videos/linked").mkdir()
    (project / "inputs/videos/linked/color.mp4").symlink_to(outside)
    found = errors(check(write(project, mutate({"input_video_path": "inputs/videos/linked/color.mp4"})), cfg))
    assert [p.key for p in found] == ["input_video_path"] and "leads out of the project" in found[0].message


def test_symlink_inside_the_project_is_fine(project, cfg):
    (project / "inputs/videos/alias").symlink_to(project / "inputs/videos/shot1")
    spec = mutate({"input_video_path": "inputs/videos/alias/color.mp4"})
    assert errors(check(write(project, spec), cfg)) == []


@pytest.mark.parametrize("kind, key, message", [
    ("f100", "depth.input_control", "100 frames but input_video_path has 121"),
    ("square", "depth.input_control", "48x48 does not match the aspect ratio"),
    ("wide", "depth.input_control", "96x24 does not match"),
])
def test_control_videos_must_agree_with_the_input(project, cfg, videos, kind, key, message):
    os.unlink(project / "inputs/videos/shot1/depth.mp4")
    videos.put(kind, project / "inputs/videos/shot1/depth.mp4")
    found = errors(check(write(project, GOOD), cfg))
    assert [p.key for p in found] == [key] and message in found[0].message


def test_controls_agree_among_themselves_without_input(project, cfg, videos):
    os.unlink(project / "inputs/videos/shot1/segmentation.mp4")
    videos.put("short", project / "inputs/videos/shot1/segmentation.mp4")
    spec = mutate({"input_video_path": DELETE, "sigma_max": 80, "vis": DELETE, "edge": DELETE})
    found = errors(check(write(project, spec), cfg))
    assert [p.key for p in found] == ["seg.input_control"] and "24 frames but depth.input_control has 121" in \
        found[0].message


def test_one_frame_input_is_an_error(project, cfg, videos):
    replace_shot_videos(project, videos, "one")
    found = errors(check(write(project, GOOD), cfg))
    assert [p.key for p in found] == ["input_video_path"] and "at least 2 frames" in found[0].message


def test_short_input_is_a_warning(project, cfg, videos):
    replace_shot_videos(project, videos, "short")
    found = check(write(project, GOOD), cfg)
    assert [(p.key, p.warning) for p in found] == [("input_video_path", True)]
    assert "24 frames" in found[0].message and "#211" in found[0].message


def test_odd_aspect_and_fps_are_warnings(project, cfg, videos):
    replace_shot_videos(project, videos, "wide")
    found = check(write(project, GOOD), cfg)
    assert [(p.key, p.warning) for p in found] == [("input_video_path", True)]
    assert "stretched to 1280x704" in found[0].message
    replace_shot_videos(project, videos, "fps30")
    found = check(write(project, GOOD), cfg)
    assert [(p.key, p.warning) for p in found] == [("input_video_path", True)] and '"fps": 30' in found[0].message
    assert check(write(project, mutate({"fps": 30})), cfg) == []


def test_not_a_video_is_an_error(project, cfg):
    (project / "inputs/videos/shot1/depth.mp4").unlink()
    (project / "inputs/videos/shot1/depth.mp4").write_text("not a video")
    found = errors(check(write(project, GOOD), cfg))
    assert [p.key for p in found] == ["depth.input_control"] and "not a readable video" in found[0].message


@pytest.mark.parametrize("changes, key, fragment", [
    ({"checkpoint_dir": "ckpt"}, "checkpoint_dir", "CHECKPOINT_DIR_REMOTE"),
    ({"num_video_frames": 121}, "num_video_frames", "no effect"),
    ({"edge.sigma_max": 70}, "edge.sigma_max", "top level"),
    ({"edge.input_control_prompt": "car"}, "edge.input_control_prompt", "only uses it on seg"),
    ({"edge.control_weight": DELETE}, "edge.control_weight", "0.5"),
    ({"prompt": DELETE}, "prompt", "default prompt"),
    ({"hdmap": {"control_weight": 0.1, "input_control": "inputs/videos/shot1/depth.mp4"}}, "hdmap", "is_av_sample"),
    ({"offload_guardrail_models": False}, "offload_guardrail_models", "wins over OFFLOAD"),
])
def test_warnings_do_not_fail(project, cfg, changes, key, fragment):
    found = check(write(project, mutate(changes)), cfg)
    assert errors(found) == []
    assert any(p.key == key and fragment in p.message for p in found), found


def test_duplicate_keys_are_named(project, cfg):
    text = json.dumps(GOOD)[:-1] + ', "prompt": "second"}'
    found = check(write(project, text), cfg)
    assert [(p.key, p.warning) for p in found] == [("prompt", True)]
    assert found[0].message == ("appears twice in one object, on lines 1 and 1; cosmos uses the one on line 1: "
                                "remove the other")


def test_missing_input_video_is_one_line(project, cfg):
    found = check(write(project, mutate({"input_video_path": DELETE})), cfg)
    assert [p.key for p in errors(found)] == ["input_video_path"]


def test_every_problem_is_reported(project, cfg):
    spec = mutate({"promt": "x", "edge.control_weight": -1, "blur_strength": "ultra",
                   "depth.input_control": "inputs/videos/shot1/nope.mp4"})
    assert {p.key for p in errors(check(write(project, spec), cfg))} == {
        "promt", "edge.control_weight", "blur_strength", "depth.input_control"}


@pytest.mark.parametrize("text, message", [
    ('{"prompt": "x",\n  "edge": {"control_weight": 0.5,}\n}', "line 2, column 34: invalid JSON"),
    ("[1, 2]", "top level is a JSON list"),
    ("", "line 1, column 1: invalid JSON"),
])
def test_unreadable_prompt_is_one_problem(project, cfg, text, message):
    found = check(write(project, text), cfg)
    assert len(found) == 1 and found[0].key == "json" and message in found[0].message


def cosmos_tools(project: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cosmos_tools", *args], capture_output=True, text=True,
                          cwd=project, env=cli_env(project), timeout=120)


def test_cli_check_accepts_a_good_prompt(project):
    path = write(project, GOOD)
    done = cosmos_tools(project, "check", str(path.relative_to(project)))
    assert done.returncode == 0, done.stderr
    assert done.stdout == "ok: inputs/prompts/p.json\n" and done.stderr == ""


def test_cli_check_rejects_each_bad_prompt_with_clear_lines(project):
    """All the bad prompts in one run: each gets at least one `PATH: KEY: message` line, no traceback."""
    paths = [write(project, mutate(changes), f"bad {i}.json") for i, (changes, _, _) in enumerate(BAD.values())]
    paths.append(write(project, "{broken", "broken.json"))
    done = cosmos_tools(project, "check", *map(str, paths))
    assert done.returncode == 1
    assert "Traceback" not in done.stderr and done.stdout == ""
    lines = [line for line in done.stderr.splitlines() if not line.startswith("warning: ")]
    for path, (_, key, _) in zip(paths, BAD.values(), strict=False):
        assert any(line.startswith(f"{path}: {key}: ") for line in lines), (path, key)
    assert f"{paths[-1]}: json: line 1, column 2: invalid JSON" in done.stderr


def test_cli_check_json(project):
    good, bad = write(project, GOOD, "good.json"), write(project, mutate({"promt": "x", "prompt": DELETE}), "b.json")
    done = cosmos_tools(project, "check", "--json", str(good), str(bad))
    assert done.returncode == 1
    first, second = (json.loads(line) for line in done.stdout.splitlines())
    assert first == {"path": str(good), "ok": True, "problems": [], "warnings": []}
    assert second["ok"] is False and second["problems"][0]["key"] == "promt"
    assert second["warnings"][0]["key"] == "prompt"
    assert set(second["problems"][0]) == {"key", "message"}


def test_cli_check_warnings_keep_exit_zero(project, videos):
    replace_shot_videos(project, videos, "short")
    done = cosmos_tools(project, "check", str(write(project, GOOD)))
    assert done.returncode == 0
    assert done.stderr.startswith("warning: ") and "ok: " in done.stdout


def test_cli_check_missing_file_and_no_paramiko(project):
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "cosmos_tools", "check", "nope.json"],
                          capture_output=True, text=True, cwd=project, env=cli_env(project))
    assert done.returncode == 1
    assert "nope.json: json: no such prompt file" in done.stderr
    assert "paramiko" not in done.stderr


def test_a_shot_too_long_to_upscale_is_a_warning_naming_no_upscale(project, cfg):
    from prompt_fixtures import make_video

    for name in ("color", "depth", "segmentation"):
        make_video(project / "inputs" / "videos" / "long" / f"{name}.mp4", frames=130)
    spec = json.loads(json.dumps(GOOD).replace("shot1", "long"))
    found = check(write(project, spec), cfg)
    assert errors(found) == []
    assert any(p.key == "input_video_path" and "--no-upscale" in p.message for p in found), found
