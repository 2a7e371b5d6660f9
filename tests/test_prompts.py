"""Prompt JSONs: new, duplicate, read, shot; never overwrite, hostile text stays data, one-line errors."""

from __future__ import annotations

import errno
import json
import re
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest
from prompt_fixtures import FULL_SHOT, HOSTILE_NAMES, VideoLibrary, cli_env, make_project, project_config

from cosmos_tools.errors import LocalError, UserError
from cosmos_tools.prompts import (
    MODALITY_FILES,
    DuplicateKey,
    PromptFileError,
    duplicate_prompt,
    new_prompt,
    prompt_name,
    read_prompt,
    shot_of,
)
from cosmos_tools.validate import check_path

REPO = Path(__file__).resolve().parents[1]
NOW = datetime(2026, 11, 22, 14, 30, 0)


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    return VideoLibrary(tmp_path_factory.mktemp("videos"))


@pytest.fixture
def project(tmp_path, videos):
    return make_project(tmp_path / "proj", videos, {"shot1": FULL_SHOT, "coloronly": {"color.mp4": "ok"}})


@pytest.fixture
def cfg(project, monkeypatch):
    return project_config(project, monkeypatch)


def files_in(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


def test_modality_files_contract():
    assert MODALITY_FILES == {"color": "color.mp4", "depth": "depth.mp4", "segmentation": "segmentation.mp4"}


def test_new_prompt_uses_the_modalities_of_the_shot(cfg, project):
    path = new_prompt(cfg, "shot1", "a red car", now=NOW)
    assert path == project / "inputs/prompts/shot1_20261122_143000.json"
    spec = read_prompt(path).data
    assert spec["prompt"] == "a red car"
    assert spec["input_video_path"] == "inputs/videos/shot1/color.mp4"
    assert spec["depth"] == {"control_weight": 0.25, "input_control": "inputs/videos/shot1/depth.mp4"}
    assert spec["seg"] == {"control_weight": 0.25, "input_control": "inputs/videos/shot1/segmentation.mp4"}
    assert spec["vis"] == spec["edge"] == {"control_weight": 0.25}
    assert (project / "outputs/shot1_20261122_143000").is_dir()
    assert [p for p in check_path(path, cfg).problems if not p.warning] == []


def test_shot_with_only_color_gets_computed_controls(cfg):
    spec = read_prompt(new_prompt(cfg, "coloronly", "x", now=NOW)).data
    assert set(spec) == {"prompt", "input_video_path", "vis", "edge"}
    assert spec["vis"]["control_weight"] == 0.5


def test_shot_option_overrides_the_base_name(cfg):
    spec = read_prompt(new_prompt(cfg, "experiment A", "x", shot="shot1", now=NOW)).data
    assert spec["input_video_path"] == "inputs/videos/shot1/color.mp4"


@pytest.mark.parametrize("text", ['quote " backslash \\ tab \t newline \n end', "$(rm -rf /) `id` ${HOME}",
                                  "</script><b>&amp;", "ünïcødé 鏡 🎬", "{{ not jinja }} {% raw %}", ""])
def test_prompt_text_is_data(cfg, text):
    path = new_prompt(cfg, "shot1", text, now=NOW)
    assert read_prompt(path).data["prompt"] == text


def test_same_second_never_overwrites(cfg, project):
    first = new_prompt(cfg, "shot1", "one", now=NOW)
    second = new_prompt(cfg, "shot1", "two", now=NOW)
    third = new_prompt(cfg, "shot1", "three", now=NOW)
    assert [p.name for p in (first, second, third)] == [
        "shot1_20261122_143000.json", "shot1_20261122_143000_2.json", "shot1_20261122_143000_3.json"]
    assert [read_prompt(p).data["prompt"] for p in (first, second, third)] == ["one", "two", "three"]
    assert (project / "outputs/shot1_20261122_143000_3").is_dir()


def test_missing_shot_folder_says_how_to_fix(cfg, project):
    with pytest.raises(UserError, match="convert_png_sequences.sh.*--shot"):
        new_prompt(cfg, "nosuchshot", "x", now=NOW)
    assert files_in(project / "inputs/prompts") == set()
    assert files_in(project / "outputs") == set()


def test_shot_without_color_is_refused(cfg, project):
    (project / "inputs/videos/nocolor").mkdir()
    (project / "inputs/videos/shot1/depth.mp4").rename(project / "inputs/videos/nocolor/depth.mp4")
    with pytest.raises(UserError, match="no color.mp4.*convert_png_sequences.sh"):
        new_prompt(cfg, "nocolor", "x", now=NOW)
    assert files_in(project / "inputs/prompts") == set()


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "/abs", "new\nline", "tab\t", "nul\0", "esc\x1b[31m"])
def test_bad_base_names_are_refused(cfg, name):
    with pytest.raises(UserError, match="base name"):
        new_prompt(cfg, name, "x", now=NOW)


