"""The transport against the rehearsal host's real sshd: host keys, login failures, quoting, streaming, trust."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from net_faults import cut_connections

from cosmos_tools import transport
from cosmos_tools.cli import cli
from cosmos_tools.config import load_config
from cosmos_tools.errors import RemoteError, UserError
from cosmos_tools.ssh import interactive_argv

REPO = Path(__file__).resolve().parents[1]
HOSTILE = ["a b", "it's", 'say "hi"', "$(touch pwned)", "`touch pwned`", "semi;colon", "new\nline", "ünïcødé ✓",
           "*", "-n", "", "back\\slash", "$HOME", "|pipe&"]


def fingerprint_of(pub: Path) -> str:
    """ssh-keygen's fingerprint of a public key: 'SHA256:...'."""
    return subprocess.run(["ssh-keygen", "-l", "-f", str(pub)], capture_output=True, text=True,
                          check=True).stdout.split()[1]


def test_run_passes_hostile_argv_as_data(ssh, rehearsal_host):
    done = ssh.run(["printf", "%s\\0", *HOSTILE])
    assert done.stdout.decode().split("\0")[:-1] == HOSTILE
    assert not (rehearsal_host.remote_dir / "pwned").exists()


def test_run_cwd_is_relative_to_remote_dir_and_quoted(ssh, rehearsal_host):
    folder = "outputs/cwd $(touch pwned) 'x'\n`y`"
    ssh.makedirs(ssh.abspath(folder))
    assert ssh.run(["pwd"], cwd=folder).stdout.decode() == f"{rehearsal_host.remote_dir}/{folder}\n"
    assert ssh.run(["pwd"]).stdout.decode() == f"{rehearsal_host.remote_dir}\n"
    assert not (rehearsal_host.remote_dir / "pwned").exists()


def test_run_feeds_input_and_reports_failures(ssh):
    assert ssh.run(["cat"], input=b"\x00binary\xff").stdout == b"\x00binary\xff"
    done = ssh.run(["sh", "-c", "echo out; echo first >&2; echo boom >&2; exit 4"], check=False)
    assert (done.rc, done.stdout, done.stderr) == (4, b"out\n", b"first\nboom\n")
    with pytest.raises(RemoteError, match=r"sh failed on .*\(exit 4\): first \| boom"):
        ssh.run(["sh", "-c", "echo first >&2; echo boom >&2; exit 4"])


def test_stream_hands_over_output_as_it_arrives(ssh):
    chunks: list[tuple[float, bytes]] = []
    script = "echo one; echo two >&2; sleep 1; echo three; exit 5"
    rc = ssh.stream(["sh", "-c", script], on_output=lambda b: chunks.append((time.monotonic(), b)))
    assert rc == 5
    assert b"".join(b for _, b in chunks).replace(b"two\n", b"") == b"one\nthree\n"
    first = next(t for t, b in chunks if b"one" in b)
    last = next(t for t, b in chunks if b"three" in b)
    assert first < last  # 'one' was delivered before 'three' existed


def test_stream_raises_connection_lost_when_cut(ssh, rehearsal_host):
    started = threading.Event()
    threading.Thread(target=lambda: started.wait(20) and cut_connections(rehearsal_host), daemon=True).start()
    with pytest.raises(transport.ConnectionLost, match="lost while running sh"):
        ssh.stream(["sh", "-c", "echo ready; sleep 30"], on_output=lambda b: started.set())


def test_one_connection_serves_many_commands(cfg):
    before = transport.CONNECTIONS_OPENED
    with transport.connect(cfg) as t:
        for _ in range(5):
            t.run(["true"])
        t.stream(["true"], on_output=lambda b: None)
        t.makedirs(t.abspath("outputs/one-connection"))
    assert transport.CONNECTIONS_OPENED == before + 1


def test_describe_and_fast_cipher(ssh, rehearsal_host):
    assert ssh.describe() == f"{rehearsal_host.user}@127.0.0.1:{rehearsal_host.port}"
    assert ssh._transport.remote_cipher == "aes128-gcm@openssh.com"


# --- host keys -----------------------------------------------------------------------------------------------


def test_unknown_host_key_is_refused_with_the_fix(project, rehearsal_host, monkeypatch):
    monkeypatch.setenv("KNOWN_HOSTS", str(project / "empty_known_hosts"))
    with pytest.raises(RemoteError) as caught:
        transport.connect(load_config(project))
    expected = fingerprint_of(rehearsal_host.dir / "ssh" / "host_key.pub")
    assert str(caught.value) == (f"host key of [127.0.0.1]:{rehearsal_host.port} is not known (ED25519 {expected}); "
                                 "if this is your GPU box, run: cosmos-tools trust")


