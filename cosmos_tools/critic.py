"""The critic that ranks a sweep: a video critic on the GPU box scores runs, each score lands in the run's folder.

``critique`` runs one queued job for all the videos (``outputs/critiques/runs/<critique id>/`` on the box,
``outputs/critiques/<name>`` links to the latest), then writes ``critic.json`` into each scored run's local folder
``outputs/runs/<run id>/`` (atomically). The score is advisory: upstream reports only modest agreement with
people (about 0.4 correlation on VideoPhy-2) and that Cosmos 3 approves almost every generated video, so nothing
is ever deleted, hidden or skipped because of it; it labels and sorts (review page, ``history --json``, ``show``).

The two critics (CRITIC, reference cosmos3.md section 3):
- ``cosmos3``: cosmos-framework's reasoner mode (``model_mode: "reasoner"`` samples through
  ``python -m cosmos_framework.scripts.inference``: a queued batch job, no server to start, wait for and stop).
  Each video is asked ``RUBRIC`` (our wording of the VideoPhy-2 physical-commonsense rubric that upstream's
  ``PROMPT_TEMPLATE`` uses: four criteria, five levels, the answer a number); each trial's answer is parsed as
  upstream's ``_parse_score`` does (the first standalone 1-5, after ``</think>``) and mapped to 0..1 as
  ``(n - 1) / 4``; the score is the mean of the parsed trials. Trials are sampled (temperature 0.6, top_p 0.95,
  top_k 20, seed k for trial k: reproducible); one trial is greedy.
- ``reason1``: Cosmos-Reason1-7B's ``examples/video_critic/video_critic.py --video_path X --num_trials N``
  (anomaly checklist, answer Yes/No to "does the video contain anomalies or artifacts?"); the score is upstream
  README's: the share of parsed trials answering No (no anomaly). Its script loads the model once per video.
A trial whose answer cannot be read counts in neither; a video with no readable answer has score null.
"""

from __future__ import annotations

import json
import posixpath
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from html import unescape
from pathlib import Path

from .errors import Interrupted, JobFailed, LocalError, RemoteError, UserError
from .fsutil import read_json_object, write_json_atomic
from .history import now_iso
from .remote.paths import RUN, RUNS_DIR, JobPaths, container_name, run_id_of

CRITIQUES_DIR = "outputs/critiques"
KIND = "critic"  # a critique job's kind: its container name (ct1-critic-...) and docker label
FILE = "critic.json"  # in each scored run's folder
JOB_FILE, RESULTS_FILE, SPECS_FILE, RUN_SCRIPT = "critic_job.json", "results.json", "reasoner.jsonl", "critic_run.py"
DEFAULT_MODELS = {"cosmos3": "Cosmos3-Nano", "reason1": "nvidia/Cosmos-Reason1-7B"}
REASON1_SCRIPT = "examples/video_critic/video_critic.py"
REASON1_QUESTION = ("Does the video contain any anomalies or artifacts? (video_critic.py's question; its system "
                    "prompt asks for an analysis and an anomaly Yes/No per component, then the answer Yes or No)")
RUBRIC = (
    "You are judging whether a generated video is physically plausible. Watch the whole video and judge only "
    "what happens in it, not the image quality or the art style. Consider four things: (1) object permanence: "
    "objects do not appear, vanish or multiply without a cause; (2) shape constancy: solid objects keep their "
    "shape and size unless something deforms them; (3) motion: trajectories are continuous and speeds change as "
    "gravity, contact and momentum would make them; (4) interactions: contacts, collisions, liquids, light and "
    "shadows behave as they would in the real world. Rate the video on this scale: 1 = physically impossible "
    "throughout; 2 = major violations; 3 = some clear violations; 4 = minor violations only; 5 = fully "
    "plausible. Answer with the rating, one number from 1 to 5, on the first line, then say why in one or two "
    "sentences.")
SAMPLING = {"do_sample": True, "temperature": 0.6, "top_p": 0.95, "top_k": 20}
MAX_NEW_TOKENS = 1024
ADVISORY = ("advisory: the critic agrees with people only modestly (about 0.4 correlation upstream) and rates most "
            "generated videos well; it labels and sorts, nothing is deleted or hidden because of it")
