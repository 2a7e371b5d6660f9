"""The critic: answers parsed into scores (pure), the stand-ins, and `critique` against the rehearsal host."""

from __future__ import annotations

import importlib.util
import json

import pytest
from test_cycle import add_shot, records, remote_path, script, tool, write_prompt

from cosmos_tools import critic
from cosmos_tools.config import load_config
from cosmos_tools.rehearsal.host import STAND_IN


def stand_in(name: str):
    spec = importlib.util.spec_from_file_location(name, STAND_IN / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("text, rating", [
    ("4\nThe ball falls as it should.", 4),
    ("<think>1 of the 3 cups moves oddly; 2 seconds in</think>\nRating: 5.", 5),
    ("Score: 3. It is mostly fine.", 3),
    ("4.5 stars", None),  # not a standalone 1-5
    ("I cannot judge this video.", None),
    ("10 frames show 2 objects", 2),
])
def test_the_rating_is_the_first_standalone_1_to_5_after_thinking(text, rating):
    assert critic.parse_rating(text) == rating


def test_cosmos3_trials_map_1_to_5_onto_0_to_1_and_average_the_readable_ones():
    data = critic.verdict_of("cosmos3", "Cosmos3-Nano", critic.RUBRIC, ["5\nfine", "3\nodd", "no idea"], 3,
                             run_id="a-1", video="outputs/runs/a-1/output.mp4", job="outputs/critiques/runs/c-1")
    assert data["score"] == 0.75 and data["parsed"] == 2 and data["answered"] == 3 and data["trials"] == 3
    assert [t["score"] for t in data["answers"]] == [1.0, 0.5, None]
    assert data["answer"] == "5, 3 of 5" and data["reasoning"] == "5\nfine"
    assert data["model"] == "Cosmos3-Nano" and data["prompt"] == critic.RUBRIC and "advisory" in data["advisory"]


def test_reason1_score_is_the_share_of_trials_without_an_anomaly():
    parts = ['<h3>Trial 1</h3><div class="green"><strong>Final Answer: No</strong></div>',
             '<h3>Trial 2</h3><div class="red"><strong>Final Answer: Yes</strong></div>',
             "<h3>Trial 3 - Failed to Parse</h3><pre>garbled</pre>",
             '<h3>Trial 4</h3><p>Overview: a &amp; b</p><strong>Final Answer: no</strong>']
    data = critic.verdict_of("reason1", "nvidia/Cosmos-Reason1-7B", critic.REASON1_QUESTION, parts, 4, run_id="a-1",
                             video="v", job="j")
    assert data["score"] == pytest.approx(2 / 3) or data["score"] == round(2 / 3, 4)
    assert [t["answer"] for t in data["answers"]] == ["No", "Yes", None, "No"]
    assert "Overview: a & b" in data["answers"][3]["text"] and "<" not in data["answers"][3]["text"]


def test_no_readable_answer_gives_no_score():
    data = critic.verdict_of("cosmos3", "m", "p", ["?"], 1, run_id="a-1", video="v", job="j")
    assert data["score"] is None and data["answer"] == "no readable answer"


def test_ranking_is_best_first_with_unscored_last():
    assert critic.ranked({"a": 0.5, "b": None, "c": 0.9, "d": 0.5}) == ["c", "a", "d", "b"]


def test_reasoner_samples_are_one_per_trial_with_paths_relative_to_the_spec_file():
    items = [critic.Item("v001", 'we"ird $(x) run-1')]
    records_ = critic.reasoner_records(items, "outputs/critiques/runs/c-1", 2)
    assert [r["name"] for r in records_] == ["v001_t1", "v001_t2"]
    assert records_[0]["vision_path"] == '../../../runs/we"ird $(x) run-1/output.mp4'
    assert records_[0]["model_mode"] == "reasoner" and records_[0]["do_sample"] is True
    assert [r["seed"] for r in records_] == [1, 2]
    assert critic.reasoner_records(items, "outputs/critiques/runs/c-1", 1)[0]["do_sample"] is False


def test_the_reasoner_stand_in_writes_upstreams_outputs_and_says_it_is_one(tmp_path):
    module = stand_in("reasoner_stand_in")
    video = tmp_path / "a.mp4"
    video.write_bytes(b"not really a video")
    module.run([{"name": "v001_t1", "model_mode": "reasoner", "prompt": "rate it", "vision_path": str(video),
                 "seed": 1}, {"name": "gen", "model_mode": "video2video"}], str(tmp_path / "out"))
    text = (tmp_path / "out" / "v001_t1" / "reasoner_text.txt").read_text()
    outputs = json.loads((tmp_path / "out" / "v001_t1" / "sample_outputs.json").read_text())
    assert outputs["status"] == "success" and outputs["reasoner_text"] == text
    assert "STAND-IN" in text and critic.parse_rating(text) == module.rating(video.read_bytes(), 1)
    assert not (tmp_path / "out" / "gen").exists()
    with pytest.raises(ValueError, match="non-empty prompt"):
        module.run([{"name": "x", "model_mode": "reasoner", "prompt": "", "vision_path": str(video)}], str(tmp_path))


def test_config_shows_the_critic_settings_and_refuses_an_unknown_critic(tmp_path, monkeypatch):
    monkeypatch.setenv("COSMOS_CONFIG", str(tmp_path / "none.sh"))
    (tmp_path / "none.sh").write_text("CRITIC=reason2\n")
    from cosmos_tools.config import ConfigError

    with pytest.raises(ConfigError, match="CRITIC must be one of cosmos3, reason1"):
        load_config(tmp_path)
    (tmp_path / "none.sh").write_text("")
    cfg = load_config(tmp_path)
    assert (cfg["CRITIC"], cfg["CRITIC_TRIALS"], cfg["CRITIC_DIR"], cfg["CRITIC_IMAGE"]) == ("cosmos3", "3", "", "")


def critic_config(tmp_path, monkeypatch, **settings):
    config = tmp_path / "config.sh"
    config.write_text("REMOTE_DIR=/home/u/cosmos-transfer1\n" + "".join(f"{k}={v}\n" for k, v in settings.items()))
    monkeypatch.setenv("COSMOS_CONFIG", str(config))
    return load_config(tmp_path)


def test_a_critic_checkout_of_its_own_is_workspace_and_the_project_is_mounted_beside_it(tmp_path, monkeypatch):
    cfg = critic_config(tmp_path, monkeypatch, CRITIC="reason1", CRITIC_DIR="/home/u/cosmos-reason1",
                        CRITIC_IMAGE="reason1:latest", CRITIC_MODEL="nvidia/Cosmos-Reason1-7B")
    job = critic.make_job(cfg, 'critique-we"ird $(x)', 'critique-we"ird $(x)-2', [critic.Item("v001", "a-1")], 4)
    docker = job.docker
    assert docker[docker.index("-v") + 1] == "/home/u/cosmos-reason1:/workspace"
    assert "/home/u/cosmos-transfer1:/project" in docker and "reason1:latest" in docker
    assert docker[-3:] == ["python3", "/project/outputs/critiques/runs/critique-we\"ird $(x)-2/critic_run.py",
                           "/project/outputs/critiques/runs/critique-we\"ird $(x)-2"]
    assert job.dir == 'outputs/critiques/runs/critique-we"ird $(x)-2' and job.container.startswith("ct1-critic-")
    spec = json.loads(job.files["critic_job.json"])
    assert spec["command"] == [critic.REASON1_SCRIPT, "--model", "nvidia/Cosmos-Reason1-7B"]
    assert spec["items"] == [{"name": "v001", "run_id": "a-1", "video": "outputs/runs/a-1/output.mp4"}]
    assert "reasoner.jsonl" not in job.files and job.files["critic_run.py"].startswith(b'"""Run inside')


def test_the_cosmos3_critic_shares_the_checkout_and_image_by_default(tmp_path, monkeypatch):
    cfg = critic_config(tmp_path, monkeypatch, NUM_GPU=2, DISABLE_GUARDRAILS="yes")
    job = critic.make_job(cfg, "critique", "critique-1", [critic.Item("v001", "a-1")], 1)
    assert "/project" not in " ".join(job.docker) and "cosmos-transfer1:latest" in job.docker
    assert job.docker[-1] == "/workspace/outputs/critiques/runs/critique-1"
    spec = json.loads(job.files["critic_job.json"])
    assert spec["command"] == ["torchrun", "--nproc-per-node=2", "-m", "cosmos_framework.scripts.inference",
                               "--checkpoint-path", "Cosmos3-Nano", "--no-guardrails"]
    (record,) = [json.loads(line) for line in job.files["reasoner.jsonl"].decode().splitlines()]
    assert record["name"] == "v001_t1" and record["prompt"] == critic.RUBRIC
    assert json.loads(job.files["spec_used.json"])["prompt"] == critic.RUBRIC


def test_critique_needs_run_ids_or_a_sweep_not_both(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from cosmos_tools.cli import cli

    critic_config(tmp_path, monkeypatch)
    monkeypatch.setenv("COSMOS_PROJECT_ROOT", str(tmp_path))
    for args in ([], ["a-1", "--sweep", "s"]):
        done = CliRunner().invoke(cli, ["critique", *args])
        assert done.exit_code == 1 and "RUN_ID... or --sweep NAME" in done.output


# --- against the rehearsal host -----------------------------------------------------------------------------------


def two_runs(project, tag: str) -> list[str]:
    """Two new runs (the rehearsal host is shared by the session: each test names its own prompts)."""
    shot = add_shot(project)
    prompts = [write_prompt(project, f"{tag}_{i}", shot, text=f"a city at dusk, take {i}") for i in range(2)]
    done = script(project, "full_cycle.sh", *(p.relative_to(project) for p in prompts), "--no-review")
    assert done.returncode == 0, done.stderr
    return [r["run_id"] for r in records(project)]


def use_critic(project, name: str, **settings) -> None:
    with open(project / "config.sh", "a") as config:
        config.write(f"CRITIC={name}\n" + "".join(f"{k}={v}\n" for k, v in settings.items()))


def test_reason1_critique_writes_critic_json_into_each_run_and_ranks_them(project, rehearsal_host):
    run_ids = two_runs(project, "ranked")
    use_critic(project, "reason1")
    done = script(project, "critique.sh", *run_ids, "--trials", "4")
    assert done.returncode == 0, done.stderr
    stand = stand_in("video_critic")
    scores = {}
    for run_id in run_ids:
        data = json.loads((project / "outputs" / "runs" / run_id / "critic.json").read_text())
        video = (project / "outputs" / "runs" / run_id / "output.mp4").read_bytes()
        expected = [stand.verdict(video, k) for k in range(1, 5)]
        assert [t["answer"] for t in data["answers"]] == expected
        assert data["score"] == round(expected.count("No") / 4, 4) and data["trials"] == 4
        assert data["critic"] == "reason1" and data["model"] == "nvidia/Cosmos-Reason1-7B"
        assert "STAND-IN" in data["reasoning"] and data["run_id"] == run_id
        scores[run_id] = data["score"]
    table = done.stdout[done.stdout.index("rank"):]
    assert table.index(critic.ranked(scores)[0]) < table.index(critic.ranked(scores)[1])
    assert "nothing is deleted or hidden" in done.stdout
    # the HTML reports stay in the critique's folder on the box, not in the runs' own folders
    reports = list(remote_path(rehearsal_host, "outputs/critiques/runs").glob("critique-*/videos/*.html"))
    assert len(reports) >= 2 and not list(remote_path(rehearsal_host, "outputs/runs").glob("*/*.html"))
    shown = json.loads(tool(project, "show", run_ids[0], "--json").stdout)
    assert shown["critic_score"] == scores[run_ids[0]] and shown["critic"]["score"] == scores[run_ids[0]]
    assert f"critic: {scores[run_ids[0]]:.2f} (" in tool(project, "show", run_ids[0]).stdout
    rows = json.loads(tool(project, "history", "--json").stdout)
    assert {r["run_id"]: r["critic_score"] for r in rows} == scores
    again = tool(project, "critique", *run_ids, "--trials", "4", "--json")  # for tools: JSON only on stdout
    ranking = json.loads(again.stdout)
    assert again.returncode == 0 and [r["run_id"] for r in ranking] == critic.ranked(scores)
    assert [r["rank"] for r in ranking] == [1, 2] and {r["run_id"]: r["score"] for r in ranking} == scores
    assert all(r["advisory"] and r["critic"] == "reason1" for r in ranking) and "[cosmos-critic]" in again.stderr


def test_a_run_missing_here_or_on_the_box_is_one_line_and_the_others_are_still_scored(project, rehearsal_host):
    run_ids = two_runs(project, "missing")
    use_critic(project, "reason1")
    (project / "outputs" / "runs" / run_ids[0] / "output.mp4").unlink()
    done = script(project, "critique.sh", *run_ids, "--trials", "1")
    assert done.returncode == 1
    assert f"{run_ids[0]}: no output.mp4 here" in done.stderr and "Traceback" not in done.stderr
    assert not (project / "outputs" / "runs" / run_ids[0] / "critic.json").exists()
    assert json.loads((project / "outputs" / "runs" / run_ids[1] / "critic.json").read_text())["trials"] == 1
    remote_path(rehearsal_host, f"outputs/runs/{run_ids[1]}/output.mp4").unlink()
    again = script(project, "critique.sh", run_ids[1])
    assert again.returncode == 1 and again.stderr.count("\n") <= 2, again.stderr
    assert "output.mp4 is missing on the GPU box" in again.stderr and "nothing to score" in again.stderr


def test_a_critic_that_cannot_start_is_one_line_per_video(project, rehearsal_host):
    run_ids = two_runs(project, "nocritic")
    empty = remote_path(rehearsal_host, "no-reason1-here")
    empty.mkdir(exist_ok=True)
    use_critic(project, "reason1", CRITIC_DIR=f"'{empty}'")
    done = script(project, "critique.sh", *run_ids)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    for run_id in run_ids:
        assert f"{run_id}: the critic gave no answer (no HTML report: video_critic.py could not start" in done.stderr
        assert not (project / "outputs" / "runs" / run_id / "critic.json").exists()


def test_critique_of_nothing_known_is_one_line(project):
    done = script(project, "critique.sh", "nope-1")
    assert done.returncode == 1 and done.stderr.count("\n") == 1 and "no run 'nope-1'" in done.stderr


def test_cosmos3_critique_runs_the_reasoner_through_the_framework(project, rehearsal_host):
    if not remote_path(rehearsal_host, "cosmos_framework/scripts/inference.py").is_file():
        pytest.skip("the Cosmos 3 stand-in (cosmos_framework/scripts/inference.py, branch c3) is not installed yet")
    run_ids = two_runs(project, "reasoned")
    use_critic(project, "cosmos3")
    done = script(project, "critique.sh", *run_ids, "--trials", "2")
    assert done.returncode == 0, done.stderr
    module = stand_in("reasoner_stand_in")
    for run_id in run_ids:
        data = json.loads((project / "outputs" / "runs" / run_id / "critic.json").read_text())
        video = (project / "outputs" / "runs" / run_id / "output.mp4").read_bytes()
        ratings = [module.rating(video, seed) for seed in (1, 2)]
        assert data["score"] == round(sum((r - 1) / 4 for r in ratings) / 2, 4)
        assert data["model"] == "Cosmos3-Nano" and data["prompt"] == critic.RUBRIC and "STAND-IN" in data["reasoning"]


def test_full_cycle_scores_a_sweep_last_and_upscales_only_the_best(project, rehearsal_host):
    shot = add_shot(project)
    base = write_prompt(project, "ranked_pier", shot, text="a pier")
    assert script(project, "sweep.sh", base.relative_to(project), "--set", "seed=1,2,3", "--name", "piers"
                  ).returncode == 0
    use_critic(project, "reason1", CRITIC_TRIALS=4)
    done = script(project, "full_cycle.sh", "inputs/sweeps/piers.json", "--upscale-best", "1")
    assert done.returncode == 0, done.stderr
    run_ids = [r["run_id"] for r in records(project) if r["upscale"] == "no"]
    assert len(run_ids) == 3
    scores = {r: json.loads((project / "outputs" / "runs" / r / "critic.json").read_text())["score"] for r in run_ids}
    best = critic.ranked(scores)[0]
    upscaled = [r for r in records(project) if r["upscale"] != "no"]
    assert [r["run_id"] for r in upscaled] == [best] and upscaled[0]["status"] == "ok"
    assert sorted(p.name for p in (project / "outputs" / "runs").glob("*_upscaled*")) == [f"{best}_upscaled"]
    assert done.stdout.index("rank") < done.stdout.index("review: ")  # scored before the page was written
    page = (project / "outputs" / "review" / "experiment_piers.html").read_text()
    assert page.count("(advisory)</span>") == 3 and 'data-action="sort"' in page


def test_critique_and_upscale_best_need_several_prompts(project):
    shot = add_shot(project)
    prompt = write_prompt(project, "lonely", shot)
    done = script(project, "full_cycle.sh", prompt.relative_to(project), "--critique")
    assert done.returncode == 2 and "cosmos-tools critique RUN_ID" in done.stderr and not records(project)
