"""Prompt JSON files (cosmos-transfer1 controlnet specs): load, name, shot, new, duplicate.

A prompt lives at ``inputs/prompts/<name>.json``; its stem is the run name. Paths inside it are relative to
the project root, which the GPU box mirrors under REMOTE_DIR (mounted at /workspace), so the same path works
on both sides. The shot is the folder under ``inputs/videos/`` that ``input_video_path`` points at, never a
guess from the name.

``new_prompt`` renders the default spec from the packaged template ``cosmos_tools/templates/prompt.json.j2``.
To change the defaults for a project, copy it to ``inputs/prompts/prompt_template.json.j2`` (in
LOCAL_PROMPTS_DIR) and edit it: write every value through ``|tojson``; the result must be JSON.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path, PurePosixPath

from .errors import UserError
from .fsutil import create_exclusive

MODALITY_FILES = {"color": "color.mp4", "depth": "depth.mp4", "segmentation": "segmentation.mp4"}
CONTROL_OF_MODALITY = {"depth": "depth", "segmentation": "seg"}  # color is the input video
AUTO_CONTROLS = ("vis", "edge")  # computed by cosmos from the input video
VIDEOS_PREFIX = PurePosixPath("inputs/videos")  # as written in specs (the remote layout)
USER_TEMPLATE = "prompt_template.json.j2"
PACKAGED_TEMPLATE = "prompt.json.j2"
STAMP = "%Y%m%d_%H%M%S"
_STAMP_TAIL = re.compile(r"_\d{8}_\d{6}(?:_\d+)?$")
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")


class PromptFileError(UserError):
    """A prompt file that cannot be read as one JSON object; ``detail`` is the message without the location."""

    def __init__(self, path: str, detail: str, line: int | None = None, col: int | None = None) -> None:
        super().__init__(f"{path}:{line}:{col}: {detail}" if line else f"{path}: {detail}")
        self.detail, self.line, self.col = detail, line, col


def parse_prompt_text(text: str, where: str) -> dict:
    """Parse a prompt's text; errors name ``where:line:col``."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PromptFileError(where, f"invalid JSON ({exc.msg}); fix the syntax there", exc.lineno,
                              exc.colno) from None
    if not isinstance(data, dict):
        raise PromptFileError(where, f"top level is a JSON {type(data).__name__}, not an object; "
                              'a prompt is one object like {"prompt": "...", "input_video_path": "..."}', 1, 1)
    return data


def load_prompt(path: Path) -> dict:
    """Read a prompt JSON file: one object, or a UserError naming file:line:col."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PromptFileError(str(path), "no such prompt file; check the path or create one with "
                              "scripts/new_prompt.sh") from None
    except IsADirectoryError:
        raise PromptFileError(str(path), "is a folder, not a prompt file; give the .json file") from None
    except UnicodeDecodeError as exc:
        raise PromptFileError(str(path), f"not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    except OSError as exc:
        raise PromptFileError(str(path), f"cannot read it ({exc.strerror}); check its permissions") from None
    return parse_prompt_text(text, str(path))


def prompt_name(path) -> str:
    """The run name: the prompt file's stem."""
    return Path(path).stem


def check_base_name(name: str, what: str = "name") -> str:
    """A new file or folder name: not empty, not '.'/'..', no '/', NUL or control characters."""
    if not isinstance(name, str) or name in ("", ".", ".."):
        raise UserError(f"{what} {name!r} is not usable: give a non-empty name other than '.' and '..'")
    if "/" in name:
        raise UserError(f"{what} {name!r} contains '/': give a plain name, not a path")
    if _CONTROL_CHARS.search(name):
        raise UserError(f"{what} {name!r} contains a control character (newline, tab, ...); remove it")
    return name


def shot_of(spec: dict, override: str | None = None) -> str:
    """The shot folder under inputs/videos/ that the spec's input_video_path points at; ``override`` wins."""
    if override is not None:
        return check_base_name(override, "shot")
    value = spec.get("input_video_path")
    if isinstance(value, str) and value:
        parts = PurePosixPath(value).parts
        if parts[:2] == VIDEOS_PREFIX.parts and len(parts) >= 4 and parts[2] not in (".", ".."):
            return parts[2]
    raise UserError(f"input_video_path {value!r} is not of the form inputs/videos/<shot>/<file>; "
                    "fix it in the prompt or name the shot explicitly")


def _timestamp(now: datetime | None) -> str:
    return (now or datetime.now()).strftime(STAMP)


def _write_new(cfg, base: str, text: str, now: datetime | None) -> Path:
    """Write ``<base>_<stamp>[_N].json`` without ever overwriting, and create outputs/<name>/."""
    folder = cfg.local_path("LOCAL_PROMPTS_DIR")
    stem = f"{base}_{_timestamp(now)}"
    for n in range(1, 1000):
        target = folder / (f"{stem}.json" if n == 1 else f"{stem}_{n}.json")
        try:
            if not create_exclusive(target, text):
                continue
        except OSError as exc:
            raise UserError(f"{target}: cannot write it ({exc.strerror}); use a shorter base name or check "
                            f"{folder}") from None
        (cfg.local_path("LOCAL_OUTPUTS_DIR") / target.stem).mkdir(parents=True, exist_ok=True)
        return target
    raise UserError(f"{folder}/{stem}_*.json: 999 prompts already exist for this second; wait a second and retry")


