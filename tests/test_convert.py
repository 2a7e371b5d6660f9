"""Shot conversion with real ffmpeg on small generated render folders, through the library, the CLI,
the bash script and the Makefile target, and read back with the readers cosmos-transfer1 uses."""

from __future__ import annotations

import inspect
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
import render_fixtures as rf  # noqa: E402

from cosmos_tools.convert import ConvertOptions, convert_shot  # noqa: E402
from cosmos_tools.convert.depth import DepthStats  # noqa: E402
from cosmos_tools.errors import UserError  # noqa: E402
from cosmos_tools.probe import probe_video  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "convert_png_sequences.sh"


@pytest.fixture
def project(tmp_path):
    root = tmp_path / "proj"
    (root / "inputs" / "videos").mkdir(parents=True)
    (root / "outputs").mkdir()
    return root


def videos(project: Path) -> Path:
    return project / "inputs" / "videos"


def run_convert(project: Path, src: Path, name: str = "shot", **opts):
    notes: list[str] = []
    opts.setdefault("progress", False)
    result = convert_shot(src, name, videos(project), ConvertOptions(**opts), notify=notes.append)
    return result, notes


def user_env(project: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("COSMOS_CONFIG", "FPS", "LOCAL_VIDEOS_DIR")}
    env["COSMOS_PROJECT_ROOT"] = str(project)
    return env


