"""Transfers in pieces over several SFTP sessions of the one connection (cosmos_tools/streams.py)."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest
from test_sync import landed, leftovers, make_file

from cosmos_tools import streams, sync, transport
from cosmos_tools.streams import CHUNK, PIECE_MIN, Piece, split


@pytest.fixture(autouse=True)
def long_link(monkeypatch):
    """Every link counts as long: transfers over the rehearsal host's loopback go in pieces."""
    monkeypatch.setattr("cosmos_tools.ssh.LONG_LINK_SECONDS", 0.0)


@pytest.fixture
def area() -> str:
    """A fresh folder under REMOTE_DIR for one test."""
    return f"inputs/videos/pieces-{uuid.uuid4().hex[:8]}"


def test_split_covers_the_file_in_chunk_aligned_pieces():
    for size in (0, 1, PIECE_MIN - 1, PIECE_MIN * 2 + 5, 40_000_000, 10**9 + 7):
        pieces = split(3, size, 4)
        assert pieces[0].start == 0 and pieces[-1].end == size and len(pieces) <= 4
        assert all(a.end == b.start for a, b in zip(pieces, pieces[1:], strict=False))
        assert all(p.start % CHUNK == 0 and p.key == 3 and p.done == 0 for p in pieces)
    assert len(split(0, 40_000_000, 4)) == 4 and len(split(0, PIECE_MIN, 4)) == 1
    rest = split(0, 40_000_000, 4, start=10 * CHUNK)
    assert rest[0].start == 10 * CHUNK and rest[-1].end == 40_000_000


def test_landed_reads_what_each_piece_holds_from_a_sparse_file(tmp_path):
    part = tmp_path / "part"
    pieces = [Piece(0, i * 10 * CHUNK, (i + 1) * 10 * CHUNK) for i in range(4)]
    with open(part, "wb") as handle:
        handle.truncate(40 * CHUNK)
        handle.seek(pieces[0].start)
        handle.write(b"a" * (3 * CHUNK))  # piece 0: three whole chunks
        handle.seek(pieces[2].start)
        handle.write(b"c" * (10 * CHUNK))  # piece 2: complete
    streams.landed(part, pieces)
    assert [p.done for p in pieces] == [3 * CHUNK, 0, 10 * CHUNK, 0]


def test_a_large_upload_and_download_go_in_pieces_with_one_progress(ssh, rehearsal_host, tmp_path, area, monkeypatch):
    src = make_file(tmp_path / "big.mp4", 3 * PIECE_MIN + 12345)
    folder = rehearsal_host.remote_dir / area
    seen: list[tuple[int, int]] = []
    threads: set[int] = set()

    class Watched(sync.Progress):
        def update(self, n: int) -> None:
            super().update(n)
            threads.add(threading.get_ident())
            parts = [p for p in folder.iterdir() if p.name.endswith(sync.PART_SUFFIX)] if folder.is_dir() else []
            seen.append((self.done, sum(landed(p) for p in parts)))

    monkeypatch.setattr(sync, "Progress", Watched)
    done = sync.upload_files(ssh, [(src, f"{area}/big.mp4")], progress=False)
    assert done.bytes_sent == src.stat().st_size and (folder / "big.mp4").read_bytes() == src.read_bytes()
    assert len(threads) > 1, "several streams fed the one bar"
    assert all(shown <= on_box for shown, on_box in seen if on_box), "the bar counts what the box acknowledged"
    assert seen[-1][0] == src.stat().st_size and leftovers(folder) == []

    seen.clear()
    threads.clear()
    out = tmp_path / "out"
    back = sync.download_tree(ssh, area, out, progress=False)
    assert back.bytes_sent == src.stat().st_size and (out / "big.mp4").read_bytes() == src.read_bytes()
    assert len(threads) > 1 and leftovers(out) == []


