"""Generators of small render folders: PNG sequences as Houdini/Nuke write them, good and broken.

PNGs are written with numpy + zlib (no Pillow), so every bit depth and colour type is exact:
8/16-bit gray, RGB, RGBA and palette images, any start frame, padding and separator.
"""

from __future__ import annotations

import functools
import struct
import zlib
from pathlib import Path

import numpy as np

# Twelve-plus clearly distinct label colours (a typical Houdini/Nuke ID palette), black is background.
PALETTE = np.array([
    (0, 0, 0), (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48),
    (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128),
    (220, 190, 255), (170, 110, 40), (128, 0, 0),
], dtype=np.uint8)

_COLOR_TYPES = {1: 0, 2: 4, 3: 2, 4: 6}  # channels -> PNG colour type (gray, gray+alpha, RGB, RGBA)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_bytes(image: np.ndarray, palette: np.ndarray | None = None, level: int = 1) -> bytes:
    """Encode an HxW or HxWxC uint8/uint16 array (or HxW indices with ``palette``) as a PNG."""
    image = np.ascontiguousarray(image)
    if image.ndim == 2:
        image = image[:, :, None]
    height, width, channels = image.shape
    bits = 16 if image.dtype == np.uint16 else 8
    color_type = 3 if palette is not None else _COLOR_TYPES[channels]
    rows = image.astype(">u2") if bits == 16 else image
    raw = rows.reshape(height, -1).view(np.uint8)
    filtered = np.concatenate([np.zeros((height, 1), np.uint8), raw], axis=1)
    parts = [b"\x89PNG\r\n\x1a\n",
             _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, bits, color_type, 0, 0, 0))]
    if palette is not None:
        parts.append(_chunk(b"PLTE", np.asarray(palette, np.uint8).tobytes()))
    parts += [_chunk(b"IDAT", zlib.compress(filtered.tobytes(), level)), _chunk(b"IEND", b"")]
    return b"".join(parts)


def write_png(path: Path, image: np.ndarray, palette: np.ndarray | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png_bytes(image, palette))
    return path


@functools.lru_cache(maxsize=4)
def _color_canvas(width: int, height: int) -> np.ndarray:
    """A detailed picture wider than the frame; frames pan across it (3 px a frame)."""
    wide = width + 3 * 400
    y, x = np.mgrid[0:height, 0:wide].astype(np.float32)
    r = 110 + 70 * np.sin(x / 97.0)
    g = 110 + 70 * np.cos(y / 61.0 + x / 301.0)
    b = 110 + 70 * np.sin((x + y) / 131.0)
    texture = 40 * ((x // 4 + y // 4) % 2) + 25 * np.sin(x * y / 700.0)
    return np.clip(np.stack([r, g, b], axis=-1) + texture[..., None], 0, 255).astype(np.uint8)


def color_frame(i: int, width: int, height: int) -> np.ndarray:
    """Colour with motion and detail: a panning textured picture and a disc moving the other way."""
    canvas = _color_canvas(width, height)
    offset = (3 * i) % (canvas.shape[1] - width + 1)
    img = canvas[:, offset:offset + width].copy()
    y, x = np.ogrid[0:height, 0:width]
    disc = (x - (width * 0.7 - 2 * i)) ** 2 + (y - height / 2) ** 2 < (min(width, height) / 5) ** 2
    img[disc] = (235, 225, 200)
    return img


def label_frame(i: int, width: int, height: int, labels: int = 13) -> np.ndarray:
    """Label indices 0..labels-1: moving vertical bands plus a moving square, hard edges only."""
    y, x = np.mgrid[0:height, 0:width]
    bands = ((x + i) * (labels - 1) // max(width, 1)) % (labels - 1) + 1
    square = (abs(x - (width // 2 + i)) < width // 6) & (abs(y - height // 2) < height // 6)
    bands[square] = 0
    bands[(y < height // 10)] = (i % (labels - 1)) + 1
    return bands.astype(np.uint8)


def depth_frame(i: int, width: int, height: int, bits: int = 16) -> np.ndarray:
    """Distance (bigger = farther): a tilted ground plane with a sphere moving across it."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    dist = 0.25 + 0.6 * (1.0 - y / max(height - 1, 1)) + 0.05 * x / max(width - 1, 1)
    cx, cy, rad = width * 0.2 + 2 * i, height * 0.5, min(width, height) / 4
    d2 = (x - cx) ** 2 + (y - cy) ** 2
    inside = d2 < rad ** 2
    dist[inside] = 0.15 + 0.1 * np.sqrt(d2[inside]) / rad
    top = 65535 if bits == 16 else 255
    return np.round(dist * top).astype(np.uint16 if bits == 16 else np.uint8)


def make_render(folder: Path, frames: int = 6, start: int = 1, width: int = 64, height: int = 48, pad: int = 4,
                sep: str = ".", names: tuple[str, str, str] | None = ("color", "depth", "segmentation"),
                depth_bits: int = 16, seg_mode: str = "rgb", labels: int = 13) -> Path:
    """Write a render folder; ``names`` entries may be None to leave a modality out.

    seg_mode: ``rgb`` (8-bit RGB), ``rgba``, ``palette`` (indexed PNG), ``gray`` (label ids as gray).
    """
    color_name, depth_name, seg_name = names or (None, None, None)
    folder.mkdir(parents=True, exist_ok=True)
    for n in range(frames):
        frame = start + n
        tag = f"{frame:0{pad}d}"
        if color_name:
            write_png(folder / f"{color_name}{sep}{tag}.png", color_frame(n, width, height))
        if depth_name:
            write_png(folder / f"{depth_name}{sep}{tag}.png", depth_frame(n, width, height, depth_bits))
        if seg_name:
            idx = label_frame(n, width, height, labels)
            path = folder / f"{seg_name}{sep}{tag}.png"
            if seg_mode == "palette":
                write_png(path, idx, palette=PALETTE[:labels])
            elif seg_mode == "gray":
                write_png(path, idx * 10)
            elif seg_mode == "rgba":
                rgba = np.concatenate([PALETTE[idx], np.full(idx.shape + (1,), 255, np.uint8)], axis=-1)
                write_png(path, rgba)
            else:
                write_png(path, PALETTE[idx])
    return folder


def seg_palette(seg_mode: str = "rgb", labels: int = 13) -> np.ndarray:
    """The RGB colours a ``make_render`` segmentation uses, as the decoded video should show them."""
    if seg_mode == "gray":
        values = np.arange(labels, dtype=np.uint8) * 10
        return np.stack([values] * 3, axis=-1)
    return PALETTE[:labels]


def truncate(path: Path, keep: float = 0.5) -> None:
    """Cut a PNG short, as an interrupted render or copy leaves it."""
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def corrupt_pixels(path: Path, fix_crc: bool = False) -> None:
    """Scramble a PNG's compressed pixel data (bad disk, bad copy); ``fix_crc`` re-signs the chunk,
    as a broken writer would, so only decompressing the data finds the fault."""
    data = bytearray(path.read_bytes())
    kind = data.index(b"IDAT")
    (length,) = struct.unpack(">I", data[kind - 4:kind])
    for k in range(kind + 6, min(kind + 70, kind + 4 + length)):
        data[k] ^= 0x5A
    if fix_crc:
        crc = zlib.crc32(bytes(data[kind:kind + 4 + length])) & 0xFFFFFFFF
        data[kind + 4 + length:kind + 8 + length] = struct.pack(">I", crc)
    path.write_bytes(bytes(data))
