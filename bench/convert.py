"""Conversion benchmark: our converter against raw ffmpeg with the same settings, same machine, same run.

Shots (generated: colour with motion and fine detail, 16-bit depth, a 13-label segmentation mask):
  - 121 frames 1280x704, best of --repeat runs of:
      ours: `convert_shot` end to end (checks, three concurrent encodes, two streamed depth passes,
      colour PSNR, ffprobe checks, shot.json, atomic swap); ours with the modalities one after another
      (what concurrency gains); raw ffmpeg with the same encoder settings as three commands in turn
      (what a user types: the target's reference) and as one process with three outputs;
  - long shots (--long): 484 frames 1280x704, and a 3840x2160 render converted with --fit into
    1280x704 (raw ffmpeg given the same scale and pad filters); --long-frames adds e.g. a 2000-frame shot.
    Long shots repeat the rendered frames through symlinks (the converter reads them like any file).
Every conversion runs in a subprocess of its own, which reports its wall time, CPU seconds (its own and
its children's) and peak resident memory from the resource module: the Python process (RUSAGE_SELF) and
the largest ffmpeg it ran (RUSAGE_CHILDREN ru_maxrss is the largest child's peak, not a sum).
Then the fidelity of our 121-frame shot: colour PSNR over every frame, depth max error against the
source after the shot-wide normalisation, segmentation label accuracy and distinct-colour count.
Targets: speed ratio >= 0.95; 484 frames within 1.5x the peak memory of 121; a 4K render under 500 MB;
label accuracy 100%; distinct colours == labels.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import render_fixtures as rf  # noqa: E402

from cosmos_tools.convert import ConvertOptions, convert_shot  # noqa: E402
from cosmos_tools.convert.depth import DepthStats  # noqa: E402
from cosmos_tools.convert.encode import SETTINGS  # noqa: E402
from cosmos_tools.convert.geometry import plan_geometry  # noqa: E402
from cosmos_tools.convert.psnr import color_psnr  # noqa: E402
from cosmos_tools.convert.sequences import check_sequences, find_sequences  # noqa: E402

FRAMES, WIDTH, HEIGHT, START, LABELS = 121, 1280, 704, 1001, 13
MODALITIES = ("color", "depth", "segmentation")
SIDES = {"ours": "ours (convert_shot, end to end)", "serial": "ours, modalities one after another",
         "seq": "raw ffmpeg, three commands in turn", "one": "raw ffmpeg, one process, 3 outputs"}


def make_shot(folder: Path, frames: int, width: int = WIDTH, height: int = HEIGHT, rendered: int | None = None) -> None:
    """Write the render folder: ``rendered`` real frames (zlib releases the GIL, so threads share the
    compression), the rest symlinks cycling over them."""
    rendered = min(frames, rendered or frames)

    def one(i: int) -> None:
        tag = f"{START + i:04d}"
        rf.write_png(folder / f"color.{tag}.png", rf.color_frame(i, width, height))
        rf.write_png(folder / f"depth.{tag}.png", rf.depth_frame(i, width, height, 16))
        rf.write_png(folder / f"segmentation.{tag}.png", rf.PALETTE[rf.label_frame(i, width, height, LABELS)])

    folder.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(one, range(rendered)))
    for i in range(rendered, frames):
        for name in MODALITIES:
            os.symlink(f"{name}.{START + i % rendered:04d}.png", folder / f"{name}.{START + i:04d}.png")


def raw_commands(src: Path, out: Path, fps: int, fit: bool = False) -> list[list[str]]:
    """The ffmpeg commands a user would type for the same settings (depth without normalisation)."""
    c, s, d = SETTINGS["color"], SETTINGS["segmentation"], SETTINGS["depth"]
    info = find_sequences(src)["color"].files[0]
    width, height = (int(v) for v in subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "stream=width,height", "-of", "csv=p=0", str(info)],
        capture_output=True, text=True, check=True).stdout.strip().split(","))
    geo = plan_geometry(width, height, fit)

    def inp(name: str) -> list[str]:
        return ["-framerate", str(fps), "-start_number", str(START), "-i", str(src / f"{name}.%04d.png")]

    def vf(flags: str, *more: str) -> list[str]:
        return ["-vf", ",".join([*geo.filters(flags), *more])] if geo.filters(flags) or more else ["-vf", "null"]

    base = ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-y"]
    color = [*vf(c["scale"], "scale=out_color_matrix=bt709:out_range=tv", "format=yuv420p"), "-c:v", c["codec"],
             "-preset", c["preset"], "-crf", str(c["crf"]), "-pix_fmt", c["pix_fmt"], "-colorspace", "bt709",
             "-color_primaries", "bt709", "-color_trc", "bt709", "-color_range", "tv", "-movflags", "+faststart"]
    seg = [*vf(s["scale"]), "-c:v", s["codec"], "-preset", s["preset"], "-crf", str(s["crf"]),
           "-pix_fmt", s["pix_fmt"], "-movflags", "+faststart"]
    depth = [*vf(d["scale"]), "-c:v", d["codec"], "-preset", d["preset"], "-qp", str(d["qp"]),
             "-pix_fmt", d["pix_fmt"], "-color_range", d["color_range"], "-movflags", "+faststart"]
    return [
        [*base, *inp("color"), *color, str(out / "color.mp4")],
        [*base, *inp("segmentation"), *seg, str(out / "segmentation.mp4")],
        [*base, *inp("depth"), *depth, str(out / "depth.mp4")],
    ]


def raw_one_process(src: Path, out: Path, fps: int, fit: bool = False) -> list[str]:
    """The same three encodes as one ffmpeg process with three inputs and three outputs."""
    cmds = raw_commands(src, out, fps, fit)
    argv = cmds[0][:6]
    for cmd in cmds:
        argv += cmd[6:12]  # -framerate .. -i pattern
    for n, cmd in enumerate(cmds):
        argv += ["-map", f"{n}:v", *cmd[12:]]
    return argv


def measure(side: str, src: Path, out: Path, fps: int, fit: bool) -> dict:
    """Run one side in this (fresh) process: wall and CPU seconds, peak MB of this process and of its
    largest child. Called through ``--measure`` so that every run starts from a clean process."""
    raw = out / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    runs = {
        "ours": lambda: convert_shot(src, "bench", out, ConvertOptions(fps=fps, fit=fit, force=True, progress=False),
                                     notify=lambda _line: None),
        "serial": lambda: convert_shot(src, "serial", out, ConvertOptions(fps=fps, fit=fit, force=True,
                                                                          progress=False, concurrent=False),
                                       notify=lambda _line: None),
        "seq": lambda: [subprocess.run(c, check=True) for c in raw_commands(src, raw, fps, fit)],
        "one": lambda: subprocess.run(raw_one_process(src, raw, fps, fit), check=True),
    }
    base_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start, cpu = time.perf_counter(), cpu_seconds()
    result = runs[side]()
    wall, cpu = time.perf_counter() - start, cpu_seconds() - cpu
    record = getattr(result, "record", {})
    return {"wall": wall, "cpu": cpu, "python_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "python_start_mb": base_mb, "child_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
            "psnr": record.get("color_psnr_db"), "psnr_frames": record.get("color_psnr_frames")}


def make_in_subprocess(folder: Path, frames: int, width: int = WIDTH, height: int = HEIGHT,
                       rendered: int | None = None) -> None:
    """Generate in a child: a process's peak RSS is inherited by what it starts (Linux carries the
    high-water mark across fork and exec), so this process must stay small to measure the others."""
    sizes = [str(frames), str(width), str(height), str(rendered or frames)]
    subprocess.run([sys.executable, __file__, "--make", str(folder), *sizes], check=True)


def run_side(side: str, src: Path, out: Path, fps: int, fit: bool) -> dict:
    argv = [sys.executable, __file__, "--measure", side, str(src), str(out), "--fps", str(fps)]
    done = subprocess.run([*argv, *(["--fit"] if fit else [])], capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def decode_frames(video: Path, pix_fmt: str, channels: int):
    """Yield the decoded frames one at a time (a long shot does not fit in memory whole)."""
    proc = subprocess.Popen(["ffmpeg", "-v", "error", "-i", str(video), "-f", "rawvideo", "-pix_fmt", pix_fmt, "-"],
                            stdout=subprocess.PIPE)
    size = WIDTH * HEIGHT * channels
    try:
        while len(data := proc.stdout.read(size)) == size:
            yield np.frombuffer(data, np.uint8).reshape(HEIGHT, WIDTH, channels)
    finally:
        proc.kill()
        proc.wait()


def fidelity(shot: Path, src: Path, frames: int, fps: int) -> dict:
    """Decoded shot against the generator's own frames, one frame at a time."""
    stats = DepthStats(65535)
    for i in range(frames):
        stats.add(rf.depth_frame(i, WIDTH, HEIGHT, 16))
    mapping = stats.mapping(near_bright=False)
    depth_max, depth_sum, correct, colours = 0.0, 0.0, 0, set()
    pairs = zip(decode_frames(shot / "depth.mp4", "gray", 1), decode_frames(shot / "segmentation.mp4", "rgb24", 3),
                strict=True)
    for i, (depth, seg) in enumerate(pairs):
        err = np.abs(depth[..., 0] - mapping.ideal(rf.depth_frame(i, WIDTH, HEIGHT, 16)))
        depth_max, depth_sum = max(depth_max, float(err.max())), depth_sum + float(err.mean())
        correct += int((seg == rf.PALETTE[rf.label_frame(i, WIDTH, HEIGHT, LABELS)]).all(axis=-1).sum())
        packed = seg.astype(np.uint32) @ np.array([65536, 256, 1], np.uint32)
        colours.update(np.unique(packed).tolist())
    sequences = find_sequences(src)
    check_sequences(sequences)  # reads the PNG headers the ffmpeg input is given
    psnr, _ = color_psnr(shot / "color.mp4", sequences["color"], plan_geometry(WIDTH, HEIGHT, False), fps,
                         SETTINGS["color"]["scale"])
    return {"psnr": psnr, "depth_max": depth_max,
            "depth_mean": depth_sum / frames, "labels": correct / (frames * WIDTH * HEIGHT),
            "colours": len(colours), "span": (mapping.lo, mapping.hi)}


