"""Which host keys we trust: the user's known_hosts (~/.ssh/known_hosts, or the UserKnownHostsFile ~/.ssh/config
gives the host) and the project's KNOWN_HOSTS, and the verdict on the key a box or jump host presents (known,
changed, unknown). No network here: ``ssh.py`` fetches the key.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from .config import Config
from .errors import RemoteError, UserError

if TYPE_CHECKING:
    from paramiko import HostKeys, PKey

Verdict = Literal["known", "changed", "unknown"]
KnownHosts = list[tuple[Path, "HostKeys"]]  # the files read, in order; the project's KNOWN_HOSTS last
KEY_TYPE_NAMES = {"ssh-ed25519": "ED25519", "ssh-rsa": "RSA", "ssh-dss": "DSA"}


def user_known_hosts() -> Path:
    """The user's own OpenSSH known_hosts file."""
    return Path(os.path.expanduser("~/.ssh/known_hosts"))


def host_id(host: str, port: int) -> str:
    """The name OpenSSH files a host key under: ``host``, or ``[host]:port`` off port 22."""
    return host if port == 22 else f"[{host}]:{port}"


def fingerprint(key: PKey) -> str:
    """``ED25519 SHA256:...``, as ``ssh-keygen -l`` prints it."""
    digest = base64.b64encode(hashlib.sha256(key.asbytes()).digest()).decode().rstrip("=")
    name = key.get_name()
    kind = "ECDSA" if name.startswith("ecdsa-") else KEY_TYPE_NAMES.get(name, name)
    return f"{kind} SHA256:{digest}"


def load_known_hosts(cfg: Config, user_files: Sequence[Path] | None = None) -> KnownHosts:
    """[(file, HostKeys)]: the user's files (``user_files``, default ~/.ssh/known_hosts), then the project's
    KNOWN_HOSTS; a missing file has no keys."""
    users = [user_known_hosts()] if user_files is None else list(user_files)
    files = [(path, read_known_hosts(path, "remove or rename that folder")) for path in users]
    project = cfg.local_path("KNOWN_HOSTS")
    return [*files, (project, read_known_hosts(project, "point KNOWN_HOSTS in config.sh at a file "
                                               "(default .cosmos/known_hosts) or move the folder away"))]


def read_known_hosts(path: Path, folder_fix: str) -> HostKeys:
    """The keys of a known_hosts file, line by line: lines paramiko cannot read (markers such as
    @cert-authority, key types it lacks, damaged lines) are skipped instead of losing the whole file.
    A folder in its place is refused (``folder_fix`` says how): its keys would silently count as unknown."""
    import paramiko
    from paramiko.hostkeys import HostKeyEntry

    if path.is_dir():
        raise UserError(f"{path}: known_hosts is a folder, not a file; {folder_fix}")
    keys = paramiko.HostKeys()
    try:
        text = path.read_text(encoding="utf-8", errors="replace") if path.is_file() else ""
    except OSError as exc:
        raise UserError(f"{path}: cannot read known_hosts ({exc.strerror}); check its permissions") from None
    for lineno, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith(("#", "@")):
            continue
        try:
            entry = HostKeyEntry.from_line(line, lineno)
        except Exception:  # noqa: S112 (paramiko raises several types for one bad line: skip it)
            continue
        if entry is not None and entry.key is not None:
            for name in entry.hostnames:
                keys.add(name, entry.key.get_name(), entry.key)
    return keys


def classify_host_key(name: str, key: PKey, known: KnownHosts) -> tuple[Verdict, Path | None, PKey | None]:
    """("known", file, key) | ("changed", file, old key) | ("unknown", None, None) for a host's key."""
    same_type = [(path, entries[key.get_name()]) for path, hk in known
                 if (entries := hk.lookup(name)) and key.get_name() in entries]
    for path, old in same_type:
        if old == key:
            return "known", path, old
    if same_type:
        return "changed", *same_type[0]
    return "unknown", None, None


def check_host_key(name: str, key: PKey, known: KnownHosts, what: str = "") -> None:
    """Refuse a host key that no known_hosts file vouches for; accept one that matches. ``what`` names a
    jump host (``jump host 1 (bastion)``); empty for the GPU box."""
    status, path, old = classify_host_key(name, key, known)
    project_file = known[-1][0]
    about = f" ({what})" if what else ""
    if status == "changed" and old is not None:  # "changed" always comes with the old key
        fix = ("run: cosmos-tools trust --replace" if path == project_file
               else f"run: ssh-keygen -R '{name}' -f '{path}'")
        raise RemoteError(f"HOST KEY OF {name}{about} HAS CHANGED (now {fingerprint(key)}, {path} has "
                          f"{fingerprint(old)}): someone may be intercepting the connection; check the key with your "
                          f"provider before trusting it, then remove the old line from {path} ({fix})")
    if status == "unknown":
        whose = "your jump host" if what else "your GPU box"
        raise RemoteError(f"host key of {name}{about} is not known ({fingerprint(key)}); "
                          f"if this is {whose}, run: cosmos-tools trust")
