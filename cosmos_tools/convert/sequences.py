"""Find the color/depth/segmentation PNG sequences of a render folder and check them strictly.

Any padding width and start frame, ``.`` or ``_`` before the frame number, modality names in any
case with their common aliases. Each sequence becomes an ffmpeg image2 pattern plus a start number.
Every problem (no color, gaps, mismatched ranges or sizes, unreadable or truncated PNGs) is one
``UserError`` line naming the files.
"""

from __future__ import annotations

import os
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UserError

MODALITIES = ("color", "depth", "segmentation")
ALIASES = {
    "color": "color", "colour": "color", "rgb": "color", "beauty": "color",
    "depth": "depth", "z": "depth",
    "segmentation": "segmentation", "seg": "segmentation", "mask": "segmentation",
}
_FRAME_FILE = re.compile(r"^(?P<stem>.*?)(?P<sep>[._])(?P<digits>\d+)(?P<ext>\.png)$", re.IGNORECASE)
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_IEND = b"\x00\x00\x00\x00IEND\xaeB`\x82"
# PNG colour type -> (name, channels)
COLOR_TYPES = {0: ("gray", 1), 2: ("rgb", 3), 3: ("palette", 1), 4: ("gray+alpha", 2), 6: ("rgba", 4)}


@dataclass(frozen=True)
class PngInfo:
    width: int
    height: int
    bit_depth: int
    color_type: int

    @property
    def kind(self) -> str:
        return f"{self.bit_depth}-bit {COLOR_TYPES[self.color_type][0]}"


@dataclass
class Sequence:
    """One modality's frames: ``files[i]`` is frame ``first + i``."""

    modality: str
    folder: Path
    prefix: str  # file name before the frame number, separator included
    suffix: str  # ".png" as spelled on disk
    pad: int  # digits of the shortest frame number (1 = unpadded)
    first: int
    files: list[Path] = field(default_factory=list)
    info: PngInfo | None = None

    @property
    def last(self) -> int:
        return self.first + len(self.files) - 1

    @property
    def label(self) -> str:
        """How people write the sequence: ``color.####.png``."""
        return f"{self.prefix}{'#' * self.pad}{self.suffix}"

    def ffmpeg_input(self, fps: int) -> list[str]:
        """ffmpeg input options reading this sequence as an image2 stream at ``fps``."""
        return ["-f", "image2", "-framerate", str(fps), "-start_number", str(self.first), "-i", self.ffmpeg_pattern()]

    def ffmpeg_pattern(self) -> str:
        """The image2 pattern; a literal % in the folder or name is doubled so ffmpeg keeps it."""
        number = "%d" if self.pad == 1 else f"%0{self.pad}d"
        name = self.prefix.replace("%", "%%") + number + self.suffix.replace("%", "%%")
        return str(self.folder).replace("%", "%%") + os.sep + name


def _modality_of(stem: str) -> str | None:
    """``color``, ``RGB``, ``shot_beauty`` or ``Z_v002`` -> the modality; None if no or two names fit."""
    lowered = stem.lower()
    if lowered in ALIASES:
        return ALIASES[lowered]
    named = {ALIASES[word] for word in re.split(r"[._\- ]", lowered) if word in ALIASES}
    return named.pop() if len(named) == 1 else None


