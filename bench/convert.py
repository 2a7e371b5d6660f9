"""Conversion benchmark: our converter against raw ffmpeg with the same settings, same machine, same run.

Generates a 121-frame 1280x704 render (colour with motion and fine detail, 16-bit depth, a 13-label
segmentation mask), then measures, best of --repeat runs:
  - ours: `convert_shot` end to end (checks, three concurrent encodes, depth normalisation in numpy,
    colour PSNR, ffprobe checks, shot.json, atomic swap);
  - raw ffmpeg with the same encoder settings: the three commands one after the other (what a user
    types, and what the first version of the script ran: the target's reference), and, stricter, one
    ffmpeg process with three inputs and three outputs;
  - ours with the modalities encoded one after another, to show what the concurrency gains.
Each side's CPU seconds are printed too: unlike wall time they do not move with the machine's load.
Then the fidelity of our shot: colour PSNR over every frame, depth max error against the source after
the shot-wide normalisation, segmentation label accuracy and distinct-colour count.
Targets: speed ratio >= 0.95; label accuracy 100%; distinct colours == labels.
"""

from __future__ import annotations

import argparse
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
from cosmos_tools.convert.sequences import find_sequences  # noqa: E402

FRAMES, WIDTH, HEIGHT, START, LABELS = 121, 1280, 704, 1001, 13


def make_shot(folder: Path, frames: int) -> None:
    """Write the render folder (zlib releases the GIL, so threads share the compression)."""
    def one(i: int) -> None:
        tag = f"{START + i:04d}"
        rf.write_png(folder / f"color.{tag}.png", rf.color_frame(i, WIDTH, HEIGHT))
        rf.write_png(folder / f"depth.{tag}.png", rf.depth_frame(i, WIDTH, HEIGHT, 16))
        rf.write_png(folder / f"segmentation.{tag}.png", rf.PALETTE[rf.label_frame(i, WIDTH, HEIGHT, LABELS)])

    folder.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(one, range(frames)))


def raw_commands(src: Path, out: Path, fps: int) -> list[list[str]]:
    """The ffmpeg commands a user would type for the same settings (depth without normalisation)."""
    c, s, d = SETTINGS["color"], SETTINGS["segmentation"], SETTINGS["depth"]

    def inp(name: str) -> list[str]:
        return ["-framerate", str(fps), "-start_number", str(START), "-i", str(src / f"{name}.%04d.png")]

    base = ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-y"]
    color = ["-vf", "scale=out_color_matrix=bt709:out_range=tv,format=yuv420p", "-c:v", c["codec"],
             "-preset", c["preset"], "-crf", str(c["crf"]), "-pix_fmt", c["pix_fmt"], "-colorspace", "bt709",
             "-color_primaries", "bt709", "-color_trc", "bt709", "-color_range", "tv", "-movflags", "+faststart"]
    seg = ["-c:v", s["codec"], "-preset", s["preset"], "-crf", str(s["crf"]), "-pix_fmt", s["pix_fmt"],
           "-movflags", "+faststart"]
    depth = ["-c:v", d["codec"], "-preset", d["preset"], "-qp", str(d["qp"]), "-pix_fmt", d["pix_fmt"],
             "-color_range", d["color_range"], "-movflags", "+faststart"]
    return [
        [*base, *inp("color"), *color, str(out / "color.mp4")],
        [*base, *inp("segmentation"), *seg, str(out / "segmentation.mp4")],
        [*base, *inp("depth"), *depth, str(out / "depth.mp4")],
    ]


def raw_one_process(src: Path, out: Path, fps: int) -> list[str]:
    """The same three encodes as one ffmpeg process with three inputs and three outputs."""
    cmds = raw_commands(src, out, fps)
    argv = cmds[0][:6]
    for cmd in cmds:
        argv += cmd[6:12]  # -framerate .. -i pattern
    for n, cmd in enumerate(cmds):
        argv += ["-map", f"{n}:v", *cmd[12:]]
    return argv


def cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def timed(run) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process and its children)."""
    start, cpu = time.perf_counter(), cpu_seconds()
    run()
    return time.perf_counter() - start, cpu_seconds() - cpu


def decode(video: Path, pix_fmt: str, channels: int) -> np.ndarray:
    data = subprocess.run(["ffmpeg", "-v", "error", "-i", str(video), "-f", "rawvideo", "-pix_fmt", pix_fmt, "-"],
                          capture_output=True, check=True).stdout
    return np.frombuffer(data, np.uint8).reshape(-1, HEIGHT, WIDTH, channels)


def fidelity(shot: Path, src: Path, frames: int, fps: int) -> dict:
    """Decoded shot against the generator's own frames, one frame at a time."""
    stats = DepthStats(65535)
    for i in range(frames):
        stats.add(rf.depth_frame(i, WIDTH, HEIGHT, 16))
    mapping = stats.mapping(near_bright=False)
    depth_out = decode(shot / "depth.mp4", "gray", 1)
    seg = decode(shot / "segmentation.mp4", "rgb24", 3)
    depth_max, depth_sum, correct, colours = 0.0, 0.0, 0, set()
    for i in range(frames):
        err = np.abs(depth_out[i, ..., 0] - mapping.ideal(rf.depth_frame(i, WIDTH, HEIGHT, 16)))
        depth_max, depth_sum = max(depth_max, float(err.max())), depth_sum + float(err.mean())
        correct += int((seg[i] == rf.PALETTE[rf.label_frame(i, WIDTH, HEIGHT, LABELS)]).all(axis=-1).sum())
        packed = seg[i].astype(np.uint32) @ np.array([65536, 256, 1], np.uint32)
        colours.update(np.unique(packed).tolist())
    color = find_sequences(src)["color"]
    psnr, _ = color_psnr(shot / "color.mp4", color, plan_geometry(WIDTH, HEIGHT, False), fps,
                         SETTINGS["color"]["scale"])
    return {"psnr": psnr, "depth_max": depth_max,
            "depth_mean": depth_sum / frames, "labels": correct / (frames * WIDTH * HEIGHT),
            "colours": len(colours), "span": (mapping.lo, mapping.hi)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs of each side; the best counts (default 3)")
    parser.add_argument("--frames", type=int, default=FRAMES)
    args = parser.parse_args()
    fps = 24
    with tempfile.TemporaryDirectory(prefix="cosmos-bench-convert-") as tmp:
        work = Path(tmp)
        src, videos, raw = work / "render", work / "videos", work / "raw"
        raw.mkdir()
        started = time.perf_counter()
        make_shot(src, args.frames)
        print(f"render: {args.frames} frames {WIDTH}x{HEIGHT}, colour 8-bit RGB, depth 16-bit gray, "
              f"segmentation {LABELS} labels (made in {time.perf_counter() - started:.1f} s)")
        options = ConvertOptions(fps=fps, force=True, progress=False)
        serial = ConvertOptions(fps=fps, force=True, progress=False, concurrent=False)
        runs: dict[str, list[tuple[float, float]]] = {"ours": [], "serial": [], "seq": [], "one": []}
        records = []
        for _ in range(args.repeat):  # interleaved, so a busy moment hurts every side alike
            runs["ours"].append(timed(lambda: records.append(
                convert_shot(src, "bench", videos, options, notify=lambda _line: None).record)))
            runs["seq"].append(timed(lambda: [subprocess.run(c, check=True) for c in raw_commands(src, raw, fps)]))
            runs["one"].append(timed(lambda: subprocess.run(raw_one_process(src, raw, fps), check=True)))
            runs["serial"].append(timed(lambda: convert_shot(src, "serial", videos, serial,
                                                             notify=lambda _line: None)))
        fid = fidelity(videos / "bench", src, args.frames, fps)
    n = args.frames
    best = {k: min(v) for k, v in runs.items()}
    names = {"ours": "ours (convert_shot, end to end)", "serial": "ours, modalities one after another",
             "seq": "raw ffmpeg, three commands in turn", "one": "raw ffmpeg, one process, 3 outputs"}
    print(f"{'best of ' + str(args.repeat):38}{'seconds':>9}{'frames/s':>10}{'CPU s':>8}")
    for key, label in names.items():
        wall, cpu = best[key]
        print(f"{label:38}{wall:9.2f}{n / wall:10.1f}{cpu:8.2f}")
    ratio_seq = best["seq"][0] / best["ours"][0]
    ratio_one = best["one"][0] / best["ours"][0]
    print(f"speed ratio ours / raw ffmpeg (three commands): {ratio_seq:.2f} (target >= 0.95) "
          f"{'ok' if ratio_seq >= 0.95 else 'BELOW TARGET'}")
    print(f"speed ratio ours / raw ffmpeg (one process, three outputs): {ratio_one:.2f}")
    print(f"concurrency gain: {best['serial'][0] / best['ours'][0]:.2f}x on {os.cpu_count()} cores "
          f"(load average {os.getloadavg()[0]:.1f} while measuring)")
    record = records[-1]
    print(f"colour PSNR against the PNGs: {fid['psnr']:.2f} dB over all {n} frames "
          f"(ours prints {record['color_psnr_db']:.2f} dB over the first {record['color_psnr_frames']} frames)")
    print(f"depth max error after normalisation: {fid['depth_max']:.3f} of 255 codes (mean {fid['depth_mean']:.3f}; "
          f"range {fid['span'][0]}-{fid['span'][1]} of 65535, one for the whole shot)")
    print(f"segmentation label accuracy: {100 * fid['labels']:.4f}% (target 100%); distinct colours "
          f"{fid['colours']} for {LABELS} labels")
    ok = fid["labels"] == 1.0 and fid["colours"] == LABELS and fid["depth_max"] <= 0.5
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
