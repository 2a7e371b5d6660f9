"""Sweep benchmark on the rehearsal host: an 8-variant batchable sweep as one experiment, against its ideal and
against 8 separate full cycles.

Starts a rehearsal host (real sshd on 127.0.0.1) in a temporary folder with the stand-in timed as a model load
of --load-seconds once per transfer.py process and --sample-seconds per video, makes a small shot and N prompts
that differ only in the edge control weight and the prompt text (one batch), and measures:
  - the experiment: ``cosmos_tools.experiment.run_experiment`` (one connection, one upload, one batch job, every
    variant downloaded, N history lines), wall time; its review page (local work once the GPU's part is done)
    is timed on its own line;
  - the ideal: one load + N samples (the stand-in's transfer.py run once on the same batch file, on the box,
    without SSH or Docker) + the experiment's own upload and download times (from its history lines);
  - N separate full cycles (``cycle.run_cycle`` per prompt, no upscale): N loads, N connections.
Prints a table and the ratios. Target: the experiment <= 1.25x the ideal.

``--slurm``: the rehearsal host with its Slurm (4 stand-in GPUs, BACKEND=slurm) and a 4-seed sweep (seeds cannot
share a batch, so 4 jobs): the sweep as one experiment (submitted together, side by side on the 4 GPUs) against
the same 4 runs in a row (``cycle.run_cycle`` each). Target: the sweep <= 0.5x the runs in a row.

The load/sample split is the stand-in engine's COSMOS_STANDIN_LOAD_SECONDS / COSMOS_STANDIN_SAMPLE_SECONDS
(``rehearsal up --load-seconds/--sample-seconds``); where the rehearsal host does not know them yet, they are
written into the engine settings the way ``set_stand_in_seconds`` writes its own. A stand-in without the split
(load 0.2 x, each sample 0.7 x COSMOS_STANDIN_SECONDS) still gives a fair ratio: the ideal's generation time is
measured with the same stand-in, not computed.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

from cosmos_tools import history
from cosmos_tools.config import load_config
from cosmos_tools.rehearsal import host
from cosmos_tools.rehearsal.host import TRANSFER_PY


def make_video(path: Path, frames: int = 9) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=64x36:rate=24", "-frames:v",
                    str(frames), "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(path)],
                   check=True)


def make_project(root: Path, config: Path, count: int, seeds: bool = False) -> list[Path]:
    for sub in ("inputs/prompts", "outputs", "notes"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    (root / "config.sh").write_text(config.read_text())
    for name in ("color", "depth", "segmentation"):
        make_video(root / "inputs" / "videos" / "bench" / f"{name}.mp4")
    prompts = []
    for i in range(count):
        spec = {"prompt": f"a harbour at dusk, take {i}", "input_video_path": "inputs/videos/bench/color.mp4",
                "edge": {"control_weight": round(0.1 + 0.1 * i, 2)},
                "depth": {"control_weight": 0.5, "input_control": "inputs/videos/bench/depth.mp4"}}
        if seeds:  # one prompt, one seed each: no batch, one job per seed
            spec = {**spec, "prompt": "a harbour at dusk", "edge": {"control_weight": 0.5}, "seed": i + 1}
        path = root / "inputs" / "prompts" / f"harbour_{i}.json"
        path.write_text(json.dumps(spec, indent=2) + "\n")
        prompts.append(path)
    return prompts


def set_timing(info, load: float, sample: float) -> None:
    """The stand-in's load and per-sample seconds (engine settings, as the rehearsal host's own setters write)."""
    engine = info.state_dir / "engine.json"
    data = json.loads(engine.read_text())
    data["env"] = {**data.get("env", {}), "COSMOS_STANDIN_LOAD_SECONDS": str(load),
                   "COSMOS_STANDIN_SAMPLE_SECONDS": str(sample), "COSMOS_STANDIN_SECONDS": str(load + sample)}
    engine.write_text(json.dumps(data))


def quietly(fn):
    """Run ``fn`` with its prints and live logs swallowed; its wall time."""
    begin = time.monotonic()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        fn()
    return time.monotonic() - begin


def ideal_generation(info, batch_folder: Path, checkpoints: str) -> float:
    """One load + N samples: the stand-in transfer.py once on the experiment's batch file, on the box."""
    env = {**os.environ, **json.loads((info.state_dir / "engine.json").read_text()).get("env", {}),
           "PATH": f"{info.bin_dir}:{os.environ['PATH']}"}
    rel = batch_folder.relative_to(info.remote_dir)
    out = f"outputs/bench-ideal-{time.monotonic_ns()}"
    begin = time.monotonic()
    subprocess.run(["python3", TRANSFER_PY, "--controlnet_specs", f"{rel}/controlnet_spec.json", "--video_save_folder",
                    out, "--batch_input_path", f"{rel}/batch.jsonl", "--checkpoint_dir", checkpoints],
                   cwd=info.remote_dir, env=env, check=True, capture_output=True)
    return time.monotonic() - begin


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--variants", type=int, default=8)
    parser.add_argument("--load-seconds", type=float, default=4.0)
    parser.add_argument("--sample-seconds", type=float, default=1.0)
    parser.add_argument("--slurm", action="store_true", help="a 4-seed sweep on the rehearsal Slurm (4 GPUs)")
    args = parser.parse_args()
    if args.slurm:
        slurm_sweep(args.load_seconds, args.sample_seconds)
        return
    from cosmos_tools.cycle import run_cycle
    from cosmos_tools.experiment import run_experiment
    from cosmos_tools.review_page import write_review

    with tempfile.TemporaryDirectory(prefix="cosmos-bench-sweep-") as tmp:
        folder = Path(tmp) / "host"
        info = host.up(folder)
        try:
            set_timing(info, args.load_seconds, args.sample_seconds)
            root = Path(tmp) / "project"
            prompts = make_project(root, info.config, args.variants)
            os.environ.update(COSMOS_PROJECT_ROOT=str(root), COSMOS_CONFIG=str(root / "config.sh"))
            cfg = load_config(root)
            # the review page is local work after the GPU's part: timed on its own, not in the target
            experiment = quietly(lambda: run_experiment(cfg, prompts, echo=lambda data: None, review=False))
            lines = history.read_records(history.history_path(cfg), warn=print)
            review = quietly(lambda: write_review(cfg, [r["run_id"] for r in lines], title="bench"))
            transfers = float(lines[0]["upload_s"]) + sum(float(r["download_s"]) for r in lines)
            (batch,) = (info.remote_dir / "outputs" / "batches" / "runs").iterdir()
            generation = ideal_generation(info, batch, cfg["CHECKPOINT_DIR_REMOTE"])
            ideal = generation + transfers
            separate = quietly(lambda: [run_cycle(cfg, p, upscale=False, force=True, echo=lambda data: None)
                                        for p in prompts])
        finally:
            host.down(folder)
    n = args.variants
    print(f"stand-in timing asked for: load {args.load_seconds:g} s once per process, {args.sample_seconds:g} s per "
          f"sample; measured: one load + {n} samples took {generation:.1f} s")
    print(f"{'what':<44}{'seconds':>9}{'x ideal':>9}")
    for what, seconds in ((f"ideal: one load + {n} samples + transfers", ideal),
                          (f"experiment: {n} variants, one batch job", experiment),
                          (f"{n} separate full cycles", separate)):
        print(f"{what:<44}{seconds:>9.1f}{seconds / ideal:>9.2f}")
    print(f"{'then its review page and contact sheet':<44}{review:>9.1f}  (local, after the GPU's part; not in target)")
    verdict = "ok" if experiment <= 1.25 * ideal else "MISSED"
    print(f"target: experiment <= 1.25x the ideal: {experiment / ideal:.2f}x ({verdict}); "
          f"{separate / experiment:.1f}x faster than {n} separate cycles")


