"""Verified, skip-if-same transfers against the rehearsal host's real sshd (and the local transport)."""

from __future__ import annotations

import contextlib
import os
import pty
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from net_faults import cut_connections

from cosmos_tools import sync, transport
from cosmos_tools.errors import ExitStatus, LocalError, RemoteError, UserError
from cosmos_tools.streams import CHUNK, STREAMS

HOSTILE_NAMES = ["shot 1", "it's", 'say "hi"', "$(touch pwned)", "`touch pwned`", "new\nline", "ünïcødé ✓", "-rf"]


def make_file(path: Path, size: int, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    block = bytes((seed + i) % 251 for i in range(65536))
    with open(path, "wb") as handle:
        for offset in range(0, size, len(block)):
            handle.write(block[: size - offset])
    return path


@pytest.fixture
def area():
    """A fresh folder under REMOTE_DIR for one test (the rehearsal host is shared by the session)."""
    return f"inputs/videos/t-{uuid.uuid4().hex[:8]}"


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.name.endswith(sync.PART_SUFFIX))


@pytest.mark.parametrize("kind", ["ssh", "local"])
def test_upload_then_unchanged_reupload_sends_nothing(kind, request, tmp_path, area, capfd):
    t = request.getfixturevalue(kind)
    files = [(make_file(tmp_path / f"f{i}.mp4", size, i), f"{area}/f{i}.mp4")
             for i, size in enumerate([0, 1, 300_000, 2_000_000])]
    first = sync.upload_files(t, files, progress=False)
    assert first.sent == [rel for _, rel in files] and first.bytes_sent == 2_300_001
    for path, rel in files:
        assert Path(t.abspath(rel)).read_bytes() == path.read_bytes()
    second = sync.upload_files(t, files, progress=False)
    assert (second.sent, second.bytes_sent, second.skipped) == ([], 0, [rel for _, rel in files])
    assert leftovers(Path(t.abspath(area))) == []
    assert capfd.readouterr().err == ""  # progress=False: nothing at all


def test_the_box_hashes_an_arriving_upload_at_low_priority(ssh, tmp_path, area):
    """The follower (remote/sync_follow.py) runs under ``nice``: found by its part file's name while the upload
    runs, its niceness read from /proc (the rehearsal box is this machine)."""
    src = make_file(tmp_path / "big.mp4", 60_000_000)
    seen: list[int] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set() and not seen:
            for proc in Path("/proc").glob("[0-9]*"):
                with contextlib.suppress(OSError):
                    argv = (proc / "cmdline").read_bytes().split(b"\0")
                    if any(arg.endswith(sync.PART_SUFFIX.encode()) for arg in argv) and b"-c" in argv:
                        seen.append(int((proc / "stat").read_text().rsplit(")", 1)[1].split()[16]))
            time.sleep(0.005)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        sync.upload_files(ssh, [(src, f"{area}/big.mp4")], progress=False)
    finally:
        done.set()
        watcher.join()
    assert seen and seen[0] == sync.FOLLOW_NICENESS


def test_changed_or_damaged_remote_file_is_sent_again(ssh, tmp_path, area):
    src = make_file(tmp_path / "color.mp4", 500_000)
    rel = f"{area}/color.mp4"
    sync.upload_files(ssh, [(src, rel)], progress=False)
    remote = Path(ssh.abspath(rel))
    damaged = bytearray(remote.read_bytes())
    damaged[1234] ^= 0xFF  # same size, one byte different
    remote.write_bytes(bytes(damaged))
    again = sync.upload_files(ssh, [(src, rel)], progress=False)
    assert again.sent == [rel]
    assert remote.read_bytes() == src.read_bytes()
    remote.write_bytes(b"short")
    assert sync.upload_files(ssh, [(src, rel)], progress=False).sent == [rel]
    assert remote.read_bytes() == src.read_bytes()


