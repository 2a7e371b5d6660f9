"""A real single-node Slurm for the rehearsal host: munge, slurmctld and slurmd, all inside ``DIR/slurm``.

``start(dir)`` writes a munge key, ``slurm.conf`` and ``gres.conf`` (one node, 127.0.0.1, its own ports, four
stand-in GPUs: empty files ``DIR/slurm/dev/nvidia0..3``), starts munged (own key and socket), slurmctld and
slurmd as the current user, and waits until the node takes jobs. ``stop(dir)`` stops them by the pids in their
pid files (checked against their command lines first). No accounting daemon: ``sacct`` has no data here, so
the toolkit reads job state from ``squeue``/``scontrol`` and the files a job writes (docs/slurm.md).
Debian's slurm-wlm and munge packages (``make deps``); verified with Slurm 22.05.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import secrets
import shutil
import socket
import subprocess
import time
from pathlib import Path

from ..errors import UserError

GPUS = 4  # stand-in GPUs of the node
CPUS = 8  # declared CPUs (more than a small machine has: config_overrides), so four 1-GPU jobs run at once
PARTITION = "rehearsal"
DAEMONS = {"munged": "/usr/sbin/munged", "slurmctld": "/usr/sbin/slurmctld", "slurmd": "/usr/sbin/slurmd"}
# Characters slurm.conf cannot carry in a path (it has no quoting for them).
_UNSAFE = re.compile(r"[\s#=\"'\\]")


def folder(root: Path) -> Path:
    return root / "slurm"


def conf_path(root: Path) -> Path:
    return folder(root) / "slurm.conf"


def check_tools(root: Path) -> None:
    """One line naming what is missing (the packages, a path slurm.conf cannot hold)."""
    missing = [name for name, path in DAEMONS.items() if not Path(path).is_file()]
    missing += [tool for tool in ("sbatch", "squeue", "scancel", "scontrol") if not shutil.which(tool)]
    if missing:
        raise UserError(f"{', '.join(missing)} not found: install Slurm and munge (make deps, or apt-get install "
                        "slurm-wlm munge) for `rehearsal up --slurm`")
    if _UNSAFE.search(str(folder(root))):
        raise UserError(f"{str(root)!r}: slurm.conf cannot hold a path with spaces, quotes, '#', '=' or '\\'; "
                        "choose a plainer rehearsal folder for --slurm")


def running(root: Path) -> bool:
    """True if this folder's slurmctld and slurmd both run."""
    return all(_our_pid(root, name) for name in ("slurmctld", "slurmd"))


