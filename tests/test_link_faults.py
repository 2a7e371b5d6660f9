"""A silent link (TCP open, nothing forwarded) is noticed within SSH_ALIVE_TIMEOUT in every phase, through a fault
relay between the client and the rehearsal sshd; cut transfers resume; progress counts what the box has."""

from __future__ import annotations

import threading
import time
import uuid

import pytest
from fault_proxy import FaultRelay
from test_cycle import add_shot, endless_jobs, script, tool, write_prompt  # noqa: F401 (fixtures)
from test_sync import landed, leftovers, make_file, wait_for_part

from cosmos_tools import jobs, sync, transport
from cosmos_tools.config import load_config
from cosmos_tools.errors import RemoteError
from cosmos_tools.remote.paths import RUN

ALIVE = 2.0  # SSH_ALIVE_TIMEOUT in these tests
BOUND = 60.0  # a phase that has not noticed the silence by then hangs: the test fails instead of waiting


@pytest.fixture
def relay(project, rehearsal_host, monkeypatch, tmp_path):
    """A fault relay in front of the rehearsal sshd; the project's config points at it."""
    proxy = FaultRelay(rehearsal_host.port)
    line = rehearsal_host.known_hosts.read_text().split(" ", 1)[1]
    known = tmp_path / "relay_known_hosts"
    known.write_text(f"[127.0.0.1]:{proxy.port} {line}")
    monkeypatch.setenv("REMOTE_PORT", str(proxy.port))
    monkeypatch.setenv("KNOWN_HOSTS", str(known))
    monkeypatch.setenv("SSH_ALIVE_TIMEOUT", str(ALIVE))
    monkeypatch.setenv("SSH_TIMEOUT", str(ALIVE))
    yield proxy
    proxy.close()


@pytest.fixture
def area() -> str:
    """A fresh folder under REMOTE_DIR for one test."""
    return f"inputs/videos/link-{uuid.uuid4().hex[:8]}"


def finishes(call) -> tuple[BaseException | None, float]:
    """Run ``call`` in a thread; (what it raised, seconds it took). Fails the test if it is still blocked at BOUND."""
    raised: list[BaseException] = []

    def run() -> None:
        try:
            call()
        except BaseException as exc:  # handed to the test
            raised.append(exc)

    begun = time.monotonic()
    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(BOUND)
    assert not worker.is_alive(), f"still blocked after {BOUND:g} s: the silent link went unnoticed"
    took = time.monotonic() - begun
    print(f"noticed after {took:.1f} s")  # the figure for the docs (pytest -s)
    return (raised[0] if raised else None), took


def test_a_quiet_command_on_a_live_link_is_not_a_silent_link(relay):
    with transport.connect(load_config()) as t:
        assert t.run(["sleep", str(ALIVE * 2)]).rc == 0  # the keepalive answers keep the link heard


def test_blackhole_during_the_handshake_is_one_line(relay):
    relay.blackhole()
    raised, _ = finishes(lambda: transport.connect(load_config()))
    assert isinstance(raised, RemoteError) and "did not complete the SSH handshake" in str(raised)


def test_blackhole_during_a_command(relay):
    with transport.connect(load_config()) as t:
        relay.blackhole()
        raised, _ = finishes(lambda: t.run(["true"]))
    assert isinstance(raised, transport.ConnectionLost)
    assert f"silent for 2 s (no answer to keepalives; SSH_ALIVE_TIMEOUT {ALIVE:g} s) while running true" in str(raised)


def test_blackhole_while_streaming_output(relay):
    started = threading.Event()
    with transport.connect(load_config()) as t:
        threading.Thread(target=lambda: started.wait(20) and relay.blackhole(), daemon=True).start()
        raised, _ = finishes(lambda: t.stream(["sh", "-c", "echo go; sleep 600"], on_output=lambda b: started.set()))
    assert isinstance(raised, transport.ConnectionLost) and "silent for" in str(raised)


@pytest.fixture(params=["one stream", "pieces"])
def streams(request, monkeypatch) -> str:
    """Run a transfer test in one stream and in pieces over several streams (as on a long link)."""
    monkeypatch.setattr("cosmos_tools.ssh.LONG_LINK_SECONDS", 10.0 if request.param == "one stream" else 0.0)
    return request.param


