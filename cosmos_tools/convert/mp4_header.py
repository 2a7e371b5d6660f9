"""What an H.264 MP4 holds, read from its header: frame count, size, codec and pixel format.

The converter checks every MP4 it wrote without starting ffprobe (three ffprobe processes cost 0.22 CPU s,
nearly all of it their start-up): the ``moov`` box gives the sample count (``stsz``) and the ``avc1``
entry; the sequence parameter set in ``avcC`` gives the coded size (cropping included), the chroma format,
the bit depth, the range and the matrix, which name the pixel format the way ffmpeg's H.264 decoder does
(``yuv420p``, ``yuvj420p`` for full range, ``gbrp`` for 4:4:4 with the RGB matrix).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

# profiles whose SPS carries chroma format, bit depths and scaling matrices (H.264 7.3.2.1.1)
_HIGH_PROFILES = {100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135}


@dataclass(frozen=True)
class Mp4Video:
    frames: int
    width: int
    height: int
    codec: str
    pix_fmt: str


def read_mp4_video(path: Path) -> Mp4Video:
    """The first video track of an MP4; ValueError when the file is not one this reader understands."""
    with open(path, "rb") as handle:
        moov = _top_level_box(handle, b"moov")
    for kind, start, end in _boxes(moov, 0, len(moov)):
        if kind == b"trak":
            track = _video_track(moov, start, end)
            if track is not None:
                return track
    raise ValueError("no video track")


def _top_level_box(handle, wanted: bytes) -> bytes:
    """The body of a top-level box, reading only box headers on the way (mdat is skipped, not read)."""
    while True:
        header = handle.read(8)
        if len(header) < 8:
            raise ValueError(f"no {wanted.decode()} box")
        size, kind = struct.unpack(">I4s", header)
        skip = size - 8
        if size == 1:
            skip = struct.unpack(">Q", handle.read(8))[0] - 16
        elif size == 0:
            skip = -1  # to the end of the file
        if kind == wanted:
            body = handle.read(skip)
            if skip < 0 or len(body) != skip:
                raise ValueError(f"{wanted.decode()} box cut short")
            return body
        if skip < 0:
            raise ValueError(f"no {wanted.decode()} box")
        handle.seek(skip, 1)


def _boxes(data: bytes, start: int, end: int):
    """(type, body start, body end) of each box in data[start:end]."""
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack(">I4s", data[pos:pos + 8])
        header = 8
        if size == 1:
            size, header = struct.unpack(">Q", data[pos + 8:pos + 16])[0], 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            raise ValueError(f"box {kind!r} runs past its parent")
        yield kind, pos + header, pos + size
        pos += size


def _child(data: bytes, start: int, end: int, path: list[bytes]) -> tuple[int, int]:
    for kind, body, stop in _boxes(data, start, end):
        if kind == path[0]:
            return (body, stop) if len(path) == 1 else _child(data, body, stop, path[1:])
    raise ValueError(f"no {path[0].decode()} box")


def _video_track(data: bytes, start: int, end: int) -> Mp4Video | None:
    mdia = _child(data, start, end, [b"mdia"])
    hdlr, _ = _child(data, *mdia, [b"hdlr"])
    if data[hdlr + 8:hdlr + 12] != b"vide":
        return None
    stbl = _child(data, *mdia, [b"minf", b"stbl"])
    stsz, _ = _child(data, *stbl, [b"stsz"])
    (frames,) = struct.unpack(">I", data[stsz + 8:stsz + 12])
    stsd, stsd_end = _child(data, *stbl, [b"stsd"])
    entry = next(_boxes(data, stsd + 8, stsd_end), None)
    if entry is None:
        raise ValueError("empty stsd box")
    kind, body, stop = entry
    if kind != b"avc1":
        return Mp4Video(frames, 0, 0, kind.decode("latin-1"), "")
    avcc, avcc_end = _child(data, body + 78, stop, [b"avcC"])  # 78: the visual sample entry's fields
    if avcc + 8 > avcc_end or data[avcc + 5] & 0x1F == 0:
        raise ValueError("avcC holds no sequence parameter set")
    (length,) = struct.unpack(">H", data[avcc + 6:avcc + 8])
    width, height, pix_fmt = _sps(data[avcc + 8:avcc + 8 + length])
    return Mp4Video(frames, width, height, "h264", pix_fmt)


class _Bits:
    """Reads an SPS's RBSP bit by bit (emulation prevention bytes removed)."""

    def __init__(self, nal: bytes) -> None:
        self.data = nal.replace(b"\x00\x00\x03", b"\x00\x00")
        self.pos = 0

    def u(self, count: int) -> int:
        value = 0
        for _ in range(count):
            byte = self.pos >> 3
            if byte >= len(self.data):
                raise ValueError("sequence parameter set cut short")
            value = (value << 1) | ((self.data[byte] >> (7 - (self.pos & 7))) & 1)
            self.pos += 1
        return value

    def ue(self) -> int:
        zeros = 0
        while self.u(1) == 0:
            zeros += 1
            if zeros > 31:
                raise ValueError("bad Exp-Golomb code in the sequence parameter set")
        return (1 << zeros) - 1 + self.u(zeros)

    def se(self) -> int:
        code = self.ue()
        return (code + 1) // 2 if code & 1 else -(code // 2)