@pytest.mark.parametrize("kind", ["ssh", "local"])
def test_hostile_names_round_trip(kind, request, tmp_path, area):
    t = request.getfixturevalue(kind)
    shot = f"{area}/{HOSTILE_NAMES[3]} {HOSTILE_NAMES[5]}"
    files = [(make_file(tmp_path / "src" / name, 1000 + i, i), f"{shot}/{name}")
             for i, name in enumerate(HOSTILE_NAMES)]
    assert len(sync.upload_files(t, files, progress=False).sent) == len(files)
    for path, rel in files:
        assert Path(t.abspath(rel)).read_bytes() == path.read_bytes()
    out = tmp_path / "back"
    report = sync.download_tree(t, shot, out, progress=False)
    assert sorted(report.sent) == sorted(HOSTILE_NAMES)
    for path, _ in files:
        assert (out / path.name).read_bytes() == path.read_bytes()
    assert not list(Path(t.remote_dir).rglob("pwned")) and not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("kind", ["ssh", "local"])
def test_download_skips_identical_and_verifies(kind, request, tmp_path, area):
    t = request.getfixturevalue(kind)
    run = Path(t.abspath(f"{area}/run"))
    make_file(run / "output.mp4", 700_000)
    make_file(run / "sub dir" / "output.txt", 10)
    (run / ".output.mp4.cosmos-part").write_bytes(b"half")  # an upload in progress on the box: not fetched
    out = tmp_path / "outputs" / "run"
    first = sync.download_tree(t, f"{area}/run", out, progress=False)
    assert sorted(first.sent) == ["output.mp4", "sub dir/output.txt"] and first.bytes_sent == 700_010
    second = sync.download_tree(t, f"{area}/run", out, progress=False)
    assert (second.sent, sorted(second.skipped)) == ([], ["output.mp4", "sub dir/output.txt"])
    (out / "output.mp4").write_bytes(b"stale local copy")
    third = sync.download_tree(t, f"{area}/run", out, progress=False)
    assert third.sent == ["output.mp4"]
    assert (out / "output.mp4").read_bytes() == (run / "output.mp4").read_bytes()
    assert leftovers(out) == []


@pytest.mark.parametrize("kind", ["ssh", "local"])
def test_missing_remote_folder(kind, request, tmp_path, area):
    t = request.getfixturevalue(kind)
    with pytest.raises(RemoteError, match=r"does not exist on .*nothing to download"):
        sync.download_tree(t, f"{area}/nope", tmp_path / "out", progress=False)
    empty = sync.download_tree(t, f"{area}/nope", tmp_path / "out", progress=False, missing_ok=True)
    assert (empty.sent, empty.skipped) == ([], [])
    assert not (tmp_path / "out").exists()


def test_missing_local_file_is_one_line(ssh, tmp_path, area):
    with pytest.raises(UserError, match=r"file to upload not found"):
        sync.upload_files(ssh, [(tmp_path / "nope.mp4", f"{area}/nope.mp4")], progress=False)


def test_relative_paths_only(ssh, tmp_path):
    src = make_file(tmp_path / "a", 1)
    for bad in ("/etc/passwd", "../escape", "a//b", ""):
        with pytest.raises(ValueError):
            sync.upload_files(ssh, [(src, bad)], progress=False)


def landed(path: Path) -> int:
    """Bytes written into a (possibly sparse) file: the sum of its data extents. A large upload writes its pieces
    at their offsets, so the part's size says how far the furthest piece got, not how much arrived."""
    total, fd = 0, os.open(path, os.O_RDONLY)
    try:
        at, end = 0, os.fstat(fd).st_size
        while at < end:
            try:
                data = os.lseek(fd, at, os.SEEK_DATA)
            except OSError:  # no data after ``at``
                break
            at = os.lseek(fd, data, os.SEEK_HOLE)
            total += at - data
    finally:
        os.close(fd)
    return total


def wait_for_part(folder: Path, at_least: int) -> bool:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        parts = [p for p in folder.glob(f"*{sync.PART_SUFFIX}") if landed(p) >= at_least] \
            if folder.is_dir() else []
        if parts:
            return True
        time.sleep(0.005)
    return False