@pytest.mark.parametrize("name", [n for n in HOSTILE_NAMES if not any(c in n for c in "\n\t")])
def test_hostile_but_legal_base_names_work(cfg, project, videos, name):
    videos.put("ok", project / "inputs/videos" / name / "color.mp4")
    path = new_prompt(cfg, name, "x", now=NOW)
    assert path.name == f"{name}_20261122_143000.json"
    assert prompt_name(path) == f"{name}_20261122_143000"
    assert shot_of(read_prompt(path).data) == name
    assert (project / "outputs" / path.stem).is_dir()
    assert [p for p in check_path(path, cfg).problems if not p.warning] == []


def test_duplicate_keeps_the_shot_and_content(cfg, project):
    original = new_prompt(cfg, "experiment", "x", shot="shot1", now=NOW)
    original.write_text(original.read_text().replace('"x"', '"edited by hand"'))
    copy = duplicate_prompt(cfg, original, now=datetime(2026, 11, 23, 9, 0, 0))
    assert copy.name == "experiment_20261123_090000.json"
    assert copy.read_text() == original.read_text()
    assert shot_of(read_prompt(copy).data) == "shot1"  # not derived from the name (the origin's bug)
    assert (project / "outputs/experiment_20261123_090000").is_dir()
    again = duplicate_prompt(cfg, copy, now=datetime(2026, 11, 23, 9, 0, 0))
    assert again.name == "experiment_20261123_090000_2.json"
    third = duplicate_prompt(cfg, again, now=datetime(2026, 11, 24, 9, 0, 0))
    assert third.name == "experiment_20261124_090000.json"


def test_duplicate_of_a_name_without_timestamp(cfg, project):
    source = project / "inputs/prompts/building_flythrough_v1.json"
    source.write_text('{"prompt": "x", "input_video_path": "inputs/videos/shot1/color.mp4", "edge": {}}')
    copy = duplicate_prompt(cfg, source, now=NOW)
    assert copy.name == "building_flythrough_v1_20261122_143000.json"


def test_duplicate_refuses_broken_json(cfg, project):
    source = project / "inputs/prompts/broken.json"
    source.write_text('{"prompt": "x",\n  "edge": }')
    with pytest.raises(UserError, match=r"broken.json:2:11: invalid JSON"):
        duplicate_prompt(cfg, source, now=NOW)
    assert files_in(project / "inputs/prompts") == {"broken.json"}


def test_user_template_overrides_the_default(cfg, project):
    (project / "inputs/prompts/prompt_template.json.j2").write_text(
        '{"prompt": {{ prompt | tojson }}, "input_video_path": {{ input_video_path | tojson }}, '
        '"sigma_max": 60, "edge": {"control_weight": 1.0}, "note_shot": {{ shot | tojson }}}')
    spec = read_prompt(new_prompt(cfg, "shot1", 'a "b"', now=NOW)).data
    assert spec == {"prompt": 'a "b"', "input_video_path": "inputs/videos/shot1/color.mp4", "sigma_max": 60,
                    "edge": {"control_weight": 1.0}, "note_shot": "shot1"}


@pytest.mark.parametrize("template, message", [
    ('{"prompt": {{ prompt | tojson }', "prompt_template.json.j2:1: template error"),
    ('{"prompt": "{{ prompt }}"}', "did not produce JSON"),  # no |tojson: the quote in the text breaks it
    ('{"x": {{ no_such_variable | tojson }}}', "prompt_template.json.j2: template error"),
    ('[{{ prompt | tojson }}]', "not an object"),
])
def test_bad_user_template_is_named_and_nothing_is_written(cfg, project, template, message):
    (project / "inputs/prompts/prompt_template.json.j2").write_text(template)
    with pytest.raises(UserError, match=message):
        new_prompt(cfg, "shot1", 'has "quotes"', now=NOW)
    assert files_in(project / "inputs/prompts") == {"prompt_template.json.j2"}
    assert files_in(project / "outputs") == set()