def start(root: Path) -> Path:
    """Start munge, slurmctld and slurmd for ``root`` (unless they run); the slurm.conf clients need."""
    check_tools(root)
    base = folder(root)
    if running(root) and _our_pid(root, "munged"):
        return conf_path(root)
    stop(root)
    for sub in ("state", "spool", "dev", "munge", "log"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    (base / "munge").chmod(0o700)
    key = base / "munge" / "munge.key"
    if not key.is_file():
        key.write_bytes(secrets.token_bytes(1024))
    key.chmod(0o400)
    for i in range(GPUS):
        (base / "dev" / f"nvidia{i}").touch()
    host = socket.gethostname().split(".")[0]
    ctld_port, node_port = _free_port(), _free_port()
    (base / "slurm.conf").write_text(_slurm_conf(base, host, ctld_port, node_port))
    (base / "gres.conf").write_text(f"AutoDetect=off\nNodeName={host} Name=gpu "
                                    f"File={base}/dev/nvidia[0-{GPUS - 1}]\n")
    munge = base / "munge"
    _run([DAEMONS["munged"], f"--key-file={key}", f"--socket={munge / 'munge.sock'}",
          f"--pid-file={munge / 'munged.pid'}", f"--log-file={base / 'log' / 'munged.log'}",
          f"--seed-file={munge / 'munged.seed'}", "--force"], "munged")
    env = client_env(root)
    try:
        _run([DAEMONS["slurmctld"], "-f", str(conf_path(root)), "-i"], "slurmctld", env)
        _wait(lambda: subprocess.run(["scontrol", "ping"], env=env, capture_output=True, text=True).stdout.count("UP"),
              "slurmctld did not answer", base / "log" / "slurmctld.log")
        _run([DAEMONS["slurmd"], "-f", str(conf_path(root))], "slurmd", env)
        _wait(lambda: _node_ready(host, env), "the node did not come up", base / "log" / "slurmd.log")
    except BaseException:
        stop(root)
        raise
    return conf_path(root)


def stop(root: Path) -> bool:
    """Cancel this cluster's jobs (their processes outlive slurmd otherwise), then stop its slurmd, slurmctld and
    munged (pids checked); False if none ran."""
    stopped = False
    if _our_pid(root, "slurmctld"):
        env = client_env(root)
        user = pwd.getpwuid(os.getuid()).pw_name
        subprocess.run(["scancel", "--user", user], env=env, capture_output=True, timeout=30)
        with contextlib.suppress(UserError):
            _wait(lambda: not subprocess.run(["squeue", "-h"], env=env, capture_output=True, text=True).stdout.strip(),
                  "jobs did not end", folder(root) / "log" / "slurmctld.log", timeout=20)
    for name in ("slurmd", "slurmctld", "munged"):
        pid = _our_pid(root, name)
        if pid:
            _stop(pid)
            stopped = True
    return stopped


def client_env(root: Path) -> dict[str, str]:
    """The environment Slurm's client commands need for this cluster."""
    return {**os.environ, "SLURM_CONF": str(conf_path(root))}


def _slurm_conf(base: Path, host: str, ctld_port: int, node_port: int) -> str:
    user = "root" if os.geteuid() == 0 else os.environ.get("USER") or "root"
    return "\n".join([
        "# Slurm of a cosmos-tools rehearsal host (`cosmos-tools rehearsal up DIR --slurm`): one node, stand-in GPUs",
        f"ClusterName=rehearsal{ctld_port}",
        f"SlurmctldHost={host}(127.0.0.1)",
        f"SlurmctldPort={ctld_port}",
        f"SlurmdPort={node_port}",
        f"SlurmUser={user}",
        f"SlurmdUser={user}",
        "AuthType=auth/munge",
        f"AuthInfo=socket={base}/munge/munge.sock",
        f"StateSaveLocation={base}/state",
        f"SlurmdSpoolDir={base}/spool",
        f"SlurmctldPidFile={base}/slurmctld.pid",
        f"SlurmdPidFile={base}/slurmd.pid",
        f"SlurmctldLogFile={base}/log/slurmctld.log",
        f"SlurmdLogFile={base}/log/slurmd.log",
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none",
        "JobAcctGatherType=jobacct_gather/none",
        "AccountingStorageType=accounting_storage/none",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_Core",
        "GresTypes=gpu",
        "ReturnToService=2",
        "SlurmdParameters=config_overrides",
        "MpiDefault=none",
        "KillWait=5",  # seconds between SIGTERM and SIGKILL (timeout, scancel): time for the runner's exit code
        "OverTimeLimit=0",
        "MinJobAge=300",
        f"NodeName={host} NodeAddr=127.0.0.1 CPUs={CPUS} RealMemory=4000 Gres=gpu:{GPUS} State=UNKNOWN",
        f"PartitionName={PARTITION} Nodes={host} Default=YES MaxTime=INFINITE State=UP",
        "",
    ])


def _node_ready(host: str, env: dict[str, str]) -> bool:
    done = subprocess.run(["sinfo", "-h", "-n", host, "-o", "%T"], env=env, capture_output=True, text=True)
    state = done.stdout.strip().lower()
    if any(word in state for word in ("inval", "drain", "down")):
        subprocess.run(["scontrol", "update", f"nodename={host}", "state=resume"], env=env, capture_output=True)
        return False
    return state.startswith(("idle", "mix", "alloc"))


def _run(argv: list[str], what: str, env: dict[str, str] | None = None) -> None:
    done = subprocess.run(argv, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        why = (done.stderr.strip() or done.stdout.strip() or "no output").splitlines()[-1]
        raise UserError(f"{what} did not start for the rehearsal host: {why}")


def _wait(ready, what: str, log: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return
        time.sleep(0.2)
    tail = log.read_text(errors="replace").strip().splitlines()[-1:] if log.is_file() else []
    raise UserError(f"rehearsal Slurm: {what} within {timeout:.0f} s ({tail[0] if tail else 'no log'}; see {log})")


def _pid_file(root: Path, name: str) -> Path:
    return folder(root) / ("munge/munged.pid" if name == "munged" else f"{name}.pid")


def _our_pid(root: Path, name: str) -> int | None:
    """The pid of this folder's daemon ``name`` if it runs (its command line names this folder's files)."""
    try:
        pid = int(_pid_file(root, name).read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    return pid if os.fsencode(str(folder(root))) in cmdline and _alive(pid) else None


def _alive(pid: int) -> bool:
    with contextlib.suppress(OSError, IndexError):
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    return False


def _stop(pid: int, timeout: float = 10.0) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, 15)
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, 9)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
