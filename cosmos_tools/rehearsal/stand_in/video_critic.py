#!/usr/bin/env python3
"""STAND-IN for Cosmos-Reason1's examples/video_critic/video_critic.py on a cosmos-tools rehearsal host.

No model, no GPU. Same flags (--video_path, --num_trials, and --model), same output: an HTML report
``<video stem>.html`` beside the video with one ``<div class="trial">`` per trial ending in "Final Answer: Yes|No"
(Yes: an anomaly), and the line "Generated HTML report: <path>". Each trial's answer is derived from the video's
bytes and the trial number (the same every run); the report says it is a stand-in. Standard library only.
"""

import argparse
import hashlib
import os
import sys


def verdict(video: bytes, trial: int) -> str:
    """The stand-in's deterministic answer of one trial: Yes (anomaly) or No."""
    return "Yes" if hashlib.sha256(video + f"trial {trial}".encode()).digest()[0] % 3 == 0 else "No"


def main(argv):
    p = argparse.ArgumentParser(description="STAND-IN Cosmos-Reason1 video critic (rehearsal host, no model).")
    p.add_argument("--video_path", type=str, default="assets/sample.mp4")
    p.add_argument("--num_trials", type=int, default=4)
    p.add_argument("--model", type=str, default="nvidia/Cosmos-Reason1-7B")
    args = p.parse_args(argv)
    try:
        with open(args.video_path, "rb") as f:
            video = f.read()
    except OSError as exc:
        print(f"[stand-in video_critic.py] cannot read {args.video_path}: {exc.strerror}", file=sys.stderr)
        return 1
    print(f"[stand-in video_critic.py] {args.model}: {args.num_trials} trial(s), no model (rehearsal host)", flush=True)
    answers = [verdict(video, i) for i in range(1, args.num_trials + 1)]
    trials = "".join(f"""
    <div class="trial">
        <h3>Trial {i}</h3>
        <p><strong>Overview:</strong> STAND-IN critic of a cosmos-tools rehearsal host: no model watched this video.</p>
        <div class="{'red' if a == 'Yes' else 'green'}">
            <strong>Stand-in component - {a}</strong>
            <p>The answer is derived from the video's bytes and the trial number.</p>
        </div>
        <div class="{'red' if a == 'Yes' else 'green'}">
            <strong>Final Answer: {a}</strong>
        </div>
    </div>
""" for i, a in enumerate(answers, 1))
    title = f"STAND-IN Video Analysis Report - {os.path.basename(args.video_path)}"
    html = (f"<!DOCTYPE html>\n<html lang=\"en\">\n<head><meta charset=\"UTF-8\"><title>{title}</title></head>\n"
            f"<body>\n<h1>{title}</h1>\n<h2>Detailed Analysis ({len(answers)} trials)</h2>\n{trials}\n</body>\n</html>")
    html_path = os.path.splitext(args.video_path)[0] + ".html"
    with open(html_path, "w", encoding="utf-8") as f:
        f.write(html)
    print(f"Generated HTML report: {html_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
