"""config.sh: the strict Python reader agrees with bash, or refuses with file and line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cosmos_tools.config import SETTINGS, ConfigError, example_text, load_config, parse_config_text

REPO = Path(__file__).resolve().parents[1]


def bash_values(path: Path, keys: list[str], env: dict | None = None) -> dict[str, str]:
    """The oracle: what bash gets when it sources the file (used only in tests)."""
    script = 'set -u; source "$1"; shift; for k; do printf "%s\\0%s\\0" "$k" "${!k-}"; done'
    out = subprocess.run(["bash", "-c", script, "_", str(path), *keys], capture_output=True, check=True,
                         env={**os.environ, **(env or {})}).stdout.decode()
    parts = out.split("\0")[:-1]
    return dict(zip(parts[::2], parts[1::2], strict=True))


AGREEING = """\
# comment
REMOTE_USER=alice
REMOTE_HOST='gpu box.example'   # trailing comment
REMOTE_DIR="$HOME/cosmos transfer1"
SSH_KEY=${HOME}/.ssh/id_ed25519
DOCKER_CMD='sudo docker'
DOCKER_IMAGE="nvcr.io/${REMOTE_USER}/cosmos-transfer1:v1"
DOCKER_EXTRA_ARGS="--env \\"A=b c\\" \\$literal \\\\back"
export NUM_GPU=2
OFFLOAD='it'"'"'s'
FPS=24
"""


def test_parser_agrees_with_bash(tmp_path):
    cfg = tmp_path / "config.sh"
    cfg.write_text(AGREEING)
    ours = {k: v for k, (v, _) in parse_config_text(AGREEING, str(cfg)).items()}
    assert bash_values(cfg, list(ours)) == ours
    assert ours["REMOTE_DIR"] == f"{os.environ['HOME']}/cosmos transfer1"
    assert ours["DOCKER_IMAGE"] == "nvcr.io/alice/cosmos-transfer1:v1"
    assert ours["OFFLOAD"] == "it's"


def test_example_file_is_in_sync_and_bash_readable():
    example = REPO / "config.sh.example"
    assert example.read_text() == example_text(), "regenerate: cosmos-tools config --example > config.sh.example"
    parsed = {k: v for k, (v, _) in parse_config_text(example.read_text(), "config.sh.example").items()}
    assert set(parsed) == {s.key for s in SETTINGS}
    assert parsed == {s.key: s.default for s in SETTINGS}
    assert bash_values(example, list(parsed)) == parsed


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        ("REMOTE_HOST=$(hostname)", "not allowed"),
        ("REMOTE_HOST=`hostname`", "shell syntax"),
        ('REMOTE_HOST="$(hostname)"', "command substitution"),
        ("REMOTE_HOST=a b", "unquoted space"),
        ("REMOTE_HOST=a;b", "shell syntax"),
        ("REMOTE_HOST='unterminated", "unterminated single quote"),
        ('REMOTE_HOST="unterminated', "unterminated double quote"),
        ("REMOTE_HOST=$NOT_SET_ANYWHERE_X", "$NOT_SET_ANYWHERE_X is not set"),
        ("SSH_KEY=~/.ssh/key", "write $HOME"),
        ("this is not an assignment", "expected KEY=value"),
        ("REMOTE_PORT=twenty", "REMOTE_PORT must be a whole number"),
        ("TRANSPORT=telnet", "TRANSPORT must be ssh or local"),
        ("UPSCALE_WEIGHT=-1", "UPSCALE_WEIGHT must be a number"),
    ],
)
def test_malformed_config_names_file_and_line(tmp_path, monkeypatch, line, fragment):
    cfg = tmp_path / "config.sh"
    cfg.write_text(f"# header\nREMOTE_USER=bob\n{line}\n")
    monkeypatch.setenv("COSMOS_CONFIG", str(cfg))
    monkeypatch.delenv("NOT_SET_ANYWHERE_X", raising=False)
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path)
    message = info.value.format_message()
    assert f"{cfg}:3" in message
    assert fragment in message
    assert "\n" not in message


def test_environment_overrides_file_and_sources_are_reported(tmp_path, monkeypatch):
    cfg = tmp_path / "config.sh"
    cfg.write_text("REMOTE_HOST=from-file\nNUM_GPU=2\n")
    monkeypatch.setenv("COSMOS_CONFIG", str(cfg))
    monkeypatch.setenv("NUM_GPU", "4")
    loaded = load_config(tmp_path)
    assert loaded["REMOTE_HOST"] == "from-file"
    assert loaded.sources["REMOTE_HOST"] == f"{cfg}:1"
    assert loaded.int("NUM_GPU") == 4
    assert loaded.sources["NUM_GPU"] == "env NUM_GPU"
    assert loaded.sources["FPS"] == "default"


def test_missing_explicit_config_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("COSMOS_CONFIG", str(tmp_path / "nope.sh"))
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path)


def test_require_says_where_to_set_it(tmp_path, monkeypatch):
    monkeypatch.delenv("COSMOS_CONFIG", raising=False)
    monkeypatch.delenv("REMOTE_HOST", raising=False)
    loaded = load_config(tmp_path)
    with pytest.raises(ConfigError, match=r"REMOTE_HOST is not set: set it in .*config\.sh"):
        loaded.require("REMOTE_HOST")


def run_cli(*args, env=None, cwd=None):
    return subprocess.run([sys.executable, "-m", "cosmos_tools", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, cwd=cwd)


def test_config_command_json_and_errors(tmp_path):
    cfg = tmp_path / "config.sh"
    cfg.write_text("REMOTE_HOST=gpu1\n")
    ok = run_cli("config", "--json", env={"COSMOS_CONFIG": str(cfg), "REMOTE_PORT": "2222"})
    assert ok.returncode == 0, ok.stderr
    data = json.loads(ok.stdout)
    assert data["settings"]["REMOTE_HOST"] == {"value": "gpu1", "source": f"{cfg}:1"}
    assert data["settings"]["REMOTE_PORT"] == {"value": "2222", "source": "env REMOTE_PORT"}

    cfg.write_text("REMOTE_HOST=$(id)\n")
    bad = run_cli("config", env={"COSMOS_CONFIG": str(cfg)})
    assert bad.returncode != 0
    assert bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr
    assert f"{cfg}:1" in bad.stderr


def test_scripts_never_source_config():
    lib = (REPO / "scripts/lib.sh").read_text()
    assert "load_config" not in lib and "source \"$file\"" not in lib
    for script in (REPO / "scripts").glob("*.sh"):
        code = [line for line in script.read_text().splitlines() if not line.lstrip().startswith("#")]
        assert not any("config" in line for line in code), script


@pytest.mark.parametrize("key, suggestion", [("REMOTE_HOTS", "REMOTE_HOST"), ("DOCKER_IMGE", "DOCKER_IMAGE"),
                                             ("NUM_GPUS", "NUM_GPU")])
def test_misspelt_key_is_named_with_a_suggestion(tmp_path, monkeypatch, capsys, key, suggestion):
    cfg = tmp_path / "config.sh"
    cfg.write_text(f"REMOTE_USER=alice\n{key}=x\n")
    monkeypatch.setenv("COSMOS_CONFIG", str(cfg))
    loaded = load_config(tmp_path)
    expected = f'{cfg}:2: {key} is not a setting (ignored); did you mean "{suggestion}"?'
    assert loaded.warnings == [expected]
    assert capsys.readouterr().err == f"warning: {expected}\n"


def test_a_helper_variable_used_later_is_not_a_warning(tmp_path, monkeypatch, capsys):
    cfg = tmp_path / "config.sh"
    cfg.write_text("BASE=/data/cosmos\nLOCAL_OUTPUTS_DIR=$BASE/outputs\nWHATEVER=1\n")
    monkeypatch.setenv("COSMOS_CONFIG", str(cfg))
    loaded = load_config(tmp_path, warn=False)
    assert loaded["LOCAL_OUTPUTS_DIR"] == "/data/cosmos/outputs"
    assert loaded.warnings == [f"{cfg}:3: WHATEVER is not a setting (ignored); see config.sh.example for the settings"]
    assert capsys.readouterr().err == ""


def test_crlf_config_is_read_and_named(tmp_path, monkeypatch):
    cfg = tmp_path / "config.sh"
    cfg.write_bytes(b"REMOTE_HOST=gpu1\r\nREMOTE_DIR='/srv/cosmos'\r\n")
    monkeypatch.setenv("COSMOS_CONFIG", str(cfg))
    loaded = load_config(tmp_path, warn=False)
    assert (loaded["REMOTE_HOST"], loaded["REMOTE_DIR"]) == ("gpu1", "/srv/cosmos")
    assert len(loaded.warnings) == 1 and "CRLF" in loaded.warnings[0] and "dos2unix" in loaded.warnings[0]


def test_config_command_lists_warnings_and_every_command_warns(tmp_path):
    cfg = tmp_path / "config.sh"
    cfg.write_text("REMOTE_HOTS=gpu1\n")
    env = {"COSMOS_CONFIG": str(cfg)}
    shown = run_cli("config", env=env)
    assert shown.returncode == 0 and shown.stderr == ""
    assert f'# warning: {cfg}:1: REMOTE_HOTS is not a setting (ignored); did you mean "REMOTE_HOST"?' in shown.stdout
    data = json.loads(run_cli("config", "--json", env=env).stdout)
    assert data["warnings"] == [f'{cfg}:1: REMOTE_HOTS is not a setting (ignored); did you mean "REMOTE_HOST"?']
    other = run_cli("history", env={**env, "COSMOS_PROJECT_ROOT": str(tmp_path)})
    assert other.stderr.startswith(f"warning: {cfg}:1: REMOTE_HOTS is not a setting"), other.stderr


def test_overrides_are_a_layer_with_their_source(tmp_path, monkeypatch):
    monkeypatch.delenv("NUM_GPU", raising=False)
    (tmp_path / "config.sh").write_text("NUM_GPU=2\n")
    base = load_config(tmp_path)
    run = base.with_overrides({"NUM_GPU": 4, "FPS": None}, source="--num-gpu")
    assert run.int("NUM_GPU") == 4 and run.sources["NUM_GPU"] == "--num-gpu"
    assert run.sources["FPS"] == base.sources["FPS"] == "default"  # None: not overridden
    assert base.int("NUM_GPU") == 2 and base.sources["NUM_GPU"].endswith("config.sh:1")  # the base is unchanged
    assert base.with_overrides({}, source="x").values == base.values
    with pytest.raises(ConfigError, match="--num-gpu: NUM_GPU must be a whole number >= 1"):
        base.with_overrides({"NUM_GPU": 0}, source="--num-gpu")
