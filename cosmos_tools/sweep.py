"""Sweeps: one base prompt, axes of values, one checked prompt JSON per variant, and a manifest.

``--set KEY=V1,V2,...`` makes an axis. KEY is a dotted path into the prompt JSON (``seed``,
``edge.control_weight``, ``depth.input_control``); it must exist in the base prompt, or be the last
step and name a key the checks accept there (a transfer.py setting or a control at the top level, a
control field inside a control). Paths go through objects only; ``_`` comment keys are not sweepable.

Values: each one is a JSON literal if it parses as one (``0.5`` a number, ``null`` null, ``"0.5"`` a
string, ``[1, 2]`` a list), else the text itself (``a pier``). A value that starts like JSON (``[``,
``{``, ``"``) must be valid JSON; NaN and Infinity are text (they are not JSON). A KEY given once is
split on its top-level commas (not inside brackets or double quotes), each piece stripped of
surrounding spaces; a KEY given several times takes each ``--set`` value whole, unsplit and
unstripped, so texts with commas need no quoting: ``--set 'prompt=a pier, at night' --set
'prompt=a pier at noon'`` is two values.

Variants are the product of the axes, first axis slowest (``zip_axes``: element by element, all
axes of one length). Each is the base with its values set and a ``_sweep`` comment key
``{"name", "values"}`` first; it is named ``<base>__<key>-<value>__...`` (snake_case key parts
shortened to their initials: ``edge.control_weight`` -> ``edge.cw``; values reduced to letters,
digits and ``._+-``, 24 characters at most); names that would clash (also by case) get ``__1``,
``__2``, ...

The manifest ``inputs/sweeps/<NAME>.json`` is ``{"name": NAME, "base": <base prompt>, "axes": {KEY:
[values]}, "variants": [{"prompt": <variant prompt>, "values": {KEY: value}}]}``, paths relative to
the project, variants in sweep order.
"""

from __future__ import annotations

import copy
import difflib
import itertools
import json
import math
import os
import re
import tempfile
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from .config import Config
from .errors import UserError
from .fsutil import FILE_MODE, json_text
from .names import check_new_name
from .prompts import STAMP, PromptFile, read_prompt
from .validate import ARG_KEYS, CONTROL_FIELDS, CONTROL_KEYS, Problem, check_prompt

MAX_VARIANTS = 256  # each variant is one GPU job: more needs --max
SWEEPS_DIR = "inputs/sweeps"  # relative to the project root
SWEEP_KEY = "_sweep"
NAME_VALUE_CHARS = 24
MAX_NAME_BYTES = 200  # a variant's file name stays well under the usual 255-byte limit
SWEEP_NAME_FIX = "give --name a plain name such as alley_weights"
_NAME_UNSAFE = re.compile(r"[^\w.+-]+")
_OPENERS, _CLOSERS = "[{", "]}"


@dataclass(frozen=True)
class Axis:
    """One swept key and its values, in the order given."""

    key: str
    values: tuple


@dataclass(frozen=True)
class Variant:
    """One prompt of a sweep: its name, its values, where it goes and its exact text."""

    name: str
    values: dict
    path: Path
    text: str


@dataclass(frozen=True)
class Sweep:
    """A sweep built and checked, nothing written yet; ``problems`` are (variant name, problem) of every variant."""

    name: str
    axes: list[Axis]
    variants: list[Variant]
    manifest_path: Path
    manifest: dict
    problems: list[tuple[str, Problem]]

    @property
    def errors(self) -> list[tuple[str, Problem]]:
        return [(name, p) for name, p in self.problems if not p.warning]

    @property
    def warnings(self) -> list[tuple[str, Problem]]:
        return [(name, p) for name, p in self.problems if p.warning]


# -- --set KEY=V1,V2,... ------------------------------------------------------------------------------------------

class _NotFinite(ValueError):
    pass


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise _NotFinite(text)
    return number


def _no_constant(text: str):
    raise ValueError(f"{text} is not JSON")


