"""~/.ssh/config (throwaway HOME): aliases, ProxyJump through the rehearsal sshd itself, the precedence of
config.sh, host keys of jump hosts, options we refuse, and `cosmos-tools ssh`/`trust`/`config` over the same route."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from fault_proxy import FaultRelay

from cosmos_tools import sync, transport
from cosmos_tools.cli import cli
from cosmos_tools.config import load_config
from cosmos_tools.errors import RemoteError
from cosmos_tools.ssh_config import SshConfigError, resolve

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def home_ssh(isolated_home, rehearsal_host, project, monkeypatch):
    """~/.ssh with the rehearsal client key; config.sh's REMOTE_USER/REMOTE_PORT/SSH_KEY emptied (env)."""
    folder = isolated_home / ".ssh"
    folder.mkdir()
    key = folder / "id_box"
    key.write_bytes(rehearsal_host.client_key.read_bytes())
    key.chmod(0o600)
    for name in ("REMOTE_USER", "REMOTE_PORT", "SSH_KEY"):
        monkeypatch.setenv(name, "")
    return folder


def write_config(folder: Path, rehearsal_host, text: str) -> None:
    (folder / "config").write_text(text.format(port=rehearsal_host.port, user=rehearsal_host.user,
                                               key=folder / "id_box"))


BOX = """\
# my boxes
Host gpu
    HostName 127.0.0.1
    Port {port}
    User {user}
    IdentityFile {key}
    IdentitiesOnly yes
"""
JUMP1 = """\
Host jump1
    HostName 127.0.0.1
    Port {port}
    User {user}
    IdentityFile {key}
"""


def run_on_box(cfg, *argv: str) -> tuple[bytes, int]:
    with transport.connect(cfg) as t:
        return t.run(list(argv)).stdout, len(t._hops) - 1


def test_alias_gives_host_port_user_and_key(home_ssh, rehearsal_host, project, monkeypatch):
    write_config(home_ssh, rehearsal_host, BOX)
    monkeypatch.setenv("REMOTE_HOST", "gpu")
    assert run_on_box(load_config(project), "echo", "ok") == (b"ok\n", 0)

    shown = CliRunner().invoke(cli, ["config", "--json"])
    settings = json.loads(shown.output)["settings"]
    assert settings["REMOTE_PORT"] == {"value": str(rehearsal_host.port), "source": "~/.ssh/config:4"}
    assert settings["REMOTE_USER"] == {"value": rehearsal_host.user, "source": "~/.ssh/config:5"}
    assert settings["SSH_KEY"] == {"value": str(home_ssh / "id_box"), "source": "~/.ssh/config:6"}
    assert settings["REMOTE_HOST"]["source"].endswith("(HostName 127.0.0.1: ~/.ssh/config:3)")


def test_alias_in_an_included_file_is_named_with_its_line(home_ssh, rehearsal_host, project, monkeypatch):
    (home_ssh / "conf.d").mkdir()
    write_config(home_ssh / "conf.d", rehearsal_host, BOX)
    (home_ssh / "config").write_text("Include conf.d/*\nHost *\n    ConnectTimeout 7\n")
    monkeypatch.setenv("REMOTE_HOST", "gpu")
    monkeypatch.setenv("SSH_TIMEOUT", "")
    route = resolve(load_config(project))
    assert (route.box.port, route.box.timeout) == (rehearsal_host.port, 7.0)
    assert route.sources["REMOTE_USER"] == "~/.ssh/conf.d/config:5"
    assert route.sources["SSH_TIMEOUT"] == "~/.ssh/config:3"


def test_config_sh_values_win_over_the_alias(home_ssh, rehearsal_host, project, monkeypatch):
    write_config(home_ssh, rehearsal_host, BOX.replace("Port {port}", "Port 1").replace("User {user}", "User nobody"))
    monkeypatch.setenv("REMOTE_HOST", "gpu")
    monkeypatch.setenv("REMOTE_PORT", str(rehearsal_host.port))
    monkeypatch.setenv("REMOTE_USER", rehearsal_host.user)
    cfg = load_config(project)
    assert resolve(cfg).sources["REMOTE_PORT"] == "env REMOTE_PORT"
    assert run_on_box(cfg, "echo", "ok") == (b"ok\n", 0)


