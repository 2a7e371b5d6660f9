"""Prompt JSON files (cosmos-transfer1 controlnet specs): read, name, shot, referenced files, new, duplicate.

A prompt lives at ``inputs/prompts/<name>.json``; its stem is the run name. Paths inside it are relative to
the project root, which the GPU box mirrors under REMOTE_DIR (mounted at /workspace), so the same path works
on both sides. The shot is the folder under ``inputs/videos/`` that ``input_video_path`` points at, never a
guess from the name.

A prompt file is read once (``read_prompt``): the bytes that were checked are the bytes that are uploaded and
recorded, even if the file changes meanwhile.

``new_prompt`` renders the default spec from the packaged template ``cosmos_tools/templates/prompt.json.j2``.
To change the defaults for a project, copy it to ``inputs/prompts/prompt_template.json.j2`` (in
LOCAL_PROMPTS_DIR) and edit it: write every value through ``|tojson``; the result must be JSON.
"""

from __future__ import annotations

import errno
import json
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath

from .config import Config
from .errors import LocalError, UserError
from .fsutil import create_exclusive, json_text
from .names import MAX_BASE_NAME_BYTES, check_new_name

MODALITY_FILES = {"color": "color.mp4", "depth": "depth.mp4", "segmentation": "segmentation.mp4"}
CONTROL_OF_MODALITY = {"depth": "depth", "segmentation": "seg"}  # color is the input video
AUTO_CONTROLS = ("vis", "edge")  # computed by cosmos from the input video
VIDEOS_PREFIX = PurePosixPath("inputs/videos")  # as written in specs (the remote layout)
STAMP = "%Y%m%d_%H%M%S"
_STAMP_TAIL = re.compile(r"_\d{8}_\d{6}(?:_\d+)?$")
BASE_NAME_FIX = "give a plain name such as shot_010_rain (spaces and unicode are fine)"
SHOT_FIX = "give the name of a shot folder under inputs/videos/"


class PromptFileError(UserError):
    """A prompt file that cannot be read as one JSON object; ``detail`` is the message without the location."""

    def __init__(self, path: str, detail: str, line: int | None = None, col: int | None = None) -> None:
        super().__init__(f"{path}:{line}:{col}: {detail}" if line else f"{path}: {detail}")
        self.detail, self.line, self.col = detail, line, col


@dataclass(frozen=True)
class DuplicateKey:
    """A key written twice in one JSON object: cosmos (Python's json) keeps the value on ``line``."""

    key: str
    first_line: int
    line: int


@dataclass(frozen=True)
class PromptFile:
    """A prompt file read once: ``raw`` is exactly what was checked and what is sent; ``data`` is it parsed."""

    path: Path
    name: str  # the file's stem: the run name
    raw: bytes
    data: dict
    duplicates: tuple[DuplicateKey, ...] = ()  # keys that appear twice in one object (JSON keeps the last)


def _parse(text: str, where: str) -> tuple[dict, tuple[DuplicateKey, ...]]:
    """The prompt object and its duplicated keys; errors name ``where:line:col``."""
    found_duplicate = False

    def pairs_hook(pairs):
        nonlocal found_duplicate
        found_duplicate = found_duplicate or len({key for key, _ in pairs}) < len(pairs)
        return dict(pairs)

    try:
        data = json.loads(text, object_pairs_hook=pairs_hook)
    except json.JSONDecodeError as exc:
        raise PromptFileError(where, f"invalid JSON ({exc.msg}); fix the syntax there", exc.lineno,
                              exc.colno) from None
    except RecursionError:
        raise PromptFileError(where, "nested too deeply to read (about 1000 levels of [ or { or more; a prompt "
                              "is a flat object with a few nested controls); fix or regenerate the file") from None
    if not isinstance(data, dict):
        raise PromptFileError(where, f"top level is a JSON {type(data).__name__}, not an object; "
                              'a prompt is one object like {"prompt": "...", "input_video_path": "..."}', 1, 1)
    return data, _duplicate_keys(text) if found_duplicate else ()


_JSON_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[{}\[\],:]|\n')


