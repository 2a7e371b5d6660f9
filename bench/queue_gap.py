"""Queue benchmark on the rehearsal host: how long the GPU idles between consecutive queued jobs.

Starts a rehearsal host (real sshd on 127.0.0.1) whose stand-in transfer.py takes --load seconds to "load the
model" and --sample seconds per video, uploads one small shot, writes --jobs prompts that differ only in their
seed (not batchable: one job, one model load each) and queues them all with `cosmos-tools run --detach` (the
first, then the others from parallel clients while it runs). Then it waits for the box's queue to drain and
measures, for each pair of consecutive jobs, the GPU's idle gap: from the moment job N's exit_code was written
(its mtime, by the runner in the container) to the moment job N+1's container process started (StartedAt in
the stand-in docker's state, read while the jobs run); also when the queue runner saw the end and when its
`docker run -d` returned (its log). Prints one row per gap and the largest. Target: every gap < 0.5 s.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

from cosmos_tools.rehearsal import host

TARGET_GAP = 0.5
SHOT = "bench_shot"
COMMAND = Path(sys.executable).with_name("cosmos-tools")


def make_shot(root: Path, frames: int) -> None:
    for name in ("color", "depth", "segmentation"):
        path = root / "inputs" / "videos" / SHOT / f"{name}.mp4"
        path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-y", "-f", "lavfi", "-i", "testsrc=size=64x36:rate=24",
                        "-frames:v", str(frames), "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
                        str(path)], check=True)


def write_prompt(root: Path, name: str, seed: int) -> Path:
    videos = f"inputs/videos/{SHOT}"
    spec = {"prompt": "a pier at night", "input_video_path": f"{videos}/color.mp4", "seed": seed,
            "edge": {"control_weight": 0.5}, "depth": {"control_weight": 0.5, "input_control": f"{videos}/depth.mp4"}}
    path = root / "inputs" / "prompts" / f"{name}.json"
    path.write_text(json.dumps(spec, indent=2) + "\n")
    return path


def tool(root: Path, *args: str) -> subprocess.CompletedProcess:
    done = subprocess.run([str(COMMAND), *args], cwd=root, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"queue_gap: cosmos-tools {' '.join(args)} failed: {done.stderr.strip()}")
    return done


def runner_events(queue: Path, event: str) -> dict[str, float]:
    """Job number -> when the queue runner logged ``event`` for it ("<epoch> started JOB ...", "<epoch> ended JOB")."""
    found = {}
    for line in (queue / "runner.log").read_text().splitlines():
        match = re.fullmatch(r"(\d+\.\d+) " + event + r" (\d+)\b.*", line)
        if match:
            found[match.group(2)] = float(match.group(1))
    return found


class StartWatcher(threading.Thread):
    """Reads the stand-in docker's container states while the jobs run: container name -> StartedAt (epoch),
    the moment its process started (written by the stand-in's supervisor; the folder goes with --rm)."""

    def __init__(self, state_dir: Path) -> None:
        super().__init__(daemon=True)
        self.state_dir, self.started, self.stop = state_dir, {}, threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.1):
            for state in self.state_dir.glob("*/state.json"):
                with contextlib.suppress(OSError, ValueError):
                    data = json.loads(state.read_text())
                    if data["State"]["StartedAt"]:
                        when = datetime.strptime(data["State"]["StartedAt"], "%Y-%m-%dT%H:%M:%S.%fZ")
                        self.started[data["Name"].lstrip("/")] = when.replace(tzinfo=timezone.utc).timestamp()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=8, help="seed variants queued (default 8)")
    parser.add_argument("--load", type=float, default=4.0, help="stand-in model load, seconds (default 4)")
    parser.add_argument("--sample", type=float, default=1.0, help="stand-in time per video, seconds (default 1)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="cosmos-queue-bench-") as tmp:
        work = Path(tmp)
        info = host.up(work / "host", load_seconds=args.load, sample_seconds=args.sample)
        try:
            root = work / "project"
            for sub in ("inputs/videos", "inputs/prompts", "outputs", "notes"):
                (root / sub).mkdir(parents=True, exist_ok=True)
            os.environ.update(COSMOS_PROJECT_ROOT=str(root), COSMOS_CONFIG=str(info.config))
            make_shot(root, frames=8)
            prompts = [write_prompt(root, f"seed_{seed}", seed) for seed in range(1, args.jobs + 1)]
            tool(root, "upload", str(prompts[0]), "--quiet")
            for prompt in prompts[1:]:
                tool(root, "upload", str(prompt), "--quiet")
            watcher = StartWatcher(Path(info.state_dir))
            watcher.start()
            begin = time.monotonic()
            tool(root, "run", str(prompts[0]), "--detach")
            clients = [subprocess.Popen([str(COMMAND), "run", str(prompt), "--detach"], cwd=root,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                       for prompt in prompts[1:]]  # all queued while the first job runs, as fast as possible
            for client in clients:
                if client.wait() != 0:
                    raise SystemExit(f"queue_gap: queueing a job failed: {client.stderr.read().strip()}")
            queued = time.monotonic() - begin
            queue = Path(info.remote_dir) / ".cosmos-tools" / "queue"
            while any((queue / "pending").iterdir()) or any((queue / "running").iterdir()):
                time.sleep(0.2)
            total = time.monotonic() - begin
            watcher.stop.set()
            watcher.join()
            started, ended = runner_events(queue, "started"), runner_events(queue, "ended")
            jobs = sorted(started)
            fields = {job: (queue / "done" / job).read_bytes().split(b"\0") for job in jobs}
            folders = {job: fields[job][0].decode() for job in jobs}
            container_start = {job: watcher.started[fields[job][1].decode()] for job in jobs}
            codes = {job: Path(info.remote_dir) / folders[job] / "exit_code" for job in jobs}
            failed = [folders[job] for job in jobs if codes[job].read_text().strip() != "0"]
            print(f"{'after':<12}{'next':<12}{'GPU idle (s)':>14}{'runner saw end':>16}{'run -d returned':>17}")
            gaps = []
            for before, after in zip(jobs, jobs[1:], strict=False):
                end = codes[before].stat().st_mtime
                gaps.append(container_start[after] - end)
                print(f"{Path(folders[before]).name:<12}{Path(folders[after]).name:<12}{gaps[-1]:>14.3f}"
                      f"{ended[before] - end:>16.3f}{started[after] - end:>17.3f}")
        finally:
            host.down(work / "host")
    worst = max(gaps)
    print(f"{len(jobs)} jobs queued in {queued:.1f} s by {len(jobs)} clients, all done in {total:.1f} s (load "
          f"{args.load:g} s + {args.sample:g} s per sample each); idle gap "
          f"between jobs: mean {sum(gaps) / len(gaps):.3f} s, max {worst:.3f} s (target < {TARGET_GAP} s: "
          f"{'met' if worst < TARGET_GAP else 'MISSED'})")
    if failed:
        print(f"queue_gap: these jobs did not end ok: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