def test_too_long_name_is_a_clear_error(cfg, project, videos):
    name = "x" * 250
    videos.put("ok", project / "inputs/videos" / name / "color.mp4")
    with pytest.raises(UserError, match="is 250 bytes in UTF-8, over the limit of 194 .*; shorten it"):
        new_prompt(cfg, name, "x", now=NOW)
    assert list((project / "inputs/prompts").glob("x*")) == []


def test_unreadable_user_template(cfg, project):
    (project / "inputs/prompts/prompt_template.json.j2").write_bytes(b"\xff\xfe")
    with pytest.raises(UserError, match="cannot read the prompt template"):
        new_prompt(cfg, "shot1", "x", now=NOW)


@pytest.mark.parametrize("text, where", [
    ('{"prompt": "x",\n "edge": {"control_weight": 0.5,}}', ":2:33: invalid JSON"),
    ('["not", "an", "object"]', ":1:1: top level is a JSON list"),
    ("", ":1:1: invalid JSON"),
    ('{"a": 1} trailing', ":1:10: invalid JSON"),
])
def test_read_prompt_names_file_line_column(tmp_path, text, where):
    path = tmp_path / "p.json"
    path.write_text(text)
    with pytest.raises(PromptFileError) as caught:
        read_prompt(path)
    assert caught.value.format_message().startswith(f"{path}{where}")


def test_read_prompt_unreadable_files(tmp_path):
    with pytest.raises(UserError, match="no such prompt file"):
        read_prompt(tmp_path / "missing.json")
    with pytest.raises(UserError, match="is a folder"):
        read_prompt(tmp_path)
    (tmp_path / "latin1.json").write_bytes(b'{"prompt": "caf\xe9"}')
    with pytest.raises(UserError, match="not UTF-8"):
        read_prompt(tmp_path / "latin1.json")


@pytest.mark.parametrize("path, shot", [
    ("inputs/videos/shot1/color.mp4", "shot1"),
    ("./inputs/videos/a b $(x)/color.mp4", "a b $(x)"),
    ("inputs/videos/s/sub/color.mp4", "s"),
])
def test_shot_of(path, shot):
    assert shot_of({"input_video_path": path}) == shot


@pytest.mark.parametrize("spec", [{}, {"input_video_path": ""}, {"input_video_path": 3},
                                  {"input_video_path": "assets/x.mp4"}, {"input_video_path": "inputs/videos/x.mp4"},
                                  {"input_video_path": "inputs/videos/../color.mp4"}])
def test_shot_of_refuses_paths_without_a_shot(spec):
    with pytest.raises(UserError, match="inputs/videos/<shot>/<file>"):
        shot_of(spec)


def test_shot_of_override_wins():
    assert shot_of({"input_video_path": "inputs/videos/a/color.mp4"}, "b") == "b"
    with pytest.raises(UserError):
        shot_of({}, "../x")


def run_script(project: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(REPO / "scripts/new_prompt.sh"), *args], capture_output=True, text=True,
                          env=cli_env(project), cwd=project, timeout=60)


def test_script_writes_and_duplicates(project):
    done = run_script(project, "it's $(x)", 'a "quoted" prompt', "--shot", "shot1")
    assert done.returncode == 0, done.stderr
    written = project / done.stdout.strip()
    assert written.parent == project / "inputs/prompts" and written.name.startswith("it's $(x)_")
    assert read_prompt(written).data["prompt"] == 'a "quoted" prompt'
    done = run_script(project, "--duplicate", str(written))
    assert done.returncode == 0, done.stderr
    copy = project / done.stdout.strip()
    assert copy != written and copy.read_text() == written.read_text()


@pytest.mark.parametrize("args, code, message", [
    (["nosuchshot", "text"], 1, "error: .*shot folder not found.*convert_png_sequences.sh"),
    (["bad\nname", "text"], 1, "error: base name .* control character"),
    (["onlyone"], 2, r"^usage: scripts/new_prompt\.sh <base_name> \"<prompt text>\"\n"),
    (["--duplicate", "missing.json"], 1, "error: missing.json: no such prompt file"),
    (["--duplicate", "x.json", "extra"], 2, "--duplicate takes only"),
])
def test_script_errors_are_one_line(project, args, code, message):
    done = run_script(project, *args)
    assert done.returncode == code
    assert "Traceback" not in done.stderr
    assert done.stdout == ""
    assert re.search(message, done.stderr), done.stderr
    if code == 1:
        assert len(done.stderr.strip().splitlines()) == 1
    assert files_in(project / "inputs/prompts") == set()