def _duplicate_keys(text: str) -> tuple[DuplicateKey, ...]:
    """Every key written twice in one object of valid JSON ``text``, with the lines of both (no recursion)."""
    found: list[DuplicateKey] = []
    objects: list[dict[str, int] | None] = []  # per open container: key -> line for an object, None for an array
    line, expect_key = 1, False
    for match in _JSON_TOKEN.finditer(text):
        piece = match.group()
        if piece == "\n":
            line += 1
        elif piece in "{[":
            objects.append({} if piece == "{" else None)
            expect_key = piece == "{"
        elif piece in "}]":
            objects.pop()
        elif piece == ",":
            expect_key = bool(objects) and objects[-1] is not None
        elif piece != ":" and expect_key and (seen := objects[-1]) is not None:
            key = json.loads(piece)
            if key in seen:
                found.append(DuplicateKey(key, seen[key], line))
            seen[key] = line
            expect_key = False
    return tuple(found)


def read_prompt(path: Path) -> PromptFile:
    """Read a prompt JSON file once: one object, or a PromptFileError naming file:line:col."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise PromptFileError(str(path), "no such prompt file; check the path or create one with "
                              "scripts/new_prompt.sh") from None
    except IsADirectoryError:
        raise PromptFileError(str(path), "is a folder, not a prompt file; give the .json file") from None
    except OSError as exc:
        raise PromptFileError(str(path), f"cannot read it ({exc.strerror}); check its permissions") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PromptFileError(str(path), f"not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    text = text.replace("\r\n", "\n").replace("\r", "\n")  # universal newlines: error lines count like an editor's
    data, duplicates = _parse(text, str(path))
    return PromptFile(path=path, name=prompt_name(path), raw=raw, data=data, duplicates=duplicates)


def prompt_name(path) -> str:
    """The run name: the prompt file's stem."""
    return Path(path).stem


def shot_of(spec: dict, override: str | None = None) -> str:
    """The shot folder under inputs/videos/ that the spec's input video (Transfer1's input_video_path, Transfer2.5's
    video_path, Cosmos 3's vision_path, else its first hint's control_path) points at; ``override`` wins."""
    if override is not None:
        return check_new_name(override, "shot", SHOT_FIX)
    key = next((k for k in ("input_video_path", "video_path", "vision_path") if k in spec), "input_video_path")
    value = spec.get(key)
    if value is None:  # a Cosmos 3 spec of controls only
        key, value = next(((f"{k}.control_path", v.get("control_path")) for k, v in spec.items()
                           if isinstance(v, dict) and v.get("control_path")), (key, value))
    if isinstance(value, str) and value:
        parts = PurePosixPath(value).parts
        if parts[:2] == VIDEOS_PREFIX.parts and len(parts) >= 4 and parts[2] not in (".", ".."):
            return parts[2]
    raise UserError(f"{key} {value!r} is not of the form inputs/videos/<shot>/<file>; "
                    "fix it in the prompt or name the shot explicitly")


def _timestamp(now: datetime | None) -> str:
    return (now or datetime.now()).strftime(STAMP)


def _write_new(cfg: Config, base: str, text: str, now: datetime | None) -> Path:
    """Write ``<base>_<stamp>[_N].json`` without ever overwriting, and create outputs/<name>/."""
    folder = cfg.local_path("LOCAL_PROMPTS_DIR")
    stem = f"{base}_{_timestamp(now)}"
    for n in range(1, 1000):
        target = folder / (f"{stem}.json" if n == 1 else f"{stem}_{n}.json")
        try:
            if not create_exclusive(target, text):
                continue
        except OSError as exc:
            raise _cannot_write(target, exc, "LOCAL_PROMPTS_DIR") from None
        outputs = cfg.local_path("LOCAL_OUTPUTS_DIR") / target.stem
        try:
            outputs.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            target.unlink()  # no half-made prompt: it is written again once the folder can be made
            raise _cannot_write(outputs, exc, "LOCAL_OUTPUTS_DIR") from None
        return target
    raise UserError(f"{folder}/{stem}_*.json: 999 prompts already exist for this second; wait a second and retry")


def _cannot_write(path: Path, exc: OSError, setting: str) -> UserError:
    """The error for a file or folder new_prompt could not make: the name (UserError) or this machine (LocalError)."""
    if exc.errno == errno.ENAMETOOLONG:
        return UserError(f"{path}: cannot write it (file name too long for this file system); use a shorter "
                         "base name")
    fix = ("free some space on that disk" if exc.errno in (errno.ENOSPC, errno.EDQUOT)
           else f"make {path.parent} writable, or point {setting} in config.sh elsewhere")
    return LocalError(f"{path}: cannot write it ({exc.strerror}); {fix}")


