"""Run inside a critic job's container as ``python3 FOLDER/critic_run.py FOLDER`` (cwd: the critic's checkout).

FOLDER is ``<project>/outputs/critiques/runs/<leaf>`` (its fourth parent is the project as the container sees it).
It reads FOLDER/critic_job.json (``{"critic", "trials", "command", "items": [{"name", "run_id", "video"}]}``,
``video`` relative to the project), runs the critic and writes FOLDER/results.json atomically:
``[{"name", "run_id", "status": "ok" | "failed", "answers": [text of each trial], "error"}]``.

- cosmos3: ``command`` runs once with ``-i FOLDER/reasoner.jsonl -o FOLDER/out`` (cosmos-framework's inference:
  one model load for every video); trial k of item NAME is ``FOLDER/out/NAME_t<k>/reasoner_text.txt``.
- reason1: ``command`` runs once per video with ``--video_path FOLDER/videos/NAME.mp4`` (upstream's script takes
  one video and writes its HTML report beside it: the link keeps the report out of the run's own folder); the
  answer of each trial is that report's part for the trial.

Paths in the commands come from FOLDER (an argument of the container's command), never from the JSON: the
container sees the project where the docker run put it. One line per video goes to stdout (the job's log).
Standard library only. Exits 0 when every video got
answers, else 1 (the others keep theirs).
"""

import json
import os
import subprocess
import sys

TRIAL_MARK = '<div class="trial">'


def write_atomic(path, data):
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(data)
    os.replace(tmp, path)


def read_text(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return None


def say(text):
    print(f"[cosmos-critic] {text}", flush=True)


def call(argv):
    """Run ``argv``; how it ended, for people ("exited N", or why it could not start)."""
    try:
        return f"exited {subprocess.call(argv)}"
    except OSError as exc:
        return f"could not start {argv[0]}: {exc.strerror}"


def run_cosmos3(folder, job):
    ended = call([*job["command"], "-i", os.path.join(folder, "reasoner.jsonl"), "-o", os.path.join(folder, "out")])
    results = []
    for item in job["items"]:
        texts = [read_text(os.path.join(folder, "out", f"{item['name']}_t{k}", "reasoner_text.txt"))
                 for k in range(1, job["trials"] + 1)]
        answers = [t for t in texts if t is not None]
        error = "" if answers else f"no reasoner_text.txt for it (the inference {ended})"
        results.append({"name": item["name"], "run_id": item["run_id"], "status": "ok" if answers else "failed",
                        "answers": answers, "error": error})
        say(f"{item['run_id']}: {len(answers)} of {job['trials']} answers")
    return results


def run_reason1(folder, job, project):
    videos = os.path.join(folder, "videos")
    os.makedirs(videos, exist_ok=True)
    results = []
    for number, item in enumerate(job["items"], 1):
        say(f"scoring {item['run_id']} ({number} of {len(job['items'])})")
        link = os.path.join(videos, f"{item['name']}.mp4")
        if not os.path.lexists(link):
            os.symlink(os.path.relpath(os.path.join(project, item["video"]), videos), link)
        ended = call([*job["command"], "--video_path", link, "--num_trials", str(job["trials"])])
        report = read_text(os.path.join(videos, f"{item['name']}.html"))
        answers = [] if report is None else [part.split("</body>")[0] for part in report.split(TRIAL_MARK)[1:]]
        error = "" if answers else f"no HTML report: {os.path.basename(job['command'][0])} {ended}"
        results.append({"name": item["name"], "run_id": item["run_id"], "status": "ok" if answers else "failed",
                        "answers": answers, "error": error})
        say(f"{item['run_id']}: {len(answers)} of {job['trials']} answers")
    return results


def main(folder):
    with open(os.path.join(folder, "critic_job.json"), encoding="utf-8") as f:
        job = json.load(f)
    project = os.path.normpath(os.path.join(folder, "..", "..", "..", ".."))
    results = run_cosmos3(folder, job) if job["critic"] == "cosmos3" else run_reason1(folder, job, project)
    write_atomic(os.path.join(folder, "results.json"), json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    return 0 if all(r["status"] == "ok" for r in results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
