"""The plan of one prompt: read once, checked, and the checked bytes are what is uploaded."""

from __future__ import annotations

import gc
import io
import json
import os

import pytest
from prompt_fixtures import VideoLibrary, make_spec_project, project_config

from cosmos_tools.errors import UserError
from cosmos_tools.plan import plan_prompt
from cosmos_tools.validate import check_path

SPEC = {
    "prompt": "a red car at night",
    "input_video_path": "inputs/videos/shot1/color.mp4",
    "edge": {"control_weight": 0.5},
    "seg": {"control_weight": "weights/mask.pt", "input_control": "inputs/videos/shot1/segmentation.mp4"},
    "regional_prompts": [{"prompt": "the car", "region_definitions_path": "regions.json"}],
}


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    return VideoLibrary(tmp_path_factory.mktemp("videos"))


@pytest.fixture
def project(tmp_path, videos):
    root = make_spec_project(tmp_path / "proj", videos)
    return root


@pytest.fixture
def cfg(project, tmp_path, monkeypatch):
    box = tmp_path / "box"
    box.mkdir()
    return project_config(project, monkeypatch, TRANSPORT="local", REMOTE_DIR=box)


def write(project, spec=SPEC, name="p.json"):
    path = project / "inputs/prompts" / name
    path.write_text(json.dumps(spec, indent=1), encoding="utf-8")
    return path


def test_the_prompt_file_is_read_once(cfg, project, monkeypatch):
    path = write(project)
    opened = []
    real_open = io.open

    def counting_open(file, *args, **kwargs):
        if isinstance(file, (str, os.PathLike)) and os.fspath(file) == str(path):
            opened.append(args[0] if args else kwargs.get("mode", "r"))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(io, "open", counting_open)
    monkeypatch.setattr("builtins.open", counting_open)
    plan = plan_prompt(cfg, path, quiet=True)
    assert opened == ["rb"]
    assert plan.text == path.read_bytes()


def test_an_edit_after_the_check_is_not_what_is_sent(cfg, project):
    from cosmos_tools.sync import upload_files
    from cosmos_tools.transport import connect

    path = write(project)
    checked = path.read_bytes()
    plan = plan_prompt(cfg, path, quiet=True)
    path.write_text('{"promt": "unchecked"}', encoding="utf-8")  # edited while the cycle runs
    with connect(cfg) as t:
        upload_files(t, plan.uploads, progress=False)
    assert (cfg.local_path("REMOTE_DIR") / "inputs/prompts/p.json").read_bytes() == checked
    assert plan.text == checked and plan.prompt == SPEC


def test_a_deleted_prompt_still_uploads_the_checked_bytes(cfg, project):
    path = write(project)
    checked = path.read_bytes()
    plan = plan_prompt(cfg, path, quiet=True)
    path.unlink()
    ((staged, rel),) = [(local, rel) for local, rel in plan.uploads if rel == "inputs/prompts/p.json"]
    assert staged.read_bytes() == checked


def test_the_staged_copy_goes_with_the_plan(cfg, project):
    plan = plan_prompt(cfg, write(project), quiet=True)
    staged = plan.uploads[0][0]
    assert staged.is_file() and staged.parent != project / "inputs/prompts"
    del plan
    gc.collect()
    assert not staged.exists()


def test_the_plan_sends_the_files_the_check_found(cfg, project):
    path = write(project)
    checked = check_path(path, cfg)
    assert checked.errors == []
    assert [rel for _, rel in checked.files] == ["inputs/videos/shot1/color.mp4",
                                                 "inputs/videos/shot1/segmentation.mp4", "weights/mask.pt",
                                                 "regions.json"]
    sent = [rel for _, rel in plan_prompt(cfg, path, quiet=True).uploads]
    assert sent[0] == "inputs/prompts/p.json"
    assert {rel for _, rel in checked.files} <= set(sent)
    assert sent.count("inputs/videos/shot1/color.mp4") == 1  # named by the spec and in the shot folder: sent once
    assert {"weights/mask.pt", "regions.json"} <= set(sent)


def test_a_symlink_out_of_the_project_is_never_sent(cfg, project, tmp_path, capsys):
    secret = tmp_path / "outside" / "id_rsa"
    secret.parent.mkdir()
    secret.write_text("PRIVATE KEY")
    shot = project / "inputs/videos/shot1"
    (shot / "notes.txt").symlink_to(secret)
    (shot / "readme.txt").symlink_to(project / "regions.json")  # a link that stays inside is fine
    sent = [rel for _, rel in plan_prompt(cfg, write(project), quiet=True).uploads]
    assert "inputs/videos/shot1/notes.txt" not in sent
    assert "inputs/videos/shot1/readme.txt" in sent
    err = capsys.readouterr().err
    assert f"not sending {shot / 'notes.txt'}: a symlink to {secret}" in err and err.count("\n") == 1


def test_a_prompt_with_errors_sends_nothing_and_stages_nothing(cfg, project, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    with pytest.raises(UserError, match="1 error"):
        plan_prompt(cfg, write(project, {**SPEC, "promt": "typo"}))
    assert "error: p.json: promt: unknown key" in capsys.readouterr().err
    assert list((tmp_path / "tmp").iterdir()) == []