def _shot_files(cfg: Config, shot: str) -> dict[str, str]:
    """Modality -> spec path of the files present in the shot folder; color.mp4 is required."""
    folder = cfg.local_path("LOCAL_VIDEOS_DIR") / shot
    how = (f"convert the renders first with scripts/convert_png_sequences.sh <png_dir> {shot!r}, "
           "or pick an existing shot with --shot")
    if not folder.is_dir():
        raise UserError(f"{folder}: shot folder not found; {how}")
    if not (folder / MODALITY_FILES["color"]).is_file():
        raise UserError(f"{folder}: no {MODALITY_FILES['color']} (the input video) in the shot folder; {how}")
    return {m: str(VIDEOS_PREFIX / shot / f) for m, f in MODALITY_FILES.items() if (folder / f).is_file()}


def _template(cfg: Config, profile):
    """The user's template of the model profile if present, else the packaged one."""
    import jinja2  # imported here: keeps CLI start-up fast

    env = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False,  # noqa: S701 (JSON, not HTML)
                             keep_trailing_newline=True)
    user = cfg.local_path("LOCAL_PROMPTS_DIR") / profile.USER_TEMPLATE
    if user.is_file():
        where = str(user)
        try:
            source = user.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UserError(f"{where}: cannot read the prompt template ({exc}); fix or remove it") from None
    else:
        from importlib.resources import files

        source = files("cosmos_tools.templates").joinpath(profile.PROMPT_TEMPLATE).read_text(encoding="utf-8")
        where = f"cosmos_tools/templates/{profile.PROMPT_TEMPLATE}"
    try:
        return env.from_string(source), where
    except jinja2.TemplateSyntaxError as exc:
        raise UserError(f"{where}:{exc.lineno}: template error ({exc.message}); fix the template") from None


def _shot_facts(cfg: Config, shot: str, files: dict[str, str]) -> dict:
    """The shot's width, height, frames and fps: from its shot.json (convert writes it), else probed from color.mp4."""
    from .convert.shot import SHOT_JSON
    from .probe import probe_video

    try:
        record = json.loads((cfg.local_path("LOCAL_VIDEOS_DIR") / shot / SHOT_JSON).read_text(encoding="utf-8"))
        facts = {key: record[key] for key in ("width", "height", "frames", "fps")}
        if all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in facts.values()):
            return facts
    except (OSError, ValueError, KeyError, TypeError):
        pass
    info = probe_video(local_file(cfg, files["color"]))
    return {"width": info.width, "height": info.height, "frames": info.frames, "fps": round(info.fps) or cfg.int("FPS")}


def render_prompt(cfg: Config, name: str, shot: str, text: str, files: dict[str, str],
                  model: str | None = None) -> dict:
    """The default spec for a shot and model (default MODEL), from that model's prompt template, parsed back as JSON.

    Templates get the input video as ``input_video_path`` and ``video_path``, and each control's video as
    ``input_control`` and ``control_path`` (Transfer1's and Transfer2.5's names).
    """
    import jinja2

    from . import models

    profile = models.profile(model or cfg["MODEL"])
    controls = [{"key": key, "input_control": None, "control_path": None} for key in AUTO_CONTROLS]
    controls += [{"key": CONTROL_OF_MODALITY[m], "input_control": files[m], "control_path": files[m]}
                 for m in CONTROL_OF_MODALITY if m in files]
    template, where = _template(cfg, profile)
    extra = profile.prompt_values(_shot_facts(cfg, shot, files)) if hasattr(profile, "prompt_values") else {}
    try:
        rendered = template.render(name=name, shot=shot, prompt=text, input_video_path=files["color"],
                                   video_path=files["color"], controls=controls, weight=round(1 / len(controls), 2),
                                   **extra)
    except (jinja2.TemplateError, TypeError, ValueError) as exc:  # tojson of an undefined name is a TypeError
        variables = ", ".join(["name, shot, prompt, input_video_path or video_path, controls, weight", *extra])
        raise UserError(f"{where}: template error ({exc}); fix the template (variables: {variables})") from None
    try:
        spec = json.loads(rendered)
    except json.JSONDecodeError as exc:
        raise UserError(f"{where}: the template did not produce JSON (line {exc.lineno}, column {exc.colno} of "
                        f"its output: {exc.msg}); write values with |tojson") from None
    if not isinstance(spec, dict):
        raise UserError(f"{where}: the template produced a JSON {type(spec).__name__}, not an object; fix it")
    return spec