def slurm_sweep(load: float, sample: float, seeds: int = 4) -> None:
    """A ``seeds``-seed sweep on the rehearsal Slurm, side by side, against the same runs one after another."""
    from cosmos_tools.cycle import run_cycle
    from cosmos_tools.experiment import run_experiment

    with tempfile.TemporaryDirectory(prefix="cosmos-bench-slurm-") as tmp:
        folder = Path(tmp) / "host"
        info = host.up(folder, slurm=True)
        try:
            set_timing(info, load, sample)
            root = Path(tmp) / "project"
            prompts = make_project(root, info.config, seeds, seeds=True)
            os.environ.update(COSMOS_PROJECT_ROOT=str(root), COSMOS_CONFIG=str(root / "config.sh"))
            cfg = load_config(root)
            sweep = quietly(lambda: run_experiment(cfg, prompts, review=False, echo=lambda data: None))
            in_a_row = quietly(lambda: [run_cycle(cfg, p, upscale=False, force=True, echo=lambda data: None)
                                        for p in prompts])
        finally:
            host.down(folder)
    print(f"stand-in timing: load {load:g} s + {sample:g} s per sample, per job; rehearsal Slurm with 4 GPUs")
    print(f"{'what':<44}{'seconds':>9}")
    print(f"{f'{seeds}-seed sweep, submitted together':<44}{sweep:>9.1f}")
    print(f"{f'the same {seeds} runs in a row':<44}{in_a_row:>9.1f}")
    verdict = "ok" if sweep <= 0.5 * in_a_row else "MISSED"
    print(f"target: sweep <= 0.5x the runs in a row: {sweep / in_a_row:.2f}x ({verdict})")


if __name__ == "__main__":
    main()
