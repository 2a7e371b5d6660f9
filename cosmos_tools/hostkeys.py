"""Which host keys we trust: the user's ~/.ssh/known_hosts and the project's KNOWN_HOSTS, and the
verdict on the key a box presents (known, changed, unknown). No network here: ``ssh.py`` fetches the key.
"""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from .config import Config
from .errors import RemoteError, UserError

if TYPE_CHECKING:
    from paramiko import HostKeys, PKey

Verdict = Literal["known", "changed", "unknown"]
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


def load_known_hosts(cfg: Config) -> tuple[HostKeys, HostKeys]:
    """(user HostKeys, project HostKeys), each empty when its file is missing."""
    return (read_known_hosts(user_known_hosts(), "remove or rename that folder"),
            read_known_hosts(cfg.local_path("KNOWN_HOSTS"), "point KNOWN_HOSTS in config.sh at a file "
                             "(default .cosmos/known_hosts) or move the folder away"))


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


def classify_host_key(cfg: Config, name: str, key: PKey, user_keys: HostKeys, project_keys: HostKeys
                      ) -> tuple[Verdict, Path | None, PKey | None]:
    """("known", file, key) | ("changed", file, old key) | ("unknown", None, None) for a host's key."""
    files = ((user_known_hosts(), user_keys), (cfg.local_path("KNOWN_HOSTS"), project_keys))
    same_type = [(path, entries[key.get_name()]) for path, hk in files
                 if (entries := hk.lookup(name)) and key.get_name() in entries]
    for path, old in same_type:
        if old == key:
            return "known", path, old
    if same_type:
        return "changed", *same_type[0]
    return "unknown", None, None


def check_host_key(cfg: Config, name: str, key: PKey, user_keys: HostKeys, project_keys: HostKeys) -> None:
    """Refuse a host key that neither known_hosts file vouches for; accept one that matches."""
    status, path, old = classify_host_key(cfg, name, key, user_keys, project_keys)
    if status == "changed" and old is not None:  # "changed" always comes with the old key
        fix = (f"run: ssh-keygen -R '{name}' -f '{path}'" if path == user_known_hosts()
               else "run: cosmos-tools trust --replace")
        raise RemoteError(f"HOST KEY OF {name} HAS CHANGED (now {fingerprint(key)}, {path} has {fingerprint(old)}): "
                          "someone may be intercepting the connection; check the key with your provider "
                          f"before trusting it, then remove the old line from {path} ({fix})")
    if status == "unknown":
        raise RemoteError(f"host key of {name} is not known ({fingerprint(key)}); "
                          "if this is your GPU box, run: cosmos-tools trust")