def _sps(nal: bytes) -> tuple[int, int, str]:
    """(width, height, pixel format) from a sequence parameter set NAL unit (H.264 7.3.2.1.1, E.1.1)."""
    bits = _Bits(nal)
    bits.u(8)  # NAL header
    profile = bits.u(8)
    bits.u(16)  # constraint flags, level
    bits.ue()  # seq_parameter_set_id
    chroma, depth = 1, 8
    if profile in _HIGH_PROFILES:
        chroma = bits.ue()
        if chroma == 3:
            bits.u(1)  # separate_colour_plane_flag
        depth = bits.ue() + 8
        bits.ue()  # chroma bit depth
        bits.u(1)  # qpprime_y_zero_transform_bypass_flag
        if bits.u(1):  # seq_scaling_matrix_present_flag
            for i in range(8 if chroma != 3 else 12):
                if bits.u(1):
                    last = following = 8
                    for _ in range(16 if i < 6 else 64):
                        if following:
                            following = (last + bits.se() + 256) % 256
                        last = following or last
    bits.ue()  # log2_max_frame_num_minus4
    order = bits.ue()
    if order == 0:
        bits.ue()
    elif order == 1:
        bits.u(1)
        bits.se()
        bits.se()
        for _ in range(bits.ue()):
            bits.se()
    bits.ue()  # max_num_ref_frames
    bits.u(1)
    width_mbs, height_units = bits.ue() + 1, bits.ue() + 1
    frame_mbs_only = bits.u(1)
    if not frame_mbs_only:
        bits.u(1)
    bits.u(1)  # direct_8x8_inference_flag
    crop = [bits.ue() for _ in range(4)] if bits.u(1) else [0, 0, 0, 0]
    unit_x = 2 if chroma in (1, 2) else 1
    unit_y = (2 if chroma == 1 else 1) * (2 - frame_mbs_only)
    width = width_mbs * 16 - unit_x * (crop[0] + crop[1])
    height = height_units * 16 * (2 - frame_mbs_only) - unit_y * (crop[2] + crop[3])
    full_range, matrix = 0, 2  # unspecified
    if bits.u(1):  # vui_parameters_present_flag
        if bits.u(1) and bits.u(8) == 255:  # aspect_ratio_idc: extended SAR
            bits.u(32)
        if bits.u(1):
            bits.u(1)  # overscan_appropriate_flag
        if bits.u(1):  # video_signal_type_present_flag
            bits.u(3)
            full_range = bits.u(1)
            if bits.u(1):
                bits.u(16)  # colour primaries, transfer characteristics
                matrix = bits.u(8)
    if depth != 8:
        return width, height, f"{depth}-bit"
    j = "j" if full_range else ""
    if chroma == 3:
        return width, height, "gbrp" if matrix == 0 else f"yuv{j}444p"
    return width, height, f"yuv{j}422p" if chroma == 2 else f"yuv{j}420p"
