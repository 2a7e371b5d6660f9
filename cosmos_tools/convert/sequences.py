"""Find the color/depth/segmentation PNG sequences of a render folder and check them strictly.

Any padding width and start frame, ``.`` or ``_`` before the frame number, pass names in any case with
the names Houdini, Nuke and the common renderers give them (``ALIASES``), in the folder itself or in
one level of pass subfolders (``depth/alley.####.png``: the subfolder names the pass). An explicit
mapping (``{"depth": "Pz"}``) wins over the names. Each sequence becomes an ffmpeg image2 pattern plus
a start number. Every sequence found but not used is reported; every problem (no color, gaps,
mismatched ranges or sizes, unreadable or truncated PNGs) is one ``UserError`` line naming the files.
"""

from __future__ import annotations

import os
import re
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UserError

MODALITIES = ("color", "depth", "segmentation")
# A pass name (or one word of it, split at . _ - and spaces) -> the modality. Sources: Houdini Mantra/Karma
# (Pz, Op_Id, Prim_Id, objid), Nuke (depth.Z, Z, zdepth, id, matte), V-Ray (VRayZDepth, VRayRenderID,
# VRayObjectID, MultiMatte), Arnold (Z, ID), Redshift (Z, ObjectID, PuzzleMatte), Blender (Depth, IndexOB,
# IndexMA). Cryptomatte passes are never segmentation: they hold hashed ids, not flat colours.
ALIASES = {
    **dict.fromkeys(("color", "colour", "rgb", "rgba", "beauty"), "color"),
    **dict.fromkeys(("depth", "z", "pz", "zdepth", "vrayzdepth"), "depth"),
    **dict.fromkeys(("segmentation", "seg", "mask", "matte", "id", "objid", "objectid", "primid", "renderid",
                     "vrayrenderid", "vrayobjectid", "multimatte", "puzzlematte", "indexob", "indexma"),
                    "segmentation"),
}
PASS_NAMES = {"color": "color", "depth": "depth", "segmentation": "segmentation", "seg": "segmentation"}
_FRAME_FILE = re.compile(r"^(?P<stem>.*?)(?P<sep>[._])(?P<digits>\d+)(?P<ext>\.png)$", re.IGNORECASE)
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_IEND = b"\x00\x00\x00\x00IEND\xaeB`\x82"
# PNG colour type -> (name, channels)
COLOR_TYPES = {0: ("gray", 1), 2: ("rgb", 3), 3: ("palette", 1), 4: ("gray+alpha", 2), 6: ("rgba", 4)}
# (PNG colour type, bit depth) -> the pixel format ffmpeg's PNG decoder gives it (ffprobe agrees; tested)
DECODED_PIX_FMT = {(0, 8): "gray", (0, 16): "gray16be", (2, 8): "rgb24", (2, 16): "rgb48be", (3, 8): "pal8",
                   (4, 8): "ya8", (4, 16): "ya16be", (6, 8): "rgba", (6, 16): "rgba64be"}


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
    def png(self) -> PngInfo:
        """The header of its deepest frame, known once ``check_sequences`` has read every file."""
        assert self.info is not None, "check_sequences reads the PNG headers first"
        return self.info

    @property
    def last(self) -> int:
        return self.first + len(self.files) - 1

    @property
    def label(self) -> str:
        """How people write the sequence: ``color.####.png``."""
        return f"{self.prefix}{'#' * self.pad}{self.suffix}"

    def ffmpeg_input(self, fps: int) -> list[str]:
        """ffmpeg input options reading this sequence as an image2 stream at ``fps``.

        The size and pixel format from the PNG header spare ffmpeg decoding the first PNG once more to learn
        them (0.15 CPU s a process at 3840x2160); the frames decode the same either way."""
        pix_fmt = DECODED_PIX_FMT.get((self.png.color_type, self.png.bit_depth))
        known = ["-pixel_format", pix_fmt, "-video_size", f"{self.png.width}x{self.png.height}"] if pix_fmt else []
        return ["-f", "image2", *known, "-framerate", str(fps), "-start_number", str(self.first),
                "-i", self.ffmpeg_pattern()]

    def ffmpeg_pattern(self) -> str:
        """The image2 pattern; a literal % in the folder or name is doubled so ffmpeg keeps it."""
        number = "%d" if self.pad == 1 else f"%0{self.pad}d"
        name = self.prefix.replace("%", "%%") + number + self.suffix.replace("%", "%%")
        return str(self.folder).replace("%", "%%") + os.sep + name


def _words(name: str) -> list[str]:
    return [word for word in re.split(r"[._\- ]", name.lower()) if word]


def _modality_of(stem: str, subfolder: str = "") -> str | None:
    """``color``, ``RGB``, ``shot_beauty``, ``alley.Pz``, ``Op_Id`` or ``Z_v002`` (or a file in a pass subfolder
    such as ``depth/``) -> the modality; None if no or two names fit, or for a cryptomatte."""
    lowered = stem.lower()
    if "crypto" in lowered or "crypto" in subfolder.lower():
        return None
    if lowered in ALIASES and not subfolder:
        return ALIASES[lowered]
    named = {ALIASES[word] for word in _words(stem) + _words(subfolder) if word in ALIASES}
    return named.pop() if len(named) == 1 else None