_SCORE = re.compile(r"(?<![\d.])([1-5])(?!\d|\.\d)")
_VERDICT = re.compile(r"Final Answer:\s*(Yes|No)\b", re.IGNORECASE)
_TAG = re.compile(r"<[^>]+>")


# --- answers and scores (pure) ---------------------------------------------------------------------------------


def parse_rating(text: str) -> int | None:
    """The first standalone 1-5 of a Reasoner answer (after ``</think>`` when it thinks aloud); None if none."""
    answer = text.rsplit("</think>", 1)[-1]
    match = _SCORE.search(answer)
    return int(match.group(1)) if match else None


def parse_verdict(part: str) -> str | None:
    """``Yes`` (anomaly) or ``No`` of one trial of video_critic.py's HTML report; None if it could not parse it."""
    match = _VERDICT.search(part)
    return match.group(1).capitalize() if match else None


def report_text(part: str) -> str:
    """One trial of video_critic.py's HTML report as plain text."""
    lines = (unescape(_TAG.sub(" ", line)).strip() for line in part.splitlines())
    return "\n".join(" ".join(line.split()) for line in lines if line.strip())


def trial(critic: str, text: str) -> dict:
    """One trial: its text, the answer read from it (None: unreadable) and its score 0..1."""
    if critic == "cosmos3":
        rating = parse_rating(text)
        return {"text": text.strip(), "answer": None if rating is None else str(rating),
                "score": None if rating is None else (rating - 1) / 4}
    shown = report_text(text)
    verdict = parse_verdict(shown)
    return {"text": shown, "answer": verdict, "score": None if verdict is None else float(verdict == "No")}


def verdict_of(critic: str, model: str, prompt: str, texts: list[str], trials: int, *, run_id: str, video: str,
               job: str) -> dict:
    """The content of critic.json for one video from its trials' texts."""
    rated = [trial(critic, text) for text in texts]
    read = [t for t in rated if t["score"] is not None]
    score = round(sum(t["score"] for t in read) / len(read), 4) if read else None
    unit = " of 5" if critic == "cosmos3" else " (anomaly?)"
    answer = (", ".join(t["answer"] for t in read) + unit) if read else "no readable answer"
    return {"run_id": run_id, "score": score, "answer": answer, "reasoning": read[0]["text"] if read else "",
            "critic": critic, "model": model, "prompt": prompt, "trials": trials, "answered": len(rated),
            "parsed": len(read), "answers": rated, "video": video, "job": job, "scored": now_iso(),
            "advisory": ADVISORY}


def read(folder: Path) -> dict:
    """A run folder's critic.json; {} if there is none (or it is not JSON)."""
    return read_json_object(Path(folder) / FILE)


def score_of(folder: Path) -> float | None:
    """The critic's score of a run folder (0..1), None when it was not scored (or no answer was readable)."""
    return score_in(read(folder))


def score_in(data: dict) -> float | None:
    """The score of a critic.json's content; None when it has none."""
    score = data.get("score")
    return float(score) if isinstance(score, (int, float)) and not isinstance(score, bool) else None


def ranked(scores: dict[str, float | None]) -> list[str]:
    """Run ids best score first (ties in the given order), unscored ones last."""
    order = list(scores)
    return sorted(order, key=lambda r: (scores[r] is None, -(scores[r] or 0.0), order.index(r)))


# --- the job ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CritiquePaths(JobPaths):
    """A critic job's paths: its folder ``outputs/critiques/runs/<critique id>``, its "latest" link
    ``outputs/critiques/<name>`` (enqueue.sh points it at ``runs/<critique id>``), its container."""

    @classmethod
    def of_critique(cls, name: str, leaf: str | None = None) -> CritiquePaths:
        folder = f"{CRITIQUES_DIR}/{name}" if leaf is None else f"{CRITIQUES_DIR}/runs/{leaf}"
        return cls(name=name, kind=RUN, folder=folder, container=container_name(name, KIND))

    @property
    def latest(self) -> str:
        return f"{CRITIQUES_DIR}/{self.name}"


