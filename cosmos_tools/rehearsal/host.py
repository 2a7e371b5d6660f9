"""The rehearsal GPU host: a real OpenSSH sshd on 127.0.0.1 serving a stand-in cosmos-transfer1 checkout.

``up(dir)`` lays out ``dir`` (keys, sshd_config, the checkout, stand-in ``docker``/``torchrun``), starts
``/usr/sbin/sshd`` as the current user on a free high port, checks a real ``ssh`` login, and writes
``dir/config.sh`` (a complete config pointing at the host), ``dir/known_hosts`` and
``dir/rehearsal.json``. ``down(dir)`` stops sshd and any stand-in container still running. With ``slurm``, a
real single-node Slurm with four stand-in GPUs runs behind the same sshd (rehearsal/slurm.py) and config.sh says
BACKEND=slurm, SLURM_CONTAINER=none: the stand-in transfer.py runs as the Slurm job's own command.

SSH sessions get ``PATH=<dir>/remote/bin:...`` and ``HOME=<dir>/remote/home`` from ``environment=``
options in the authorized_keys file (``PermitUserEnvironment``): a login shell's rc files
are then read from the rehearsal home, so nothing on this machine can put another ``docker`` first. They also
get ``SLURM_CONF`` (this host's Slurm, if any) and ``COSMOS_STANDIN_ENGINE`` (the stand-in's timings, for a
transfer.py that Slurm runs without the stand-in docker).
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..fsutil import write_json_atomic, write_text_atomic
from ..ssh import ssh_config_word
from . import slurm as rehearsal_slurm

SSHD = "/usr/sbin/sshd"
STAND_IN = Path(__file__).with_name("stand_in")
TRANSFER_PY = "cosmos_transfer1/diffusion/inference/transfer.py"
INFERENCE25_PY = "examples/inference.py"  # cosmos-transfer2.5's entry point (the transfer2.5-2b profile)
VIDEO_CRITIC_PY = "examples/video_critic/video_critic.py"  # cosmos-reason1's video critic (CRITIC=reason1)
REASONER_STAND_IN = "cosmos_framework/scripts/reasoner_stand_in.py"  # for the Cosmos 3 stand-in (CRITIC=cosmos3)
# cosmos-framework's inference CLI (the cosmos3-* profiles, run with -m); sibling stand-ins go in its folder
COSMOS3_INFERENCE_PY = "cosmos_framework/scripts/inference.py"
DOCKER_IMAGE = "cosmos-transfer1:rehearsal"
# The default checkpoints transfer.py looks for (reference §2.2, §4), as empty placeholders.
CHECKPOINTS = (
    *(f"nvidia/Cosmos-Transfer1-7B/{k}_control.pt" for k in ("vis", "seg", "edge", "depth", "keypoint")),
    "nvidia/Cosmos-Transfer1-7B/4kupscaler_control.pt",
    "nvidia/Cosmos-Transfer1-7B/edge_control_distilled.pt",
    "nvidia/Cosmos-Transfer1-7B/base_model.pt",
    "nvidia/Cosmos-Transfer1-7B-Sample-AV/base_model.pt",
    "nvidia/Cosmos-Transfer1-7B-Sample-AV/hdmap_control.pt",
    "nvidia/Cosmos-Transfer1-7B-Sample-AV/lidar_control.pt",
    "nvidia/Cosmos-Tokenize1-CV8x8x8-720p/mean_std.pt",
)


@dataclass(frozen=True)
class HostInfo:
    """Where a running rehearsal host lives and how to reach it."""

    dir: Path
    port: int
    pid: int
    user: str
    config: Path
    known_hosts: Path
    client_key: Path
    remote_dir: Path
    remote_home: Path
    bin_dir: Path
    state_dir: Path
    sshd_log: Path
    slurm: bool = False  # a rehearsal Slurm runs behind this host (config.sh: BACKEND=slurm)
    reused: bool = False

    def ssh_argv(self, *command: str) -> list[str]:
        """An ``ssh`` argv that logs in with the client key and checks the host key strictly."""
        return ["ssh", "-F", "/dev/null", "-o", f"IdentityFile={ssh_config_word(self.client_key)}",
                "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none",
                "-o", f"UserKnownHostsFile={ssh_config_word(self.known_hosts)}",
                "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10",
                "-p", str(self.port), f"{self.user}@127.0.0.1", *command]

    def to_json(self) -> dict:
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(self).items()}


def _paths(root: Path) -> dict[str, Path]:
    remote = root / "remote"
    return {"ssh": root / "ssh", "remote_dir": remote / "cosmos-transfer1", "remote_home": remote / "home",
            "bin_dir": remote / "bin", "state_dir": remote / "docker-state", "pidfile": root / "sshd.pid",
            "json": root / "rehearsal.json", "config": root / "config.sh", "known_hosts": root / "known_hosts"}


def up(dir: Path, seconds: float | None = None, model: str | None = None, *, load_seconds: float | None = None,
       sample_seconds: float | None = None, slurm: bool = False) -> HostInfo:
    """Start the rehearsal host in ``dir`` (created if needed); reuse it if it is already running.

    ``seconds``: how long each stand-in transfer.py run takes (default about 3 s); ``load_seconds`` and
    ``sample_seconds`` split it: a model load once per process, then each generated video (defaults 0.2 and
    0.7 x ``seconds``). ``model``: the MODEL its config.sh names (default transfer1-7b; the stand-in checkout
    holds every model's entry point). ``slurm``: start the rehearsal Slurm too (a running host without one is
    restarted with it).
    """
    if slurm:
        rehearsal_slurm.check_tools(Path(dir).resolve())
    root = _check_dir(dir)
    paths = _paths(root)
    running = _running_info(root)
    if running and slurm and not (running.slurm and rehearsal_slurm.running(root)):
        down(root)
        running = None
    _install_remote(paths)
    if seconds is not None:
        set_stand_in_seconds(root, seconds)
    if load_seconds is not None or sample_seconds is not None:
        set_stand_in_timing(root, load_seconds, sample_seconds)
    if running:
        if model is not None:
            write_text_atomic(paths["config"], config_text(running, model))
        return running
    if not Path(SSHD).is_file():
        raise UserError(f"{SSHD} not found: install the OpenSSH server (apt-get install openssh-server)")
    for tool in ("ssh", "ssh-keygen"):
        if not shutil.which(tool):
            raise UserError(f"{tool} not found on PATH: install the OpenSSH client (apt-get install openssh-client)")
    ssh_dir = paths["ssh"]
    ssh_dir.mkdir(parents=True, exist_ok=True)
    for name, comment in (("host_key", "rehearsal-host"), ("client_key", "rehearsal-client")):
        if not (ssh_dir / name).is_file():
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(ssh_dir / name)],
                           check=True, capture_output=True)
    user = getpass.getuser()
    stale = _read_pid(paths["pidfile"])
    if stale and _is_our_sshd(stale, root):  # running, but its rehearsal.json is gone or stale
        _stop_pid(stale)
    _write_authorized_keys(paths, rehearsal_slurm.conf_path(root) if slurm else None)
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege-separation directory
    port, pid = _start_sshd(paths, user)
    host_key = (ssh_dir / "host_key.pub").read_text().split()[:2]
    write_text_atomic(paths["known_hosts"], f"[127.0.0.1]:{port} {' '.join(host_key)}\n")
    info = HostInfo(dir=root, port=port, pid=pid, user=user, config=paths["config"],
                    known_hosts=paths["known_hosts"], client_key=ssh_dir / "client_key",
                    remote_dir=paths["remote_dir"], remote_home=paths["remote_home"], bin_dir=paths["bin_dir"],
                    state_dir=paths["state_dir"], sshd_log=ssh_dir / "sshd.log", slurm=slurm)
    try:
        if slurm:
            rehearsal_slurm.start(root)
        _check_login(info)
        write_text_atomic(paths["config"], config_text(info, model or "transfer1-7b"))
        write_json_atomic(paths["json"], info.to_json())
    except BaseException:
        _stop_pid(pid)
        rehearsal_slurm.stop(root)
        raise
    return info


def down(dir: Path) -> bool:
    """Stop the host's sshd, its stand-in containers and its Slurm; files stay. False if nothing was running."""
    root = Path(dir).resolve()
    paths = _paths(root)
    stopped = rehearsal_slurm.stop(root)
    pid = _read_pid(paths["pidfile"])
    if pid and _is_our_sshd(pid, root):
        _stop_pid(pid)
        stopped = True
    with contextlib.suppress(FileNotFoundError):
        paths["pidfile"].unlink()
    docker = [sys.executable, str(paths["bin_dir"] / "docker")]
    if (paths["bin_dir"] / "docker").is_file():
        running = subprocess.run([*docker, "ps", "-q"], capture_output=True, text=True).stdout.split()
        if running:
            subprocess.run([*docker, "kill", *running], capture_output=True)
            stopped = True
    return stopped