def parse_passes(given: Iterable[str]) -> dict[str, str]:
    """``["depth=Pz", "seg=objid"]`` -> ``{"depth": "Pz", "segmentation": "objid"}``; a bad one is a UserError."""
    passes: dict[str, str] = {}
    for item in given:
        key, sep, name = item.partition("=")
        modality = PASS_NAMES.get(key.strip().lower())
        if not sep or not name.strip() or modality is None:
            raise UserError(f"--pass {item!r}: give PASS=NAME with PASS one of color, depth, segmentation "
                            "(e.g. --pass depth=Pz)")
        if modality in passes:
            raise UserError(f"--pass {item!r}: {modality} is already mapped to {passes[modality]!r}; give it once")
        passes[modality] = name.strip()
    return passes


@dataclass(eq=False)
class _Found:
    """One group of frame files: where, its name parts, frame number -> digits as spelled."""

    subfolder: str
    stem: str
    sep: str
    ext: str
    frames: dict[int, str]

    @property
    def label(self) -> str:
        """As people write it, relative to the render folder: ``depth/alley.####.png``."""
        pad = min(len(d) for d in self.frames.values())
        name = f"{self.stem}{self.sep}{'#' * pad}{self.ext}"
        return f"{self.subfolder}/{name}" if self.subfolder else name

    def matches(self, name: str) -> bool:
        """The pass name a user gave (``Pz``, ``depth``, ``alley.Pz``) names this group."""
        wanted = name.lower().rstrip("/")
        return wanted in (self.stem.lower(), self.subfolder.lower(), self.label.lower()) or wanted in _words(self.stem)


def _scan(folder: Path) -> list[_Found]:
    """Frame-file groups of the folder and of each subfolder one level down (hidden ones skipped)."""
    places = [("", folder)] + sorted((entry.name, Path(entry.path)) for entry in os.scandir(folder)
                                     if entry.is_dir() and not entry.name.startswith("."))
    found: list[_Found] = []
    for subfolder, place in places:
        groups: dict[tuple[str, str, str], dict[int, str]] = {}
        for entry in os.scandir(place):
            match = _FRAME_FILE.match(entry.name)
            if not match or not entry.is_file():
                continue
            frames = groups.setdefault((match["stem"], match["sep"], match["ext"]), {})
            frame = int(match["digits"])
            if frame in frames:
                raise UserError(f"{place}: {frames[frame]} and {entry.name} are both frame {frame}; "
                                "keep one padding per sequence")
            frames[frame] = match["digits"]
        found += [_Found(subfolder, *key, frames) for key, frames in sorted(groups.items())]
    return found


def _pick(found: list[_Found], passes: dict[str, str]) -> dict[str, _Found]:
    """Modality -> group: the explicit mapping first, then the names; two candidates for one modality refused."""
    chosen: dict[str, _Found] = {}
    for modality, name in passes.items():
        hits = [group for group in found if group.matches(name)]
        if not hits:
            names = ", ".join(group.label for group in found) or "no frame files"
            raise UserError(f"--pass {modality}={name}: no sequence of that name (found {names}); "
                            "give one of these names")
        if len(hits) > 1:
            raise UserError(f"--pass {modality}={name} matches {' and '.join(g.label for g in hits)}; "
                            "give a longer name (e.g. the whole name before the frame number)")
        chosen[modality] = hits[0]
    for group in found:
        named = _modality_of(group.stem, group.subfolder)
        if named is None or named in passes or group in chosen.values():
            continue
        if named in chosen:
            raise UserError(f"two {named} sequences, {chosen[named].label} and {group.label}; move one "
                            f"of them out of the folder or choose with --pass {named}=NAME")
        chosen[named] = group
    return chosen


def _why_unused(group: _Found, passes: dict[str, str]) -> str:
    if "crypto" in group.label.lower():
        return "a cryptomatte holds hashed ids, not flat colours: export an id or matte pass"
    modality = _modality_of(group.stem, group.subfolder)
    if modality in passes:
        return f"--pass {modality}={passes[modality]} chose another sequence"
    return f"not a color, depth or segmentation name: --pass PASS={group.stem} uses it"


def find_sequences(folder: Path, passes: dict[str, str] | None = None,
                   unused: list[str] | None = None) -> dict[str, Sequence]:
    """One sequence per modality (unchecked beyond naming); ``passes`` maps a modality to a pass name and
    wins over the names. Each sequence found but not used gets one line appended to ``unused``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder}: render folder not found; give the folder holding color.####.png")
    found = _scan(folder)
    chosen = _pick(found, passes or {})
    if "color" not in chosen:
        names = ", ".join(group.label for group in found) or "no frame files"
        raise UserError(f"{folder}: no color sequence (found {names}; pass subfolders searched one level down); "
                        "name the beauty pass color.####.png (or rgb/beauty), or choose it with --pass color=NAME")
    for group in found:
        if group not in chosen.values() and unused is not None:
            unused.append(f"{group.label}: not used ({_why_unused(group, passes or {})})")
    return {modality: _make_sequence(folder / group.subfolder, modality, group.stem + group.sep, group.ext,
                                     group.frames)
            for modality, group in sorted(chosen.items(), key=lambda item: MODALITIES.index(item[0]))}


def _make_sequence(folder: Path, modality: str, prefix: str, suffix: str, frames: dict[int, str]) -> Sequence:
    numbers = sorted(frames)
    pad = min(len(d) for d in frames.values())
    for number in numbers:
        if frames[number] != f"{number:0{pad}d}":
            first_file = f"{prefix}{frames[numbers[0]]}{suffix}"
            other_file = f"{prefix}{frames[number]}{suffix}"
            raise UserError(f"{folder}: {first_file} and {other_file} use different zero padding; rename the frames "
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