def test_cli_help_documents_the_template(project):
    done = subprocess.run([sys.executable, "-m", "cosmos_tools", "new-prompt", "--help"], capture_output=True,
                          text=True, env=cli_env(project))
    assert "inputs/prompts/prompt_template.json.j2" in " ".join(done.stdout.split())


def test_new_prompt_json_is_readable_by_people(cfg):
    text = new_prompt(cfg, "shot1", "ü <b>", now=NOW).read_text(encoding="utf-8")
    assert '"prompt": "ü <b>"' in text and text.endswith("}\n")
    assert json.loads(text)


def test_read_prompt_keeps_the_bytes_and_counts_lines_of_any_newline(tmp_path):
    path = tmp_path / "cr.json"
    path.write_bytes(b'{"prompt": "x",\r\n"edge": {}\r,}')
    with pytest.raises(PromptFileError) as caught:
        read_prompt(path)
    assert caught.value.line == 3
    path.write_bytes(b'{"prompt": "x",\r\n "prompt": "y"}')
    prompt = read_prompt(path)
    assert prompt.raw == path.read_bytes() and prompt.data == {"prompt": "y"}
    assert prompt.duplicates == (DuplicateKey("prompt", 1, 2),) and prompt.name == "cr"


def test_duplicate_keys_are_found_with_both_lines_at_any_depth(tmp_path):
    path = tmp_path / "dup.json"
    path.write_text('{"prompt": "a", "x": [{"k": 1}, {"k": 2}],\n "depth": {"control_weight": 0.5,\n'
                    ' "control_weight": 0.7, "s": "\\"prompt\\": ,{"},\n "prompt": "b"}')
    prompt = read_prompt(path)
    assert prompt.data["depth"]["control_weight"] == 0.7 and prompt.data["prompt"] == "b"
    assert prompt.duplicates == (DuplicateKey("control_weight", 2, 3), DuplicateKey("prompt", 1, 4))


def test_json_nested_100000_levels_is_one_line(tmp_path):
    path = tmp_path / "deep.json"
    path.write_text('{"prompt": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(PromptFileError, match=r"deep.json: nested too deeply to read .*; fix or regenerate") as caught:
        read_prompt(path)
    assert "\n" not in caught.value.format_message()


def test_check_command_says_deep_json_in_one_line(cfg, project):
    path = project / "inputs/prompts/deep.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    done = subprocess.run([sys.executable, "-m", "cosmos_tools", "check", str(path)], capture_output=True, text=True,
                          env=cli_env(project))
    assert done.returncode == 1 and "nested too deeply" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("where", ["prompts", "outputs"])
@pytest.mark.parametrize("error", [(errno.EACCES, "Permission denied", "writable"),
                                   (errno.ENOSPC, "No space left on device", "free some space")])
def test_unwritable_local_folder_is_a_local_error(cfg, project, monkeypatch, where, error):
    code, text, fix = error
    failing = OSError(code, text)
    if where == "prompts":
        monkeypatch.setattr("cosmos_tools.prompts.create_exclusive", lambda *a: (_ for _ in ()).throw(failing))
    else:
        real_mkdir = Path.mkdir

        def mkdir(self, *args, **kwargs):
            if self.parent == project / "outputs":
                raise failing
            return real_mkdir(self, *args, **kwargs)

        monkeypatch.setattr(Path, "mkdir", mkdir)
    with pytest.raises(LocalError) as caught:
        new_prompt(cfg, "shot1", "x", now=NOW)
    assert caught.value.exit_code == 4
    assert text in caught.value.format_message() and fix in caught.value.format_message()
    assert list((project / "inputs/prompts").glob("shot1_*")) == []  # no prompt without its outputs folder


def test_new_prompt_cli_exits_4_when_outputs_cannot_be_made(project):
    (project / "blocker").write_text("a file where a folder should be")
    done = subprocess.run([sys.executable, "-m", "cosmos_tools", "new-prompt", "shot1", "text"], capture_output=True,
                          text=True, env={**cli_env(project), "LOCAL_OUTPUTS_DIR": "blocker/outputs"})
    assert done.returncode == 4 and done.stderr.count("\n") == 1 and "blocker/outputs" in done.stderr, done.stderr
    assert list((project / "inputs/prompts").glob("shot1_*")) == []