def parse_value(text: str, key: str):
    """A JSON literal if ``text`` is one, else ``text`` itself; one-line UserError for an empty or broken one."""
    stripped = text.strip()
    if not stripped:
        raise UserError(f'--set {key}: an empty value; to sweep the empty string write ""')
    try:
        return json.loads(stripped, parse_float=_finite_float, parse_constant=_no_constant)
    except _NotFinite:
        raise UserError(f"--set {key}: {stripped} is not a finite number; give a number JSON can hold") from None
    except ValueError as exc:
        if stripped[0] in '[{"':
            detail = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
            raise UserError(f"--set {key}: {stripped!r} starts like JSON but is not JSON ({detail}); fix it, or "
                            "give a text value its own --set") from None
        return text


def split_values(text: str, key: str) -> list[str]:
    """``text`` cut at its top-level commas: not inside [...], {...} or "..." (JSON escapes honoured)."""
    pieces, start, depth, quoted, escaped = [], 0, [], False, False
    for i, char in enumerate(text):
        if quoted:
            escaped, quoted = (False, True) if escaped else (char == "\\", char != '"')
        elif char == '"':
            quoted = True
        elif char in _OPENERS:
            depth.append(_CLOSERS[_OPENERS.index(char)])
        elif depth and char == depth[-1]:
            depth.pop()
        elif char == "," and not depth:
            pieces.append(text[start:i])
            start = i + 1
    if quoted or depth:
        missing = '"' if quoted else depth[-1]
        raise UserError(f"--set {key}: unbalanced value {text!r} (no closing {missing}); close it, or give each "
                        "value its own --set")
    return [*pieces, text[start:]]


def parse_sets(options: list[str] | tuple[str, ...]) -> list[Axis]:
    """The axes of ``--set KEY=VALUES`` options, in order of each KEY's first appearance."""
    given: dict[str, list[str]] = {}
    for option in options:
        key, equals, text = option.partition("=")
        key = key.strip()
        if not equals or not key:
            raise UserError(f"--set {option!r}: give KEY=V1,V2,... (e.g. --set edge.control_weight=0.3,0.5)")
        if any(not part for part in key.split(".")):
            raise UserError(f"--set {key}: an empty step in the key path; write it like edge.control_weight")
        given.setdefault(key, []).append(text)
    axes = []
    for key, texts in given.items():
        if len(texts) == 1:
            values = [parse_value(piece.strip(), key) for piece in split_values(texts[0], key)]
        else:
            values = [parse_value(text, key) for text in texts]
        axes.append(Axis(key, tuple(values)))
    _refuse_overlaps([axis.key for axis in axes])
    return axes


def _refuse_overlaps(keys: list[str]) -> None:
    for a, b in itertools.permutations(keys, 2):
        if b.startswith(a + "."):
            raise UserError(f"--set {b} lies inside --set {a}, so one would undo the other; sweep only one of them")


# -- key paths into the base prompt -------------------------------------------------------------------------------

def _creatable(parents: list[str], node: dict) -> tuple[str, ...]:
    """Keys the checks accept where ``node`` is: the top level, or inside a control."""
    if not parents:
        return (*ARG_KEYS, *CONTROL_KEYS)
    if len(parents) == 1 and parents[0] in CONTROL_KEYS:
        return CONTROL_FIELDS
    return ()


def check_key_path(key: str, base: dict, where: str) -> None:
    """A one-line UserError unless ``key`` can be set in ``base`` (the prompt file at ``where``)."""
    parts = key.split(".")
    node = base
    for depth, part in enumerate(parts):
        parents = parts[:depth]
        if part.startswith("_"):
            raise UserError(f"--set {key}: {part!r} is a comment key (it starts with _, Cosmos never sees it); "
                            "sweep a real key")
        if not isinstance(node, dict):
            kind = "a list" if isinstance(node, list) else "not an object"
            raise UserError(f"--set {key}: {'.'.join(parents)} is {kind} in {where}; a key path goes through "
                            "objects only")
        if part in node:
            node = node[part]
            continue
        creatable = _creatable(parents, node)
        if depth == len(parts) - 1 and part in creatable:
            return
        known = [k for k in node if not k.startswith("_")] + [k for k in creatable if k not in node]
        close = difflib.get_close_matches(part, known, n=1, cutoff=0.6)
        hint = f'did you mean "{".".join([*parents, close[0]])}"? ' if close else ""
        inside = f"in {'.'.join(parents)} " if parents else ""
        raise UserError(f"--set {key}: no {part!r} {inside}of {where}, and not a key the checks accept there; "
                        f"{hint}known there: {', '.join(known) or 'none'}")