def status(dir: Path) -> HostInfo | None:
    """The running host in ``dir``, or None."""
    return _running_info(Path(dir).resolve())


TIMING_KEYS = ("COSMOS_STANDIN_LOAD_SECONDS", "COSMOS_STANDIN_SAMPLE_SECONDS")


def set_stand_in_seconds(dir: Path, seconds: float) -> None:
    """How long each stand-in transfer.py run takes on this host (the stand-in docker's engine setting); drops
    a load/sample split set before."""
    _update_engine(_paths(Path(dir).resolve()), env={"COSMOS_STANDIN_SECONDS": str(seconds),
                                                     **dict.fromkeys(TIMING_KEYS)})


def set_stand_in_timing(dir: Path, load_seconds: float | None, sample_seconds: float | None) -> None:
    """The stand-in's model load (once per transfer.py process) and per-video generation time; None: unchanged."""
    values = (load_seconds, sample_seconds)
    _update_engine(_paths(Path(dir).resolve()),
                   env={key: str(v) for key, v in zip(TIMING_KEYS, values, strict=True) if v is not None})


def _update_engine(paths: dict[str, Path], **changes) -> None:
    """The stand-in docker's engine.json: extra container env and the images it 'has'."""
    engine = paths["state_dir"] / "engine.json"
    try:
        data = json.loads(engine.read_text())
    except (OSError, ValueError):
        data = {"env": {}, "images": [DOCKER_IMAGE]}
    for key, value in changes.items():
        if isinstance(value, dict):  # merged; a None value removes its key
            value = {k: v for k, v in {**data.get(key, {}), **value}.items() if v is not None}
        data[key] = value
    write_json_atomic(engine, data)