def test_one_jump_host(home_ssh, rehearsal_host, project, monkeypatch):
    write_config(home_ssh, rehearsal_host, JUMP1 + BOX + "    ProxyJump jump1\n")
    monkeypatch.setenv("REMOTE_HOST", "gpu")
    assert run_on_box(load_config(project), "echo", "via one") == (b"via one\n", 1)


def test_two_jump_hosts_with_user_host_port_form(home_ssh, rehearsal_host, project, monkeypatch):
    write_config(home_ssh, rehearsal_host, JUMP1 + BOX + "    ProxyJump jump1,{user}@127.0.0.1:{port}\n"
                 "Host 127.0.0.1\n    IdentityFile {key}\n")
    monkeypatch.setenv("REMOTE_HOST", "gpu")
    cfg = load_config(project)
    route = resolve(cfg)
    assert [(h.name, h.port) for h in route.hops] == [("jump1", rehearsal_host.port),
                                                      ("127.0.0.1", rehearsal_host.port)]
    assert run_on_box(cfg, "echo", "via two") == (b"via two\n", 2)


def test_files_move_whole_through_two_jump_hosts(home_ssh, rehearsal_host, project, monkeypatch, tmp_path):
    """The box's SSH stream comes through channels of the jump hosts (read ahead there as from a socket)."""
    write_config(home_ssh, rehearsal_host, JUMP1 + BOX + "    ProxyJump jump1,{user}@127.0.0.1:{port}\n"
                 "Host 127.0.0.1\n    IdentityFile {key}\n")
    monkeypatch.setenv("REMOTE_HOST", "gpu")
    data = os.urandom(6_000_000)
    (tmp_path / "big.mp4").write_bytes(data)
    with transport.connect(load_config(project)) as t:
        sent = sync.upload_files(t, [(tmp_path / "big.mp4", "inputs/videos/jumped/big.mp4")], progress=False)
        got = sync.download_tree(t, "inputs/videos/jumped", tmp_path / "back", progress=False)
    assert sent.sent == ["inputs/videos/jumped/big.mp4"] and got.sent == ["big.mp4"]
    assert (tmp_path / "back/big.mp4").read_bytes() == data


def test_unknown_jump_host_key_is_refused_then_trusted(home_ssh, rehearsal_host, project, monkeypatch):
    write_config(home_ssh, rehearsal_host, JUMP1 + "    HostKeyAlias bastion\n" + BOX + "    ProxyJump jump1\n")
    monkeypatch.setenv("REMOTE_HOST", "gpu")
    known = project / "known_hosts"
    known.write_text(rehearsal_host.known_hosts.read_text())  # the box's key only
    monkeypatch.setenv("KNOWN_HOSTS", str(known))
    refused = r"^host key of bastion \(jump host 1 \(jump1\)\) is not known \(ED25519 SHA256:.*\); "
    with pytest.raises(RemoteError, match=refused + r"if this is your jump host, run: cosmos-tools trust$"):
        transport.connect(load_config(project))

    listed = CliRunner().invoke(cli, ["trust", "--json"])
    assert listed.exit_code == 0, listed.output
    data = json.loads(listed.output)
    assert data["status"] == "unreached" and [h["status"] for h in data["hops"]] == ["unknown"]

    done = CliRunner().invoke(cli, ["trust"], input="y\n")
    assert done.exit_code == 0, done.output
    assert "bastion (jump host 1 (jump1)) presents host key ED25519" in done.output
    assert "already trusted" in done.output  # the box, reached through the newly trusted jump host
    assert known.read_text().splitlines()[-1].startswith("bastion ssh-ed25519 ")
    assert run_on_box(load_config(project), "echo", "ok") == (b"ok\n", 1)


@pytest.mark.parametrize(("line", "option"), [("ProxyCommand nc %h %p", "ProxyCommand"),
                                              ("CertificateFile ~/.ssh/id-cert.pub", "CertificateFile")])