def _set_path(data: dict, key: str, value) -> None:
    *parents, last = key.split(".")
    node = data
    for part in parents:
        node = node[part]
    node[last] = copy.deepcopy(value)


# -- variants and their names -------------------------------------------------------------------------------------

def combine(axes: list[Axis], zip_axes: bool, limit: int) -> list[dict]:
    """The values of every variant, {KEY: value}: the product of the axes, or element by element."""
    if zip_axes:
        lengths = {axis.key: len(axis.values) for axis in axes}
        if len(set(lengths.values())) > 1:
            shown = ", ".join(f"{key} has {n}" for key, n in lengths.items())
            raise UserError(f"--zip pairs values element by element, so every axis needs as many values: {shown}; "
                            "give them the same count, or drop --zip for the product")
        count = next(iter(lengths.values()))
    else:
        count = math.prod(len(axis.values) for axis in axes)
    if count > limit:
        raise UserError(f"{count} variants is more than the limit of {limit}: each variant is one GPU job; "
                        f"narrow the axes, or pass --max {count} if you mean it")
    columns = [axis.values for axis in axes]
    rows = zip(*columns, strict=True) if zip_axes else itertools.product(*columns)
    return [dict(zip([axis.key for axis in axes], row, strict=True)) for row in rows]


def short_key(key: str) -> str:
    """``edge.control_weight`` -> ``edge.cw``: snake_case steps shortened to their initials."""
    return ".".join("".join(w[0] for w in part.split("_") if w) if "_" in part.strip("_") else part
                    for part in key.split("."))


def name_text(value) -> str:
    """A value as name-safe text: letters, digits and ``._+-``, at most NAME_VALUE_CHARS characters."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    text = _NAME_UNSAFE.sub("_", text).strip("_.")[:NAME_VALUE_CHARS].rstrip("_.")
    return text or "empty"


def _fit(base_name: str, suffix: str) -> str:
    """``base_name + suffix`` within MAX_NAME_BYTES: the base is shortened first, the values only if they must be."""
    room = max(MAX_NAME_BYTES - len(suffix.encode("utf-8")), MAX_NAME_BYTES // 4)
    while len(base_name.encode("utf-8")) > room:
        base_name = base_name[:-1]
    stem = base_name + suffix
    while len(stem.encode("utf-8")) > MAX_NAME_BYTES:
        stem = stem[:-1]
    return stem


def variant_names(base_name: str, rows: list[dict]) -> list[str]:
    """One readable, unique (also by case) name per variant, from the base name and its values."""
    stems = [_fit(base_name, "".join(f"__{short_key(k)}-{name_text(v)}" for k, v in row.items())) for row in rows]
    clashes = Counter(stem.casefold() for stem in stems)
    seen: Counter = Counter()
    taken: set[str] = set()
    names = []
    for stem in stems:
        name = stem
        if clashes[stem.casefold()] > 1:
            seen[stem.casefold()] += 1
            name = f"{stem}__{seen[stem.casefold()]}"
        while name.casefold() in taken:  # only when a value itself ends like an index
            name += "_"
        taken.add(name.casefold())
        names.append(name)
    return names


def project_path(path: Path, root: Path) -> str:
    """``path`` relative to the project root when it is inside it (as the manifest records it), else absolute."""
    path = Path(os.path.abspath(path))
    try:
        return (path.parent.resolve() / path.name).relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path)


def default_name(base_name: str, now: datetime | None = None) -> str:
    return f"{base_name}_{(now or datetime.now()).strftime(STAMP)}"


def build_sweep(cfg: Config, base_path: Path, sets: list[str] | tuple[str, ...], zip_axes: bool = False,
                name: str | None = None, limit: int = MAX_VARIANTS, now: datetime | None = None) -> Sweep:
    """Read the base, build every variant and check each one's exact text; nothing is written."""
    base = read_prompt(base_path)
    where = str(base_path)
    axes = parse_sets(sets)
    if not axes:
        raise UserError("give at least one --set KEY=V1,V2,... (e.g. --set seed=1,2,3)")
    for axis in axes:
        check_key_path(axis.key, base.data, where)
    sweep_name = check_new_name(default_name(base.name, now) if name is None else name, "sweep name",
                                SWEEP_NAME_FIX)
    rows = combine(axes, zip_axes, limit)
    folder = cfg.local_path("LOCAL_PROMPTS_DIR")
    variants, problems = [], []
    for variant_name, row in zip(variant_names(base.name, rows), rows, strict=True):
        check_new_name(variant_name, "variant name", "rename the base prompt")
        data = {SWEEP_KEY: {"name": sweep_name, "values": row},
                **{k: copy.deepcopy(v) for k, v in base.data.items() if k != SWEEP_KEY}}
        for key, value in row.items():
            _set_path(data, key, value)
        variant = Variant(variant_name, row, folder / f"{variant_name}.json", json_text(data))
        raw = variant.text.encode("utf-8")
        checked = check_prompt(PromptFile(variant.path, variant_name, raw, json.loads(raw)), cfg)
        problems += [(variant_name, p) for p in checked.problems]
        variants.append(variant)
    manifest = {"name": sweep_name, "base": project_path(base.path, cfg.root),
                "axes": {axis.key: list(axis.values) for axis in axes},
                "variants": [{"prompt": project_path(v.path, cfg.root), "values": v.values} for v in variants]}
    return Sweep(sweep_name, axes, variants, cfg.root / SWEEPS_DIR / f"{sweep_name}.json", manifest, problems)