def config_text(info: HostInfo, model: str = "transfer1-7b") -> str:
    """A complete config.sh for the host, in config.example_text()'s style and checked by its parser."""
    from ..config import SETTINGS, parse_config_text

    values = {
        "REMOTE_USER": info.user, "REMOTE_HOST": "127.0.0.1", "REMOTE_PORT": str(info.port),
        "SSH_KEY": str(info.client_key), "KNOWN_HOSTS": str(info.known_hosts), "TRANSPORT": "ssh",
        "REMOTE_DIR": str(info.remote_dir), "DOCKER_CMD": "docker", "DOCKER_IMAGE": DOCKER_IMAGE,
        "HF_CACHE_REMOTE": str(info.remote_home / ".cache" / "huggingface"), "MODEL": model,
        **({"BACKEND": "slurm", "SLURM_CONTAINER": "none"} if info.slurm else {}),
    }
    lines = [
        "# REHEARSAL HOST: this config points at a stand-in GPU box on 127.0.0.1 started by",
        f"# `cosmos-tools rehearsal up {shlex.quote(str(info.dir))}`",
        "# (stand-in docker, transfer.py, examples/inference.py, cosmos_framework/scripts/inference.py: no GPU, no "
        "model" + ("; a real Slurm with 4 stand-in GPUs runs them)." if info.slurm else ")."),
        "# Outputs are a cheap ffmpeg filter of the input, with the real names and sizes.",
        "",
    ]
    for s in SETTINGS:
        value = values.get(s.key, s.default)
        lines.append(f"# {s.help}")
        lines.append(f"{s.key}={shlex.quote(value) if value else ''}")
    text = "\n".join(lines) + "\n"
    parsed = {k: v for k, (v, _) in parse_config_text(text, str(info.config)).items()}
    wanted = {s.key: values.get(s.key, s.default) for s in SETTINGS}
    if parsed != wanted:
        raise RuntimeError(f"rehearsal config.sh does not read back: {parsed} != {wanted}")
    return text


