"""The remote protocol: the packaged scripts, their exit codes, and the one reader of job state."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest
from prompt_fixtures import HOSTILE_NAMES

from cosmos_tools import jobs, transport
from cosmos_tools.config import load_config
from cosmos_tools.remote import script
from cosmos_tools.remote.codes import ScriptExit
from cosmos_tools.remote.paths import RUN, UPSCALE, JobPaths, container_name
from cosmos_tools.sync import RUN_PYTHON

PACKAGE = Path(jobs.__file__).resolve().parent
SCRIPTS = sorted(p.name for p in resources.files("cosmos_tools.remote").iterdir()
                 if p.name.endswith(".sh") or (p.name.endswith(".py") and not p.name.startswith("_")
                                               and p.name not in ("codes.py", "paths.py", "account.py")))


def test_every_script_the_code_loads_is_in_the_package():
    loads = re.compile(r"""(?:script|bash)\("([a-z0-9_]+\.(?:sh|py))\"""")
    named = {name for source in PACKAGE.rglob("*.py") for name in loads.findall(source.read_text())}
    assert named == set(SCRIPTS)
    for name in named:
        assert resources.files("cosmos_tools.remote").joinpath(name).is_file()


def test_scripts_are_package_data():
    pyproject = (PACKAGE.parent / "pyproject.toml").read_text()
    assert '"cosmos_tools.remote" = ["*.sh", "*.py"]' in pyproject  # a non-editable install carries them


