"""Encode one modality to MP4 with the settings chosen by measurement (docs/convert.md).

- color: libx264 yuv420p (plays everywhere), BT.709 tagged, ``-preset veryfast -crf 16``.
- segmentation: libx264rgb ``-crf 0``, lossless RGB (High 4:4:4 Predictive): every label colour exact.
- depth: PNGs decoded to raw 8/16-bit by ffmpeg, one range for the whole shot (depth.py), mapped by
  ffmpeg's lut filter and encoded lossless 8-bit gray (``-qp 0``, full range) that every reader returns as R=G=B.
"""

from __future__ import annotations

import contextlib
import shutil
import struct
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import TypedDict

from ..errors import UserError
from .depth import DepthRange, DepthStats
from .ffmpeg_run import FfmpegFailed, ProcessGroup
from .geometry import Geometry
from .psnr import psnr_args, read_psnr, spot_check_frames
from .sequences import Sequence


class EncoderSettings(TypedDict, total=False):
    """One encoder's settings (crf or qp, and the colour tags it writes)."""

    codec: str
    preset: str
    crf: int
    qp: int
    pix_fmt: str
    matrix: str
    color_range: str
    scale: str  # swscale flags when scaling to a bucket


SETTINGS: dict[str, EncoderSettings] = {
    "color": {"codec": "libx264", "preset": "veryfast", "crf": 16, "pix_fmt": "yuv420p", "matrix": "bt709",
              "scale": "bicubic"},
    "segmentation": {"codec": "libx264rgb", "preset": "superfast", "crf": 0, "pix_fmt": "rgb24",
                     "scale": "neighbor"},
    "depth": {"codec": "libx264", "preset": "superfast", "qp": 0, "pix_fmt": "gray", "color_range": "pc",
              "scale": "neighbor"},
}
# The pixel format ffmpeg's H.264 decoder (and ffprobe, and mp4_header) names for each output (it decodes
# 4:0:0 gray as full-range yuvj420p, R=G=B).
EXPECTED = {"color": ("h264", "yuv420p"), "segmentation": ("h264", "gbrp"), "depth": ("h264", "yuvj420p")}
OnFrames = Callable[[int], None]
DEPTH_SCRATCH = "depth-frames.raw"  # pass 1's decoded depth, removed once depth.mp4 is encoded


def _mp4_out(out: Path) -> list[str]:
    return ["-movflags", "+faststart", "-y", str(out)]


def encode_color(group: ProcessGroup, seq: Sequence, geo: Geometry, fps: int, out: Path,
                 on_frames: OnFrames) -> tuple[float, int]:
    """Encode, and measure the PSNR of the first frames while the encode goes on.

    ffmpeg's tee muxer writes the MP4 and streams the same packets to a second ffmpeg that decodes
    them and compares with the PNGs; when it has its frames it exits and the tee drops that branch
    (``onfail=ignore``). Measuring after the encode instead left 0.35 s of one busy core at the end.
    Large renders compare fewer frames (``spot_check_frames``). Returns (PSNR dB, frames compared).
    """
    s = SETTINGS["color"]
    vf = ",".join([*geo.filters(s["scale"]), "scale=out_color_matrix=bt709:out_range=tv", "format=yuv420p"])
    args = ["-xerror", *seq.ffmpeg_input(fps), "-frames:v", str(len(seq.files)), "-vf", vf,
            "-c:v", s["codec"], "-preset", s["preset"], "-crf", str(s["crf"]), "-pix_fmt", s["pix_fmt"],
            "-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709", "-color_range", "tv",
            "-map", "0:v", "-f", "tee", f"[movflags=+faststart]{out.name}|[f=nut:onfail=ignore]pipe:1"]
    count = spot_check_frames(len(seq.files), geo.src_w, geo.src_h)
    try:
        encoder = group.start(args, f"encoding {seq.label}", on_frames, stdout=True, cwd=out.parent)
        checker = group.start(psnr_args(["-f", "nut", "-i", "pipe:0"], seq, geo, fps, count, s["scale"]),
                              f"measuring the PSNR of {out.name}", stdin=encoder.stdout, cwd=out.parent)
        encoder.stdout.close()  # the checker holds the pipe now; its exit must reach the encoder
        encoder.wait()
    except FfmpegFailed as exc:
        raise_broken_png(group, seq, exc)
    checker.wait()
    return read_psnr(out.parent, count, out.name), count