def _check_dir(dir: Path) -> Path:
    root = Path(dir).resolve()
    if any(c in str(root) for c in "\n\r\\"):  # sshd_config and authorized_keys cannot carry them
        raise UserError(f"{str(root)!r}: a rehearsal folder path cannot contain a newline or a backslash; "
                        "choose another folder")
    if root.exists() and not root.is_dir():
        raise UserError(f"{root}: exists and is not a folder; choose another rehearsal folder")
    root.mkdir(parents=True, exist_ok=True)
    return root


def _install_remote(paths: dict[str, Path]) -> None:
    """The stand-in checkout, home and bin folder (re-installed on every up, data kept)."""
    checkout = paths["remote_dir"]
    for sub in ("inputs", "outputs", "assets"):
        (checkout / sub).mkdir(parents=True, exist_ok=True)
    for ckpt in CHECKPOINTS:
        target = checkout / "checkpoints" / ckpt
        target.parent.mkdir(parents=True, exist_ok=True)
        target.touch()
    _copy_exec(STAND_IN / "transfer.py", checkout / TRANSFER_PY, 0o644)
    # One stand-in checkout serves every model profile: MODEL picks the entry point (rehearsal up --model).
    (checkout / "examples").mkdir(exist_ok=True)
    _copy_exec(STAND_IN / "inference25.py", checkout / INFERENCE25_PY, 0o644)
    _copy_exec(STAND_IN / "cosmos3_inference.py", checkout / COSMOS3_INFERENCE_PY, 0o644)
    for package in ("cosmos_framework", "cosmos_framework/scripts"):
        (checkout / package / "__init__.py").touch()
    # The critics of `critique` (critic.py): reason1's script at its upstream path, and the reasoner the Cosmos 3
    # stand-in inference.py hands model_mode "reasoner" samples to.
    _copy_exec(STAND_IN / "video_critic.py", checkout / VIDEO_CRITIC_PY, 0o755)
    _copy_exec(STAND_IN / "reasoner_stand_in.py", checkout / REASONER_STAND_IN, 0o644)
    for package in ("cosmos_transfer1", "cosmos_transfer1/diffusion", "cosmos_transfer1/diffusion/inference"):
        (checkout / package / "__init__.py").touch()
    (checkout / "README-REHEARSAL.txt").write_text(
        "Stand-in cosmos-transfer1 checkout of a cosmos-tools rehearsal host: no model, no GPU.\n")
    (paths["remote_home"] / ".cache" / "huggingface").mkdir(parents=True, exist_ok=True)
    paths["state_dir"].mkdir(parents=True, exist_ok=True)
    _update_engine(paths)
    for tool in ("docker", "torchrun", "nvidia-smi"):
        _copy_exec(STAND_IN / tool, paths["bin_dir"] / tool, 0o755)
    _copy_exec(STAND_IN / "python", paths["bin_dir"] / "image" / "python", 0o755)  # the image's python -> python3


def _copy_exec(source: Path, target: Path, mode: int) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    shutil.copyfile(source, tmp)
    tmp.chmod(mode)
    os.replace(tmp, target)


def _write_authorized_keys(paths: dict[str, Path], slurm_conf: Path | None) -> None:
    def option(name: str, value: str) -> str:
        return 'environment="' + f"{name}={value}".replace("\\", "\\\\").replace('"', '\\"') + '"'

    search = [str(paths["bin_dir"])] + [p for p in os.environ.get("PATH", "/usr/bin:/bin").split(":") if p]
    key = (paths["ssh"] / "client_key.pub").read_text().strip()
    env = {"PATH": ":".join(search), "HOME": str(paths["remote_home"]),
           "COSMOS_STANDIN_ENGINE": str(paths["state_dir"] / "engine.json")}
    if slurm_conf is not None:
        env["SLURM_CONF"] = str(slurm_conf)
    line = ",".join(option(name, value) for name, value in env.items()) + f" {key}\n"
    write_text_atomic(paths["ssh"] / "authorized_keys", line)


