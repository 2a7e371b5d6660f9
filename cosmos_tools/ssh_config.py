"""The user's OpenSSH client config (~/.ssh/config and the files it ``Include``s), read with paramiko's parser,
and the route it gives to the box: each host on the way (the ``ProxyJump`` hosts, then the box) with its
host name, port, user, keys and host-key settings, and where each value came from (``~/.ssh/config:12``).

Precedence for the box: a value set in config.sh or the environment wins; a key left empty (or unset) takes
the alias's value; then the toolkit's default. Jump hosts take what ``ssh <hop>`` would: the ``user@host:port``
written in ProxyJump, then the hop's own Host block, then OpenSSH's defaults (local user, port 22).
Options that would change where or how we connect and that we do not implement are refused with the line
that sets them; ``StrictHostKeyChecking no``/``accept-new``/``ask`` never weaken our check (one warning).
"""

from __future__ import annotations

import getpass
import glob
import os
import re
import shlex
from dataclasses import dataclass, field, replace
from pathlib import Path

import click

from .config import Config
from .errors import UserError
from .hostkeys import host_id

MAX_INCLUDE_DEPTH = 16  # OpenSSH's READCONF_MAX_DEPTH
MAX_HOPS = 10
KEEPALIVE_COUNT_DEFAULT = 3  # OpenSSH's ServerAliveCountMax default
# Options that change where or how ssh connects and that the toolkit does not implement: option -> what to do.
UNSUPPORTED = {
    "ProxyCommand": "use ProxyJump instead (cosmos-tools runs no commands from your ssh config)",
    "ProxyUseFdpass": "use ProxyJump instead",
    "KnownHostsCommand": "record the key with cosmos-tools trust instead",
    "CertificateFile": "use a plain key (IdentityFile or SSH_KEY)",
    "PKCS11Provider": "load the key into ssh-agent instead",
    "SecurityKeyProvider": "load the key into ssh-agent instead",
    "BindAddress": "remove it for this host",
    "BindInterface": "remove it for this host",
    "CanonicalizeHostname": "write the full host name in HostName instead",
}
WEAK_STRICT = {"no", "off", "accept-new", "ask"}
_warned: set[str] = set()  # warnings already shown by this command


class SshConfigError(UserError):
    """~/.ssh/config says something the toolkit cannot honour (names the file and line)."""


def user_config_path() -> Path:
    return Path(os.path.expanduser("~/.ssh/config"))


def shown(path: Path | str) -> str:
    """A path as people write it: ``~/...`` under the home folder."""
    home = os.path.expanduser("~").rstrip("/")
    text = str(path)
    return "~" + text[len(home):] if home and (text == home or text.startswith(home + "/")) else text


@dataclass
class SshConfigText:
    """The user's config with every Include inlined, and the file:line each line came from."""

    lines: list[str] = field(default_factory=list)
    origins: list[str] = field(default_factory=list)

    def add(self, line: str, origin: str) -> None:
        self.lines.append(line)
        self.origins.append(origin)


def _words(value: str) -> list[str]:
    try:
        return shlex.split(value, comments=False, posix=True)
    except ValueError:
        return value.split()


def _inline(path: Path, out: SshConfigText, depth: int, where: str) -> None:
    if depth > MAX_INCLUDE_DEPTH:
        raise SshConfigError(f"{where}: Include nested more than {MAX_INCLUDE_DEPTH} deep; check for an Include loop")
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise SshConfigError(f"{shown(path)}: cannot read it ({exc.strerror}); fix its permissions") from None
    header = None  # the Host/Match line of the block we are in, re-emitted after an Include
    for lineno, line in enumerate(text.splitlines(), start=1):
        origin = f"{shown(path)}:{lineno}"
        match = re.match(r"\s*(\w+)(?:\s*=\s*|\s+)(.*)$", line)
        keyword = match.group(1).lower() if match else ""
        if keyword in ("host", "match"):
            header = (line, origin)
        if keyword != "include" or match is None:
            out.add(line, origin)
            continue
        for pattern in _words(match.group(2)):
            pattern = os.path.expanduser(pattern)
            if not os.path.isabs(pattern):
                pattern = str(user_config_path().parent / pattern)
            for name in sorted(glob.glob(pattern)):
                _inline(Path(name), out, depth + 1, origin)
            if header:
                out.add(*header)