def test_a_piece_the_box_refuses_stops_the_others_and_leaves_nothing(ssh, rehearsal_host, tmp_path, area,
                                                                    monkeypatch):
    src = make_file(tmp_path / "big.mp4", 3 * PIECE_MIN)
    original = streams.put_piece

    def failing(sftp, remote, local, piece: Piece, on_acked, stop):
        if piece.start:
            raise OSError(13, "Permission denied")
        original(sftp, remote, local, piece, on_acked, stop)

    monkeypatch.setattr("cosmos_tools.ssh.put_piece", failing)
    try:
        sync.upload_files(ssh, [(src, f"{area}/big.mp4")], progress=False)
    except transport.RemoteError as exc:
        assert "Permission denied" in str(exc) and "uploading" in str(exc)
    else:
        raise AssertionError("the refused piece went unnoticed")
    folder = rehearsal_host.remote_dir / area
    assert not (folder / "big.mp4").exists() and leftovers(folder) == []
    assert not list(Path(ssh.parts_dir).glob("*.json"))


def test_a_short_link_moves_files_in_one_stream(ssh, monkeypatch):
    monkeypatch.setattr("cosmos_tools.ssh.LONG_LINK_SECONDS", 10.0)
    assert ssh.streams() == 1
    monkeypatch.setattr("cosmos_tools.ssh.LONG_LINK_SECONDS", 0.0)
    assert ssh.streams() == streams.STREAMS  # the round trip is timed once per connection


def place_script(*pairs: Path) -> subprocess.Popen:
    """remote/sync_place.py run here, as the box runs it (python3 -c TEXT PART TARGET ...)."""
    from cosmos_tools.remote import script

    return subprocess.Popen([sys.executable, "-c", script("sync_place.py"), *(str(p) for p in pairs)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def expected(path: Path) -> str:
    return f"{path.stat().st_size} {hashlib.sha256(path.read_bytes()).hexdigest()}\n"


def test_the_final_check_answers_when_a_fresh_part_is_complete_before_every_write_is_acknowledged(tmp_path):
    src = make_file(tmp_path / "src", 3 * CHUNK)
    part, target = tmp_path / ".t.part", tmp_path / "t"
    with open(part, "wb") as handle:
        handle.truncate(3 * CHUNK)  # all holes: nothing landed yet
    check = place_script(part, target)
    check.stdin.write(expected(src))
    check.stdin.flush()
    part.write_bytes(src.read_bytes())  # the last pieces land
    assert check.stdout.readline() == "0 ok\n"  # before "acked"
    check.stdin.write("acked\n")
    check.stdin.close()
    assert check.wait(10) == 0 and target.read_bytes() == src.read_bytes() and not part.exists()


def test_the_final_check_renames_nothing_once_the_upload_is_abandoned(tmp_path):
    src = make_file(tmp_path / "src", 3 * CHUNK)
    part, target = tmp_path / ".t.part", tmp_path / "t"
    part.write_bytes(src.read_bytes()[:CHUNK])
    check = place_script(part, target)
    out, _ = check.communicate(expected(src), timeout=10)  # no "acked": the client gave up
    assert (check.returncode, out) == (0, "") and not target.exists() and part.exists()


def test_the_final_check_waits_for_acked_when_a_part_is_full_of_old_bytes(tmp_path):
    src = make_file(tmp_path / "src", 3 * CHUNK)
    part, target = tmp_path / ".t.part", tmp_path / "t"
    part.write_bytes(b"x" * (3 * CHUNK))  # a resumed part: full, but new bytes are still coming
    check = place_script(part, target)
    out, _ = check.communicate(expected(src) + "acked\n", timeout=10)
    assert out.startswith(f"0 {3 * CHUNK} ") and not target.exists()  # what is there, checked after "acked"
    part.write_bytes(src.read_bytes())
    again = place_script(part, target)
    assert again.communicate(expected(src) + "acked\n", timeout=10)[0] == "0 ok\n"
    third = place_script(part, target)  # an earlier check placed it already: the target holds those bytes
    assert third.communicate(expected(src) + "acked\n", timeout=10)[0] == "0 ok\n"
