"""notes/run_history.log: logfmt round-trip with hostile values, locked appends from many processes, the CLI."""

from __future__ import annotations

import json
import multiprocessing
import re
import subprocess
import sys

import pytest

from cosmos_tools import history
from cosmos_tools.errors import LocalError

HOSTILE = [
    "plain", "", "with space", 'quo"te', "back\\slash", "a=b", "new\nline", "tab\there", "cr\rx",
    "$(touch /tmp/pwned)", "`id`", "ünïcødé ✓", "trailing\\", '"', "\x01\x7f", "key=value with \"all\" \\ \n",
]


@pytest.mark.parametrize("value", HOSTILE)
def test_value_round_trips(value):
    line = history.format_record({"ts": "2026-01-01T00:00:00Z", "run": value, "error": value})
    assert "\n" not in line
    assert history.parse_line(line) == {"ts": "2026-01-01T00:00:00Z", "run": value, "error": value}


def test_known_keys_come_first_in_order_and_none_is_left_out():
    line = history.format_record({"status": "ok", "extra": "x", "run": "r", "ts": "T", "error": None})
    assert line == "ts=T run=r status=ok extra=x"


@pytest.mark.parametrize("line", [
    'ts=T run="unterminated', "ts=T garbage", 'ts=T run=a"b', "run=x", 'ts=T run="x"y', 'ts=T run="bad \\q"',
])
def test_corrupt_lines_are_refused(line):
    with pytest.raises(history.CorruptLine):
        history.parse_line(line)


def test_read_records_skips_a_corrupt_line_with_a_warning(tmp_path):
    log = tmp_path / "run_history.log"
    history.append_record(log, {"run": "one", "status": "ok"})
    with open(log, "a", encoding="utf-8") as handle:
        handle.write('ts=2026 run="torn\n')
    history.append_record(log, {"run": "two", "status": "failed"})
    warnings = []
    records = history.read_records(log, warn=warnings.append)
    assert [r["run"] for r in records] == ["one", "two"]
    assert len(warnings) == 1 and ":2:" in warnings[0]


def test_append_fills_ts_in_utc_and_returns_the_line(tmp_path):
    log = tmp_path / "run_history.log"
    line = history.append_record(log, {"run": "r", "status": "ok"})
    assert log.read_text(encoding="utf-8") == line + "\n"
    assert re.fullmatch(r"ts=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ run=r status=ok", line)


def _append_many(args):
    path, worker, count = args
    for i in range(count):
        history.append_record(path, {"run": f"w{worker} n{i} \"q\"\n", "status": "ok", "error": "x" * 3000})


def test_concurrent_appenders_keep_every_line_intact(tmp_path):
    log = tmp_path / "notes" / "run_history.log"
    workers, count = 6, 40
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(workers) as pool:
        pool.map(_append_many, [(log, w, count) for w in range(workers)])
    records = history.read_records(log, warn=pytest.fail)
    assert len(records) == workers * count
    assert sorted(r["run"] for r in records) == sorted(f"w{w} n{i} \"q\"\n" for w in range(workers)
                                                       for i in range(count))
    assert all(r["error"] == "x" * 3000 for r in records)


def test_filters(tmp_path):
    records = [
        {"ts": "2026-01-01T10:00:00Z", "run": "a", "shot": "s1", "status": "ok"},
        {"ts": "2026-01-02T10:00:00Z", "run": "b", "shot": "s2", "status": "failed", "error": "OOM here"},
        {"ts": "2026-01-03T10:00:00Z", "run": "c", "shot": "s1", "status": "ok"},
    ]
    pick = lambda **kw: [r["run"] for r in history.filter_records(records, **kw)]  # noqa: E731
    assert pick(status="ok") == ["a", "c"]
    assert pick(shot="s1") == ["a", "c"]
    assert pick(since="2026-01-02") == ["b", "c"]
    assert pick(until="2026-01-02") == ["a", "b"]
    assert pick(since="2026-01-02T12:00:00Z") == ["c"]
    assert pick(grep="oom") == ["b"]
    assert pick(limit=1) == ["c"]
    with pytest.raises(ValueError, match="not a date"):
        pick(since="yesterday")


def _cli(args, tmp_path):
    env = {"COSMOS_PROJECT_ROOT": str(tmp_path), "PATH": "/usr/bin:/bin", "COSMOS_CONFIG": str(tmp_path / "none.sh")}
    (tmp_path / "none.sh").write_text("")
    return subprocess.run([sys.executable, "-m", "cosmos_tools", "history", *args], capture_output=True, text=True,
                          env=env)


def test_history_command_table_json_and_filters(tmp_path):
    log = tmp_path / "notes" / "run_history.log"
    history.append_record(log, {"run": "first run", "shot": "s1", "status": "ok", "upload_s": 1.5})
    history.append_record(log, {"run": "evil\n$(x)", "shot": "s2", "status": "failed", "error": "boom"})
    table = _cli([], tmp_path)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split()[:3] == ["ts", "status", "run"]
    assert len(lines) == 3 and "first run" in lines[1] and "evil\\n$(x)" in lines[2]
    as_json = _cli(["--json", "--status", "failed"], tmp_path)
    assert as_json.returncode == 0, as_json.stderr
    assert [r["run"] for r in json.loads(as_json.stdout)] == ["evil\n$(x)"]
    (first,) = json.loads(_cli(["--json", "--grep", "FIRST"], tmp_path).stdout)
    assert first["shot"] == "s1" and first["upload_s"] == 1.5, "durations are numbers for tools"
    bad = _cli(["--since", "someday"], tmp_path)
    assert bad.returncode != 0 and bad.stderr.startswith("error:") and "Traceback" not in bad.stderr


def test_history_command_without_a_log_says_so(tmp_path):
    done = _cli([], tmp_path)
    assert done.returncode == 0
    assert "no runs recorded yet" in done.stderr


def test_an_unwritable_history_is_one_line_with_the_record_to_add(tmp_path):
    blocked = tmp_path / "run_history.log"
    blocked.mkdir()  # root ignores permissions: a folder in the file's place fails for everyone
    with pytest.raises(LocalError) as caught:
        history.append_record(blocked, {"run": "shot1_v2", "status": "ok"})
    message = caught.value.format_message()
    assert caught.value.exit_code == 4
    assert str(blocked) in message and "run=shot1_v2 status=ok" in message and "\n" not in message