def test_unsupported_options_are_refused_with_the_line(home_ssh, rehearsal_host, project, monkeypatch, line, option):
    write_config(home_ssh, rehearsal_host, BOX + f"    {line}\n")
    monkeypatch.setenv("REMOTE_HOST", "gpu")
    with pytest.raises(SshConfigError, match=rf"^~/.ssh/config:8: {option} is not supported by cosmos-tools "
                                             r"for host 'gpu'; "):
        transport.connect(load_config(project))


def test_match_exec_is_refused_before_anything_runs(home_ssh, rehearsal_host, project, monkeypatch):
    marker = home_ssh / "ran"
    write_config(home_ssh, rehearsal_host, f"Match exec \"touch {marker}\"\n    User x\n" + BOX)
    monkeypatch.setenv("REMOTE_HOST", "gpu")
    with pytest.raises(SshConfigError, match=r"^~/.ssh/config:1: Match exec is not supported"):
        transport.connect(load_config(project))
    assert not marker.exists()


def test_strict_host_key_checking_no_does_not_weaken_the_check(home_ssh, rehearsal_host, project, monkeypatch,
                                                               capsys):
    write_config(home_ssh, rehearsal_host, BOX + "    StrictHostKeyChecking no\n")
    monkeypatch.setenv("REMOTE_HOST", "gpu")
    monkeypatch.setenv("KNOWN_HOSTS", str(project / "empty"))
    for _ in range(2):
        with pytest.raises(RemoteError, match="is not known"):
            transport.connect(load_config(project))
    warned = [line for line in capsys.readouterr().err.splitlines() if "StrictHostKeyChecking" in line]
    assert warned == ["warning: ~/.ssh/config:8: StrictHostKeyChecking no is ignored: cosmos-tools connects only to "
                      "hosts whose key is in known_hosts (cosmos-tools trust records one)"]


def test_user_known_hosts_file_and_server_alive_interval(home_ssh, rehearsal_host, project, monkeypatch):
    mine = home_ssh / "known boxes"
    mine.write_text(rehearsal_host.known_hosts.read_text())
    write_config(home_ssh, rehearsal_host, BOX + f'    UserKnownHostsFile /nowhere "{mine}"\n'
                 "    ServerAliveInterval 5\n    ServerAliveCountMax 2\n")
    monkeypatch.setenv("REMOTE_HOST", "gpu")
    monkeypatch.setenv("KNOWN_HOSTS", str(project / "empty"))
    monkeypatch.setenv("SSH_ALIVE_TIMEOUT", "")
    cfg = load_config(project)
    assert resolve(cfg).alive == 15.0
    assert run_on_box(cfg, "true") == (b"", 0)


def test_a_silent_jump_host_is_a_silent_link(home_ssh, rehearsal_host, project, monkeypatch):
    relay = FaultRelay(rehearsal_host.port)
    try:
        write_config(home_ssh, rehearsal_host, JUMP1.replace("Port {port}", f"Port {relay.port}")
                     + f"    HostKeyAlias [127.0.0.1]:{rehearsal_host.port}\n" + BOX + "    ProxyJump jump1\n")
        monkeypatch.setenv("REMOTE_HOST", "gpu")
        monkeypatch.setenv("SSH_ALIVE_TIMEOUT", "2")
        with transport.connect(load_config(project)) as t:
            relay.blackhole()
            with pytest.raises(transport.ConnectionLost, match=r"silent for \d+ s at jump host 1 \(jump1\)"):
                t.run(["sleep", "30"])
    finally:
        relay.close()


def run_script(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(REPO / "scripts" / "ssh_remote.sh"), *args], capture_output=True, text=True,
                          env=dict(os.environ), stdin=subprocess.DEVNULL, timeout=60)


def test_ssh_remote_script_takes_the_same_route(home_ssh, rehearsal_host, project, monkeypatch):
    write_config(home_ssh, rehearsal_host, JUMP1 + BOX + "    ProxyJump jump1\n")
    monkeypatch.setenv("REMOTE_HOST", "gpu")
    done = run_script("echo", "a b")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "a b\n"