@pytest.mark.usefixtures("streams")
def test_blackhole_during_an_upload_then_the_next_one_resumes(relay, rehearsal_host, tmp_path, area):
    src = make_file(tmp_path / "big.mp4", 64_000_000)
    rel, folder = f"{area}/big.mp4", rehearsal_host.remote_dir / area
    with transport.connect(load_config()) as t:
        threading.Thread(target=lambda: wait_for_part(folder, 32_000_000) and relay.blackhole(), daemon=True).start()
        raised, _ = finishes(lambda: sync.upload_files(t, [(src, rel)], progress=False))
    assert isinstance(raised, transport.ConnectionLost) and "while uploading" in str(raised)
    (part,) = leftovers(folder)
    kept = landed(folder / part)  # the pieces' beginnings (the part is sparse: each piece is written at its offset)
    relay.restore()
    since = relay.mark()
    with transport.connect(load_config()) as t:
        done = sync.upload_files(t, [(src, rel)], progress=False)
    resent = relay.forwarded("upstream", since)
    print(f"upload: {kept} bytes kept, {resent} bytes sent again for a {src.stat().st_size}-byte file")
    assert done.sent == [rel] and done.bytes_sent == src.stat().st_size - kept
    assert resent < src.stat().st_size - kept + 2_000_000  # the rest plus the protocol, not the whole file
    assert (folder / "big.mp4").read_bytes() == src.read_bytes() and leftovers(folder) == []


@pytest.mark.usefixtures("streams")
def test_blackhole_during_a_download_then_the_next_one_resumes(relay, rehearsal_host, tmp_path, area):
    size = 128_000_000  # more than the trigger (32 MB) plus six streams' windows already in flight (48 MB)
    run = rehearsal_host.remote_dir / area / "run"
    make_file(run / "output.mp4", size)
    out = tmp_path / "out"
    with transport.connect(load_config()) as t:
        threading.Thread(target=lambda: wait_for_part(out, 32_000_000) and relay.blackhole(), daemon=True).start()
        raised, _ = finishes(lambda: sync.download_tree(t, f"{area}/run", out, progress=False))
    assert isinstance(raised, transport.ConnectionLost) and "while downloading" in str(raised)
    (part,) = leftovers(out)
    kept = landed(out / part)
    relay.restore()
    since = relay.mark()
    with transport.connect(load_config()) as t:
        done = sync.download_tree(t, f"{area}/run", out, progress=False)
    resent = relay.forwarded("downstream", since)
    print(f"download: {kept} bytes kept, {resent} bytes sent again for a {size}-byte file")
    assert done.bytes_sent == size - kept and resent < size - kept + 2_000_000
    assert (out / "output.mp4").read_bytes() == (run / "output.mp4").read_bytes() and leftovers(out) == []


@pytest.mark.usefixtures("endless_jobs")
def test_blackhole_while_following_a_job_reconnects_and_goes_on(relay, project, monkeypatch):
    shot = add_shot(project, "silent_shot")
    prompt = write_prompt(project, "silent", shot)
    assert script(project, "upload_prompt.sh", prompt, "--quiet").returncode == 0
    assert script(project, "run_inference_remote.sh", prompt, "--detach").returncode == 0
    monkeypatch.setattr(jobs, "RECONNECT_DELAYS", (1, 1, 1, 1, 1))
    said: list[str] = []
    remote = jobs.Remote(load_config(), say=said.append)

    def go_silent_then_come_back() -> None:
        relay.blackhole()
        time.sleep(ALIVE + 1)
        relay.restore()
        deadline = time.monotonic() + BOUND
        while remote.connections < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        tool(project, "kill", "silent")  # following again on the new connection: the job's end ends the follow

    first = threading.Event()

    def echo(_data: bytes) -> None:
        if not first.is_set():
            first.set()
            threading.Thread(target=go_silent_then_come_back, daemon=True).start()

    runner = jobs.Runner(remote, echo=echo, say=said.append)
    try:
        raised, _ = finishes(lambda: runner.follow(jobs.plain_job("silent", RUN), offset=0))
    finally:
        remote.close()
    assert raised is None, raised
    assert remote.connections >= 2 and "connection lost; reconnecting in 1 s" in said


def test_upload_progress_counts_what_the_box_has_on_a_slow_link(relay, rehearsal_host, tmp_path, area, monkeypatch):
    relay.delay = 0.1  # 200 ms round trip: SSH hands a whole window to the socket long before the box has it
    files = [(make_file(tmp_path / f"f{i}.mp4", 3_000_000, i), f"{area}/f{i}.mp4") for i in range(2)]
    folder = rehearsal_host.remote_dir / area
    seen: list[tuple[int, int]] = []

    class Watched(sync.Progress):
        def update(self, n: int) -> None:
            super().update(n)
            on_box = sum(p.stat().st_size for p in folder.iterdir()) if folder.is_dir() else 0
            seen.append((self.done, on_box))

    monkeypatch.setattr(sync, "Progress", Watched)
    with transport.connect(load_config()) as t:
        sync.upload_files(t, files, progress=False)
    assert all(done <= on_box for done, on_box in seen), seen
    assert len(seen) > len(files), "the bar moves while a file travels, not once per file"
    assert seen[-1][0] == 6_000_000
