"""One set of rules for names, applied the same way wherever a name enters: runs, shots, prompt base names."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest
from prompt_fixtures import HOSTILE_NAMES, VideoLibrary, make_project, project_config

from cosmos_tools.errors import UserError
from cosmos_tools.names import (
    MAX_BASE_NAME_BYTES,
    MAX_RUN_NAME_BYTES,
    NAME_MAX,
    check_name,
    check_new_name,
    check_run_name,
)

NOT_FOLDERS = ["", ".", "..", "a/b", "/abs", "nul\0"]
CONTROL = ["new\nline", "tab\t", "esc\x1b[31m", "del\x7f"]
PLAIN = ["plain", "a b", "...", "-dash", "ünïcødé-鏡-🎬", "$(touch pwned)", "it's", "x" * 200]


@pytest.mark.parametrize("name", PLAIN + HOSTILE_NAMES)
def test_a_folder_name_is_anything_but_slash_nul_and_dots(name):
    assert check_name(name, "shot", "fix it") == name
    assert check_run_name(name) == name


@pytest.mark.parametrize("name", NOT_FOLDERS + [None, 3])
def test_not_folder_names_are_refused_in_one_line(name):
    with pytest.raises(UserError) as caught:
        check_name(name, "shot", "give another")
    message = caught.value.format_message()
    assert message.startswith(f"shot {name!r} is not a folder name: ") and message.endswith("; give another")
    assert "\n" not in message


@pytest.mark.parametrize("name", NOT_FOLDERS + CONTROL)
def test_new_names_also_refuse_control_characters(name):
    with pytest.raises(UserError, match=r"^base name .* is not a folder name: .*; how"):
        check_new_name(name, "base name", "how")


@pytest.mark.parametrize("name", CONTROL)
def test_existing_names_may_hold_control_characters(name):
    assert check_run_name(name) == name  # a prompt file that exists is data, whatever its name


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    return VideoLibrary(tmp_path_factory.mktemp("videos"))


@pytest.fixture
def cfg(tmp_path, videos, monkeypatch):
    return project_config(make_project(tmp_path / "proj", videos, {"shot1": {"color.mp4": "ok"}}), monkeypatch)


def _refusal(fn) -> str | None:
    try:
        fn()
    except UserError as exc:
        return exc.format_message()
    return None


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "nul\0"])
def test_run_names_are_checked_the_same_way_everywhere(cfg, name):
    from cosmos_tools.render import render_run, render_upscale

    expected = _refusal(lambda: check_run_name(name))
    assert expected is not None
    assert _refusal(lambda: render_run(name, {}, cfg)) == expected
    assert _refusal(lambda: render_upscale(name, cfg)) == expected


@pytest.mark.parametrize("stem", ["..", "tab\tname", "new\nline", "$(x) 'q'"])
def test_the_plan_checks_the_prompt_file_stem_as_a_run_name(cfg, stem):
    from cosmos_tools.plan import plan_prompt

    path = cfg.local_path("LOCAL_PROMPTS_DIR") / f"{stem}.json"
    path.write_text(json.dumps({"prompt": "x", "input_video_path": "inputs/videos/shot1/color.mp4",
                                "edge": {"control_weight": 0.5}}))
    expected = _refusal(lambda: check_run_name(stem))
    assert _refusal(lambda: plan_prompt(cfg, path, check=False)) == expected


@pytest.mark.parametrize("name", NOT_FOLDERS + CONTROL)
def test_shots_and_base_names_are_checked_the_same_way_everywhere(cfg, name):
    from cosmos_tools.prompts import BASE_NAME_FIX, SHOT_FIX, new_prompt, shot_of

    now = datetime(2026, 11, 22, 14, 30)
    assert _refusal(lambda: new_prompt(cfg, name, "x", now=now)) == _refusal(
        lambda: check_new_name(name, "base name", BASE_NAME_FIX))
    assert _refusal(lambda: new_prompt(cfg, "ok", "x", shot=name, now=now)) == _refusal(
        lambda: check_new_name(name, "shot", SHOT_FIX))
    assert _refusal(lambda: shot_of({}, name)) == _refusal(lambda: check_new_name(name, "shot", SHOT_FIX))


def test_a_name_longer_than_a_file_name_is_refused_up_front():
    assert check_name("x" * NAME_MAX, "shot", "fix") == "x" * NAME_MAX
    with pytest.raises(UserError, match=r"^shot 'xxx.*\.\.\. is not a folder name: it is 256 bytes in UTF-8, over the "
                                        r"limit of 255 .*; shorten it; fix$"):
        check_name("x" * 256, "shot", "fix")


def test_run_names_leave_room_for_what_the_toolkit_adds():
    longest_file = len(".") + MAX_RUN_NAME_BYTES + len("-9999_upscaled.json.12345678.cosmos-part")
    assert longest_file == NAME_MAX and MAX_RUN_NAME_BYTES == 214
    assert check_run_name("r" * MAX_RUN_NAME_BYTES)
    with pytest.raises(UserError, match="it is 215 bytes in UTF-8, over the limit of 214"):
        check_run_name("r" * 215)
    with pytest.raises(UserError, match="it is 216 bytes in UTF-8"):  # é is two bytes: 108 characters
        check_run_name("é" * 108)


def test_new_prompt_base_name_limit(cfg):
    from cosmos_tools.prompts import new_prompt

    now = datetime(2026, 11, 22, 14, 30)
    with pytest.raises(UserError, match=f"over the limit of {MAX_BASE_NAME_BYTES}"):
        new_prompt(cfg, "b" * (MAX_BASE_NAME_BYTES + 1), "x", shot="shot1", now=now)
    path = new_prompt(cfg, "b" * MAX_BASE_NAME_BYTES, "x", shot="shot1", now=now)
    assert check_run_name(path.stem) == path.stem and (cfg.local_path("LOCAL_OUTPUTS_DIR") / path.stem).is_dir()


def test_check_names_a_prompt_file_name_over_the_limit(cfg):
    from cosmos_tools.validate import check_path

    path = cfg.local_path("LOCAL_PROMPTS_DIR") / f"{'p' * (MAX_RUN_NAME_BYTES + 1)}.json"
    path.write_text(json.dumps({"prompt": "x", "input_video_path": "inputs/videos/shot1/color.mp4",
                                "edge": {"control_weight": 0.5}}))
    problems = check_path(path, cfg).problems
    assert [(p.key, p.warning) for p in problems] == [("file name", False)]
    assert "over the limit of 214" in problems[0].message


def test_the_limits_are_said_in_the_help():
    from click.testing import CliRunner

    from cosmos_tools.cli import cli

    script = (Path(__file__).resolve().parents[1] / "scripts/new_prompt.sh").read_text()
    assert f"at most {MAX_BASE_NAME_BYTES} bytes in UTF-8" in script

    def help_of(command: str) -> str:
        return " ".join(CliRunner().invoke(cli, [command, "--help"]).output.split())

    assert f"at most {MAX_BASE_NAME_BYTES} bytes in UTF-8" in help_of("new-prompt")
    assert f"at most {MAX_RUN_NAME_BYTES} bytes in UTF-8" in help_of("check")