@dataclass(frozen=True)
class Item:
    """One video to score: its run and its path relative to REMOTE_DIR."""

    name: str  # the name of its samples in the job (v001...): upstream names folders after it
    run_id: str

    @property
    def video(self) -> str:
        return f"{RUNS_DIR}/{self.run_id}/output.mp4"


def model_of(cfg) -> str:
    return cfg["CRITIC_MODEL"].strip() or DEFAULT_MODELS[cfg["CRITIC"]]


def prompt_of(cfg) -> str:
    return RUBRIC if cfg["CRITIC"] == "cosmos3" else REASON1_QUESTION


def reasoner_records(items: list[Item], folder: str, trials: int) -> list[dict]:
    """cosmos-framework reasoner samples, ``trials`` per video (``<name>_t<k>``); paths relative to ``folder``,
    where the spec file is (upstream resolves them against it)."""
    records = []
    for item in items:
        for k in range(1, trials + 1):
            sampling = SAMPLING if trials > 1 else {"do_sample": False}
            records.append({"name": f"{item.name}_t{k}", "model_mode": "reasoner", "prompt": RUBRIC,
                            "vision_path": posixpath.relpath(item.video, folder), "max_new_tokens": MAX_NEW_TOKENS,
                            **sampling, "seed": k})
    return records


def command(cfg) -> list[str]:
    """What critic_run.py runs, without the words it adds itself from the job's folder: cosmos-framework's
    inference (``-i FOLDER/reasoner.jsonl -o FOLDER/out`` added), or video_critic.py (``--video_path`` and
    ``--num_trials`` added per video)."""
    if cfg["CRITIC"] == "reason1":
        return [REASON1_SCRIPT, *(["--model", model_of(cfg)] if cfg["CRITIC_MODEL"].strip() else [])]
    gpus = cfg.int("NUM_GPU")
    launch = ["python", "-m"] if gpus == 1 else ["torchrun", f"--nproc-per-node={gpus}", "-m"]
    guard = ["--no-guardrails"] if cfg["DISABLE_GUARDRAILS"] == "yes" else []
    return [*launch, "cosmos_framework.scripts.inference", "--checkpoint-path", model_of(cfg), *guard]


def make_job(cfg, name: str, leaf: str, items: list[Item], trials: int, account=None):
    """The critic job in its own folder: critic_job.json, critic_run.py, the samples (cosmos3), spec_used.json."""
    from .jobs import Job, spec_bytes
    from .remote import script
    from .render import render_critique

    paths = CritiquePaths.of_critique(name, leaf)
    rendered = render_critique(paths, cfg, lambda project: ["python3", f"{project}/{paths.folder}/{RUN_SCRIPT}",
                                                            f"{project}/{paths.folder}"], account=account)
    job = {"critic": cfg["CRITIC"], "model": model_of(cfg), "trials": trials, "command": command(cfg),
           "items": [{"name": i.name, "run_id": i.run_id, "video": i.video} for i in items]}
    files = {JOB_FILE: spec_bytes(job), RUN_SCRIPT: script("critic_run.py").encode("utf-8"),
             "spec_used.json": spec_bytes({**job, "prompt": prompt_of(cfg), "docker": rendered.docker,
                                           "env": rendered.env, "container": rendered.container})}
    if cfg["CRITIC"] == "cosmos3":
        files[SPECS_FILE] = "".join(json.dumps(r, ensure_ascii=False) + "\n"
                                    for r in reasoner_records(items, paths.folder, trials)).encode("utf-8")
    return Job(paths, docker=list(rendered.docker), files=files)


def _say(msg: str) -> None:
    print(f"cosmos-tools: {msg}", file=sys.stderr, flush=True)


@dataclass
class Critique:
    """What a critique did: the scores written (run id -> score or None), the runs it could not score."""

    name: str
    scores: dict[str, float | None]
    skipped: list[str]  # one line each
    job: str = ""


