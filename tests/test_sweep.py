"""Sweeps: --set axes, product and zip, variant names, the manifest, checks before writing, all files or none."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest
from prompt_fixtures import FULL_SHOT, VideoLibrary, cli_env, make_project, project_config

from cosmos_tools.errors import UserError
from cosmos_tools.names import check_new_name
from cosmos_tools.prompts import read_prompt
from cosmos_tools.sweep import (
    Axis,
    build_sweep,
    check_key_path,
    combine,
    name_text,
    parse_sets,
    parse_value,
    short_key,
    split_values,
    variant_names,
    write_sweep,
)
from cosmos_tools.validate import check_prompt

REPO = Path(__file__).resolve().parents[1]
NOW = datetime(2026, 11, 22, 14, 30, 0)
BASE = {
    "_note": "kept in every variant",
    "prompt": "rainy alley",
    "input_video_path": "inputs/videos/alley/color.mp4",
    "edge": {"control_weight": 0.25},
    "depth": {"control_weight": 0.25, "input_control": "inputs/videos/alley/depth.mp4"},
    "regional_prompts": [],
}
HOSTILE_VALUES = ["it's \"quoted\"", "$(touch pwned)", "`touch pwned`", "two\nlines", "ünïcødé-鏡-🎬",
                  "</script><script>alert(1)</script>", "back\\slash ${PATH}", "-leading dash"]


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    return VideoLibrary(tmp_path_factory.mktemp("videos"))


@pytest.fixture
def project(tmp_path, videos):
    root = make_project(tmp_path / "proj é", videos, {"alley": FULL_SHOT})
    (root / "inputs/prompts/alley_v3.json").write_text(json.dumps(BASE, indent=2), encoding="utf-8")
    return root


@pytest.fixture
def cfg(project, monkeypatch):
    return project_config(project, monkeypatch)


@pytest.fixture
def base(project) -> Path:
    return project / "inputs/prompts/alley_v3.json"


def files_under(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def sweep_cli(project: Path, *args: str, script: bool = False) -> subprocess.CompletedProcess:
    command = [str(REPO / "scripts/sweep.sh")] if script else [sys.executable, "-m", "cosmos_tools", "sweep"]
    return subprocess.run([*command, *args], capture_output=True, text=True, env=cli_env(project), cwd=project,
                          timeout=60)


# -- --set parsing ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, pieces", [
    ("0.3,0.5", ["0.3", "0.5"]),
    ("[1,2],[3,4]", ["[1,2]", "[3,4]"]),
    ('{"a": 1, "b": [2, 3]},null', ['{"a": 1, "b": [2, 3]}', "null"]),
    ('"a, b","c \\" , d"', ['"a, b"', '"c \\" , d"']),
    ("a pier, at night", ["a pier", " at night"]),
    ("it's, fine", ["it's", " fine"]),
])
def test_values_split_only_on_top_level_commas(text, pieces):
    assert split_values(text, "k") == pieces


@pytest.mark.parametrize("text", ["[1,2", '"open', "{[}"])
def test_unbalanced_values_are_one_line(text):
    with pytest.raises(UserError, match="unbalanced value .*own --set"):
        split_values(text, "k")


@pytest.mark.parametrize("text, value", [
    ("0.5", 0.5), (" 7 ", 7), ("null", None), ("true", True), ('"0.5"', "0.5"), ("a pier", "a pier"),
    ("[1, 2]", [1, 2]), ('{"x": 1}', {"x": 1}), ("NaN", "NaN"), ("01", "01"), ('""', ""),
])
def test_values_are_json_literals_else_text(text, value):
    assert parse_value(text, "k") == value


@pytest.mark.parametrize("text, message", [
    ("", "empty value; to sweep the empty string write \"\""),
    ("   ", "empty value"),
    ("[0.5", "starts like JSON but is not JSON"),
    ('"unterminated', "starts like JSON but is not JSON"),
    ("1e999", "not a finite number"),
])
def test_bad_values_are_one_line(text, message):
    with pytest.raises(UserError, match=message):
        parse_value(text, "edge.control_weight")


def test_a_key_given_once_is_split_and_a_key_given_twice_is_taken_whole():
    axes = parse_sets(["seed=1,2,3", "prompt=a pier, at night", "prompt=a pier at noon", "sigma_max=[1,2]"])
    assert axes == [Axis("seed", (1, 2, 3)), Axis("prompt", ("a pier, at night", "a pier at noon")),
                    Axis("sigma_max", ([1, 2],))]
    assert parse_sets(["prompt=a pier, at night ", "seed= 1 "]) == [Axis("prompt", ("a pier", "at night")),
                                                                  Axis("seed", (1,))]
    assert parse_sets(["prompt= a pier ", "prompt=b"]) == [Axis("prompt", (" a pier ", "b"))]


@pytest.mark.parametrize("options, message", [
    (["seed"], "give KEY=V1,V2"),
    (["=1,2"], "give KEY=V1,V2"),
    (["edge..control_weight=1"], "empty step in the key path"),
    (["edge={\"control_weight\": 1}", "edge.control_weight=0.5"], "lies inside --set edge"),
    (["seed=1,,2"], "empty value"),
])
def test_bad_set_options_are_one_line(options, message):
    with pytest.raises(UserError, match=message):
        parse_sets(options)


# -- key paths ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("key", ["prompt", "edge.control_weight", "depth.input_control", "seed", "sigma_max",
                                 "edge.input_control", "keypoint", "regional_prompts"])
def test_keys_that_exist_or_that_the_checks_accept(key):
    check_key_path(key, BASE, "alley_v3.json")


@pytest.mark.parametrize("key, message", [
    ("sigma_mx", r"no 'sigma_mx' of alley_v3.json, and not a key the checks accept there; "
                 r'did you mean "sigma_max"\? known there: prompt, input_video_path, edge, depth'),
    ("edge.control_wieght", r'no .control_wieght. in edge .*did you mean "edge.control_weight"\?'),
    ("keypoint.control_weight", r"no 'keypoint' of alley_v3.json"),
    ("prompt.text", "prompt is not an object in alley_v3.json; a key path goes through objects only"),
    ("regional_prompts.0", "regional_prompts is a list in alley_v3.json"),
    ("_note", "'_note' is a comment key"),
    ("edge._x", "'_x' is a comment key"),
])
def test_bad_key_paths_name_the_key_and_the_known_ones(key, message):
    with pytest.raises(UserError, match=message):
        check_key_path(key, BASE, "alley_v3.json")


# -- variants and names -------------------------------------------------------------------------------------------

def test_product_and_zip_counts():
    axes = [Axis("a", (1, 2, 3)), Axis("b", ("x", "y", "z"))]
    product = combine(axes, zip_axes=False, limit=256)
    assert len(product) == 9 and product[0] == {"a": 1, "b": "x"} and product[1] == {"a": 1, "b": "y"}
    assert combine(axes, zip_axes=True, limit=256) == [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}, {"a": 3, "b": "z"}]


def test_zip_of_axes_of_different_lengths_is_one_line():
    with pytest.raises(UserError, match="every axis needs as many values: a has 3, b has 2"):
        combine([Axis("a", (1, 2, 3)), Axis("b", (1, 2))], zip_axes=True, limit=256)


def test_more_variants_than_the_limit_says_why():
    axes = [Axis("a", tuple(range(20))), Axis("b", tuple(range(20)))]
    with pytest.raises(UserError, match="400 variants is more than the limit of 256: each variant is one GPU job; "
                                        "narrow the axes, or pass --max 400"):
        combine(axes, zip_axes=False, limit=256)
    assert len(combine(axes, zip_axes=False, limit=400)) == 400


def test_names_are_readable():
    assert short_key("edge.control_weight") == "edge.cw" and short_key("seed") == "seed"
    assert variant_names("alley_v3", [{"edge.control_weight": 0.5, "seed": 7}]) == ["alley_v3__edge.cw-0.5__seed-7"]
    assert name_text("a pier, at night") == "a_pier_at_night" and name_text(None) == "null"
    assert name_text("") == "empty" and name_text([1, 2]) == "1_2"


def test_names_are_unique_even_by_case_and_valid():
    rows = [{"prompt": v} for v in ["a pier", "a_pier", "A pier", "a pier at noon", *HOSTILE_VALUES, "x" * 300]]
    names = variant_names("alley" * 50, rows)
    assert len({n.casefold() for n in names}) == len(rows)
    assert [name.split("__", 1)[1] for name in names[:3]] == \
        ["prompt-a_pier__1", "prompt-a_pier__2", "prompt-A_pier__3"]
    assert names[0].startswith("alley" * 30)
    for name in names:
        assert check_new_name(name, "variant name", "") == name
        assert len(f"{name}.json".encode()) <= 255


# -- building, checking and writing a sweep -----------------------------------------------------------------------

def test_a_sweep_writes_checked_variants_and_the_manifest(cfg, project, base):
    sweep = build_sweep(cfg, base, ["edge.control_weight=0.3,0.5", "seed=7,8,9"], now=NOW)
    assert sweep.errors == [] and len(sweep.variants) == 6
    write_sweep(sweep)
    manifest = json.loads((project / "inputs/sweeps/alley_v3_20261122_143000.json").read_text())
    assert list(manifest) == ["name", "base", "axes", "variants"]
    assert manifest["name"] == "alley_v3_20261122_143000" and manifest["base"] == "inputs/prompts/alley_v3.json"
    assert manifest["axes"] == {"edge.control_weight": [0.3, 0.5], "seed": [7, 8, 9]}
    assert manifest["variants"][0] == {"prompt": "inputs/prompts/alley_v3__edge.cw-0.3__seed-7.json",
                                       "values": {"edge.control_weight": 0.3, "seed": 7}}
    for entry in manifest["variants"]:
        prompt = read_prompt(project / entry["prompt"])
        assert prompt.data["_sweep"] == {"name": manifest["name"], "values": entry["values"]}
        assert prompt.data["_note"] == BASE["_note"] and prompt.data["prompt"] == BASE["prompt"]
        assert prompt.data["edge"]["control_weight"] == entry["values"]["edge.control_weight"]
        assert prompt.data["seed"] == entry["values"]["seed"]
        assert check_prompt(prompt, cfg).errors == []
    assert len(files_under(project / "inputs/prompts")) == 7


def test_one_failing_variant_writes_nothing(cfg, project, base):
    before = files_under(project)
    sweep = build_sweep(cfg, base, ["seed=1,-1", "edge.control_weight=0.5,-2"], name="bad")
    failing = {(name, p.key) for name, p in sweep.errors}
    assert failing == {("alley_v3__seed--1__edge.cw-0.5", "seed"), ("alley_v3__seed--1__edge.cw--2", "seed"),
                       ("alley_v3__seed-1__edge.cw--2", "edge.control_weight"),
                       ("alley_v3__seed--1__edge.cw--2", "edge.control_weight")}
    done = sweep_cli(project, "inputs/prompts/alley_v3.json", "--set", "seed=1,-1", "--set",
                     "edge.control_weight=0.5,-2", "--name", "bad")
    assert done.returncode == 1 and done.stdout == "" and "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    assert lines[:2] == ["alley_v3__seed-1__edge.cw--2: edge.control_weight: must be a finite number >= 0 or a path "
                         "to a .pt weight map, got -2 (also in 1 other variant)",
                         "alley_v3__seed--1__edge.cw-0.5: seed: must be a whole number from 0 to 4294967295, got -1 "
                         "(also in 1 other variant)"]
    assert lines[-1] == ("error: 3 of 4 variants fail the checks; nothing was written; fix the values or the base "
                         "prompt inputs/prompts/alley_v3.json")
    assert files_under(project) == before


def test_an_existing_target_with_other_content_writes_nothing(cfg, project, base):
    taken = project / "inputs/prompts/alley_v3__seed-2.json"
    taken.write_text("{}")
    before = files_under(project)
    done = sweep_cli(project, "inputs/prompts/alley_v3.json", "--set", "seed=1,2,3", "--name", "s")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr == (f"error: {taken}: already exists with other content; nothing was written; remove it, "
                           "or sweep other values (a variant is named after its base and values)\n")
    assert files_under(project) == before and taken.read_text() == "{}"


def test_an_existing_manifest_is_never_overwritten_but_the_same_sweep_again_is_fine(cfg, project, base):
    first = sweep_cli(project, "inputs/prompts/alley_v3.json", "--set", "seed=1,2", "--name", "s")
    assert first.returncode == 0, first.stderr
    again = sweep_cli(project, "inputs/prompts/alley_v3.json", "--set", "seed=1,2", "--name", "s")
    assert (again.returncode, again.stdout) == (0, first.stdout)
    other = sweep_cli(project, "inputs/prompts/alley_v3.json", "--set", "seed=3", "--name", "s")
    assert other.returncode == 1
    assert other.stderr.endswith("inputs/sweeps/s.json: already exists with other content; nothing was written; "
                                 "pick another --name\n")
    assert not (project / "inputs/prompts/alley_v3__seed-3.json").exists()


def test_a_target_appearing_mid_write_rolls_everything_back(cfg, project, base, monkeypatch):
    sweep = build_sweep(cfg, base, ["seed=1,2,3"], name="race")
    before = files_under(project)
    real_link = os.link

    def link(source, target):
        if str(target).endswith("seed-3.json"):
            Path(target).write_text("someone else")
        real_link(source, target)

    monkeypatch.setattr(os, "link", link)
    with pytest.raises(UserError, match="seed-3.json: already exists with other content; nothing was written"):
        write_sweep(sweep)
    assert files_under(project) == before | {"inputs/prompts/alley_v3__seed-3.json"}


@pytest.mark.parametrize("args, message", [
    (["--set", "sigma_mx=1"], r'error: --set sigma_mx: .*did you mean "sigma_max"\?'),
    (["--set", "seed=1,2", "--set", "edge.control_weight=1,2,3", "--zip"], "error: --zip pairs values"),
    (["--set", "edge.control_weight=[0.5"], "error: --set edge.control_weight: unbalanced value"),
    (["--set", 'prompt={"a": 1'], "error: --set prompt: unbalanced value"),
    (["--set", "seed=1", "--name", "a/b"], "error: sweep name 'a/b' is not a folder name"),
    (["--set", "seed=" + ",".join(map(str, range(300)))], "error: 300 variants is more than the limit of 256"),
    ([], "error: give at least one --set"),
])
def test_cli_errors_are_one_line_and_write_nothing(project, args, message):
    before = files_under(project)
    done = sweep_cli(project, "inputs/prompts/alley_v3.json", *args)
    assert done.returncode == 1 and done.stdout == "" and "Traceback" not in done.stderr
    assert len(done.stderr.splitlines()) == 1
    assert re.search(message, done.stderr), done.stderr
    assert files_under(project) == before


def test_dry_run_lists_and_writes_nothing_json_prints_the_manifest(project):
    before = files_under(project)
    done = sweep_cli(project, "inputs/prompts/alley_v3.json", "--set", "seed=7,8", "--zip", "--dry-run", "--name", "d")
    assert done.returncode == 0, done.stderr
    assert done.stdout == ("# dry run of sweep 'd': 2 variants (zipped); nothing written\n"
                           "alley_v3__seed-7  seed=7\nalley_v3__seed-8  seed=8\n")
    done = sweep_cli(project, "inputs/prompts/alley_v3.json", "--set", "seed=7,8", "--dry-run", "--json")
    assert json.loads(done.stdout)["variants"][1]["values"] == {"seed": 8}
    assert files_under(project) == before
    done = sweep_cli(project, "inputs/prompts/alley_v3.json", "--set", "seed=" + ",".join(map(str, range(300))),
                     "--max", "300", "--dry-run")
    assert done.returncode == 0 and len(done.stdout.splitlines()) == 301
    assert files_under(project) == before
    done = sweep_cli(project, "inputs/prompts/alley_v3.json", "--set", "seed=7,8", "--json", "--name", "j")
    assert json.loads(done.stdout) == json.loads((project / "inputs/sweeps/j.json").read_text())


def test_the_script_sweeps_texts_with_commas(project):
    done = sweep_cli(project, "inputs/prompts/alley_v3.json", "--set", "prompt=a pier, at night", "--set",
                     "prompt=a pier at noon", "--name", "texts", script=True)
    assert done.returncode == 0, done.stderr
    manifest = json.loads((project / "inputs/sweeps/texts.json").read_text())
    assert manifest["axes"] == {"prompt": ["a pier, at night", "a pier at noon"]}
    assert [read_prompt(project / v["prompt"]).data["prompt"] for v in manifest["variants"]] == \
        ["a pier, at night", "a pier at noon"]
    assert done.stdout.splitlines()[0] == \
        'inputs/prompts/alley_v3__prompt-a_pier_at_night.json  prompt="a pier, at night"'


def test_the_script_answers_help_and_its_usage_line(project):
    done = sweep_cli(project, "--help", script=True)
    assert done.returncode == 0 and done.stdout.startswith("Usage: sweep.sh <prompt.json> --set KEY=V1,V2,...")
    assert "-h, --help" in done.stdout
    done = sweep_cli(project, "--set", "seed=1", "--name", "x", script=True)
    assert (done.returncode, done.stdout, done.stderr) == (2, "", "usage: scripts/sweep.sh <prompt.json> --set "
                                                           "KEY=V1,V2,... [--set KEY=...] [--zip] [--name NAME]\n")


def test_hostile_values_round_trip_as_data(project):
    args = [arg for value in HOSTILE_VALUES for arg in ("--set", f"prompt={value}")]
    done = sweep_cli(project, "inputs/prompts/alley_v3.json", *args, "--name", "hostile", script=True)
    assert done.returncode == 0, done.stderr
    manifest = json.loads((project / "inputs/sweeps/hostile.json").read_text(encoding="utf-8"))
    assert manifest["axes"]["prompt"] == HOSTILE_VALUES
    assert [read_prompt(project / v["prompt"]).data["prompt"] for v in manifest["variants"]] == HOSTILE_VALUES
    assert not (project / "pwned").exists() and not Path("pwned").exists()
    assert all("\n" not in line for line in done.stdout.splitlines())


def test_a_write_error_mid_way_leaves_nothing(cfg, project, base, monkeypatch):
    sweep = build_sweep(cfg, base, ["seed=1,2,3"], name="full")
    before = files_under(project)
    real_link, calls = os.link, []

    def link(source, target):
        calls.append(target)
        if len(calls) == 3:
            raise OSError(28, "No space left on device", str(target))
        real_link(source, target)

    monkeypatch.setattr(os, "link", link)
    with pytest.raises(UserError, match=r"seed-3.json: cannot write it \(No space left on device\); nothing was "
                                        "written"):
        write_sweep(sweep)
    assert files_under(project) == before
    assert not any(p.name.startswith(".sweep-") for p in project.rglob("*"))