def test_connection_cut_mid_upload_leaves_no_real_file_and_a_rerun_completes(cfg, rehearsal_host, tmp_path, area):
    src = make_file(tmp_path / "big.mp4", 150_000_000)
    rel = f"{area}/big.mp4"
    folder = rehearsal_host.remote_dir / area
    cutter = threading.Thread(target=lambda: wait_for_part(folder, 1_000_000) and cut_connections(rehearsal_host))
    with transport.connect(cfg) as t:
        cutter.start()
        with pytest.raises(transport.ConnectionLost, match=r"lost while uploading"):
            sync.upload_files(t, [(src, rel)], progress=False)
        cutter.join()
    assert not (folder / "big.mp4").exists()
    (left,) = leftovers(folder)
    assert re.fullmatch(rf"\.big\.mp4\.[0-9a-f]{{8}}{re.escape(sync.PART_SUFFIX)}", left)
    with transport.connect(cfg) as t:
        done = sync.upload_files(t, [(src, rel)], progress=False)
    assert done.sent == [rel]
    assert (folder / "big.mp4").stat().st_size == src.stat().st_size
    assert leftovers(folder) == [], "this process's abandoned part file is removed on the next upload"


def test_stale_part_files_are_cleaned_and_fresh_ones_of_other_clients_kept(cfg, rehearsal_host, tmp_path, area):
    src = make_file(tmp_path / "x.mp4", 1000)
    folder = rehearsal_host.remote_dir / area
    folder.mkdir(parents=True, exist_ok=True)
    stale, fresh = folder / f".x.mp4.0badf00d{sync.PART_SUFFIX}", folder / f".x.mp4.0c0ffee0{sync.PART_SUFFIX}"
    for part in (stale, fresh):
        part.write_bytes(b"half")
    old = time.time() - sync.STALE_PART_SECONDS - 5
    os.utime(stale, (old, old))
    with transport.connect(cfg) as t:
        assert sync.upload_files(t, [(src, f"{area}/x.mp4")], progress=False).sent == [f"{area}/x.mp4"]
    assert leftovers(folder) == [fresh.name], "only the part nobody has written to for a long time goes"


def test_two_clients_sending_the_same_file_at_once_both_succeed(cfg, rehearsal_host, tmp_path, area):
    src = make_file(tmp_path / "same.mp4", 40_000_000)
    rel = f"{area}/same.mp4"
    errors = []

    def send() -> None:
        try:
            with transport.connect(cfg) as t:
                sync.upload_files(t, [(src, rel)], progress=False)
        except Exception as exc:  # collected: the test fails below with it
            errors.append(exc)

    senders = [threading.Thread(target=send) for _ in range(2)]
    for sender in senders:
        sender.start()
    for sender in senders:
        sender.join()
    assert errors == []
    with transport.connect(cfg) as t:
        assert sync.upload_files(t, [(src, rel)], progress=False).skipped == [rel]
    assert leftovers(rehearsal_host.remote_dir / area) == []


UPLOADER = """
import sys
from pathlib import Path
from cosmos_tools import sync, transport
from cosmos_tools.config import load_config
with transport.connect(load_config(Path(sys.argv[1]))) as t:
    sync.upload_files(t, [(Path(sys.argv[2]), sys.argv[3])], progress=False)
"""