def other_key_line(tmp_path: Path, name: str) -> str:
    key = tmp_path / "other_host_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    return f"{name} {' '.join(key.with_suffix('.pub').read_text().split()[:2])}\n"


def test_changed_host_key_is_refused_loudly(project, rehearsal_host, monkeypatch, tmp_path):
    name = f"[127.0.0.1]:{rehearsal_host.port}"
    known = project / "changed_known_hosts"
    known.write_text(other_key_line(tmp_path, name))
    monkeypatch.setenv("KNOWN_HOSTS", str(known))
    with pytest.raises(RemoteError, match=rf"HOST KEY OF \[127.0.0.1\]:{rehearsal_host.port} HAS CHANGED .*"
                                          rf"remove the old line from {known}.*cosmos-tools trust --replace"):
        transport.connect(load_config(project))


def test_changed_key_in_the_users_file_names_ssh_keygen(project, rehearsal_host, isolated_home, tmp_path,
                                                        monkeypatch):
    name = f"[127.0.0.1]:{rehearsal_host.port}"
    monkeypatch.setenv("KNOWN_HOSTS", str(project / "nothing_here"))  # a match in any file would be enough
    (isolated_home / ".ssh").mkdir()
    (isolated_home / ".ssh" / "known_hosts").write_text(other_key_line(tmp_path, name))
    with pytest.raises(RemoteError, match=r"HAS CHANGED .*ssh-keygen -R"):
        transport.connect(load_config(project))


def test_key_known_only_to_the_users_file_is_accepted(project, rehearsal_host, isolated_home, monkeypatch):
    (isolated_home / ".ssh").mkdir()
    (isolated_home / ".ssh" / "known_hosts").write_text(rehearsal_host.known_hosts.read_text())
    monkeypatch.setenv("KNOWN_HOSTS", str(project / "nothing_here"))
    with transport.connect(load_config(project)) as t:
        assert t.run(["echo", "ok"]).stdout == b"ok\n"


# --- login failures: one line each ---------------------------------------------------------------------------


def test_wrong_key_is_refused_naming_user_host_and_key(project, rehearsal_host, monkeypatch, tmp_path):
    key = tmp_path / "stranger"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    monkeypatch.setenv("SSH_KEY", str(key))
    with pytest.raises(RemoteError, match=rf"{rehearsal_host.user}@127.0.0.1:{rehearsal_host.port} refused our key "
                                          rf"\({key}\)"):
        transport.connect(load_config(project))


def test_passphrase_key_asks_for_the_agent(project, monkeypatch, tmp_path):
    key = tmp_path / "locked"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "secret", "-f", str(key)], check=True)
    monkeypatch.setenv("SSH_KEY", str(key))
    with pytest.raises(UserError, match=r"protected by a passphrase: load it into ssh-agent"):
        transport.connect(load_config(project))


def test_missing_key_file(project, monkeypatch):
    monkeypatch.setenv("SSH_KEY", str(project / "no such key"))
    with pytest.raises(UserError, match=r"SSH_KEY .*no such key does not exist"):
        transport.connect(load_config(project))


def test_no_key_at_all(project, monkeypatch):
    monkeypatch.setenv("SSH_KEY", "")
    with pytest.raises(RemoteError, match=r"no SSH key to offer"):
        transport.connect(load_config(project))


def test_agent_less_default_keys_from_home(project, rehearsal_host, isolated_home, monkeypatch):
    (isolated_home / ".ssh").mkdir()
    locked = isolated_home / ".ssh" / "id_ed25519"  # a locked key is passed over, the next one is tried
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "secret", "-f", str(locked)], check=True)
    (isolated_home / ".ssh" / "id_ecdsa").write_bytes(rehearsal_host.client_key.read_bytes())
    monkeypatch.setenv("SSH_KEY", "")
    with transport.connect(load_config(project)) as t:
        assert t.run(["true"]).rc == 0


def test_closed_port_is_one_line(project, monkeypatch):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: connections are refused
        monkeypatch.setenv("REMOTE_PORT", str(port))
        with pytest.raises(RemoteError, match=rf"^127.0.0.1:{port} refused the connection: is the box up"):
            transport.connect(load_config(project))


