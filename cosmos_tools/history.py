"""notes/run_history.log: one logfmt line per run attempt, appended under a lock, never rewritten.

A line looks like ``ts=2026-11-22T14:30:00Z run=shot1_v2 run_id=shot1_v2-3 prompt=inputs/prompts/shot1_v2.json
shot=shot1 host=gpu-1 gpus=1 weights=vis=0.25,edge=0.25 seed=1 upscale=0.5 status=ok exit=0 upload_s=1.2
run_s=300.5 upscale_s=0 download_s=2.1 output=outputs/runs/shot1_v2-3 upscaled=outputs/runs/shot1_v2-3_upscaled
spec_sha256=... prompt_text=... image_id=... code_version=... tool_version=... shot_sha256=... gpu=...``
(lines of the version before run ids lack the fields from run_id on; they read the same).
A value that is empty or holds a space, ``"``, ``=``, ``\\`` or a control character is written in
double quotes with ``\\"``, ``\\\\``, ``\\n``, ``\\r``, ``\\t`` and ``\\u00XX`` escapes, so any name
round-trips through :func:`format_record` and :func:`parse_line`.
"""

from __future__ import annotations

import re
import sys
from datetime import datetime, timezone
from pathlib import Path

from .constants import UTC_TIME_FORMAT
from .errors import LocalError
from .fsutil import append_line_locked

KEYS = ("ts", "run", "run_id", "prompt", "shot", "host", "gpus", "weights", "seed", "upscale", "status", "exit",
        "upload_s", "run_s", "upscale_s", "download_s", "total_s", "output", "upscaled", "spec_sha256",
        "prompt_text", "image_id", "code_version", "tool_version", "shot_sha256", "gpu", "rerun_of", "error")
# Every JSON row carries these ("" when a line does not say, e.g. one written before run ids).
ROW_FIELDS = ("run_id", "prompt", "output", "status", "spec_sha256", "seed", "image_id", "code_version",
              "tool_version", "shot_sha256", "rerun_of")
STATUSES = ("ok", "failed", "blocked", "cancelled", "detached")
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NEEDS_QUOTES = re.compile(r'[\s"=\\\x00-\x1f\x7f]')
_ESCAPES = {'"': '"', "\\": "\\", "n": "\n", "r": "\r", "t": "\t"}


class CorruptLine(ValueError):
    """A history line that is not logfmt."""


def history_path(cfg) -> Path:
    return cfg.local_path("LOCAL_NOTES_DIR") / "run_history.log"


def now_iso() -> str:
    """The current UTC time as ``YYYY-MM-DDTHH:MM:SSZ``."""
    return datetime.now(timezone.utc).strftime(UTC_TIME_FORMAT)


def quote_value(value) -> str:
    text = "" if value is None else str(value)
    if text and not _NEEDS_QUOTES.search(text):
        return text
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20 or ord(ch) == 0x7f:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def format_record(record: dict) -> str:
    """One logfmt line: the known keys first in their fixed order, then any others; None values left out."""
    keys = [k for k in KEYS if k in record] + [k for k in record if k not in KEYS]
    parts = []
    for key in keys:
        if record[key] is None:
            continue
        if not _KEY.fullmatch(key):
            raise ValueError(f"history key {key!r} is not a plain word")
        parts.append(f"{key}={quote_value(record[key])}")
    return " ".join(parts)


def parse_line(line: str) -> dict[str, str]:
    """Parse one logfmt line back into a dict of strings; :class:`CorruptLine` if it is not one."""
    record: dict[str, str] = {}
    i, n = 0, len(line)
    while i < n:
        if line[i] == " ":
            i += 1
            continue
        match = _KEY.match(line, i)
        if not match or match.end() >= n or line[match.end()] != "=":
            raise CorruptLine(f"expected key=value at column {i + 1}")
        key, i = match.group(), match.end() + 1
        if i < n and line[i] == '"':
            i += 1
            chars = []
            while True:
                if i >= n:
                    raise CorruptLine(f"unterminated quoted value for {key}")
                ch = line[i]
                if ch == '"':
                    i += 1
                    break
                if ch == "\\":
                    esc = line[i + 1:i + 2]
                    if esc in _ESCAPES:
                        chars.append(_ESCAPES[esc])
                        i += 2
                    elif esc == "u" and re.fullmatch(r"[0-9a-f]{4}", line[i + 2:i + 6]):
                        chars.append(chr(int(line[i + 2:i + 6], 16)))
                        i += 6
                    else:
                        raise CorruptLine(f"bad escape in value of {key}")
                    continue
                chars.append(ch)
                i += 1
            if i < n and line[i] != " ":
                raise CorruptLine(f"garbage after the quoted value of {key}")
            record[key] = "".join(chars)
        else:
            end = line.find(" ", i)
            end = n if end < 0 else end
            value = line[i:end]
            if '"' in value:
                raise CorruptLine(f"stray quote in value of {key}")
            record[key] = value
            i = end
    if "ts" not in record:
        raise CorruptLine("no ts= field")
    return record