def _sshd_config(paths: dict[str, Path], port: int, user: str) -> str:
    return "\n".join([
        "# sshd of a cosmos-tools rehearsal host (started by `cosmos-tools rehearsal up`)",
        f"ListenAddress 127.0.0.1:{port}",
        f"HostKey {ssh_config_word(paths['ssh'] / 'host_key', percent=False)}",
        f"PidFile {ssh_config_word(paths['pidfile'], percent=False)}",
        f"AuthorizedKeysFile {ssh_config_word(paths['ssh'] / 'authorized_keys')}",
        f"AllowUsers {user}",
        "PermitUserEnvironment PATH,HOME,SLURM_CONF,COSMOS_STANDIN_ENGINE",
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "PermitRootLogin prohibit-password",
        "UsePAM no",
        "StrictModes no",
        "X11Forwarding no",
        "PrintMotd no",
        "MaxStartups 100:30:200",
        "MaxSessions 50",
        "Subsystem sftp internal-sftp",
        "",
    ])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_sshd(paths: dict[str, Path], user: str) -> tuple[int, int]:
    log = paths["ssh"] / "sshd.log"
    last = ""
    for _ in range(5):
        port = _free_port()
        config = paths["ssh"] / "sshd_config"
        write_text_atomic(config, _sshd_config(paths, port, user))
        with contextlib.suppress(FileNotFoundError):
            paths["pidfile"].unlink()
        done = subprocess.run([SSHD, "-f", str(config), "-E", str(log)], capture_output=True, text=True)
        pid = _wait_listening(port, paths["pidfile"]) if done.returncode == 0 else None
        if pid:
            return port, pid
        last = ((done.stderr.strip() or _tail(log)).splitlines() or ["no output"])[-1]
        if "bind" not in last.lower() and "address already in use" not in last.lower():
            break
    raise UserError(f"sshd did not start for the rehearsal host: {last} (see {log})")


def _wait_listening(port: int, pidfile: Path, timeout: float = 10.0) -> int | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pid = _read_pid(pidfile)
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.settimeout(2)
            if sock.recv(8).startswith(b"SSH-") and pid:
                return pid
        time.sleep(0.05)
    return None


def _check_login(info: HostInfo) -> None:
    done = subprocess.run(info.ssh_argv("command -v docker"), capture_output=True, text=True, timeout=30,
                          stdin=subprocess.DEVNULL)
    if done.returncode != 0 or done.stdout.strip() != str(info.bin_dir / "docker"):
        why = done.stderr.strip().splitlines()[-1:] or [f"docker resolves to {done.stdout.strip()!r}"]
        raise UserError(f"rehearsal host on port {info.port} refused the test login: {why[0]} "
                        f"(see {info.sshd_log})")


def _running_info(root: Path) -> HostInfo | None:
    paths = _paths(root)
    try:
        data = json.loads(paths["json"].read_text())
    except (OSError, ValueError):
        return None
    pid = _read_pid(paths["pidfile"])
    if not pid or pid != data.get("pid") or not _is_our_sshd(pid, root):
        return None
    fields: dict[str, Any] = {k: (Path(v) if k in _PATH_FIELDS else v) for k, v in data.items() if k != "reused"}
    try:
        return HostInfo(**fields, reused=True)
    except TypeError:  # written by another version: start afresh
        return None


_PATH_FIELDS = {"dir", "config", "known_hosts", "client_key", "remote_dir", "remote_home", "bin_dir",
                "state_dir", "sshd_log"}


def _read_pid(pidfile: Path) -> int | None:
    try:
        return int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    """True if ``pid`` runs (a zombie waiting for its parent counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError, IndexError):
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    return True


def _is_our_sshd(pid: int, root: Path) -> bool:
    """True if ``pid`` is the sshd started with this folder's sshd_config (never signal a stranger)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return False
    except OSError:
        return _alive(pid)  # no /proc: trust the pid file
    # sshd rewrites its title to "sshd: /usr/sbin/sshd -f <config> ... [listener]", octal-escaping
    # non-ASCII bytes (strnvis): match the config path in either form
    raw = os.fsencode(str(root / "ssh" / "sshd_config"))
    escaped = b"".join(b"\\%03o" % c if c > 126 or c < 32 else bytes([c]) for c in raw)
    return (raw in cmdline or escaped in cmdline) and _alive(pid)


def _stop_pid(pid: int, timeout: float = 5.0) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _tail(path: Path) -> str:
    try:
        return path.read_text(errors="replace").strip()
    except OSError:
        return ""