def critique(cfg, run_ids: list[str], *, name: str, trials: int | None = None, remote=None,
             say: Callable[[str], None] = _say, echo: Callable[[bytes], None] | None = None) -> Critique:
    """Score ``run_ids`` in one critic job; critic.json into each scored run's local folder.

    A run whose output.mp4 is not here or not on the box is skipped with one line (``say``); the others are
    scored. ``remote``: a connection to share (an experiment's); else one is opened and closed here.
    """
    from .jobs import Remote, report_failure
    from .names import check_run_name

    check_run_name(name)
    trials = cfg.int("CRITIC_TRIALS") if trials is None else trials
    own = remote is None
    remote = remote or Remote(cfg, say=say)
    try:
        latest = CritiquePaths.of_critique(name).folder
        box = remote.retrying("reading job state", lambda: remote.probe(
            [*(f"{RUNS_DIR}/{r}" for r in run_ids), latest]))
        items, skipped = _scorable(cfg, run_ids, box)
        for line in skipped:
            say(line)
        if not items:
            raise UserError(f"nothing to score: none of the {len(run_ids)} run(s) has its output.mp4 here and on the "
                            "GPU box")
        say(f"critique {name}: {len(items)} video(s), {trials} trial(s) each, critic {cfg['CRITIC']} "
            f"({model_of(cfg)}), one job")
        outcome = _run(cfg, remote, name, items, trials, box, echo)
        answer = remote.retrying("reading the critic's results", lambda: remote.t.run(
            ["cat", "--", f"{outcome.job.dir}/{RESULTS_FILE}"], check=False))
    finally:
        if own:
            remote.close()
    results = _results(answer.stdout if answer.rc == 0 else b"", items)
    if results is None:
        report_failure(outcome, say)
        raise JobFailed(f"critique {outcome.job.label}: the critic job ended without results "
                        f"({outcome.message or outcome.status}); see {outcome.job.dir}/run.log on the box")
    done = Critique(name=name, scores={}, skipped=skipped, job=outcome.job.dir)
    for item in items:
        _record(cfg, done, item, results[item.name], trials, say)
    return done


def _scorable(cfg, run_ids: list[str], box) -> tuple[list[Item], list[str]]:
    """(the runs whose output.mp4 is here and on the box, one line for each of the others)."""
    from .runs import local_job_folder, runs_dir

    items: list[Item] = []
    skipped: list[str] = []
    for run_id in run_ids:
        folder = f"{RUNS_DIR}/{run_id}"
        here = runs_dir(cfg) / run_id / "output.mp4"
        if not here.is_file() or here.stat().st_size == 0:
            skipped.append(f"{run_id}: no output.mp4 here ({local_job_folder(cfg, folder)}): it did not end ok, or "
                           "download it first (download_results.sh); not scored")
        elif box.jobs[folder].output_size <= 0:
            skipped.append(f"{run_id}: {folder}/output.mp4 is missing on the GPU box (REMOTE_DIR); not scored")
        else:
            items.append(Item(name=f"v{len(items) + 1:03d}", run_id=run_id))
    return items, skipped


def _record(cfg, done: Critique, item: Item, row: dict, trials: int, say: Callable[[str], None]) -> None:
    """critic.json of one video from its row of results.json (or one line saying why there is none)."""
    from .runs import runs_dir

    target = runs_dir(cfg) / item.run_id / FILE
    if row.get("status") != "ok":
        done.skipped.append(f"{item.run_id}: the critic gave no answer ({row.get('error') or 'see the job log'}); "
                            "not scored")
        say(done.skipped[-1])
        return
    data = verdict_of(cfg["CRITIC"], model_of(cfg), prompt_of(cfg), [str(t) for t in row.get("answers", [])],
                      trials, run_id=item.run_id, video=item.video, job=done.job)
    write_json_atomic(target, data)
    done.scores[item.run_id] = data["score"]
    if data["score"] is None:
        say(f"{item.run_id}: no readable answer in {data['answered']} trial(s); its texts are in {target}")