def read_user_config() -> SshConfigText | None:
    """~/.ssh/config with its Includes inlined, or None when there is none."""
    path = user_config_path()
    if not path.is_file():
        return None
    out = SshConfigText()
    _inline(path, out, 0, shown(path))
    _refuse_unreadable_matches(out)
    return out


def _refuse_unreadable_matches(text: SshConfigText) -> None:
    """``Match exec`` (and criteria paramiko does not know) are refused before any lookup could run them."""
    import paramiko

    for line, origin in zip(text.lines, text.origins, strict=True):
        match = re.match(r"\s*match(?:\s*=\s*|\s+)(.*)$", line, re.IGNORECASE)
        if not match:
            continue
        if any(word.lower() in ("exec", "!exec") for word in _words(match.group(1))):
            raise SshConfigError(f"{origin}: Match exec is not supported (cosmos-tools runs no commands from your "
                                 "ssh config); use Host blocks for the GPU box and its jump hosts")
        try:
            paramiko.SSHConfig.from_text(line)
        except paramiko.ssh_exception.ConfigParseError as exc:
            raise SshConfigError(f"{origin}: {line.strip()!r} is not supported here ({exc}); use Host blocks for "
                                 "the GPU box and its jump hosts") from None


class SshConfig:
    """Lookups in the user's config, each value with the line that set it."""

    def __init__(self, text: SshConfigText | None) -> None:
        import paramiko

        self.text = text
        self._paramiko = paramiko
        self._parsed = paramiko.SSHConfig.from_text("\n".join(text.lines)) if text else None

    def lookup(self, name: str) -> dict:
        if self._parsed is None:
            return {}
        options = dict(self._parsed.lookup(name))
        if options.get("hostname") == name and self.origin(name, "hostname") is None:
            del options["hostname"]  # paramiko fills it in; we want to know whether the file set it
        return {key: value for key, value in options.items() if value is not None}

    def origin(self, name: str, key: str) -> str | None:
        """``file:line`` of the line that gave ``name`` its (first) ``key`` value, or None."""
        index = self._line_of(name, key)
        return None if index is None or self.text is None else self.text.origins[index]

    def words(self, name: str, key: str) -> list[str]:
        """The value of ``key`` for ``name`` as ssh splits it: quoted words (paramiko keeps ``"a b" c`` as one)."""
        index = self._line_of(name, key)
        if index is None or self.text is None:
            return []
        return _words(re.split(r"\s*=\s*|\s+", self.text.lines[index].strip(), maxsplit=1)[1])

    def _line_of(self, name: str, key: str) -> int | None:
        if self.text is None:
            return None
        lines = self.text.lines

        def has(count: int) -> bool:
            options = self._paramiko.SSHConfig.from_text("\n".join(lines[:count]))._lookup(name, final=False)
            return options.get(key) is not None

        if not has(len(lines)):
            return None
        low, high = 0, len(lines)  # has(high) is true, has(low) false
        while high - low > 1:
            middle = (low + high) // 2
            if has(middle):
                high = middle
            else:
                low = middle
        return high - 1


@dataclass(frozen=True)
class Endpoint:
    """One host on the way to the box: a jump host (``hop`` 1, 2, ...) or the box itself (``hop`` 0)."""

    name: str
    hostname: str
    port: int
    user: str
    hop: int
    keys: tuple[Path, ...] = ()
    keys_from: str = ""  # "SSH_KEY" or the ssh config line: for messages
    identities_only: bool = False
    agent: str | None = None  # agent socket; None: $SSH_AUTH_SOCK; "": no agent
    known_hosts: tuple[Path, ...] = ()  # the user's known_hosts files (the project's KNOWN_HOSTS is read too)
    key_alias: str = ""
    timeout: float = 15.0

    @property
    def key_name(self) -> str:
        """The name its host key is filed under (HostKeyAlias as is, else ``host`` or ``[host]:port``)."""
        return self.key_alias or host_id(self.hostname, self.port)

    @property
    def label(self) -> str:
        return "the GPU box" if self.hop == 0 else f"jump host {self.hop} ({self.name})"


@dataclass(frozen=True)
class Route:
    """The jump hosts in order, then the box; the silence limit; where each effective value came from."""

    hops: tuple[Endpoint, ...]
    box: Endpoint
    alive: float
    sources: dict[str, str]  # setting -> where its effective value came from; HOSTNAME: the alias's HostName line
    details: tuple[str, ...] = ()  # one line per honoured ssh config option, for `cosmos-tools config`
    alive_from_ssh_config: bool = False  # the silence limit is the alias's ServerAliveInterval x (CountMax + 1)

    @property
    def endpoints(self) -> tuple[Endpoint, ...]:
        return (*self.hops, self.box)