def test_ssh_remote_script_checks_jump_host_keys_with_our_files(home_ssh, rehearsal_host, project, monkeypatch):
    write_config(home_ssh, rehearsal_host, JUMP1 + "    HostKeyAlias bastion\n    StrictHostKeyChecking no\n"
                 + BOX + "    ProxyJump jump1\n")
    monkeypatch.setenv("REMOTE_HOST", "gpu")
    done = run_script("true")
    assert done.returncode == 255
    assert "Host key verification failed" in done.stderr


@pytest.fixture
def agent_socket(tmp_path, rehearsal_host):
    """An ssh-agent of this test holding the rehearsal client key, on its own socket."""
    sock = tmp_path / "agent.sock"
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL)
    try:
        for _ in range(200):  # the agent creates its socket when it is ready
            if sock.exists() or agent.poll() is not None:
                break
            time.sleep(0.05)
        subprocess.run(["ssh-add", "-q", str(rehearsal_host.client_key)], check=True, capture_output=True,
                       env={**os.environ, "SSH_AUTH_SOCK": str(sock)})
        yield sock
    finally:
        agent.terminate()
        agent.wait(timeout=10)


def test_identity_agent_socket_is_used_and_none_is_none(home_ssh, rehearsal_host, project, monkeypatch, agent_socket):
    box = BOX.replace("    IdentityFile {key}\n    IdentitiesOnly yes\n", "")
    write_config(home_ssh, rehearsal_host, box + f"    IdentityAgent {agent_socket}\n")
    (home_ssh / "id_box").unlink()
    monkeypatch.setenv("REMOTE_HOST", "gpu")
    assert run_on_box(load_config(project), "echo", "agent") == (b"agent\n", 0)

    write_config(home_ssh, rehearsal_host, box + "    IdentityAgent none\n")
    monkeypatch.setenv("SSH_AUTH_SOCK", str(agent_socket))
    with pytest.raises(RemoteError, match="no SSH key to offer"):
        transport.connect(load_config(project))


def test_ssh_argv_leaves_the_alias_its_own_settings(home_ssh, rehearsal_host, project, monkeypatch):
    from cosmos_tools.ssh import interactive_argv

    write_config(home_ssh, rehearsal_host, BOX + "    ServerAliveInterval 9\n")
    monkeypatch.setenv("REMOTE_HOST", "gpu")
    monkeypatch.setenv("SSH_ALIVE_TIMEOUT", "")
    argv = interactive_argv(load_config(project), ["true"])
    assert argv[-3:] == ["--", "gpu", "true"] and "-F" not in argv
    assert not any(a.startswith(("IdentityFile=", "ServerAlive")) for a in argv)
    assert "StrictHostKeyChecking=yes" in argv and "ForwardAgent=no" in argv


def test_a_locked_identity_file_logs_in_through_the_agents_copy(home_ssh, rehearsal_host, project, monkeypatch,
                                                                agent_socket):
    locked = home_ssh / "id_box"
    subprocess.run(["ssh-keygen", "-q", "-p", "-P", "", "-N", "secret", "-f", str(locked)], check=True)
    (home_ssh / "id_box.pub").write_text(rehearsal_host.client_key.with_suffix(".pub").read_text())
    write_config(home_ssh, rehearsal_host, BOX)  # IdentitiesOnly yes: only this key, here through the agent
    monkeypatch.setenv("REMOTE_HOST", "gpu")
    monkeypatch.setenv("SSH_AUTH_SOCK", str(agent_socket))
    assert run_on_box(load_config(project), "echo", "ok") == (b"ok\n", 0)


def test_a_bad_number_in_ssh_config_is_one_line_with_its_line(home_ssh, rehearsal_host, project, monkeypatch):
    write_config(home_ssh, rehearsal_host, BOX + "    ConnectTimeout soon\n")
    monkeypatch.setenv("REMOTE_HOST", "gpu")
    monkeypatch.setenv("SSH_TIMEOUT", "")
    with pytest.raises(SshConfigError, match=r"^~/.ssh/config:8: ConnectTimeout 'soon' of 'gpu' is not a whole number"):
        transport.connect(load_config(project))
    monkeypatch.setenv("SSH_TIMEOUT", "2.5")  # config.sh's value wins, and the alias's is not read
    assert resolve(load_config(project)).box.timeout == 2.5