def print_table(title: str, frames: int, best: dict) -> None:
    print(f"{title:38}{'seconds':>9}{'frames/s':>10}{'CPU s':>8}{'python MB':>11}{'ffmpeg MB':>11}")
    for key, label in SIDES.items():
        if key in best:
            m = best[key]
            python = f"{m['python_mb']:.0f}" if key in ("ours", "serial") else "-"
            print(f"{label:38}{m['wall']:9.2f}{frames / m['wall']:10.1f}{m['cpu']:8.2f}{python:>11}"
                  f"{m['child_mb']:11.0f}")
    ratio = best["seq"]["wall"] / best["ours"]["wall"]
    print(f"speed ratio ours / raw ffmpeg (three commands): {ratio:.2f} (target >= 0.95) "
          f"{'ok' if ratio >= 0.95 else 'BELOW TARGET'}; CPU ratio {best['seq']['cpu'] / best['ours']['cpu']:.2f}")


def short_shot(work: Path, repeat: int, fps: int) -> dict:
    src, out = work / "render-121", work / "out-121"
    started = time.perf_counter()
    make_in_subprocess(src, FRAMES)
    print(f"render: {FRAMES} frames {WIDTH}x{HEIGHT}, colour 8-bit RGB, depth 16-bit gray, "
          f"segmentation {LABELS} labels (made in {time.perf_counter() - started:.1f} s)")
    runs: dict[str, list[dict]] = {side: [] for side in SIDES}
    loads = [os.getloadavg()[0]]
    for _ in range(repeat):  # interleaved, so a busy moment hurts every side alike
        for side in SIDES:
            runs[side].append(run_side(side, src, out, fps, False))
        loads.append(os.getloadavg()[0])
    best = {side: min(v, key=lambda m: m["wall"]) for side, v in runs.items()}
    print_table(f"best of {repeat}, {FRAMES} frames", FRAMES, best)
    pairs = list(zip(runs["ours"], runs["seq"], strict=True))  # each run of ours against the raw run next to it
    walls = [raw["wall"] / ours["wall"] for ours, raw in pairs]
    cpus = [raw["cpu"] / ours["cpu"] for ours, raw in pairs]
    print(f"spread over {repeat} runs, ours / raw ffmpeg: speed ratio {min(walls):.2f}-{max(walls):.2f}, "
          f"CPU ratio {min(cpus):.2f}-{max(cpus):.2f}; load average {min(loads):.1f}-{max(loads):.1f} "
          f"on {os.cpu_count()} cores")
    print(f"concurrency gain: {best['serial']['wall'] / best['ours']['wall']:.2f}x")
    return best["ours"]