def test_unknown_host_name(project, monkeypatch):
    monkeypatch.setenv("REMOTE_HOST", "no-such-box.invalid")
    with pytest.raises(RemoteError, match=r"cannot resolve REMOTE_HOST 'no-such-box.invalid'"):
        transport.connect(load_config(project))


def test_unanswered_connection_times_out(project, monkeypatch):
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(0)
        port = server.getsockname()[1]
        waiting = [socket.create_connection(("127.0.0.1", port))]  # fills the backlog: later SYNs go unanswered
        for _ in range(2):
            sock = socket.socket()
            sock.settimeout(0.2)
            with contextlib.suppress(OSError):
                sock.connect(("127.0.0.1", port))
            waiting.append(sock)
        monkeypatch.setenv("REMOTE_PORT", str(port))
        monkeypatch.setenv("SSH_TIMEOUT", "1")
        try:
            with pytest.raises(RemoteError, match=rf"^timed out after 1 s connecting to 127.0.0.1:{port}"):
                transport.connect(load_config(project))
        finally:
            for sock in waiting:
                sock.close()


def test_silent_server_times_out(project, monkeypatch):
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)  # accepts the TCP connection, never says a word
        monkeypatch.setenv("REMOTE_PORT", str(server.getsockname()[1]))
        monkeypatch.setenv("SSH_TIMEOUT", "1")
        with pytest.raises(RemoteError, match=r"did not complete the SSH handshake"):
            transport.connect(load_config(project))


def test_missing_remote_host_setting(project, monkeypatch):
    monkeypatch.setenv("REMOTE_HOST", "")
    with pytest.raises(UserError, match="REMOTE_HOST is not set"):
        transport.connect(load_config(project))


# --- trust and ssh commands ----------------------------------------------------------------------------------


def invoke(*args: str, input: str | None = None):
    return CliRunner().invoke(cli, list(args), input=input)


def test_trust_shows_the_key_and_records_it_only_when_asked(project, rehearsal_host, monkeypatch):
    known = project / ".cosmos" / "known_hosts"
    monkeypatch.setenv("KNOWN_HOSTS", str(known))
    expected = fingerprint_of(rehearsal_host.dir / "ssh" / "host_key.pub")
    declined = invoke("trust", input="n\n")
    assert declined.exit_code == 1
    assert f"ED25519 {expected}" in declined.output
    assert not known.exists()

    done = invoke("trust", "--yes")
    assert done.exit_code == 0, done.output
    assert known.read_text() == rehearsal_host.known_hosts.read_text()
    with transport.connect(load_config(project)) as t:
        assert t.run(["true"]).rc == 0

    again = invoke("trust", "--json")
    assert again.exit_code == 0, again.output
    data = json.loads(again.output)
    assert data == {"host": f"[127.0.0.1]:{rehearsal_host.port}", "key_type": "ED25519",
                    "fingerprint": expected, "status": "known", "file": str(known), "recorded": False}


def test_trust_refuses_a_changed_key_unless_replace(project, rehearsal_host, monkeypatch, tmp_path):
    name = f"[127.0.0.1]:{rehearsal_host.port}"
    known = project / "known"
    old = other_key_line(tmp_path, name)
    known.write_text("# my boxes\nexample.com ssh-ed25519 " + old.split()[2] + "\n" + old)
    monkeypatch.setenv("KNOWN_HOSTS", str(known))
    refused = invoke("trust", "--yes")
    assert refused.exit_code == 3
    assert "HAS CHANGED" in refused.output and "--replace" in refused.output
    assert old in known.read_text()

    replaced = invoke("trust", "--yes", "--replace")
    assert replaced.exit_code == 0, replaced.output
    assert known.read_text() == ("# my boxes\nexample.com ssh-ed25519 " + old.split()[2] + "\n"
                                 + rehearsal_host.known_hosts.read_text())


def test_trust_reports_unreachable_box(project, monkeypatch):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        monkeypatch.setenv("REMOTE_PORT", str(sock.getsockname()[1]))
        done = invoke("trust", "--yes")
    assert done.exit_code == 3
    assert "refused the connection" in done.output