@pytest.mark.parametrize("name", [n for n in SCRIPTS if n.endswith(".sh")])
def test_bash_scripts_are_shellcheck_clean(name):
    shellcheck = Path(sys.executable).with_name("shellcheck")
    with resources.as_file(resources.files("cosmos_tools.remote").joinpath(name)) as path:
        done = subprocess.run([str(shellcheck), str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_sent_text_drops_only_comment_lines():
    full = resources.files("cosmos_tools.remote").joinpath("follow.sh").read_text()
    sent = script("follow.sh")
    assert "#" not in "".join(line[:1] for line in sent.splitlines())
    assert [line for line in full.splitlines() if not line.lstrip().startswith("#")] == sent.splitlines()


def test_every_exit_code_in_the_scripts_is_named_once():
    used = set()
    for name in SCRIPTS:
        text = resources.files("cosmos_tools.remote").joinpath(name).read_text()
        code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
        found = {int(n) for n in re.findall(r"\b(?:exit |sys\.exit\()(\d+)", code)}
        assert found <= {int(c) for c in ScriptExit} | {0}, f"{name}: unnamed exit code {found}"
        used |= found
    assert {int(c) for c in ScriptExit} <= used, "a named exit code no script uses"
    assert transport.NO_FOLDER not in {int(c) for c in ScriptExit}


def test_job_paths_are_the_rendered_ones(cfg):
    from cosmos_tools.render import render_run, render_upscale

    for rendered in (render_run("it's $(x)", {}, cfg), render_upscale("it's $(x)", cfg)):
        paths = JobPaths.of(rendered.name, rendered.kind)
        assert (paths.folder, paths.log, paths.exit_code, paths.spec, paths.container) == \
            (rendered.output_dir, rendered.log_path, rendered.exit_code_path, rendered.spec_path, rendered.container)
    assert JobPaths.of("a", UPSCALE).folder == "outputs/a_upscaled"


def _job(root: Path, folder: str, *, code: str | None = None, log: str | None = "started\n", out: bool = False):
    d = root / folder
    d.mkdir(parents=True)
    if log is not None:
        (d / "run.log").write_text(log)
    if code is not None:
        (d / "exit_code").write_text(code + "\n")
    if out:
        (d / "output.mp4").write_bytes(b"video")


def test_status_and_probe_read_the_same_state(local, project, tmp_path, monkeypatch):
    root = Path(local.abspath("."))
    live = "it's $(x)\nlive"
    _job(root, "outputs/good", code="0", out=True)
    _job(root, "outputs/blocked", code="1", log="GUARDRAIL BLOCKED\n")
    _job(root, f"outputs/{live}")
    _job(root, "outputs/lost")
    _job(root, "outputs/good_upscaled", code="143")
    _job(root, "outputs/failed", code="0", log=None)
    (root / "outputs/not a job").mkdir()
    names = tmp_path / "running"
    names.write_text(container_name(live, RUN) + "\nct1-run-other-0123456789\n")
    docker = tmp_path / "docker"
    docker.write_text(f'#!/bin/sh\n[ "$1" = ps ] && exec cat "{names}"\nexit 1\n')
    docker.chmod(0o755)
    monkeypatch.setenv("DOCKER_CMD", str(docker))
    remote = jobs.Remote(load_config(project), transport=local)

    rows = {row["job"]: row for row in jobs.job_rows(remote)}
    folders = [f for f in rows if f.startswith("outputs/")]
    assert sorted(folders) == sorted(["outputs/good", "outputs/blocked", f"outputs/{live}", "outputs/lost",
                                      "outputs/good_upscaled", "outputs/failed"])
    box = remote.probe([*folders, "outputs/not a job"])
    for folder in folders:
        state = box.jobs[folder]
        kind = rows[folder]["kind"]
        state.running = container_name(rows[folder]["run"], kind) in box.running
        assert (state.verdict, state.exit_code) == (rows[folder]["state"], rows[folder]["exit_code"]), folder
    assert {f: rows[f]["state"] for f in folders} == {
        "outputs/good": "ok", "outputs/blocked": "blocked", f"outputs/{live}": "running", "outputs/lost": "lost",
        "outputs/good_upscaled": "stopped", "outputs/failed": "failed"}
    assert rows["outputs/good_upscaled"]["kind"] == UPSCALE
    assert box.jobs["outputs/not a job"].verdict == "absent"
    assert rows["ct1-run-other-0123456789"]["state"] == "running"
    assert box.account.uid.isdigit() and box.account.home


class _FakeTransport:
    def close(self) -> None:
        pass


def _remote(monkeypatch, connects: list) -> jobs.Remote:
    """A Remote over a fake transport; reconnecting appends to ``connects`` (no waiting)."""
    monkeypatch.setattr(jobs, "RECONNECT_DELAYS", (0, 0))
    monkeypatch.setattr(transport, "connect", lambda cfg: connects.append(1) or _FakeTransport())
    return jobs.Remote({"DOCKER_CMD": "docker", "BACKEND": "docker"}, transport=_FakeTransport(), say=lambda msg: None)


def _dropping(times: int):
    calls = []

    def step():
        calls.append(1)
        if len(calls) <= times:
            raise transport.ConnectionLost("cut")
        return "done"
    return step, calls


def test_retrying_reconnects_and_repeats_the_step(monkeypatch):
    connects: list = []
    remote = _remote(monkeypatch, connects)
    step, calls = _dropping(2)
    assert remote.retrying("upload", step) == "done"
    assert len(calls) == 3 and len(connects) == 2 and remote.connections == 3


def test_retrying_gives_up_after_its_budget_with_the_hint(monkeypatch):
    remote = _remote(monkeypatch, [])
    step, calls = _dropping(99)
    with pytest.raises(jobs.RemoteError, match="upload: the connection dropped 3 times.*; attach it"):
        remote.retrying("upload", step, drops=2, then="; attach it")
    assert len(calls) == 3


def test_retrying_says_when_the_box_stays_away(monkeypatch):
    remote = _remote(monkeypatch, [])

    def refuse(cfg):
        raise jobs.RemoteError("refused")

    monkeypatch.setattr(transport, "connect", refuse)
    step, calls = _dropping(1)
    with pytest.raises(jobs.RemoteError, match=r"could not reconnect \(refused\); attach it"):
        remote.retrying("follow", step, then="; attach it")
    assert len(calls) == 1


def test_other_errors_are_not_retried_unless_asked(monkeypatch):
    remote = _remote(monkeypatch, [])
    calls = []

    def broken():
        calls.append(1)
        if len(calls) == 1:
            raise EOFError("paramiko state")
        return True

    with pytest.raises(EOFError):
        remote.retrying("stop", broken)
    calls.clear()
    assert remote.retrying("stop", broken, drops=1, retry_on=Exception) is True
    assert len(calls) == 2


def _hash_gate(*args: str) -> subprocess.CompletedProcess[str]:
    """remote/sync_hash.sh with a stand-in for sync_hash.py that only says it ran."""
    return subprocess.run(["bash", "-c", script("sync_hash.sh"), "sync_hash", RUN_PYTHON, *args[:2],
                           "import sys; print('python', len(sys.argv)); sys.exit(7)", *args[2:]],
                          capture_output=True, text=True)


def test_the_hash_gate_answers_for_new_files_without_python(tmp_path):
    names = [tmp_path / name / "color.mp4" for name in HOSTILE_NAMES]
    done = _hash_gate("600", "fc", *map(str, names))
    assert (done.returncode, done.stdout) == (0, "-\n" * len(names))
    assert all(path.parent.is_dir() for path in names) and not Path("pwned").exists()


@pytest.mark.parametrize("beside", ["color.mp4", ".color.mp4.0badf00d.cosmos-part"])
def test_the_hash_gate_hands_anything_there_to_python(tmp_path, beside):
    (tmp_path / beside).write_bytes(b"x")
    done = _hash_gate("600", "fc", str(tmp_path / "new.mp4"), str(tmp_path / "color.mp4"))
    assert (done.returncode, done.stdout) == (7, "python 5\n")  # STALE OPTIONS and both paths


def test_the_hash_gate_ignores_part_files_when_not_cleaning(tmp_path):
    (tmp_path / ".color.mp4.0badf00d.cosmos-part").write_bytes(b"x")
    assert _hash_gate("0", "-", str(tmp_path / "color.mp4")).stdout == "-\n"


def test_the_hash_gate_leaves_a_folder_it_cannot_make_to_python(tmp_path):
    (tmp_path / "blocker").write_bytes(b"a file where the folder should be")
    assert _hash_gate("600", "f", str(tmp_path / "blocker/shot/color.mp4")).returncode == 7


def _list(folder: Path, path: str | None = None) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "PATH": path} if path else None
    return subprocess.run(["bash", "-c", script("sync_list.sh"), "sync_list", str(folder), RUN_PYTHON,
                           script("sync_list.py")], capture_output=True, env=env)


def _python_list(folder: Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-I", "-S", "-c", script("sync_list.py"), str(folder)], capture_output=True)


def test_the_file_list_from_find_is_the_one_python_gives(tmp_path):
    top = tmp_path / "run"
    for index, name in enumerate(HOSTILE_NAMES):
        (top / "sub" / name).mkdir(parents=True)
        (top / "sub" / name / name).write_bytes(b"x" * index)
    (top / f".out.mp4.0badf00d{'.cosmos-part'}").write_bytes(b"part")
    (top / "to_etc").symlink_to("/etc")
    (top / "to_file").symlink_to(top / "sub" / "plain" / "plain")
    found = _list(top)
    assert found.returncode == 0
    assert sorted(found.stdout.split(b"\0")) == sorted(_python_list(top).stdout.split(b"\0"))
    assert len(found.stdout.split(b"\0")) == len(HOSTILE_NAMES) + 1
    assert _list(tmp_path / "none").returncode == ScriptExit.NOT_A_FOLDER


def test_the_file_list_falls_back_to_python_without_gnu_find(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "find").write_text("#!/bin/sh\necho 'find: unrecognized: -printf' >&2\nexit 1\n")
    (bin_dir / "find").chmod(0o755)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "out.mp4").write_bytes(b"12345")
    found = _list(tmp_path / "run", f"{bin_dir}:{os.environ['PATH']}")
    assert (found.returncode, found.stdout) == (0, b"5 out.mp4\0")