def _run(cfg, remote, name: str, items: list[Item], trials: int, box, echo=None):
    """Queue the critic job (a new critique id; another if a client took it) and follow it to its end (its live
    log through ``echo``, stdout by default)."""
    from .jobs import START_TRIES, Runner, RunTaken
    from .runs import next_run_number

    runner = Runner(remote, echo=echo)
    first = next_run_number(cfg, name, box.jobs[CritiquePaths.of_critique(name).folder].leaf, [])
    for k in range(first, first + START_TRIES):
        try:
            return runner.start(make_job(cfg, name, run_id_of(name, k), items, trials, box.account), detach=False)
        except RunTaken:
            continue
    raise RemoteError(f"could not queue critique {name!r}: {START_TRIES} folders in a row were taken on the box by "
                      "other clients; try again")


def _results(data: bytes, items: list[Item]) -> dict[str, dict] | None:
    """results.json by sample name; None when it is missing or not one row per video."""
    try:
        rows = json.loads(data)
    except ValueError:
        return None
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        return None
    by_name = {r.get("name"): r for r in rows}
    return by_name if all(i.name in by_name for i in items) else None


def table(cfg, done: Critique) -> list[str]:
    """The ranking for people: best first, unscored last, each with the critic's answer; then the advisory note."""
    from .runs import runs_dir

    rows = [("rank", "score", "run id", "answer")]
    for rank, run_id in enumerate(ranked(done.scores), 1):
        score = done.scores[run_id]
        rows.append((str(rank), "-" if score is None else f"{score:.2f}", run_id,
                     read(runs_dir(cfg) / run_id).get("answer", "")))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    return ["  ".join(c.ljust(w) for c, w in zip(row[:3], widths, strict=True)) + "  " + row[3] for row in rows] + \
        [ADVISORY]


def rows(cfg, done: Critique) -> list[dict]:
    """The ranking for tools: best first, unscored last; each run's critic.json with its rank."""
    from .runs import runs_dir

    return [{"rank": rank, **read(runs_dir(cfg) / run_id), "run_id": run_id, "score": done.scores[run_id]}
            for rank, run_id in enumerate(ranked(done.scores), 1)]


def finish(cfg, done: Critique, *, as_json: bool = False) -> None:
    """Print the ranking (a table and the advisory note, or JSON rows); JobFailed (after it) when some runs could
    not be scored."""
    if as_json:
        print(json.dumps(rows(cfg, done), indent=2, ensure_ascii=False))
    else:
        for line in table(cfg, done):
            print(line)
    if done.skipped:
        raise JobFailed(f"{len(done.skipped)} run(s) not scored (said above); the others have their critic.json")


def rank_experiment(cfg, runs: list, *, name: str, remote, best: int = 0,
                    weights: dict[str, float | None] | None = None) -> None:
    """An experiment's last step: score its runs (``(plan, run id)`` of the variants that ended ok) over its
    connection, print the ranking, then upscale the ``best`` best-scored ones (``weights``: each run's upscaler
    weight), each an attempt of its own (as `cosmos-tools upscale` makes it: own history line). JobFailed after
    them if an upscale did not end ok."""
    from .cycle import Steps, run_attempt

    if not runs:
        _say("critique: no variant ended ok; nothing to score")
        return
    done = critique(cfg, [run_id for _, run_id in runs], name=name, remote=remote)
    for line in table(cfg, done):
        print(line)
    chosen = [run_id for run_id in ranked(done.scores) if done.scores[run_id] is not None][:best]
    if not best:
        return
    _say(f"upscaling the {len(chosen)} best-scored variant(s): {', '.join(chosen) or 'none has a score'}")
    plans = {run_id: plan for plan, run_id in runs}
    failed = []
    for run_id in chosen:
        try:
            run_attempt(cfg, plans[run_id], Steps(upload=False, run=False, upscale=(weights or {}).get(run_id)))
        except (RemoteError, LocalError, Interrupted):
            raise
        except UserError as exc:  # this upscale failed or was refused: the next one still runs
            _say(f"upscale of {run_id}: {exc.format_message()}")
            failed.append(run_id)
    if failed:
        raise JobFailed(f"the upscale of {', '.join(failed)} did not end ok (said above)")