def run_script(*args: str, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run([str(REPO / "scripts" / "ssh_remote.sh"), *args], capture_output=True, text=True,
                          env=env, stdin=subprocess.DEVNULL, timeout=60)


def test_ssh_remote_script_runs_with_the_same_settings(project, rehearsal_host):
    done = run_script("true")
    assert done.returncode == 0, done.stderr
    done = run_script("printf", "%s\\n", "a b", "$(touch pwned)", "it's", cwd_marker := "`x`")
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"a b\n$(touch pwned)\nit's\n{cwd_marker}\n"
    assert not (rehearsal_host.remote_home / "pwned").exists()


def test_ssh_remote_script_with_awkward_key_and_known_hosts_paths(project, rehearsal_host, tmp_path):
    folder = tmp_path / 'we"ird %d \\ dir'
    folder.mkdir()
    key = folder / "key %u"
    key.write_bytes(rehearsal_host.client_key.read_bytes())
    key.chmod(0o600)
    known = folder / "known %h"
    known.write_text(rehearsal_host.known_hosts.read_text())
    done = run_script("true", env_extra={"SSH_KEY": str(key), "KNOWN_HOSTS": str(known)})
    assert done.returncode == 0, done.stderr


def test_ssh_remote_script_refuses_an_unknown_host(project, monkeypatch):
    done = run_script("true", env_extra={"KNOWN_HOSTS": str(project / "none")})
    assert done.returncode == 255
    assert "Host key verification failed" in done.stderr


def test_interactive_argv(project, rehearsal_host):
    argv = interactive_argv(load_config(project), ["ls", "a b"])
    assert argv[0] == "ssh" and argv[-3:] == ["--", "127.0.0.1", "ls 'a b'"]
    assert ["-o", "StrictHostKeyChecking=yes"] == argv[argv.index("StrictHostKeyChecking=yes") - 1:][:2]
    assert "ForwardAgent=no" in argv and "IdentitiesOnly=yes" in argv
    known = next(a for a in argv if a.startswith("UserKnownHostsFile="))
    assert f'"{rehearsal_host.known_hosts}"' in known  # the path has a space: quoted for ssh


# --- local transport -----------------------------------------------------------------------------------------


def test_local_transport_parity(local):
    assert isinstance(local, transport.LocalTransport)
    assert local.run(["printf", "%s\\0", *HOSTILE]).stdout.decode().split("\0")[:-1] == HOSTILE
    assert local.run(["pwd"]).stdout.decode() == f"{local.remote_dir}\n"
    assert local.run(["cat"], input=b"x").stdout == b"x"
    with pytest.raises(RemoteError, match=r"sh failed on local:.*\(exit 4\): boom"):
        local.run(["sh", "-c", "echo boom >&2; exit 4"])
    got: list[bytes] = []
    assert local.stream(["sh", "-c", "echo one; echo two >&2; exit 5"], on_output=got.append) == 5
    assert b"".join(got) == b"one\ntwo\n"
    with pytest.raises(RemoteError, match="does not exist"):
        local.run(["true"], cwd="missing folder")
    assert local.run(["no-such-command-here"], check=False).rc == 127


def test_unreadable_known_hosts_lines_are_skipped(project, rehearsal_host, isolated_home, monkeypatch):
    (isolated_home / ".ssh").mkdir()
    (isolated_home / ".ssh" / "known_hosts").write_text(
        "@cert-authority *.example.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHVxNKJbF3FvcGWBPZtG4MzCYaJvtvBf8n\n"
        "garbage line\nbox ssh-ed25519 not-base64!!\n[h]:22 sk-ssh-ed25519@openssh.com AAAAGnNr\n"
        + rehearsal_host.known_hosts.read_text())
    monkeypatch.setenv("KNOWN_HOSTS", str(project / "nothing_here"))
    with transport.connect(load_config(project)) as t:
        assert t.run(["true"]).rc == 0


def test_hashed_known_hosts_entry_is_honoured(project, rehearsal_host, isolated_home, monkeypatch):
    import paramiko

    name, keytype, key = rehearsal_host.known_hosts.read_text().split()
    (isolated_home / ".ssh").mkdir()
    (isolated_home / ".ssh" / "known_hosts").write_text(f"{paramiko.HostKeys.hash_host(name)} {keytype} {key}\n")
    monkeypatch.setenv("KNOWN_HOSTS", str(project / "nothing_here"))
    with transport.connect(load_config(project)) as t:
        assert t.run(["true"]).rc == 0


def test_missing_remote_dir_is_named(project, rehearsal_host, monkeypatch):
    missing = f"{rehearsal_host.remote_dir}/not here 'x'"
    monkeypatch.setenv("REMOTE_DIR", missing)
    with transport.connect(load_config(project)) as t:
        for call in (lambda: t.run(["true"], check=False), lambda: t.stream(["true"], on_output=print)):
            with pytest.raises(RemoteError, match=rf"^folder {missing} does not exist on .*check REMOTE_DIR"):
                call()


def test_a_commands_own_exit_97_stays_its_own(ssh):
    assert ssh.run(["sh", "-c", "exit 97"], check=False).rc == 97


def test_ssh_remote_script_opens_an_interactive_shell(project, rehearsal_host):
    import pty

    controller, terminal = pty.openpty()
    proc = subprocess.Popen([str(REPO / "scripts" / "ssh_remote.sh")], stdin=terminal, stdout=terminal,
                            stderr=terminal, start_new_session=True)
    os.close(terminal)
    os.write(controller, b"echo marker-$((6*7)); exit 3\n")
    seen = b""
    deadline = time.monotonic() + 30
    with contextlib.suppress(OSError):  # EIO once the session has ended
        while time.monotonic() < deadline and b"marker-42" not in seen:
            seen += os.read(controller, 4096)
    assert proc.wait(timeout=30) == 3, seen
    os.close(controller)
    assert b"marker-42" in seen


def test_cli_failure_is_one_line_on_stderr(project, monkeypatch):
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)  # says nothing: paramiko would log a traceback if its logger were not quieted
        env = {**os.environ, "REMOTE_PORT": str(server.getsockname()[1]), "SSH_TIMEOUT": "1"}
        done = subprocess.run([str(Path(sys.executable).with_name("cosmos-tools")), "trust", "--yes"], env=env,
                              capture_output=True, text=True, timeout=60)
    assert done.returncode == 3
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("error: 127.0.0.1:"), done.stderr
    assert "did not complete the SSH handshake" in done.stderr