def _shot_files(cfg, shot: str) -> dict[str, str]:
    """Modality -> spec path of the files present in the shot folder; color.mp4 is required."""
    folder = cfg.local_path("LOCAL_VIDEOS_DIR") / shot
    how = (f"convert the renders first with scripts/convert_png_sequences.sh <png_dir> {shot!r}, "
           "or pick an existing shot with --shot")
    if not folder.is_dir():
        raise UserError(f"{folder}: shot folder not found; {how}")
    if not (folder / MODALITY_FILES["color"]).is_file():
        raise UserError(f"{folder}: no {MODALITY_FILES['color']} (the input video) in the shot folder; {how}")
    return {m: str(VIDEOS_PREFIX / shot / f) for m, f in MODALITY_FILES.items() if (folder / f).is_file()}


def _template(cfg):
    """The user's template if present, else the packaged one."""
    import jinja2  # imported here: keeps CLI start-up fast

    env = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False,  # noqa: S701 (JSON, not HTML)
                             keep_trailing_newline=True)
    user = cfg.local_path("LOCAL_PROMPTS_DIR") / USER_TEMPLATE
    if user.is_file():
        where = str(user)
        try:
            source = user.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UserError(f"{where}: cannot read the prompt template ({exc}); fix or remove it") from None
    else:
        from importlib.resources import files

        source = files("cosmos_tools.templates").joinpath(PACKAGED_TEMPLATE).read_text(encoding="utf-8")
        where = f"cosmos_tools/templates/{PACKAGED_TEMPLATE}"
    try:
        return env.from_string(source), where
    except jinja2.TemplateSyntaxError as exc:
        raise UserError(f"{where}:{exc.lineno}: template error ({exc.message}); fix the template") from None


def render_prompt(cfg, name: str, shot: str, text: str, files: dict[str, str]) -> dict:
    """The default spec for a shot, from the prompt template, parsed back as JSON."""
    import jinja2

    controls = [{"key": key, "input_control": None} for key in AUTO_CONTROLS]
    controls += [{"key": CONTROL_OF_MODALITY[m], "input_control": files[m]} for m in CONTROL_OF_MODALITY if m in files]
    template, where = _template(cfg)
    try:
        rendered = template.render(name=name, shot=shot, prompt=text, input_video_path=files["color"],
                                   controls=controls, weight=round(1 / len(controls), 2))
    except (jinja2.TemplateError, TypeError, ValueError) as exc:  # tojson of an undefined name is a TypeError
        raise UserError(f"{where}: template error ({exc}); fix the template (variables: name, shot, prompt, "
                        "input_video_path, controls, weight)") from None
    try:
        spec = json.loads(rendered)
    except json.JSONDecodeError as exc:
        raise UserError(f"{where}: the template did not produce JSON (line {exc.lineno}, column {exc.colno} of "
                        f"its output: {exc.msg}); write values with |tojson") from None
    if not isinstance(spec, dict):
        raise UserError(f"{where}: the template produced a JSON {type(spec).__name__}, not an object; fix it")
    return spec


def _dump(spec: dict) -> str:
    return json.dumps(spec, indent=2, ensure_ascii=False) + "\n"


def new_prompt(cfg, base_name: str, text: str, shot: str | None = None, now: datetime | None = None) -> Path:
    """Write inputs/prompts/<base_name>_<YYYYmmdd_HHMMSS>.json for shot ``shot`` (default: base_name)."""
    check_base_name(base_name, "base name")
    shot = check_base_name(shot if shot is not None else base_name, "shot")
    if not isinstance(text, str):
        raise UserError("prompt text must be a string")
    files = _shot_files(cfg, shot)
    spec = render_prompt(cfg, base_name, shot, text, files)
    return _write_new(cfg, base_name, _dump(spec), now)


def duplicate_prompt(cfg, existing: Path, now: datetime | None = None) -> Path:
    """Copy a prompt under a new timestamp; its content (and so its shot) is unchanged."""
    existing = Path(existing)
    load_prompt(existing)  # refuse to copy something that is not a prompt
    base = _STAMP_TAIL.sub("", existing.stem) or existing.stem
    check_base_name(base, "base name")
    return _write_new(cfg, base, existing.read_text(encoding="utf-8"), now)


def local_file(cfg, spec_path: str) -> Path:
    """Where a spec path (relative to the project root) is on this machine; inputs/videos/ maps to LOCAL_VIDEOS_DIR."""
    parts = PurePosixPath(spec_path).parts
    if parts[:2] == VIDEOS_PREFIX.parts:
        return cfg.local_path("LOCAL_VIDEOS_DIR").joinpath(*parts[2:])
    return cfg.root.joinpath(*parts)