def short_fidelity(work: Path, ours: dict, fps: int) -> bool:
    """Fidelity of the 121-frame shot, measured last (decoding grows this process; see make_in_subprocess)."""
    fid = fidelity(work / "out-121" / "bench", work / "render-121", FRAMES, fps)
    print(f"colour PSNR against the PNGs: {fid['psnr']:.2f} dB over all {FRAMES} frames "
          f"(ours prints {ours['psnr']:.2f} dB over the first {ours['psnr_frames']} frames)")
    print(f"depth max error after normalisation: {fid['depth_max']:.3f} of 255 codes (mean {fid['depth_mean']:.3f}; "
          f"range {fid['span'][0]}-{fid['span'][1]} of 65535, one for the whole shot)")
    print(f"segmentation label accuracy: {100 * fid['labels']:.4f}% (target 100%); distinct colours "
          f"{fid['colours']} for {LABELS} labels")
    return fid["labels"] == 1.0 and fid["colours"] == LABELS and fid["depth_max"] <= 0.5


def long_shot(work: Path, name: str, frames: int, size: tuple[int, int], fit: bool, fps: int) -> dict:
    src, out = work / f"render-{name}", work / f"out-{name}"
    started = time.perf_counter()
    make_in_subprocess(src, frames, *size, rendered=min(frames, FRAMES if size == (WIDTH, HEIGHT) else 16))
    print(f"\nrender {name}: {frames} frames {size[0]}x{size[1]}{' with --fit' if fit else ''} "
          f"(made in {time.perf_counter() - started:.1f} s)")
    best = {side: run_side(side, src, out, fps, fit) for side in ("ours", "seq")}
    print_table(f"one run, {frames} frames (load average {os.getloadavg()[0]:.1f})", frames, best)
    if best["ours"]["psnr"] is not None:
        print(f"colour PSNR printed by ours: {best['ours']['psnr']:.2f} dB over {best['ours']['psnr_frames']} frames")
    for folder in (src, out):
        subprocess.run(["rm", "-rf", str(folder)], check=True)
    return best["ours"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs of each side at 121 frames; the best counts")
    parser.add_argument("--long", action="store_true", help="also 484 frames and a 4K render with --fit")
    parser.add_argument("--long-frames", type=int, action="append", default=[],
                        help="also a shot of this many 1280x704 frames (e.g. 2000); repeatable")
    parser.add_argument("--make", nargs=5, metavar=("SRC", "FRAMES", "W", "H", "RENDERED"), help=argparse.SUPPRESS)
    parser.add_argument("--measure", nargs=3, metavar=("SIDE", "SRC", "OUT"), help=argparse.SUPPRESS)
    parser.add_argument("--fps", type=int, default=24, help=argparse.SUPPRESS)
    parser.add_argument("--fit", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.make:
        folder, *sizes = args.make
        frames, width, height, rendered = (int(v) for v in sizes)
        make_shot(Path(folder), frames, width, height, rendered)
        return 0
    if args.measure:
        side, src, out = args.measure
        print(json.dumps(measure(side, Path(src), Path(out), args.fps, args.fit)))
        return 0
    with tempfile.TemporaryDirectory(prefix="cosmos-bench-convert-") as tmp:
        work = Path(tmp)
        short = short_shot(work, args.repeat, args.fps)
        ok = True
        peaks = {FRAMES: short}
        if args.long:
            peaks[484] = long_shot(work, "484", 484, (WIDTH, HEIGHT), False, args.fps)
            four_k = long_shot(work, "4k-fit", 48, (3840, 2160), True, args.fps)
            print(f"4K --fit peak: python {four_k['python_mb']:.0f} MB, largest ffmpeg {four_k['child_mb']:.0f} MB "
                  f"(target < 500 MB each)")
            ok &= max(four_k["python_mb"], four_k["child_mb"]) < 500
        for frames in args.long_frames:
            peaks[frames] = long_shot(work, str(frames), frames, (WIDTH, HEIGHT), False, args.fps)
        ok &= short_fidelity(work, short, args.fps)
    if len(peaks) > 1:
        print("\npeak memory of ours by shot length (python / largest ffmpeg, MB): " + ", ".join(
            f"{n} frames {m['python_mb']:.0f} / {m['child_mb']:.0f}" for n, m in sorted(peaks.items())))
        growth = max(m["python_mb"] for m in peaks.values()) / peaks[FRAMES]["python_mb"]
        print(f"largest python peak / the 121-frame one: {growth:.2f} (target <= 1.5)")
        ok &= growth <= 1.5
        print()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