def test_ssh_and_trust_with_the_local_transport(project, tmp_path):
    box = tmp_path / "box 'dir'"
    box.mkdir()
    env = {**os.environ, "TRANSPORT": "local", "REMOTE_DIR": str(box)}
    done = subprocess.run([str(REPO / "scripts" / "ssh_remote.sh"), "pwd"], env=env, capture_output=True,
                          text=True, timeout=60)
    assert (done.returncode, done.stdout) == (0, f"{box}\n"), done.stderr
    done = subprocess.run([str(REPO / "scripts" / "ssh_remote.sh"), "pwd"], capture_output=True, text=True,
                          env={**env, "REMOTE_DIR": str(tmp_path / "missing")}, timeout=60)
    assert done.returncode == 1 and "REMOTE_DIR" in done.stderr and "missing" in done.stderr
    refused = CliRunner().invoke(cli, ["trust"], env={"TRANSPORT": "local"})
    assert refused.exit_code == 1 and "no SSH host key to trust" in refused.output


def test_a_session_the_box_refuses_is_not_a_lost_connection(ssh):
    """sshd refuses sessions past MaxSessions (OpenSSH's default 10; the rehearsal host's 50), and that says so."""
    held = [ssh._transport.open_session() for _ in range(50)]
    try:
        with pytest.raises(RemoteError, match="refused a new SSH session .*MaxSessions") as caught:
            ssh.run(["true"])
        assert not isinstance(caught.value, transport.ConnectionLost)
    finally:
        for chan in held:
            chan.close()
    assert ssh.run(["true"]).rc == 0  # the connection itself was fine all along


def test_many_short_commands_at_once_never_drop_the_connection(ssh):
    """`true` ends before its stdin does: an EOF sent after sshd freed the channel made it drop the connection."""
    errors = []

    def work() -> None:
        for _ in range(40):
            try:
                ssh.run(["true"])
            except Exception as exc:  # collected: the assertion below shows it
                errors.append(exc)
                return

    workers = [threading.Thread(target=work) for _ in range(8)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert errors == []


@pytest.mark.parametrize("kind", ["ssh", "local"])
def test_a_command_started_ahead_of_its_input_gets_it_as_it_comes(kind, request):
    t = request.getfixturevalue(kind)
    started = t.start(["cat"])
    started.write(b"one\n")
    assert started.finish(b"two\nthree\n", 2) == ["one", "two"]  # the first lines, without waiting for the end
    t.start(["cat"]).cancel()
    with pytest.raises(RemoteError, match="exit 3"):
        t.start(["sh", "-c", "cat >/dev/null; exit 3"]).finish(b"", 1)
    assert t.run(["true"]).rc == 0  # the connection is fine after all of it
