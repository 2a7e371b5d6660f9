"""known_hosts files: a folder where a file should be is named, never read as "no keys"."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from cosmos_tools.config import load_config
from cosmos_tools.errors import UserError
from cosmos_tools.hostkeys import load_known_hosts


def test_known_hosts_folder_is_named_not_taken_for_unknown(tmp_path, monkeypatch):
    (tmp_path / "kh").mkdir()
    monkeypatch.setenv("COSMOS_CONFIG", str(tmp_path / "config.sh"))
    (tmp_path / "config.sh").write_text("KNOWN_HOSTS=kh\n")
    with pytest.raises(UserError, match=r"/kh: known_hosts is a folder, not a file; point KNOWN_HOSTS in config.sh "
                                        r"at a file"):
        load_known_hosts(load_config(tmp_path))


def test_users_known_hosts_folder_is_named(tmp_path, isolated_home, monkeypatch):
    (isolated_home / ".ssh" / "known_hosts").mkdir(parents=True)
    monkeypatch.setenv("COSMOS_CONFIG", str(tmp_path / "config.sh"))
    (tmp_path / "config.sh").write_text("")
    with pytest.raises(UserError, match=r"\.ssh/known_hosts: known_hosts is a folder, not a file; remove or rename"):
        load_known_hosts(load_config(tmp_path))


def test_trust_with_a_known_hosts_folder_is_one_line_before_any_connection(tmp_path, isolated_home):
    (tmp_path / "kh").mkdir()
    env = {**os.environ, "COSMOS_PROJECT_ROOT": str(tmp_path), "COSMOS_CONFIG": str(tmp_path / "none.sh"),
           "KNOWN_HOSTS": str(tmp_path / "kh"), "REMOTE_HOST": "192.0.2.1", "SSH_TIMEOUT": "1"}
    (tmp_path / "none.sh").write_text("")
    done = subprocess.run([sys.executable, "-m", "cosmos_tools", "trust"], capture_output=True, text=True, env=env,
                          input="n\n", timeout=60)
    assert done.returncode == 1 and done.stderr.count("\n") == 1, done.stderr
    assert "known_hosts is a folder" in done.stderr and "not known" not in done.stderr