def find_sequences(folder: Path) -> dict[str, Sequence]:
    """Group the folder's frame files into one sequence per modality (unchecked beyond naming)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder}: render folder not found; give the folder holding color.####.png")
    groups: dict[tuple[str, str, str], dict[int, str]] = {}
    for entry in os.scandir(folder):
        match = _FRAME_FILE.match(entry.name)
        if not match or not entry.is_file():
            continue
        key = (match["stem"], match["sep"], match["ext"])
        frames = groups.setdefault(key, {})
        frame = int(match["digits"])
        if frame in frames:
            raise UserError(f"{folder}: {frames[frame]} and {entry.name} are both frame {frame}; "
                            "keep one padding per sequence")
        frames[frame] = match["digits"]
    found: dict[str, Sequence] = {}
    for (stem, sep, ext), frames in sorted(groups.items()):
        modality = _modality_of(stem)
        if modality is None:
            continue
        seq = _make_sequence(folder, modality, stem + sep, ext, frames)
        if modality in found:
            raise UserError(f"{folder}: two {modality} sequences, {found[modality].label} and {seq.label}; "
                            "move one of them out of the folder")
        found[modality] = seq
    if "color" not in found:
        names = ", ".join(s.label for s in found.values()) or "no frame files"
        raise UserError(f"{folder}: no color sequence (found {names}); name the beauty pass "
                        "color.####.png (or rgb/beauty)")
    return found


def _make_sequence(folder: Path, modality: str, prefix: str, suffix: str, frames: dict[int, str]) -> Sequence:
    numbers = sorted(frames)
    pad = min(len(d) for d in frames.values())
    for number in numbers:
        if frames[number] != f"{number:0{pad}d}":
            a = f"{prefix}{frames[numbers[0]]}{suffix}"
            b = f"{prefix}{frames[number]}{suffix}"
            raise UserError(f"{folder}: {a} and {b} use different zero padding; rename the frames "
                            "to one padding")
    seq = Sequence(modality, folder, prefix, suffix, pad, numbers[0])
    missing = [(a, b) for a, b in zip(numbers, numbers[1:], strict=False) if b != a + 1]
    if missing:
        a, b = missing[0]
        gap = f"frame {a + 1}" if b == a + 2 else f"frames {a + 1}-{b - 1}"
        more = f" (and {len(missing) - 1} more gaps)" if len(missing) > 1 else ""
        raise UserError(f"{folder}: {seq.label} has a gap: {gap} missing between "
                        f"{prefix}{frames[a]}{suffix} and {prefix}{frames[b]}{suffix}{more}; "
                        "render the missing frames")
    seq.files = [folder / f"{prefix}{frames[n]}{suffix}" for n in numbers]
    return seq


def read_png_info(path: Path) -> PngInfo:
    """Header and completeness of one PNG: the IHDR fields, and the IEND chunk at the very end."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(33)
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(size - 12, 0))
            tail = handle.read(12)
    except OSError as exc:
        raise UserError(f"{path}: cannot read ({exc.strerror}); check the file's permissions") from None
    if len(head) < 33 or head[:8] != _PNG_SIGNATURE or head[12:16] != b"IHDR":
        raise UserError(f"{path}: not a PNG file (bad header); re-render or re-export this frame")
    width, height, bit_depth, color_type = struct.unpack(">IIBB", head[16:26])
    if tail != _IEND:
        raise UserError(f"{path}: truncated PNG (no IEND at the end, {size} bytes); re-render or copy it again")
    if color_type not in COLOR_TYPES or bit_depth not in (1, 2, 4, 8, 16):
        raise UserError(f"{path}: unsupported PNG (colour type {color_type}, {bit_depth}-bit); "
                        "export 8- or 16-bit gray or RGB(A)")
    return PngInfo(width, height, bit_depth, color_type)


def check_sequences(sequences: dict[str, Sequence]) -> None:
    """Every file readable and complete, one size for all, the same frame range in every modality."""
    color = sequences["color"]
    for seq in sequences.values():
        if (seq.first, seq.last) != (color.first, color.last):
            raise UserError(f"{seq.folder}: {seq.label} covers frames {seq.first}-{seq.last} but "
                            f"{color.label} covers {color.first}-{color.last}; render the same range")
    reference: tuple[Path, PngInfo] | None = None
    for seq in sequences.values():
        kinds: dict[str, Path] = {}
        for path in seq.files:
            info = read_png_info(path)
            if reference is None:
                reference = (path, info)
            elif (info.width, info.height) != (reference[1].width, reference[1].height):
                ref_path, ref = reference
                raise UserError(f"{path} is {info.width}x{info.height} but {ref_path.name} is "
                                f"{ref.width}x{ref.height}; render every frame at one size")
            kinds.setdefault(info.kind, path)
            if seq.info is None or info.bit_depth > seq.info.bit_depth:
                seq.info = info
        if len(kinds) > 1 and seq.modality == "depth":
            (k1, p1), (k2, p2) = list(kinds.items())[:2]
            raise UserError(f"{p1.name} is {k1} but {p2.name} is {k2}; write the depth pass at one bit depth")


def keep_first(sequences: dict[str, Sequence], count: int | None) -> None:
    """Trim every sequence to its first ``count`` frames."""
    if count is None:
        return
    available = len(sequences["color"].files)
    if count < 1:
        raise UserError(f"frame_count must be at least 1, got {count}")
    if count > available:
        seq = sequences["color"]
        raise UserError(f"frame_count {count} is more than the {available} frames of {seq.label} "
                        f"({seq.first}-{seq.last}); ask for at most {available}")
    for seq in sequences.values():
        seq.files = seq.files[:count]