def new_prompt(cfg: Config, base_name: str, text: str, shot: str | None = None, now: datetime | None = None) -> Path:
    """Write inputs/prompts/<base_name>_<YYYYmmdd_HHMMSS>.json for shot ``shot`` (default: base_name), in the spec
    format of MODEL (Transfer2.5 prompts carry ``"_model"``)."""
    check_new_name(base_name, "base name", BASE_NAME_FIX, MAX_BASE_NAME_BYTES)
    shot = check_new_name(shot if shot is not None else base_name, "shot", SHOT_FIX)
    if not isinstance(text, str):
        raise UserError("prompt text must be a string")
    files = _shot_files(cfg, shot)
    spec = render_prompt(cfg, base_name, shot, text, files)
    return _write_new(cfg, base_name, json_text(spec), now)


def duplicate_prompt(cfg: Config, existing: Path, now: datetime | None = None) -> Path:
    """Copy a prompt under a new timestamp; its content (and so its shot) is unchanged."""
    prompt = read_prompt(existing)  # refuse to copy something that is not a prompt
    base = _STAMP_TAIL.sub("", prompt.name) or prompt.name
    check_new_name(base, "base name", BASE_NAME_FIX, MAX_BASE_NAME_BYTES)
    return _write_new(cfg, base, prompt.raw.decode("utf-8"), now)


def local_file(cfg: Config, spec_path: str) -> Path:
    """Where a spec path (relative to the project root) is on this machine; inputs/videos/ maps to LOCAL_VIDEOS_DIR."""
    parts = PurePosixPath(spec_path).parts
    if parts[:2] == VIDEOS_PREFIX.parts:
        return cfg.local_path("LOCAL_VIDEOS_DIR").joinpath(*parts[2:])
    return cfg.root.joinpath(*parts)


def inside_project(cfg: Config, path: Path) -> bool:
    """True if ``path``, symlinks followed, stays in the project (or in LOCAL_VIDEOS_DIR, wherever that is)."""
    roots = {cfg.root.resolve(), cfg.local_path("LOCAL_VIDEOS_DIR").resolve()}
    resolved = path.resolve()
    return any(resolved == root or root in resolved.parents for root in roots)


def _spec_paths(spec: dict) -> list[str]:
    """The project files a spec points at: input video, control videos, checkpoints, .pt weight maps, region files."""
    found: list[str] = []

    def add(value) -> None:
        if isinstance(value, str) and value:
            found.append(value)
        elif isinstance(value, list):
            for item in value:
                add(item)

    for key in ("input_video_path", "video_path", "vision_path", "prompt_path", "defaults_file", "image_context_path",
                "guided_generation_mask"):
        add(spec.get(key))
    for value in spec.values():
        if isinstance(value, dict):
            add(value.get("input_control"))
            add(value.get("control_path"))
            add(value.get("mask_path"))
            add(value.get("ckpt_path"))
            weight = value.get("control_weight")
            if isinstance(weight, str) and weight.endswith(".pt"):
                add(weight)
    for region in spec.get("regional_prompts") or []:
        if isinstance(region, dict) and isinstance(region.get("region_definitions_path"), str):
            add(region["region_definitions_path"])
    return found


def is_clean_relative(path: str) -> bool:
    """A relative path without '..' or NUL: one that stays inside the project."""
    parts = PurePosixPath(path).parts
    return bool(parts) and not path.startswith("/") and ".." not in parts and "\0" not in path


def referenced_files(cfg: Config, spec: dict) -> list[tuple[Path, str]]:
    """(local file, spec path) of each project file the spec names that exists here, once each.

    Paths under CHECKPOINT_DIR_REMOTE are model weights on the GPU box: never listed (never sent).
    """
    box_checkpoints = PurePosixPath(cfg["CHECKPOINT_DIR_REMOTE"]).parts
    found: list[tuple[Path, str]] = []
    seen: set[str] = set()
    for spec_path in _spec_paths(spec):
        rel = PurePosixPath(spec_path).as_posix()
        on_box_only = PurePosixPath(rel).parts[:len(box_checkpoints)] == box_checkpoints
        if (is_clean_relative(spec_path) and rel not in seen and not on_box_only
                and local_file(cfg, spec_path).is_file()):
            found.append((local_file(cfg, spec_path), rel))
            seen.add(rel)
    return found