def warn_once(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        click.echo(f"warning: {message}", err=True)


def _expand(value: str, end: dict[str, str]) -> str:
    """ssh_config %-tokens and a leading ~ in a path value."""
    tokens = {"%%": "%", "%d": os.path.expanduser("~"), "%u": getpass.getuser(), **end}
    value = re.sub(r"%.", lambda m: tokens.get(m.group(0), m.group(0)), value)
    return os.path.expanduser(value)


def _number(conf: SshConfig, name: str, option: str, value: str) -> float:
    """A whole number >= 0 from ssh config (or a ProxyJump port), or one line naming where it was written."""
    if value.isdigit():
        return float(value)
    where = conf.origin(name, option.lower()) or "ProxyJump"
    raise SshConfigError(f"{where}: {option} {value!r} of {name!r} is not a whole number; fix it")


def _check_supported(conf: SshConfig, name: str, options: dict) -> None:
    for option, fix in UNSUPPORTED.items():
        key = option.lower()
        value = options.get(key)
        if value is None or (key == "canonicalizehostname" and str(value).lower() in ("no", "none")):
            continue
        origin = conf.origin(name, key) or shown(user_config_path())
        raise SshConfigError(f"{origin}: {option} is not supported by cosmos-tools for host {name!r}; {fix}")


def _endpoint(conf: SshConfig, name: str, hop: int, given: dict[str, str], cfg: Config,
              sources: dict[str, str], details: list[str]) -> tuple[Endpoint, dict]:
    """An endpoint from the values given (config.sh or the ProxyJump entry) over the alias's, then defaults."""
    options = conf.lookup(name)
    _check_supported(conf, name, options)

    def pick(key: str, setting: str) -> str | None:
        if setting in given:
            return given[setting]
        if key in options:
            sources[setting] = conf.origin(name, key) or shown(user_config_path())
            return str(options[key])
        return None

    hostname = options.get("hostname", name)
    if "hostname" in options:
        sources["HOSTNAME"] = conf.origin(name, "hostname") or ""
    port = int(_number(conf, name, "Port", pick("port", "REMOTE_PORT") or "22"))
    user = pick("user", "REMOTE_USER") or getpass.getuser()
    tokens = {"%h": hostname, "%p": str(port), "%r": user, "%n": name}
    keys: tuple[Path, ...]
    if "SSH_KEY" in given:
        keys, keys_from = (cfg.local_path("SSH_KEY"),), "SSH_KEY"
    else:
        keys = tuple(Path(_expand(k, tokens)) for k in options.get("identityfile", []))
        keys_from = conf.origin(name, "identityfile") or "" if keys else ""
        if keys:
            sources["SSH_KEY"] = keys_from
    identities_only = "SSH_KEY" in given or str(options.get("identitiesonly", "no")).lower() == "yes"
    agent = options.get("identityagent")
    if agent is not None:
        agent = "" if agent.lower() == "none" else None if agent == "SSH_AUTH_SOCK" else _expand(
            os.environ.get(agent[1:], "") if agent.startswith("$") else agent, tokens)
        details.append(f"IdentityAgent {options['identityagent']} ({conf.origin(name, 'identityagent')})")
    files = [_expand(w, tokens) for w in conf.words(name, "userknownhostsfile")]
    known = tuple(Path(f) for f in files if f not in ("none", "/dev/null")) if files else \
        (Path(os.path.expanduser("~/.ssh/known_hosts")),)
    if files:
        details.append(f"UserKnownHostsFile {options['userknownhostsfile']} for {name} "
                       f"({conf.origin(name, 'userknownhostsfile')}), read with KNOWN_HOSTS")
    strict = str(options.get("stricthostkeychecking", "")).lower()
    if strict in WEAK_STRICT:
        warn_once(f"{conf.origin(name, 'stricthostkeychecking')}: StrictHostKeyChecking {strict} is ignored: "
                  "cosmos-tools connects only to hosts whose key is in known_hosts (cosmos-tools trust records one)")
    timeout = pick("connecttimeout", "SSH_TIMEOUT")
    alias = options.get("hostkeyalias", "")
    if alias:
        details.append(f"HostKeyAlias {alias} for {name} ({conf.origin(name, 'hostkeyalias')})")
    end = Endpoint(name=name, hostname=hostname, port=port, user=user, hop=hop, keys=keys, keys_from=keys_from,
                   identities_only=identities_only, agent=agent, known_hosts=known, key_alias=alias,
                   timeout=cfg.float("SSH_TIMEOUT") if timeout is None or "SSH_TIMEOUT" in given
                   else _number(conf, name, "ConnectTimeout", timeout))
    return end, options


def parse_jump(entry: str, origin: str) -> tuple[str, dict[str, str]]:
    """``[ssh://][user@]host[:port]`` -> (host, {"REMOTE_USER": ..., "REMOTE_PORT": ...} for what it gives)."""
    text = entry.removeprefix("ssh://")
    given: dict[str, str] = {}
    if "@" in text:
        given["REMOTE_USER"], text = text.rsplit("@", 1)
    match = re.fullmatch(r"\[([^]]+)\](?::(\d+))?|([^:\[\]]+)(?::(\d+))?", text)
    if not match or not text:
        raise SshConfigError(f"{origin}: ProxyJump entry {entry!r} is not [user@]host[:port]; fix it")
    host = match.group(1) or match.group(3)
    port = match.group(2) or match.group(4)
    if port:
        given["REMOTE_PORT"] = port
    return host, given


def _jumps(conf: SshConfig, name: str, options: dict, depth: int = 0) -> list[tuple[str, dict, str]]:
    """The ProxyJump chain in front of ``name``: [(host, given values, origin)], the first hop first.
    Like ssh, the first hop's own ProxyJump is followed; the others' are replaced by the chain."""
    value = options.get("proxyjump")
    if not value or value.lower() == "none":
        return []
    origin = conf.origin(name, "proxyjump") or shown(user_config_path())
    if depth >= MAX_HOPS:
        raise SshConfigError(f"{origin}: ProxyJump chain longer than {MAX_HOPS} hosts; check for a loop")
    chain = [(*parse_jump(entry.strip(), origin), origin) for entry in value.split(",")]
    first = chain[0][0]
    return _jumps(conf, first, conf.lookup(first), depth + 1) + chain


def resolve(cfg: Config) -> Route:
    """The route to REMOTE_HOST: config.sh/env values first, then ~/.ssh/config, then defaults."""
    cfg.require("REMOTE_HOST")
    conf = SshConfig(read_user_config())
    given = {key: cfg[key] for key in ("REMOTE_USER", "REMOTE_PORT", "SSH_KEY", "SSH_TIMEOUT")
             if cfg.sources[key] != "default" and cfg[key]}
    sources = {key: cfg.sources[key] for key in ("REMOTE_USER", "REMOTE_PORT", "SSH_KEY", "SSH_TIMEOUT",
                                                 "SSH_ALIVE_TIMEOUT")}
    details: list[str] = []
    box, options = _endpoint(conf, cfg["REMOTE_HOST"], 0, given, cfg, sources, details)
    if "REMOTE_USER" not in given and "user" not in options:
        box = replace(box, user=cfg["REMOTE_USER"])
    if "REMOTE_PORT" not in given and "port" not in options:
        box = replace(box, port=cfg.int("REMOTE_PORT"))
    hops = []
    for number, (host, hop_given, origin) in enumerate(_jumps(conf, cfg["REMOTE_HOST"], options), start=1):
        hop, _ = _endpoint(conf, host, number, hop_given, cfg, {}, details)
        hops.append(hop)
        details.append(f"jump host {number}: {hop.user}@{hop.hostname}:{hop.port} ({origin})")
    alive = cfg.float("SSH_ALIVE_TIMEOUT")
    interval = _number(conf, cfg["REMOTE_HOST"], "ServerAliveInterval", options.get("serveraliveinterval", "0"))
    from_alias = cfg.sources["SSH_ALIVE_TIMEOUT"] == "default" and interval > 0
    if from_alias:
        count = int(_number(conf, cfg["REMOTE_HOST"], "ServerAliveCountMax",
                            options.get("serveralivecountmax", str(KEEPALIVE_COUNT_DEFAULT))))
        alive = interval * (count + 1)
        sources["SSH_ALIVE_TIMEOUT"] = f"{conf.origin(cfg['REMOTE_HOST'], 'serveraliveinterval')} " \
                                       f"(ServerAliveInterval {interval:g} x (ServerAliveCountMax {count} + 1))"
    return Route(hops=tuple(hops), box=box, alive=alive, sources=sources, details=tuple(details),
                 alive_from_ssh_config=from_alias)
