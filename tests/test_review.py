"""cosmos-tools review without a browser: selection, the data model, the page's text and paths, the sheet."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import pytest
from review_fixtures import HOSTILE_PROMPT, HOSTILE_RUN, base_spec, make_project, make_run, score

from cosmos_tools.config import load_config
from cosmos_tools.errors import UserError
from cosmos_tools.probe import probe_video
from cosmos_tools.review import load, select
from cosmos_tools.review_page import write_review
from cosmos_tools.sheet import LABEL_H, THUMB_H, THUMB_W, label_lines

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("clips")


@pytest.fixture
def root(tmp_path, cache, monkeypatch) -> Path:
    root = make_project(tmp_path / "project é", cache)
    monkeypatch.setenv("COSMOS_PROJECT_ROOT", str(root))
    return root


@pytest.fixture
def four(root, cache) -> Path:
    """Two ok runs (one with a hostile prompt), a failed one, a blocked one with a hostile name."""
    make_run(root, cache, "alley-1", base_spec(), computed=("edge",), upscale=True)
    make_run(root, cache, "alley_w-1", base_spec(edge__control_weight=0.9, prompt=HOSTILE_PROMPT))
    make_run(root, cache, "alley-2", base_spec(seed=7), status="failed", log="RuntimeError: CUDA out of memory")
    make_run(root, cache, HOSTILE_RUN, base_spec(seed=3), status="blocked")
    return root


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cosmos_tools", "review", *args], cwd=cwd, capture_output=True,
                          text=True, env={**os.environ, "COSMOS_PROJECT_ROOT": str(cwd)}, timeout=120)


# selection

def test_select_run_ids_last_and_shot(four):
    cfg = load_config(four)
    assert select(cfg, ["alley-2", "alley-1"])[1] == ["alley-2", "alley-1"]
    assert select(cfg, last=2)[1] == ["alley-2", HOSTILE_RUN]
    assert select(cfg, last=10)[1] == ["alley-1", "alley_w-1", "alley-2", HOSTILE_RUN]
    assert select(cfg, shot="alley")[1] == ["alley-1", "alley_w-1", "alley-2", HOSTILE_RUN]


def test_a_run_folder_without_a_history_line_is_found(root, cache):
    make_run(root, cache, "quiet-1", base_spec(), history_line=False)
    title, chosen, _ = select(load_config(root), ["quiet-1"])
    tile = load(load_config(root), title, chosen).tiles[0]
    assert (tile.status, tile.seed, tile.duration_s) == ("ok", 1, 12.5)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"run_ids": ["alley-9"]}, "no run 'alley-9': it is neither in"),
    ({}, "give the runs to review"),
    ({"run_ids": ["alley-1"], "last": 2}, "exactly one"),
    ({"shot": "pier"}, "no run of shot 'pier'"),
    ({"sweep": "nope"}, "no sweep 'nope'"),
    ({"sweep": "a/b"}, "sweep name 'a/b' is not a folder name"),
])
def test_selection_errors_are_one_line(four, kwargs, message):
    with pytest.raises(UserError) as caught:
        select(load_config(four), **kwargs)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_sweep_takes_the_latest_run_of_each_variant(root, cache):
    prompts = [f"inputs/prompts/alley__edge.cw-{w}.json" for w in ("0.2", "0.8", "1.0")]
    manifest = {"name": "weights", "base": "inputs/prompts/alley.json", "axes": {"edge.control_weight": [0.2, 0.8, 1]},
                "variants": [{"prompt": p, "values": {"edge.control_weight": w}}
                             for p, w in zip(prompts, (0.2, 0.8, 1), strict=True)]}
    (root / "inputs" / "sweeps").mkdir()
    (root / "inputs" / "sweeps" / "weights.json").write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(UserError, match="none of its 3 variants has run yet"):
        select(load_config(root), sweep="weights")
    for k in (1, 2, 10):
        make_run(root, cache, f"alley__edge.cw-0.2-{k}", base_spec(edge__control_weight=0.2))
    make_run(root, cache, "alley__edge.cw-0.8-1", base_spec(edge__control_weight=0.8))
    title, chosen, notes = select(load_config(root), sweep="weights")
    assert title == "sweep weights"
    assert chosen == ["alley__edge.cw-0.2-10", "alley__edge.cw-0.8-1"]
    assert notes == ["variant alley__edge.cw-1.0 has no run yet"]
    (root / "inputs" / "sweeps" / "weights.json").write_text("{", encoding="utf-8")
    with pytest.raises(UserError, match="not a readable sweep manifest"):
        select(load_config(root), sweep="weights")


# the data model

def test_shared_values_once_and_differing_values_per_tile(four):
    review = load(load_config(four), "t", ["alley-1", "alley_w-1", "alley-2", HOSTILE_RUN])
    assert review.shared == {"input_video_path": "inputs/videos/alley/color.mp4", "sigma_max": "70",
                             "depth.control_weight": "0.5", "depth.input_control": "inputs/videos/alley/depth.mp4"}
    assert [t.differing for t in review.tiles][:2] == [
        {"prompt": "a wet alley at night", "seed": "1", "edge.control_weight": "0.5"},
        {"prompt": HOSTILE_PROMPT, "seed": "1", "edge.control_weight": "0.9"}]
    assert [v.label for v in review.sources] == ["source", "depth control",
                                                 "edge control computed by Cosmos (alley-1)"]


def test_failed_and_blocked_tiles_carry_verdict_and_last_log_lines(four):
    tiles = load(load_config(four), "t", ["alley-1", "alley-2", HOSTILE_RUN]).tiles
    ok, failed, blocked = tiles
    assert (ok.status, ok.verdict, ok.log_tail, ok.upscales[0].parent.name) == ("ok", "", [], "alley-1_upscaled")
    assert (failed.status, failed.verdict, failed.output) == ("failed", "exit code 1", None)
    assert failed.log_tail[-1] == "RuntimeError: CUDA out of memory" and len(failed.log_tail) == 15
    assert blocked.status == "blocked" and "guardrail" in blocked.verdict


# the page

class _Refs(HTMLParser):
    def __init__(self):
        super().__init__()
        self.refs, self.scripts = [], []

    def handle_starttag(self, tag, attrs):
        for key, value in attrs:
            if key in ("src", "href", "poster"):
                self.refs.append(value)
        if tag == "script":
            self.scripts.append(dict(attrs))


def test_page_paths_are_relative_and_survive_moving_outputs(four, tmp_path):
    page = write_review(load_config(four), ["alley-1", "alley_w-1", "alley-2", HOSTILE_RUN])
    assert page.parent == four / "outputs" / "review" and page.suffix == ".html"
    moved = tmp_path / "elsewhere" / "outputs #2"
    shutil.copytree(four / "outputs", moved, symlinks=True)
    shutil.rmtree(four)
    refs = _Refs()
    moved_page = moved / page.relative_to(page.parents[1])
    refs.feed(moved_page.read_text(encoding="utf-8"))
    assert len(refs.refs) > 20
    for ref in refs.refs:
        assert not re.match(r"^[a-z]+:|^/", ref), ref  # no scheme, no absolute path
        assert (moved_page.parent / unquote(ref)).resolve().is_relative_to(moved.resolve()), ref
        assert (moved_page.parent / unquote(ref)).exists(), ref


def test_page_escapes_hostile_text_and_allows_no_network(four):
    page = write_review(load_config(four), ["alley_w-1", HOSTILE_RUN])
    text = page.read_text(encoding="utf-8")
    assert "<script>document" not in text and "<img src=x" not in text and "<b>bold" not in text
    assert "&lt;/script&gt;&lt;script&gt;document.title=" in text  # shown as text
    data_block = re.search(r'<script type="application/json" id="review-data">(.*?)</script>', text, re.S).group(1)
    assert "<" not in data_block and ">" not in data_block and "&" not in data_block
    assert json.loads(data_block)["runs"][1]["run_id"] == HOSTILE_RUN
    refs = _Refs()
    refs.feed(text)
    assert [s.get("type") for s in refs.scripts] == ["application/json", None]  # one script, no src
    assert "default-src 'none'" in text and "script-src 'sha256-" in text
    assert not re.search(r"https?://", text)


def test_large_videos_are_linked_not_preloaded(four, monkeypatch):
    monkeypatch.setattr("cosmos_tools.review_page.LARGE_BYTES", 1)
    text = write_review(load_config(four), ["alley-1"], sheet=False).read_text(encoding="utf-8")
    assert 'preload="metadata"' in text and 'preload="auto"' not in text


def test_writing_again_replaces_the_page_and_its_files_whole(four):
    cfg = load_config(four)
    page = write_review(cfg, ["alley-1", "alley_w-1"], title="same")
    write_review(cfg, ["alley-2"], title="same")
    folder = page.parent
    assert sorted(p.name for p in folder.iterdir()) == ["same.files", "same.html", "same.png"]
    assert sorted(p.name for p in (folder / "same.files").iterdir()) == [
        "poster-source-1.jpg", "poster-source-2.jpg", "source-1-source.mp4", "source-2-depth_control.mp4"]


# the contact sheet

def test_contact_sheet_has_a_labelled_row_per_run_and_the_source(four):
    page = write_review(load_config(four), ["alley-1", "alley-2", HOSTILE_RUN])
    info = probe_video(page.with_suffix(".png"))
    assert (info.width, info.height) == (3 * THUMB_W, 4 * (THUMB_H + LABEL_H))


def test_label_lines_are_plain_text_cut_to_fit():
    assert label_lines("a\nb\x1bc", "", "x" * 500).split("\n") == ["a b c", "x" * 109 + "…"]


# the command and the script

def test_cli_writes_page_and_sheet_and_sheet_only(four):
    done = cli("--last", "2", cwd=four)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [f"page:  {four}/outputs/review/last_2_runs.html",
                                        f"sheet: {four}/outputs/review/last_2_runs.png"]
    shutil.rmtree(four / "outputs" / "review")
    done = cli("alley-1", "--sheet-only", "--out", "out/cmp.html", cwd=four)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (four / "out").iterdir()) == ["cmp.png"]


def test_cli_unknown_run_is_one_line_and_writes_nothing(four):
    done = subprocess.run([str(REPO / "scripts" / "review.sh"), "alley-1", "ghost-3"], cwd=four,
                          capture_output=True, text=True, env={**os.environ, "COSMOS_PROJECT_ROOT": str(four)},
                          timeout=120)
    assert done.returncode == 1
    assert len(done.stderr.strip().splitlines()) == 1 and "no run 'ghost-3'" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (four / "outputs" / "review").exists()


def test_an_unreadable_video_is_one_line_and_leaves_no_page(four):
    (four / "outputs" / "runs" / "alley-1" / "output.mp4").write_bytes(b"not a video at all")
    done = cli("alley-1", cwd=four)
    assert done.returncode == 1 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "output.mp4" in done.stderr and "ffmpeg failed" in done.stderr
    assert not (four / "outputs" / "review").exists() or not any((four / "outputs" / "review").iterdir())


def test_a_detached_run_is_judged_from_its_folder(root, cache):
    from cosmos_tools import history

    make_run(root, cache, "left-1", base_spec(), history_line=False)
    history.append_record(root / "notes" / "run_history.log", {"run": "left", "run_id": "left-1", "status": "detached"})
    tile = load(load_config(root), "t", ["left-1"]).tiles[0]
    assert (tile.status, tile.verdict) == ("ok", "")
    (tile.folder / "exit_code").unlink()
    tile = load(load_config(root), "t", ["left-1"]).tiles[0]
    assert tile.status == "detached" and "no exit code yet" in tile.verdict


def test_critic_scores_label_the_tiles_and_a_control_sorts_them_without_hiding_any(four):
    score(four / "outputs" / "runs" / "alley-1", 0.5)
    score(four / "outputs" / "runs" / "alley_w-1", 0.875, answer="<b>5</b>, 4 of 5")
    review = load(load_config(four), "t", ["alley-1", "alley_w-1", "alley-2"])
    assert [t.critic_score for t in review.tiles] == [0.5, 0.875, None]
    page = write_review(load_config(four), ["alley-1", "alley_w-1", "alley-2"], sheet=False)
    html = page.read_text()
    assert 'data-critic="0.50"' in html and 'data-critic="0.88"' in html and 'data-critic=""' in html
    assert "critic 0.88 <span class=\"advisory\">(advisory)</span>" in html
    assert 'select data-action="sort"' in html and "every run stays on the page" in html
    assert "&lt;b&gt;5&lt;/b&gt;" in html and "<b>5</b>" not in html
    assert html.count("<article ") == 3


def test_no_sort_control_when_no_run_is_scored(four):
    html = write_review(load_config(four), ["alley-1", "alley-2"], sheet=False).read_text()
    assert "<select" not in html and 'class="critic"' not in html