# -- writing: all files or none -----------------------------------------------------------------------------------

def _files(sweep: Sweep) -> list[tuple[Path, str]]:
    """Every file of a sweep, the manifest last (a manifest on disk means its variants are there)."""
    return [(v.path, v.text) for v in sweep.variants] + [(sweep.manifest_path, json_text(sweep.manifest))]


def _same(path: Path, text: str) -> bool:
    try:
        return path.read_bytes() == text.encode("utf-8")
    except OSError:
        return False


def check_targets(sweep: Sweep) -> None:
    """A one-line UserError when a file of the sweep already exists with other content (never overwritten)."""
    for path, text in _files(sweep):
        if os.path.lexists(path) and not _same(path, text):
            raise _refuse_existing(path)


def _refuse_existing(path: Path) -> UserError:
    fix = "pick another --name" if path.parent.name == "sweeps" else \
        "remove it, or sweep other values (a variant is named after its base and values)"
    return UserError(f"{path}: already exists with other content; nothing was written; {fix}")


def write_sweep(sweep: Sweep) -> None:
    """Write every variant and the manifest, or nothing: temp files first, then each linked in place (never over
    an existing file; one with the same content counts as written)."""
    check_targets(sweep)
    staged: list[tuple[Path, Path, str]] = []  # (temp file, target, text)
    created: list[Path] = []
    complete = False
    try:
        for target, text in _files(sweep):
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, temp_name = tempfile.mkstemp(prefix=".sweep-", suffix=".tmp", dir=target.parent)
            staged.append((Path(temp_name), target, text))
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
            os.chmod(temp_name, FILE_MODE)
        for temp, target, text in staged:
            try:
                os.link(temp, target)  # atomic, and fails instead of overwriting
            except FileExistsError:
                if not _same(target, text):
                    raise _refuse_existing(target) from None
                continue
            created.append(target)
        complete = True
    except OSError as exc:
        raise UserError(f"{exc.filename or sweep.manifest_path}: cannot write it ({exc.strerror}); nothing was "
                        "written; check the folder's permissions and free space") from None
    finally:
        for path in [] if complete else created:
            path.unlink(missing_ok=True)
        for temp, _, _ in staged:
            temp.unlink(missing_ok=True)