def encode_segmentation(group: ProcessGroup, seq: Sequence, geo: Geometry, fps: int, out: Path,
                        on_frames: OnFrames, threads: int = 0) -> None:
    """8-bit masks go straight through ffmpeg; 16-bit ones are rounded to 8 bits in numpy (v / 257),
    because swscale's 16-to-8-bit conversion rounds some label values up by one. ``threads``: x264's
    (0: its default); lossless, so the pixels do not depend on it."""
    s = SETTINGS["segmentation"]
    encoder = ["-c:v", s["codec"], "-threads", str(threads), "-preset", s["preset"], "-crf", str(s["crf"]),
               "-pix_fmt", s["pix_fmt"], *_mp4_out(out)]
    if seq.png.bit_depth != 16:
        vf = ",".join([*geo.filters(s["scale"]), "format=rgb24"])
        args = ["-xerror", *seq.ffmpeg_input(fps), "-frames:v", str(len(seq.files)), "-vf", vf, *encoder]
        _run_from_pngs(group, seq, args, on_frames)
        return
    import numpy as np

    proc = group.start([*_raw_input(geo, "rgb24", fps), *encoder], f"encoding {seq.label}", on_frames, stdin=True)
    frames = _raw_frames(group, seq, geo, fps, "rgb48le", 3, "<u2", s["scale"])
    _feed(proc, (((f.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8) for f in frames))


def _raw_input(geo: Geometry, pix_fmt: str, fps: int, source: str = "pipe:0") -> list[str]:
    """Raw frames from our pipe, or from a file in the process's working folder."""
    return ["-f", "rawvideo", "-pix_fmt", pix_fmt, "-s", f"{geo.width}x{geo.height}", "-framerate", str(fps),
            "-i", source]


def _feed(proc, frames) -> None:
    """Write raw frames to an encoder's stdin, then wait for it (its error line wins over a broken pipe)."""
    try:
        for frame in frames:
            proc.stdin.write(frame.data)  # contiguous arrays: no copy
    except (BrokenPipeError, OSError):
        pass
    proc.wait()


def _run_from_pngs(group: ProcessGroup, seq: Sequence, args: list[str], on_frames: OnFrames) -> None:
    try:
        group.start(args, f"encoding {seq.label}", on_frames).wait()
    except FfmpegFailed as exc:
        raise_broken_png(group, seq, exc)


def _depth_decode_format(seq: Sequence) -> tuple[str, int, str, int]:
    """(ffmpeg raw pix_fmt, channels, numpy dtype, largest code) to read the depth PNGs exactly."""
    info = seq.png
    wide = info.bit_depth == 16
    channels = {0: 1, 4: 2}.get(info.color_type, 3)
    pix_fmt = {1: "gray", 2: "ya8", 3: "rgb24"}[channels]
    if wide:
        pix_fmt = {1: "gray16le", 2: "ya16le", 3: "rgb48le"}[channels]
    return pix_fmt, channels, "<u2" if wide else "u1", 65535 if wide else 255


def _raw_frames(group: ProcessGroup, seq: Sequence, geo: Geometry, fps: int, pix_fmt: str, channels: int,
                dtype: str, scale_flags: str, on_frames: OnFrames | None = None):
    """Yield each frame as an HxWxC array, decoded (and scaled/padded) by ffmpeg, one frame in memory at a time."""
    import numpy as np

    vf = geo.filters(scale_flags)
    args = ["-xerror", *seq.ffmpeg_input(fps), "-frames:v", str(len(seq.files)),
            *(["-vf", ",".join(vf)] if vf else []), "-f", "rawvideo", "-pix_fmt", pix_fmt, "pipe:1"]
    proc = group.start(args, f"decoding {seq.label}", stdout=True)
    size = geo.width * geo.height * channels * np.dtype(dtype).itemsize
    count = 0
    try:
        while count < len(seq.files):
            data = proc.stdout.read(size)
            if len(data) < size:
                break
            count += 1
            yield np.frombuffer(data, dtype).reshape(geo.height, geo.width, channels)
            if on_frames:
                on_frames(1)
        proc.wait()
    except FfmpegFailed as exc:
        raise_broken_png(group, seq, exc)
    finally:
        proc.kill()
    if count != len(seq.files):
        raise UserError(f"{seq.folder}: ffmpeg decoded {count} of {len(seq.files)} frames of {seq.label}; "
                        "check the frames after that one")


def depth_frames(group: ProcessGroup, seq: Sequence, geo: Geometry, fps: int, on_frames: OnFrames | None = None):
    """Each depth frame's first channel as a 2-D array at full precision (16-bit stays 16-bit), one at a time."""
    import numpy as np

    pix_fmt, channels, dtype, _ = _depth_decode_format(seq)
    for frame in _raw_frames(group, seq, geo, fps, pix_fmt, channels, dtype, SETTINGS["depth"]["scale"], on_frames):
        yield np.ascontiguousarray(frame[:, :, 0])


def depth_range(group: ProcessGroup, seq: Sequence, geo: Geometry, fps: int, near_bright: bool,
                on_frames: OnFrames | None = None, spill=None) -> DepthRange:
    """Pass 1: the shot-wide range from every frame's min/max, streamed (memory does not grow with frames).

    ``spill``: a binary file that receives every decoded frame, so that pass 2 need not decode the PNGs again."""
    stats = DepthStats(_depth_decode_format(seq)[3])
    for frame in depth_frames(group, seq, geo, fps, on_frames):
        stats.add(frame)
        if spill is not None:
            spill.write(frame.data)
    return stats.mapping(near_bright)


def _spill_room(folder: Path, size: int) -> bool:
    """Whether the decoded depth frames may wait on disk: half the free space at most (the MP4s need room)."""
    return size <= shutil.disk_usage(folder).free // 2


def encode_depth(group: ProcessGroup, seq: Sequence, geo: Geometry, fps: int, out: Path, on_frames: OnFrames,
                 near_bright: bool, threads: int = 0) -> DepthRange:
    """Two passes, one frame in memory at a time: the shot's range, then ffmpeg maps and encodes the frames.

    Pass 1 decodes each PNG once and appends the raw frame to a scratch file beside the outputs (the OS's
    page cache keeps it, not this process); pass 2 is one ffmpeg that reads the scratch file, maps it with
    the shot's lookup table (``lut`` filter) and encodes it, so no frame comes back through Python and the
    PNGs are decoded once (a second decode cost about 1 CPU s per 121 frames at 1280x704). When the disk
    lacks room, pass 2 decodes the PNGs again and pipes them in. ``on_frames`` counts both passes;
    ``threads``: x264's, as for segmentation."""
    import numpy as np

    _, _, dtype, _ = _depth_decode_format(seq)
    scratch = out.parent / DEPTH_SCRATCH
    spill = _spill_room(out.parent, len(seq.files) * geo.width * geo.height * np.dtype(dtype).itemsize)
    try:
        try:
            with open(scratch, "wb") if spill else contextlib.nullcontext() as spilled:
                mapping = depth_range(group, seq, geo, fps, near_bright, on_frames, spilled)
        except OSError as exc:
            raise UserError(f"{out.parent.parent}: cannot write the depth scratch file ({exc.strerror}); "
                            "free some disk space there and convert again") from None
        s = SETTINGS["depth"]
        raw = _raw_input(geo, "gray16le" if dtype == "<u2" else "gray", fps, DEPTH_SCRATCH if spill else "pipe:0")
        args = [*raw, "-vf", ",".join(mapping.ffmpeg_filters()), "-c:v", s["codec"], "-threads", str(threads),
                "-preset", s["preset"], "-qp", str(s["qp"]), "-pix_fmt", s["pix_fmt"], "-color_range", s["color_range"],
                *_mp4_out(out)]
        proc = group.start(args, f"encoding {seq.label}", on_frames, stdin=not spill, cwd=out.parent)
        if spill:
            proc.wait()
        else:
            _feed(proc, depth_frames(group, seq, geo, fps))
    finally:
        scratch.unlink(missing_ok=True)
    return mapping


def raise_broken_png(group: ProcessGroup, seq: Sequence, exc: FfmpegFailed) -> None:
    """ffmpeg failed on a sequence: name the broken file if there is one, else pass ffmpeg's line on.

    Not when the conversion was cancelled (another modality failed, or Ctrl-C): the kill is the cause."""
    if group.cancelled.is_set():
        raise exc
    for path in seq.files:
        problem = png_problem(path)
        if problem:
            raise UserError(f"{path}: {problem}; re-render or copy this frame again") from None
    raise exc


def png_problem(path: Path) -> str | None:
    """A PNG's first fault (chunk lengths, CRCs, IEND, compressed pixel data), or None when it is sound."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        return f"cannot read ({exc.strerror})"
    pos, pixels = 8, zlib.decompressobj()
    while pos + 12 <= len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind = data[pos + 4:pos + 8]
        end = pos + 12 + length
        if end > len(data):
            return f"truncated PNG ({kind.decode('latin-1')} chunk runs past the end of the file)"
        (crc,) = struct.unpack(">I", data[end - 4:end])
        if zlib.crc32(data[pos + 4:end - 4]) & 0xFFFFFFFF != crc:
            return f"corrupt PNG (bad checksum in the {kind.decode('latin-1')} chunk at byte {pos})"
        if kind == b"IDAT":
            try:
                pixels.decompress(data[pos + 8:end - 4])  # checks the stream; the pixels are dropped
            except zlib.error as exc:
                return f"corrupt PNG (pixel data does not decompress: {exc})"
        if kind == b"IEND":
            return None if pixels.eof else "corrupt PNG (pixel data ends early)"
        pos = end
    return "truncated PNG (no IEND chunk)"