def append_record(path: Path, record: dict) -> str:
    """Append one record (``ts`` filled in if missing) with O_APPEND under flock; return the line."""
    record = {"ts": now_iso(), **{k: v for k, v in record.items() if k != "ts" or v}}
    line = format_record(record)
    try:
        append_line_locked(Path(path), line)
    except OSError as exc:
        raise LocalError(f"{path}: cannot append to the run history ({exc.strerror or exc}); make it a writable file "
                         f"(check the notes/ folder, its permissions and free space) and add this line by hand: {line}"
                         ) from None
    return line


def typed(record: dict[str, str]) -> dict:
    """The record for JSON: every ROW_FIELDS key, counts and durations as numbers (gpus, exit, seed, *_s)."""
    out: dict = dict.fromkeys(ROW_FIELDS, "")
    for key, value in record.items():
        if value and (key in ("gpus", "exit", "seed") or key.endswith("_s")):
            try:
                out[key] = int(value) if key in ("gpus", "exit", "seed") else float(value)
                continue
            except ValueError:
                pass
        out[key] = value
    return out


def with_critic_score(cfg, row: dict) -> dict:
    """The JSON row with ``critic_score``: the score in its run's critic.json (0..1), None when not scored."""
    from .critic import score_of
    from .runs import runs_dir

    run_id = row.get("run_id")
    return {**row, "critic_score": score_of(runs_dir(cfg) / run_id) if run_id else None}


def read_records(path: Path, warn=None) -> list[dict[str, str]]:
    """Every record of the file in order; a corrupt line is skipped with a warning (file:line: why)."""
    path = Path(path)
    if not path.is_file():
        return []
    warn = warn or (lambda msg: print(f"warning: {msg}", file=sys.stderr))
    records = []
    with open(path, encoding="utf-8", errors="replace", newline="\n") as handle:
        for lineno, line in enumerate(handle, start=1):
            line = line.rstrip("\n")
            if not line.strip():
                continue
            try:
                records.append(parse_line(line))
            except CorruptLine as exc:
                warn(f"{path}:{lineno}: skipped a line that is not a history record ({exc})")
    return records


def _day_bound(text: str, end: bool) -> str:
    """A --since/--until value as a comparable UTC timestamp string (a bare date covers the whole day)."""
    text = text.strip()
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        return text + ("T23:59:59Z" if end else "T00:00:00Z")
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is not a date; use YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).strftime(UTC_TIME_FORMAT)


def filter_records(records: list[dict], *, status: str | None = None, shot: str | None = None,
                   since: str | None = None, until: str | None = None, grep: str | None = None,
                   limit: int | None = None) -> list[dict]:
    """Records matching every given filter (grep: case-insensitive text anywhere); the last ``limit``."""
    low = _day_bound(since, end=False) if since else None
    high = _day_bound(until, end=True) if until else None
    needle = grep.lower() if grep else None
    kept = []
    for record in records:
        ts = record.get("ts", "")
        if status and record.get("status") != status:
            continue
        if shot is not None and record.get("shot") != shot:
            continue
        if low and ts < low:
            continue
        if high and ts > high:
            continue
        if needle and needle not in " ".join(f"{k}={v}" for k, v in record.items()).lower():
            continue
        kept.append(record)
    return kept[-limit:] if limit else kept


TABLE_COLUMNS = ("ts", "status", "run", "weights", "seed", "total_s", "upscale", "shot")


def format_table(records: list[dict]) -> str:
    """A plain aligned table of the main columns (run: the run id, or the prompt name on lines written before
    run ids); control characters in values are shown escaped."""
    def cell(record, key):
        value = (record.get("run_id") or record.get("run", "")) if key == "run" else record.get(key, "")
        shown = quote_value(value)
        return shown[1:-1] if shown.startswith('"') else shown

    rows = [list(TABLE_COLUMNS)] + [[cell(r, k) for k in TABLE_COLUMNS] for r in records]
    widths = [max(len(row[i]) for row in rows) for i in range(len(TABLE_COLUMNS))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows)