def read_cv2(path: Path) -> list[np.ndarray]:
    """Frames as OpenCV gives them to cosmos-transfer1's depth preprocessors, converted to RGB."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame[:, :, ::-1])
    return frames


def read_imageio(path: Path) -> list[np.ndarray]:
    """Frames as cosmos-transfer1 reads inputs and controls (imageio, ffmpeg plugin, RGB)."""
    import imageio.v3 as iio

    return list(iio.imiter(str(path), plugin="FFMPEG"))


def leftovers(project: Path) -> list[str]:
    return sorted(p.name for p in videos(project).iterdir() if p.name.startswith("."))


# --- sequence detection --------------------------------------------------------------------------------------

@pytest.mark.parametrize("start,pad,sep,names", [
    (1001, 4, ".", ("color", "depth", "segmentation")),
    (0, 5, "_", ("RGB", "Z", "Mask")),
    (1, 1, ".", ("beauty", "depth", "seg")),
    (95, 2, "_", ("shot010_Colour", "shot010_depth", "shot010_seg")),
])
def test_any_start_padding_separator_and_alias(project, tmp_path, start, pad, sep, names):
    src = rf.make_render(tmp_path / "render", frames=12 if pad < 3 else 4, start=start, pad=pad, sep=sep,
                         names=names, width=32, height=24)
    result, _ = run_convert(project, src)
    record = result.record
    count = 12 if pad < 3 else 4
    assert (record["source"]["first_frame"], record["source"]["last_frame"]) == (start, start + count - 1)
    for modality in ("color", "depth", "segmentation"):
        info = probe_video(result.folder / f"{modality}.mp4")
        assert (info.frames, info.width, info.height) == (count, 32, 24)
    assert sorted(p.name for p in result.folder.iterdir()) == [
        "color.mp4", "depth.mp4", "segmentation.mp4", "shot.json"]
    assert leftovers(project) == []


def test_color_only_shot(project, tmp_path):
    src = rf.make_render(tmp_path / "r", frames=3, names=("color", None, None))
    result, _ = run_convert(project, src)
    assert sorted(result.record["outputs"]) == ["color"]


def _fails(project, src, *needles, name="shot", **opts):
    with pytest.raises(UserError) as info:
        run_convert(project, src, name, **opts)
    message = info.value.format_message()
    assert "\n" not in message
    for needle in needles:
        assert needle in message, message
    assert leftovers(project) == []
    return message


def test_no_color_sequence(project, tmp_path):
    src = rf.make_render(tmp_path / "r", frames=3, names=(None, "depth", "segmentation"))
    _fails(project, src, "no color sequence", "depth.####.png")
    assert not (videos(project) / "shot").exists()


def test_missing_folder(project, tmp_path):
    _fails(project, tmp_path / "nope", "render folder not found")


def test_gap_names_the_files(project, tmp_path):
    src = rf.make_render(tmp_path / "r", frames=8, start=1001)
    (src / "depth.1004.png").unlink()
    (src / "depth.1005.png").unlink()
    _fails(project, src, "depth.####.png", "frames 1004-1005 missing", "depth.1003.png", "depth.1006.png")


def test_different_frame_ranges(project, tmp_path):
    src = rf.make_render(tmp_path / "r", frames=5, start=1)
    (src / "segmentation.0005.png").unlink()
    _fails(project, src, "segmentation.####.png covers frames 1-4", "color.####.png covers 1-5")


def test_different_sizes(project, tmp_path):
    src = rf.make_render(tmp_path / "r", frames=3, width=32, height=24)
    rf.write_png(src / "depth.0002.png", rf.depth_frame(0, 30, 24))
    _fails(project, src, "depth.0002.png is 30x24", "32x24")


def test_truncated_png(project, tmp_path):
    src = rf.make_render(tmp_path / "r", frames=3)
    rf.truncate(src / "color.0002.png")
    _fails(project, src, "color.0002.png", "truncated")


def test_not_a_png(project, tmp_path):
    src = rf.make_render(tmp_path / "r", frames=3)
    (src / "segmentation.0003.png").write_bytes(b"GIF89a not a png at all, really not one")
    _fails(project, src, "segmentation.0003.png", "not a PNG")


def test_corrupt_pixel_data_named(project, tmp_path):
    src = rf.make_render(tmp_path / "r", frames=4)
    rf.corrupt_pixels(src / "segmentation.0003.png")
    _fails(project, src, "segmentation.0003.png", "corrupt PNG", "checksum")


def test_undecodable_pixel_data_with_valid_checksums_named(project, tmp_path):
    src = rf.make_render(tmp_path / "r", frames=4)
    rf.corrupt_pixels(src / "color.0002.png", fix_crc=True)
    _fails(project, src, "color.0002.png", "corrupt PNG", "pixel data")


def test_mixed_padding_and_duplicate_frames(project, tmp_path):
    src = rf.make_render(tmp_path / "r", frames=3)
    shutil.copy(src / "color.0002.png", src / "color.02.png")
    _fails(project, src, "both frame 2")


def test_two_sequences_for_one_modality(project, tmp_path):
    src = rf.make_render(tmp_path / "r", frames=3)
    rf.make_render(src, frames=3, names=("rgb", None, None))
    _fails(project, src, "two color sequences")


def test_failure_leaves_earlier_shot_untouched(project, tmp_path):
    good = rf.make_render(tmp_path / "good", frames=3)
    result, _ = run_convert(project, good)
    before = {p.name: p.read_bytes() for p in result.folder.iterdir()}
    bad = rf.make_render(tmp_path / "bad", frames=3)
    rf.corrupt_pixels(bad / "depth.0002.png")
    _fails(project, bad, "depth.0002.png")
    assert {p.name: p.read_bytes() for p in result.folder.iterdir()} == before


def test_replacing_a_shot_swaps_it_whole(project, tmp_path):
    run_convert(project, rf.make_render(tmp_path / "a", frames=3))
    result, _ = run_convert(project, rf.make_render(tmp_path / "b", frames=5, names=("color", "depth", None)))
    assert sorted(p.name for p in result.folder.iterdir()) == ["color.mp4", "depth.mp4", "shot.json"]
    assert probe_video(result.folder / "color.mp4").frames == 5
    assert leftovers(project) == []


def test_output_name_taken_by_a_file(project, tmp_path):
    (videos(project) / "shot").write_text("not a folder")
    _fails(project, rf.make_render(tmp_path / "r", frames=2), "exists and is not a shot folder")
    assert (videos(project) / "shot").read_text() == "not a folder"


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "../up"])
def test_bad_output_names(project, tmp_path, name):
    src = rf.make_render(tmp_path / "r", frames=2, names=("color", None, None))
    _fails(project, src, "not a folder name", name=name)


def test_odd_names_and_folders_are_data(project, tmp_path):
    src = rf.make_render(tmp_path / "ren'der $(touch pwned) `x` 100%d ü", frames=3)
    name = "shot 01 'q' $(touch pwned) `x`\nü"
    result, _ = run_convert(project, src, name)
    assert result.folder == videos(project) / name
    assert probe_video(result.folder / "color.mp4").frames == 3
    assert not list(tmp_path.rglob("pwned")) and not (Path.cwd() / "pwned").exists()


# --- faithful encoding ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("seg_mode", ["rgb", "palette", "gray", "rgba"])
def test_segmentation_labels_survive_exactly(project, tmp_path, seg_mode):
    src = rf.make_render(tmp_path / "r", frames=4, width=48, height=32, seg_mode=seg_mode, labels=13,
                         names=("color", None, "segmentation"))
    result, _ = run_convert(project, src)
    palette = rf.seg_palette(seg_mode, 13)
    for reader in (read_cv2, read_imageio):
        frames = reader(result.folder / "segmentation.mp4")
        assert len(frames) == 4
        for i, frame in enumerate(frames):
            assert np.array_equal(frame, palette[rf.label_frame(i, 48, 32, 13)]), reader.__name__
        colours = np.unique(np.concatenate([f.reshape(-1, 3) for f in frames]), axis=0)
        assert len(colours) == 13


def test_sixteen_bit_segmentation_keeps_one_colour_per_label(project, tmp_path):
    src = rf.make_render(tmp_path / "r", frames=2, width=32, height=24, names=("color", None, None))
    for i in range(2):
        labels = rf.label_frame(i, 32, 24)
        rf.write_png(src / f"segmentation.{i + 1:04d}.png", rf.PALETTE[labels].astype(np.uint16) * 257)
    result, _ = run_convert(project, src)
    frames = read_imageio(result.folder / "segmentation.mp4")
    for i, frame in enumerate(frames):
        assert np.array_equal(frame, rf.PALETTE[rf.label_frame(i, 32, 24)])


def _decoded_depth(path: Path) -> np.ndarray:
    frames = read_cv2(path)
    stack = np.stack(frames).astype(int)
    assert np.array_equal(stack[..., 0], stack[..., 1]) and np.array_equal(stack[..., 1], stack[..., 2])
    assert np.array_equal(np.stack(read_imageio(path)).astype(int), stack)
    return stack[..., 0]


@pytest.mark.parametrize("bits", [16, 8])
def test_depth_one_range_brighter_is_nearer(project, tmp_path, bits):
    src = rf.make_render(tmp_path / "r", frames=5, width=48, height=32, depth_bits=bits,
                         names=("color", "depth", None))
    result, _ = run_convert(project, src)
    sources = np.stack([rf.depth_frame(i, 48, 32, bits) for i in range(5)])
    code_max = 65535 if bits == 16 else 255
    stats = DepthStats(code_max)
    stats.add(sources)
    mapping = stats.mapping(near_bright=False)
    decoded = _decoded_depth(result.folder / "depth.mp4")
    assert np.abs(decoded - mapping.ideal(sources)).max() <= 0.5 + 1e-9
    assert decoded.min() == 0 and decoded.max() == 255  # the shot's range fills the output
    nearest = np.unravel_index(np.argmin(sources), sources.shape)
    assert decoded[nearest] == 255  # brighter is nearer
    assert result.record["depth"]["range"] == [int(sources.min()), int(sources.max())]
    assert result.record["source"]["sequences"]["depth"]["bit_depth"] == bits


def test_depth_same_value_same_code_in_every_frame(project, tmp_path):
    src = rf.make_render(tmp_path / "r", frames=3, width=32, height=24, names=("color", None, None))
    for i, hi in enumerate((30000, 60000, 40000)):  # per-frame normalisation would flicker here
        frame = np.full((24, 32), 20000, np.uint16)
        frame[:, 16:] = hi
        rf.write_png(src / f"depth.{i + 1:04d}.png", frame)
    result, _ = run_convert(project, src)
    decoded = _decoded_depth(result.folder / "depth.mp4")
    assert len({int(f[0, 0]) for f in decoded}) == 1
    assert decoded[0, 0, 0] == 255 and decoded[1, 0, 20] == 0


def test_depth_near_bright_flag_keeps_direction(project, tmp_path):
    src = rf.make_render(tmp_path / "r", frames=2, width=32, height=24, names=("color", "depth", None))
    inverted, _ = run_convert(project, src, "inv")
    kept, _ = run_convert(project, src, "kept", depth_near_bright=True)
    a = _decoded_depth(inverted.folder / "depth.mp4")
    b = _decoded_depth(kept.folder / "depth.mp4")
    assert np.abs(a + b - 255).max() <= 1
    assert kept.record["settings"]["depth_near_bright"] is True


def test_depth_background_is_far_and_outside_the_range(project, tmp_path):
    src = rf.make_render(tmp_path / "r", frames=2, width=32, height=24, names=("color", None, None))
    for i in range(2):
        frame = rf.depth_frame(i, 32, 24, 16)
        frame[:4] = 0  # no hit
        frame[-4:] = 65535  # "infinitely" far, clamped
        rf.write_png(src / f"depth.{i + 1:04d}.png", frame)
    result, _ = run_convert(project, src)
    decoded = _decoded_depth(result.folder / "depth.mp4")
    assert (decoded[:, :4] == 0).all() and (decoded[:, -4:] == 0).all()
    assert decoded[:, 4:-4].max() == 255 and decoded[:, 4:-4].min() == 0
    assert result.record["depth"]["background"] == ["0", "65535"]


def test_depth_extremes_that_are_real_data_are_kept():
    stats = DepthStats(65535)
    stats.add(np.append(np.arange(0, 65536, 7), 65535).astype(np.uint16))  # a continuous ramp 0..65535
    mapping = stats.mapping(near_bright=False)
    assert not mapping.zero_is_background and not mapping.max_is_background
    assert mapping.lut()[0] == 255 and mapping.lut()[65535] == 0
    only_background = DepthStats(255)
    only_background.add(np.array([0, 255], np.uint8))
    assert only_background.mapping(near_bright=False).lut()[[0, 255]].tolist() == [0, 0]
    near = DepthStats(255)
    near.add(np.array([0, 100, 255], np.uint8))
    assert near.mapping(near_bright=True).lut()[[0, 100, 255]].tolist() == [0, 0, 255]


def test_color_psnr_and_readers(project, tmp_path):
    src = rf.make_render(tmp_path / "r", frames=4, width=64, height=48)
    result, _ = run_convert(project, src)
    assert result.record["color_psnr_db"] > 30
    for reader in (read_cv2, read_imageio):
        frames = reader(result.folder / "color.mp4")
        assert len(frames) == 4 and frames[0].shape == (48, 64, 3)
        err = frames[1].astype(float) - rf.color_frame(1, 64, 48)
        assert 10 * np.log10(255 ** 2 / np.mean(err ** 2)) > 30
    info = probe_video(result.folder / "color.mp4")
    assert (info.codec, info.pix_fmt) == ("h264", "yuv420p")


def test_printed_psnr_is_the_psnr_of_those_frames(project, tmp_path):
    src = rf.make_render(tmp_path / "r", frames=14, width=160, height=96, names=("color", None, None))
    result, _ = run_convert(project, src)
    compared = result.record["color_psnr_frames"]
    decoded = read_imageio(result.folder / "color.mp4")[:compared]
    mse = [np.mean((f.astype(float) - rf.color_frame(i, 160, 96)) ** 2) for i, f in enumerate(decoded)]
    ours = np.mean([10 * np.log10(255 ** 2 / m) for m in mse])
    assert compared == 8 and abs(result.record["color_psnr_db"] - ours) < 0.5


def test_decoded_pixel_format_told_to_ffmpeg_is_the_one_it_decodes(tmp_path):
    """The image2 hint (``Sequence.ffmpeg_input``) names the pixel format ffprobe finds in each PNG kind."""
    from cosmos_tools.convert.sequences import DECODED_PIX_FMT

    for (color_type, bits), pix_fmt in DECODED_PIX_FMT.items():
        channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[color_type]
        image = np.zeros((4, 6, channels), np.uint16 if bits == 16 else np.uint8)
        palette = rf.PALETTE[:2] if color_type == 3 else None
        path = rf.write_png(tmp_path / f"kind{color_type}-{bits}.png", image[..., 0] if palette is not None else image,
                            palette)
        found = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=pix_fmt", "-of", "csv=p=0",
                                str(path)], capture_output=True, text=True, check=True).stdout.strip()
        assert found == pix_fmt, (color_type, bits)


def test_psnr_spot_check_decodes_at_most_8_frames_of_1280x704():
    """Large renders compare fewer first frames (the check's cost is decoding and scaling the PNGs), never none."""
    from cosmos_tools.convert.psnr import spot_check_frames

    assert spot_check_frames(121, 1280, 704) == 8
    assert spot_check_frames(5, 1280, 704) == 5
    assert spot_check_frames(121, 160, 96) == 8
    assert spot_check_frames(121, 1920, 1080) == 3
    assert spot_check_frames(48, 3840, 2160) == 1
    assert spot_check_frames(48, 8192, 8192) == 1


def test_frame_count_and_fps(project, tmp_path):
    src = rf.make_render(tmp_path / "r", frames=6, start=1001)
    result, notes = run_convert(project, src, frame_count=4, fps=30)
    for modality in ("color", "depth", "segmentation"):
        info = probe_video(result.folder / f"{modality}.mp4")
        assert info.frames == 4 and abs(info.fps - 30) < 1e-6
    assert result.record["source"]["last_frame"] == 1004
    assert any("shorter than Cosmos's 121-frame chunk" in n for n in notes)


@pytest.mark.parametrize("count,needle", [(7, "more than the 6 frames"), (0, "at least 1")])
def test_bad_frame_count(project, tmp_path, count, needle):
    _fails(project, rf.make_render(tmp_path / "r", frames=6), needle, frame_count=count)


def test_odd_size_is_padded_with_edge_pixels(project, tmp_path):
    src = rf.make_render(tmp_path / "r", frames=2, width=33, height=25)
    result, notes = run_convert(project, src)
    assert any("odd side" in n for n in notes)
    for modality in ("color", "depth", "segmentation"):
        info = probe_video(result.folder / f"{modality}.mp4")
        assert (info.width, info.height) == (34, 26)
    seg = read_imageio(result.folder / "segmentation.mp4")[1]
    source = rf.PALETTE[rf.label_frame(1, 33, 25)]
    assert np.array_equal(seg[:25, :33], source)
    assert np.array_equal(seg[:25, 33], source[:, 32]) and np.array_equal(seg[25, :33], source[24])


def test_fit_scales_masks_nearest_neighbour(project, tmp_path):
    src = rf.make_render(tmp_path / "r", frames=2, width=50, height=50)
    result, _ = run_convert(project, src, fit=True)
    for modality in ("color", "depth", "segmentation"):
        info = probe_video(result.folder / f"{modality}.mp4")
        assert (info.width, info.height) == (960, 960)
    frames = read_imageio(result.folder / "segmentation.mp4")
    colours = np.unique(np.concatenate([f.reshape(-1, 3) for f in frames]), axis=0)
    assert {tuple(c) for c in colours} <= {tuple(c) for c in rf.PALETTE[:13]}


def test_fit_far_aspect_warns_and_pads(project, tmp_path):
    src = rf.make_render(tmp_path / "r", frames=2, width=90, height=30, names=("color", None, "segmentation"))
    result, notes = run_convert(project, src, fit=True)
    assert any(n.startswith("warning:") and "far from every Cosmos bucket" in n for n in notes)
    info = probe_video(result.folder / "segmentation.mp4")
    assert (info.width, info.height) == (1280, 704)
    assert result.record["settings"]["geometry"]["scaled"] == [1280, 427]


# --- fast: skip unchanged shots ---------------------------------------------------------------------------------

def test_unchanged_sources_are_not_encoded_again(project, tmp_path):
    src = rf.make_render(tmp_path / "r", frames=3)
    first, _ = run_convert(project, src)
    stamp = (first.folder / "color.mp4").stat().st_mtime_ns
    again, _ = run_convert(project, src)
    assert again.skipped and (first.folder / "color.mp4").stat().st_mtime_ns == stamp
    changed, _ = run_convert(project, src, fps=25)
    assert not changed.skipped
    os.utime(src / "depth.0002.png", ns=(1, 1))
    assert not run_convert(project, src, fps=25)[0].skipped
    assert run_convert(project, src, fps=25)[0].skipped
    assert not run_convert(project, src, fps=25, force=True)[0].skipped


def test_shot_json_records_the_conversion(project, tmp_path):
    src = rf.make_render(tmp_path / "r", frames=3, start=7, depth_bits=16)
    result, _ = run_convert(project, src)
    record = json.loads((result.folder / "shot.json").read_text())
    assert record["fps"] == 24 and record["frames"] == 3
    assert record["source"]["folder"] == str(src.resolve())
    assert record["source"]["sequences"]["depth"]["png"] == "16-bit gray"
    assert record["settings"]["encoders"]["segmentation"]["codec"] == "libx264rgb"
    assert record["outputs"]["depth"]["pix_fmt"] == "yuvj420p"
    assert len(record["fingerprint"]) == 64


# --- as a user runs it ------------------------------------------------------------------------------------------

def test_bash_script_end_to_end(project, tmp_path):
    src = rf.make_render(tmp_path / "my render", frames=4, start=1001)
    run = subprocess.run([str(SCRIPT), str(src), "hero shot", "3", "--fps", "25", "--json"], cwd=tmp_path,
                         env=user_env(project), capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr
    record = json.loads(run.stdout)
    assert record["frames"] == 3 and record["fps"] == 25 and record["skipped"] is False
    assert (videos(project) / "hero shot" / "segmentation.mp4").is_file()
    again = subprocess.run([str(SCRIPT), str(src), "hero shot", "3", "--fps", "25"], cwd=tmp_path,
                           env=user_env(project), capture_output=True, text=True, check=False)
    assert again.returncode == 0 and "up to date" in again.stdout


def test_bash_script_failure_is_one_line(project, tmp_path):
    src = rf.make_render(tmp_path / "r", frames=4)
    (src / "color.0002.png").unlink()
    run = subprocess.run([str(SCRIPT), str(src), "s"], env=user_env(project), capture_output=True, text=True,
                         check=False)
    assert run.returncode == 1
    assert run.stderr.count("\n") == 1 and run.stderr.startswith("error:") and "frame 2 missing" in run.stderr
    assert "Traceback" not in run.stderr
    assert list(videos(project).iterdir()) == []


def test_bash_script_help():
    run = subprocess.run([str(SCRIPT), "--help"], capture_output=True, text=True, check=True)
    assert "convert_png_sequences.sh <input_directory> <output_name> [frame_count]" in run.stdout
    assert "--depth-near-bright" in run.stdout


def test_make_convert_target(project, tmp_path):
    src = rf.make_render(tmp_path / "render", frames=3)
    make = ["make", "-s", "-o", "setup", "-C", str(REPO), "convert"]
    run = subprocess.run([*make, "SHOT=from make", f"SRC={src}", "FRAMES=2"], env=user_env(project),
                         capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr
    assert probe_video(videos(project) / "from make" / "color.mp4").frames == 2
    missing = subprocess.run([*make], env=user_env(project), capture_output=True, text=True, check=False)
    assert missing.returncode != 0 and "SHOT=" in missing.stderr


def test_progress_bar_on_a_terminal(project, tmp_path):
    import pty

    src = rf.make_render(tmp_path / "r", frames=5)
    main, secondary = pty.openpty()
    run = subprocess.run([str(SCRIPT), str(src), "bar"], env=user_env(project), stdout=subprocess.PIPE,
                         stderr=secondary, check=False)
    os.close(secondary)
    drawn = b""
    while True:
        try:
            chunk = os.read(main, 65536)
        except OSError:
            break
        if not chunk:
            break
        drawn += chunk
    os.close(main)
    assert run.returncode == 0
    assert b"convert bar [########################] 15/15" in drawn
    assert b"frames/s" in drawn
    final = drawn.rsplit(b"\x1b[3A", 1)[-1].decode()  # the last redraw: total line, one line per modality
    lines = [line.replace("\x1b[K", "") for line in final.replace("\r", "").splitlines()]
    assert lines[0].startswith("convert bar [########################] 15/15 ") and "ETA 0:00" in lines[0]
    assert [line.split()[0] for line in lines[1:]] == ["color", "depth", "segmentation"]
    assert all(line.endswith("done") for line in lines[1:])
    assert " 5/5 " in lines[1] and " 5/5 pass 2/2 " in lines[2] and " 5/5 " in lines[3]


def test_progress_per_modality_frames_and_eta():
    import io

    from cosmos_tools.progress import PartsProgress

    stream = io.StringIO()
    with PartsProgress("convert s", {"color": (10, 1), "depth": (10, 2)}, unit="frames", force=True,
                       stream=stream) as bars:
        assert "ETA --:--" in bars.lines()[0]  # nothing known yet
        bars.update("color", 4)
        bars.update("depth", 13)
        head, color, depth = bars.lines()
        assert head.startswith("convert s [") and " 7/20 " in head  # finished frames: last passes only
        assert " 4/10 " in color and "ETA " in color
        assert " 3/10 pass 2/2 " in depth and "ETA " in depth
        bars.update("color", 6)
        assert bars.lines()[1].endswith("done")
    assert stream.getvalue().endswith("\n") and "\x1b[2A" in stream.getvalue()  # redrawn in place
    quiet, not_a_terminal = io.StringIO(), io.StringIO()
    with PartsProgress("x", {"color": (3, 1)}, enabled=False, force=True, stream=quiet) as bars:
        bars.update("color", 3)
    with PartsProgress("x", {"color": (3, 1)}, stream=not_a_terminal) as bars:
        bars.update("color", 3)
    assert quiet.getvalue() == "" and not_a_terminal.getvalue() == ""


def test_depth_range_pass_holds_one_frame_at_a_time(tmp_path, monkeypatch):
    """Memory does not grow with the shot: the range pass sees each frame once and drops it before the next
    but one arrives (no RSS assert: the structure is what keeps the peak flat)."""
    import weakref

    from cosmos_tools.convert import encode
    from cosmos_tools.convert.ffmpeg_run import ProcessGroup
    from cosmos_tools.convert.geometry import plan_geometry
    from cosmos_tools.convert.sequences import check_sequences, find_sequences

    src = rf.make_render(tmp_path / "r", frames=6, width=32, height=24, names=("color", "depth", None))
    sequences = find_sequences(src)
    check_sequences(sequences)
    geo = plan_geometry(32, 24, False)
    alive_counts, seen = [], []
    original = DepthStats.add

    def add(self, frame):
        seen.append(weakref.ref(frame))
        alive_counts.append(sum(ref() is not None for ref in seen))
        original(self, frame)

    monkeypatch.setattr(DepthStats, "add", add)
    frames = encode.depth_frames(ProcessGroup(), sequences["depth"], geo, 24)
    assert inspect.isgenerator(frames)
    frames.close()
    counted = []
    mapping = encode.depth_range(ProcessGroup(), sequences["depth"], geo, 24, False, counted.append)
    assert len(seen) == 6 and sum(counted) == 6
    assert max(alive_counts) <= 2, alive_counts
    sources = np.stack([rf.depth_frame(i, 32, 24, 16) for i in range(6)])
    assert (mapping.lo, mapping.hi) == (int(sources.min()), int(sources.max()))


def test_depth_decoded_again_when_the_disk_lacks_room_for_the_scratch(project, tmp_path, monkeypatch):
    from cosmos_tools.convert import encode

    src = rf.make_render(tmp_path / "r", frames=3, width=32, height=24, names=("color", "depth", None))
    spilled, _ = run_convert(project, src, "spilled")
    monkeypatch.setattr(encode, "_spill_room", lambda folder, size: False)
    twice, _ = run_convert(project, src, "twice")
    assert np.array_equal(_decoded_depth(spilled.folder / "depth.mp4"), _decoded_depth(twice.folder / "depth.mp4"))
    assert spilled.record["depth"] == twice.record["depth"]
    assert sorted(p.name for p in spilled.folder.iterdir()) == ["color.mp4", "depth.mp4", "shot.json"]


def test_full_disk_while_spilling_depth_is_one_line(project, tmp_path, monkeypatch):
    import errno

    from cosmos_tools.convert import encode

    def full(*_args, **_kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(encode, "depth_range", full)
    src = rf.make_render(tmp_path / "r", frames=2, width=32, height=24, names=("color", "depth", None))
    _fails(project, src, f"{videos(project)}: cannot write the depth scratch file (No space left on device)",
           "free some disk space")


def _neighbour_scaled(src: Path, name: str, geo, pix_fmt: str, dtype: str, channels: int) -> np.ndarray:
    """The source frames scaled and padded by ffmpeg's nearest-neighbour filters, decoded at full precision."""
    vf = ",".join(geo.filters("neighbor"))
    data = subprocess.run(["ffmpeg", "-v", "error", "-start_number", "1", "-i", str(src / f"{name}.%04d.png"),
                           "-vf", vf, "-f", "rawvideo", "-pix_fmt", pix_fmt, "-"],
                          capture_output=True, check=True).stdout
    return np.frombuffer(data, dtype).reshape(-1, geo.height, geo.width, channels)


def test_fit_downscale_keeps_labels_exact_and_depth_full_precision(project, tmp_path):
    """A render larger than its bucket (as a 4K render into 1280x704): every mask pixel is the source label
    nearest-neighbour picked, every depth pixel is the shot's mapping of the 16-bit source value there."""
    from cosmos_tools.convert.geometry import plan_geometry

    src = rf.make_render(tmp_path / "r", frames=3, width=1920, height=1080)
    result, _ = run_convert(project, src, fit=True)
    geo = plan_geometry(1920, 1080, True)
    assert (geo.width, geo.height) == (1280, 704)
    labels = _neighbour_scaled(src, "segmentation", geo, "rgb24", "u1", 3)
    assert np.array_equal(np.stack(read_imageio(result.folder / "segmentation.mp4")), labels)
    depth16 = _neighbour_scaled(src, "depth", geo, "gray16le", "<u2", 1)[..., 0]
    stats = DepthStats(65535)
    stats.add(depth16)
    mapping = stats.mapping(near_bright=False)
    assert result.record["depth"]["range"] == [mapping.lo, mapping.hi]
    assert np.array_equal(_decoded_depth(result.folder / "depth.mp4"), mapping.lut()[depth16])
    assert result.record["color_psnr_db"] > 30 and result.record["color_psnr_frames"] == 3


def test_interrupt_leaves_nothing_behind(project, tmp_path):
    import signal
    import time

    src = rf.make_render(tmp_path / "r", frames=40, width=640, height=352)
    good = rf.make_render(tmp_path / "good", frames=2)
    run_convert(project, good, "shot")
    before = {p.name: p.read_bytes() for p in (videos(project) / "shot").iterdir()}
    proc = subprocess.Popen([str(SCRIPT), str(src), "shot", "--force"], env=user_env(project),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    while not leftovers(project) and proc.poll() is None:  # wait until the encoders are writing
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    if proc.returncode == 0:
        pytest.skip("the conversion finished before the interrupt arrived")
    assert proc.returncode != 0 and b"Traceback" not in err, err  # click prints "Aborted!"
    assert leftovers(project) == []
    assert {p.name: p.read_bytes() for p in (videos(project) / "shot").iterdir()} == before


def test_full_disk_while_writing_the_shot_is_a_local_error(project, tmp_path, monkeypatch):
    import errno

    from cosmos_tools.errors import LocalError

    src = rf.make_render(tmp_path / "r", frames=2)

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("cosmos_tools.convert.shot.write_json_atomic", full)
    with pytest.raises(LocalError, match=r"No space left on device\); free some space on that disk$") as caught:
        run_convert(project, src)
    assert caught.value.exit_code == 4
    assert leftovers(project) == [] and list(videos(project).iterdir()) == []


def test_unwritable_videos_folder_exits_4_in_one_line(project, tmp_path):
    src = rf.make_render(tmp_path / "r", frames=2)
    (project / "blocker").write_text("a file where a folder should be")
    run = subprocess.run([str(SCRIPT), str(src), "s"], env={**user_env(project), "LOCAL_VIDEOS_DIR": "blocker/videos"},
                         capture_output=True, text=True, check=False)
    error = run.stderr.splitlines()[-1]
    assert run.returncode == 4 and error.startswith("error: ") and "Traceback" not in run.stderr, run.stderr
    assert "blocker/videos" in error and "cannot write the shot there" in error


# --- pass names, subfolders, --pass ------------------------------------------------------------------------


@pytest.mark.parametrize("names", [("color", "alley.Pz", "alley.objid"), ("beauty", "depth.Z", "id"),
                                   ("alley_rgba", "zdepth", "Op_Id"), ("color", "VRayZDepth", "Prim_Id"),
                                   ("rgb", "Z", "matte"), ("color", "Depth", "IndexOB")])
def test_houdini_and_nuke_pass_names(tmp_path, names):
    from cosmos_tools.convert.sequences import find_sequences

    src = rf.make_render(tmp_path / "r", frames=2, names=names)
    unused: list[str] = []
    found = find_sequences(src, unused=unused)
    assert {m: s.prefix for m, s in found.items()} == {
        "color": names[0] + ".", "depth": names[1] + ".", "segmentation": names[2] + "."}
    assert unused == []


def test_pass_subfolders_are_searched_and_unused_sequences_named(project, tmp_path):
    src = tmp_path / "r"
    for sub, name in (("beauty", "color"), ("depth", "depth"), ("seg", "segmentation")):
        frames = rf.make_render(tmp_path / "tmp" / sub, frames=2, names=tuple(n if n == name else None for n in
                                                                              ("color", "depth", "segmentation")))
        (src / sub).mkdir(parents=True)
        for png in frames.iterdir():
            png.rename(src / sub / png.name.replace(name, "alley"))
    rf.make_render(src / "normals", frames=2, names=("alley", None, None))
    rf.make_render(src, frames=2, names=("crypto_object", None, None))
    (result, notes) = run_convert(project, src)
    assert list(result.record["outputs"]) == ["color", "depth", "segmentation"]
    assert result.record["source"]["sequences"]["depth"]["pattern"] == "alley.####.png"
    assert [n for n in notes if "not used" in n] == [
        "note: crypto_object.####.png: not used (a cryptomatte holds hashed ids, not flat colours: export an id or "
        "matte pass)",
        "note: normals/alley.####.png: not used (not a color, depth or segmentation name: --pass PASS=alley uses it)"]


def test_explicit_pass_mapping_wins_over_names(project, tmp_path):
    src = rf.make_render(tmp_path / "r", frames=2, names=("color", "dist", "depth"))
    (result, notes) = run_convert(project, src, passes={"depth": "dist"})
    assert "depth" in result.record["outputs"] and "segmentation" not in result.record["outputs"]
    assert [n for n in notes if "not used" in n] == [
        "note: depth.####.png: not used (--pass depth=dist chose another sequence)"]
    assert result.record["settings"]["passes"] == {"depth": "dist"}


def test_pass_mapping_errors_are_one_line(project, tmp_path):
    from cosmos_tools.convert import parse_passes

    assert parse_passes(["depth=Pz", "SEG=alley.objid"]) == {"depth": "Pz", "segmentation": "alley.objid"}
    for bad in (["normals=N"], ["depth"], ["depth="], ["depth=a", "depth=b"]):
        with pytest.raises(UserError, match=r"^--pass '"):
            parse_passes(bad)
    src = rf.make_render(tmp_path / "r", frames=2, names=("color", "a.Pz", "b.Pz"))
    _fails(project, src, "--pass depth=Pz matches a.Pz.####.png and b.Pz.####.png", passes={"depth": "Pz"})
    _fails(project, src, "--pass depth=nope: no sequence of that name (found a.Pz.####.png, b.Pz.####.png, "
           "color.####.png)", passes={"depth": "nope"})
    _fails(project, src, "two depth sequences, a.Pz.####.png and b.Pz.####.png; move one of them out of the folder "
           "or choose with --pass depth=NAME")


def test_pass_through_the_script_and_make(project, tmp_path):
    src = rf.make_render(tmp_path / "r", frames=2, names=("color", "P_cam", "objects"))
    run = subprocess.run([str(SCRIPT), str(src), "s", "--pass", "depth=P_cam", "--pass=segmentation=objects"],
                         env=user_env(project), capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr
    assert sorted(p.name for p in (videos(project) / "s").glob("*.mp4")) == ["color.mp4", "depth.mp4",
                                                                           "segmentation.mp4"]
    make = ["make", "-s", "-o", "setup", "-C", str(REPO), "convert", "SHOT=m", f"SRC={src}",
            "PASSES=depth=P_cam seg=objects"]
    run = subprocess.run(make, env=user_env(project), capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr
    assert len(list((videos(project) / "m").glob("*.mp4"))) == 3
    bad = subprocess.run([str(SCRIPT), str(src), "s", "--pass", "normals=N"], env=user_env(project),
                         capture_output=True, text=True, check=False)
    assert bad.returncode == 1 and bad.stderr.startswith("error: --pass 'normals=N'") and bad.stderr.count("\n") == 1


def test_output_check_reads_the_header_as_ffprobe_does(project, tmp_path):
    """Each MP4 is checked from its own header (no ffprobe process): the reading agrees with ffprobe's for
    all three encoders (cropped sizes included), a mismatch or a cut file is one line."""
    from cosmos_tools.convert.mp4_header import read_mp4_video
    from cosmos_tools.convert.verify import check_output

    src = rf.make_render(tmp_path / "r", frames=3, width=50, height=38)
    result, _ = run_convert(project, src)
    for modality in ("color", "depth", "segmentation"):
        path = result.folder / f"{modality}.mp4"
        ours, info = read_mp4_video(path), probe_video(path)
        assert (ours.frames, ours.width, ours.height, ours.codec, ours.pix_fmt) == \
            (info.frames, info.width, info.height, info.codec, info.pix_fmt)
    with pytest.raises(UserError, match="depth.mp4 holds 3 frames 50x38 h264/yuvj420p, expected 4 frames"):
        check_output(result.folder / "depth.mp4", "depth", 4, 50, 38)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes((result.folder / "color.mp4").read_bytes()[:100])
    with pytest.raises(UserError, match="cut.mp4: cannot read the MP4 just written"):
        check_output(cut, "color", 3, 50, 38)