def kill_uploader_midway(root: Path, src: Path, rel: str, folder: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", UPLOADER, str(root), str(src), rel])
    try:
        assert wait_for_part(folder, 1_000_000)
    finally:
        proc.kill()
        proc.wait()


def test_killed_uploader_of_another_project_leaves_no_real_file(project, cfg, rehearsal_host, tmp_path, area):
    src = make_file(tmp_path / "big.mp4", 150_000_000)
    rel = f"{area}/big.mp4"
    folder = rehearsal_host.remote_dir / area
    other = tmp_path / "other project"  # another client: its part is not recorded in this project
    (other / "inputs").mkdir(parents=True)
    kill_uploader_midway(other, src, rel, folder)
    assert not (folder / "big.mp4").exists()
    (left,) = leftovers(folder)
    with transport.connect(cfg) as t:
        assert sync.upload_files(t, [(src, rel)], progress=False).sent == [rel]
    assert leftovers(folder) == [left], "another client's fresh part file is left until it goes stale"


def test_killed_uploader_of_this_project_is_resumed_and_leaves_nothing(project, cfg, rehearsal_host, tmp_path,
                                                                       area):
    src = make_file(tmp_path / "big.mp4", 64_000_000)
    rel = f"{area}/big.mp4"
    folder = rehearsal_host.remote_dir / area
    kill_uploader_midway(project, src, rel, folder)
    (left,) = leftovers(folder)
    kept = landed(folder / left)  # a killed process may leave the last request of each piece half-written
    with transport.connect(cfg) as t:
        done = sync.upload_files(t, [(src, rel)], progress=False)
    assert done.sent == [rel] and done.bytes_sent <= src.stat().st_size - kept + STREAMS * CHUNK
    assert (folder / "big.mp4").read_bytes() == src.read_bytes()
    assert leftovers(folder) == [] and list((project / transport.PARTS_RECORD).iterdir()) == []


def test_connection_cut_mid_download_keeps_the_old_local_file_and_the_next_one_resumes(cfg, rehearsal_host, tmp_path,
                                                                                       area):
    run = rehearsal_host.remote_dir / area / "run"
    make_file(run / "a small.txt", 1000)
    make_file(run / "output.mp4", 150_000_000)
    out = tmp_path / "out"
    (out).mkdir()
    (out / "output.mp4").write_bytes(b"previous result")
    cutter = threading.Thread(target=lambda: wait_for_part(out, 1_000_000) and cut_connections(rehearsal_host))
    with transport.connect(cfg) as t:
        cutter.start()
        with pytest.raises(transport.ConnectionLost, match=r"lost while downloading"):
            sync.download_tree(t, f"{area}/run", out, progress=False)
        cutter.join()
    assert (out / "output.mp4").read_bytes() == b"previous result"
    assert not (out / "a small.txt").exists()
    (kept,) = leftovers(out)  # the small file's finished part is gone; the large one's stays to go on from
    assert kept.startswith(".output.mp4.")
    arrived = landed(out / kept)  # the part is sparse: its pieces are written at their offsets
    with transport.connect(cfg) as t:
        done = sync.download_tree(t, f"{area}/run", out, progress=False)
    assert done.bytes_sent == 150_000_000 + 1000 - arrived
    assert (out / "output.mp4").read_bytes() == (run / "output.mp4").read_bytes()
    assert leftovers(out) == []


def test_progress_bar_on_a_terminal_shows_bytes_and_rate(project, tmp_path, area):
    src = make_file(tmp_path / "a.mp4", 2_000_000)
    controller, terminal = pty.openpty()
    script = UPLOADER.replace("progress=False", "progress=True")
    with subprocess.Popen([sys.executable, "-c", script, str(project), str(src), f"{area}/a.mp4"],
                          stderr=terminal) as proc:
        os.close(terminal)
        shown = b""
        with contextlib.suppress(OSError):  # EIO once the child has gone
            while chunk := os.read(controller, 4096):
                shown += chunk
    os.close(controller)
    assert proc.returncode == 0, shown
    assert b"upload [" in shown and b"2.0MB/2.0MB" in shown and b"B/s" in shown


def test_file_still_being_written_on_the_box_is_not_placed(ssh, rehearsal_host, tmp_path, area):
    growing = make_file(rehearsal_host.remote_dir / area / "run" / "output.mp4", 3_000_000)
    stop = threading.Event()

    def keep_writing() -> None:
        with open(growing, "ab") as handle:
            while not stop.is_set():
                handle.write(b"x" * 4096)
                handle.flush()
                time.sleep(0.0005)

    writer = threading.Thread(target=keep_writing)
    writer.start()
    try:
        deadline = time.monotonic() + 30  # the writer is busy before the download starts, even on a loaded machine
        while growing.stat().st_size < 3_500_000 and time.monotonic() < deadline:
            time.sleep(0.01)
        with pytest.raises(RemoteError, match=r"download of output.mp4 does not match the box's copy .*still being"):
            sync.download_tree(ssh, f"{area}/run", tmp_path / "out", progress=False)
    finally:
        stop.set()
        writer.join()
    assert not (tmp_path / "out" / "output.mp4").exists()
    assert leftovers(tmp_path / "out") == []


def test_local_folder_in_the_way_is_one_line(ssh, rehearsal_host, tmp_path, area):
    make_file(rehearsal_host.remote_dir / area / "run" / "output.mp4", 10)
    (tmp_path / "out" / "output.mp4").mkdir(parents=True)
    with pytest.raises(UserError, match=r"output.mp4: cannot replace it .*move it away"):
        sync.download_tree(ssh, f"{area}/run", tmp_path / "out", progress=False)
    assert leftovers(tmp_path / "out") == []


def test_makedirs_accepts_a_folder_another_client_made_meanwhile(ssh, rehearsal_host, area):
    """Two clients creating one folder at once: the one that comes second must not fail."""
    folder = rehearsal_host.remote_dir / area / "made by the other client" / "$(touch pwned)"
    folder.mkdir(parents=True)  # the other client won the race
    ssh.makedirs(str(folder))
    ssh.makedirs(str(folder / "and one more"))
    assert (folder / "and one more").is_dir() and not (rehearsal_host.remote_dir / "pwned").exists()


INTERRUPTIBLE = UPLOADER.replace("with transport.connect(", "with transport.paramiko_safe_sigint(), transport.connect(")


def test_ctrl_c_mid_upload_leaves_no_part_file(project, cfg, rehearsal_host, tmp_path, area):
    src = make_file(tmp_path / "big.mp4", 150_000_000)
    rel = f"{area}/big.mp4"
    folder = rehearsal_host.remote_dir / area
    proc = subprocess.Popen([sys.executable, "-c", INTERRUPTIBLE, str(project), str(src), rel],
                            stderr=subprocess.PIPE)
    try:
        assert wait_for_part(folder, 1_000_000)
    finally:
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    assert b"KeyboardInterrupt" in stderr, (proc.returncode, stderr[-2000:])
    assert leftovers(folder) == [], "the part of an interrupted upload is removed at once"
    with transport.connect(cfg) as t:
        assert sync.upload_files(t, [(src, rel)], progress=False).sent == [rel]
    assert leftovers(folder) == [] and list((project / transport.PARTS_RECORD).iterdir()) == []


@contextlib.contextmanager
def tiny_disk(folder: Path, size: str = "2m"):
    """A small tmpfs mounted on ``folder`` (needs root), unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], check=True)
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=True)


def test_full_disk_on_the_box_says_so(ssh, project, rehearsal_host, tmp_path, area):
    src = make_file(tmp_path / "big.mp4", 3_000_000)
    with tiny_disk(rehearsal_host.remote_dir / area) as folder:
        box = re.escape(ssh.remote_dir)
        with pytest.raises(RemoteError, match=rf"^no space left on the GPU box \(REMOTE_DIR {box}: "
                                              rf"{re.escape(str(folder))} has \d+ bytes free, {area}/big.mp4 needs "
                                              "3000000\\); free space there"):
            sync.upload_files(ssh, [(src, f"{area}/big.mp4")], progress=False)
        assert leftovers(folder) == [] and list((project / transport.PARTS_RECORD).iterdir()) == []


def test_full_local_disk_during_a_download_names_the_local_path(cfg, rehearsal_host, tmp_path, area):
    make_file(rehearsal_host.remote_dir / area / "output.mp4", 3_000_000)
    with tiny_disk(tmp_path / "out") as out, transport.connect(cfg) as t:
        with pytest.raises(LocalError, match=rf"^cannot write {re.escape(str(out))}/\.output\.mp4\.[0-9a-f]{{8}}"
                                             r"\.cosmos-part: No space left on device \(on this machine\)") as caught:
            sync.download_tree(t, area, out, progress=False)
        assert caught.value.exit_code == ExitStatus.LOCAL == 4
        assert leftovers(out) == [] and not (out / "output.mp4").exists()
