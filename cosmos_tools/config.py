"""One config, one reader: the settings registry and a strict config.sh parser.

config.sh is plain ``KEY=value`` lines that a user's own shell scripts may ``source``; cosmos-tools and
its scripts never execute it. This module reads it: unquoted words, 'single-quoted' literals,
"double-quoted" strings with ``\\`` escapes, and ``$VAR`` / ``${VAR}`` taken from earlier keys or the
environment. Anything bash would *run* (``$(...)``, backticks, ``;``, pipes, words after the value) is
refused with the file and line. Environment variables override the file.

Warnings (stderr for every command, listed by ``cosmos-tools config``): a key that is not a setting and
that no later line uses as ``$KEY`` (a typo, named with "did you mean"), and CRLF line endings (read as
LF here, but bash would keep a ``\r`` at the end of every value).
"""

from __future__ import annotations

import difflib
import os
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import click

from .errors import UserError


@dataclass(frozen=True)
class Setting:
    key: str
    default: str
    help: str
    kind: str = "str"  # str, int, float, path
    fallback: str = ""  # the value when the key is empty and ~/.ssh/config has none for REMOTE_HOST


# The one place that lists every setting. config.sh.example is checked against it by the tests.
SETTINGS: tuple[Setting, ...] = (
    Setting("REMOTE_USER", "", "user on the GPU box; empty: the User of REMOTE_HOST in ~/.ssh/config, else ubuntu",
            fallback="ubuntu"),
    Setting("REMOTE_HOST", "", "GPU box host name, IP or ~/.ssh/config alias (required for remote steps)"),
    Setting("REMOTE_PORT", "", "SSH port of the GPU box; empty: the Port of REMOTE_HOST in ~/.ssh/config, else 22",
            "int", fallback="22"),
    Setting("SSH_KEY", "", "private key file; empty: the IdentityFile of REMOTE_HOST in ~/.ssh/config, else the "
            "SSH agent and ~/.ssh/id_*", "path"),
    Setting("KNOWN_HOSTS", ".cosmos/known_hosts",
            "project known_hosts, read besides ~/.ssh/known_hosts (relative to the project)", "path"),
    Setting("SSH_TIMEOUT", "", "seconds to wait when connecting; empty: ConnectTimeout of REMOTE_HOST in "
            "~/.ssh/config, else 15", "float", fallback="15"),
    Setting("SSH_ALIVE_TIMEOUT", "",
            "seconds the box may stay silent (keepalives unanswered) before the connection counts as lost; empty: "
            "ServerAliveInterval x (ServerAliveCountMax + 1) of REMOTE_HOST in ~/.ssh/config, else 20",
            "float", fallback="20"),
    Setting("TRANSPORT", "ssh", "ssh, or local when the toolkit runs on the GPU box itself"),
    Setting("MODEL", "transfer1-7b",
            "model profile of prompts without a _model key: transfer1-7b, transfer2.5-2b, cosmos3-nano, cosmos3-super "
            "or cosmos3-edge (README: Choosing a model, Cosmos 3)"),
    Setting("REMOTE_DIR", "/home/ubuntu/cosmos-transfer1",
            "checkout of MODEL's repository on the GPU box (cosmos-transfer1, cosmos-transfer2.5 or cosmos-framework), "
            "mounted at /workspace"),
    Setting("TRANSFER25_COMMIT", "2ff49d0",
            "cosmos-transfer2.5 commit the transfer2.5-2b profile is written for (recorded in spec_used.json)"),
    Setting("DISABLE_GUARDRAILS", "no",
            "yes passes --disable-guardrails to Cosmos-Transfer2.5 and --no-guardrails to Cosmos 3 (the licenses ask "
            "for an equivalent safeguard)"),
    Setting("COSMOS3_COMMIT", "5eee9ed",
            "cosmos-framework commit the cosmos3-* profiles are written for (recorded in spec_used.json)"),
    Setting("COSMOS3_CHECKPOINT", "",
            "--checkpoint-path of cosmos3-* runs; empty: the profile's registry name (Cosmos3-Nano, Cosmos3-Super, "
            "Cosmos3-Edge), else a checkpoint folder on the GPU box relative to /workspace"),
    Setting("COSMOS3_DIFFUSION_CACHE", "no",
            "yes passes --diffusion-cache to Cosmos 3 (skips steps: faster, different pixels); no passes "
            "--no-diffusion-cache"),
    Setting("CHECKPOINT_DIR_REMOTE", "checkpoints",
            "checkpoint folder as seen inside the container (relative to /workspace)"),
    Setting("DOCKER_IMAGE", "cosmos-transfer1:latest", "Docker image with Cosmos-Transfer1's dependencies"),
    Setting("DOCKER_CMD", "docker", "docker command on the GPU box: docker, or 'sudo docker'"),
    Setting("DOCKER_GPUS", "all", "value of docker run --gpus"),
    Setting("DOCKER_SHM_SIZE", "16g", "shared memory for torch/NCCL (docker run --shm-size)"),
    Setting("DOCKER_IPC", "host", "docker run --ipc mode; empty to leave Docker's default"),
    Setting("HF_CACHE_REMOTE", ".cache/huggingface",
            "Hugging Face cache on the GPU box (relative to the remote home), mounted into the container"),
    Setting("DOCKER_USER", "auto",
            "user the container runs as: auto (the remote user's uid:gid), root, or UID:GID"),
    Setting("DOCKER_EXTRA_ARGS", "", "extra docker run words, split like a shell would"),
    Setting("NUM_GPU", "1", "GPUs per run: 1 runs python3, more runs torchrun", "int"),
    Setting("BACKEND", "docker",
            "where jobs run: docker (the GPU box's own queue) or slurm (sbatch on a cluster: REMOTE_HOST is its login "
            "node, REMOTE_DIR on the shared filesystem; docs/slurm.md)"),
    Setting("SLURM_PARTITION", "", "sbatch --partition; empty: the cluster's default partition"),
    Setting("SLURM_ACCOUNT", "", "sbatch --account; empty: your default account"),
    Setting("SLURM_TIME", "", "sbatch --time limit of each job (e.g. 2:00:00 or 1-00:00:00); empty: the partition's"),
    Setting("SLURM_EXTRA_ARGS", "", "extra sbatch options, each written --option=value (e.g. '--qos=high --mem=64G')"),
    Setting("SLURM_CONTAINER", "pyxis",
            "how a Slurm job runs the command: pyxis (srun --container-image), apptainer or singularity (exec --nv), "
            "or none (the checkout's own environment on the node)"),
    Setting("SLURM_IMAGE", "",
            "the image SLURM_CONTAINER runs: pyxis: an enroot .sqsh file or a registry image (nvcr.io#org/img:tag); "
            "apptainer/singularity: a .sif file (relative paths: under the remote home)"),
    Setting("CUDA_VISIBLE_DEVICES", "", "GPUs the container may use; empty means 0..NUM_GPU-1"),
    Setting("OFFLOAD", "text_encoder_model guardrail_models",
            "models to offload between steps (each becomes --offload_<name>)"),
    Setting("LOCAL_PROMPTS_DIR", "inputs/prompts", "prompt JSONs (relative to the project)", "path"),
    Setting("LOCAL_VIDEOS_DIR", "inputs/videos", "shot folders (relative to the project)", "path"),
    Setting("LOCAL_OUTPUTS_DIR", "outputs", "run results (relative to the project)", "path"),
    Setting("LOCAL_NOTES_DIR", "notes", "notes and run_history.log (relative to the project)", "path"),
    Setting("FPS", "24", "frames per second of converted shots and of inference output", "int"),
    Setting("UPSCALE_WEIGHT", "0.5", "control weight of the 4K upscaler", "float"),
    Setting("UPSCALE_PROMPT", "", "prompt of the 4K upscaler; empty uses cosmos-transfer1's default 4K prompt"),
    Setting("UPSCALE_SEED", "1", "seed of the 4K upscaler (transfer.py's default)", "int"),
    Setting("UPSCALE_STEPS", "10", "diffusion steps of the 4K upscaler (upstream's 4K example uses 10)", "int"),
    Setting("CRITIC", "cosmos3", "video critic of `critique`: cosmos3 (the Cosmos 3 Reasoner through "
            "cosmos-framework's reasoner mode) or reason1 (Cosmos-Reason1-7B's video_critic.py) (docs/critic.md)"),
    Setting("CRITIC_DIR", "", "the critic's checkout on the GPU box (cosmos-framework or cosmos-reason1), mounted at "
            "/workspace for critic jobs; empty: REMOTE_DIR (a Cosmos 3 box serves both)"),
    Setting("CRITIC_IMAGE", "", "Docker image of critic jobs; empty: DOCKER_IMAGE"),
    Setting("CRITIC_MODEL", "", "the critic's checkpoint; empty: Cosmos3-Nano (cosmos3) or nvidia/Cosmos-Reason1-7B "
            "(reason1)"),
    Setting("CRITIC_TRIALS", "3", "answers the critic gives per video (sampled); the score is their mean", "int"),
)
SETTINGS_BY_KEY = {s.key: s for s in SETTINGS}
MODELS = ("transfer1-7b", "transfer2.5-2b", "cosmos3-nano", "cosmos3-super", "cosmos3-edge")  # cosmos_tools/models/
# Checkpoints cosmos-tools knows of but has no profile for, and why (one line each).
REFUSED_MODELS = {
    "cosmos3-nano-sim-transfer": "Cosmos3-Nano-Sim-Transfer is not registered in cosmos-framework (5eee9ed), needs its "
                                 "own distilled worker and is untested; use cosmos3-nano (README: Cosmos 3)",
}
CRITICS = ("cosmos3", "reason1")  # the video critics of `critique` (critic.py)
SLURM_CONTAINERS = ("pyxis", "apptainer", "singularity", "none")  # SLURM_CONTAINER: the launchers (slurm.py)

_KEY_LINE = re.compile(r"^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$")
_VAR = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")


class ConfigError(UserError):
    """A config file that bash and this parser would not read the same way."""


class _Scope(dict[str, str]):
    """The keys defined so far, remembering which of them a later line expanded."""

    def __init__(self) -> None:
        super().__init__()
        self.used: set[str] = set()


def _expand(text: str, scope: _Scope, where: str) -> str:
    def sub(match: re.Match) -> str:
        name = match.group(1) or match.group(2)
        if name in scope:
            scope.used.add(name)
            return scope[name]
        if name in os.environ:
            return os.environ[name]
        raise ConfigError(f"{where}: ${name} is not set; define it on an earlier line or in the environment")

    if re.search(r"\$(?![A-Za-z_{])|\$\{(?![A-Za-z_][A-Za-z0-9_]*\})", text):
        raise ConfigError(f"{where}: only $NAME and ${{NAME}} expansions are allowed; "
                          "put a literal $ inside single quotes")
    return _VAR.sub(sub, text)


def _parse_value(raw: str, scope: _Scope, where: str) -> str:
    """Parse the right-hand side of KEY=value the way bash would, or refuse."""
    out: list[str] = []
    i, n = 0, len(raw)
    while i < n:
        ch = raw[i]
        if ch == "'":
            end = raw.find("'", i + 1)
            if end < 0:
                raise ConfigError(f"{where}: unterminated single quote; close it with '")
            out.append(raw[i + 1:end])
            i = end + 1
        elif ch == '"':
            j, chunk = i + 1, []
            while j < n and raw[j] != '"':
                if raw[j] == "\\" and j + 1 < n and raw[j + 1] in '"\\$`':
                    chunk.append("\\" + raw[j + 1])
                    j += 2
                    continue
                if raw[j] == "`" or raw[j:j + 2] == "$(":
                    raise ConfigError(f"{where}: command substitution is not allowed in config.sh")
                chunk.append(raw[j])
                j += 1
            if j >= n:
                raise ConfigError(f'{where}: unterminated double quote; close it with "')
            out.append(_unescape_expand("".join(chunk), scope, where))
            i = j + 1
        elif ch == "#" and (i == 0 or raw[i - 1].isspace()):
            break
        elif ch.isspace():
            rest = raw[i:].strip()
            if rest and not rest.startswith("#"):
                raise ConfigError(f"{where}: unquoted space in value (bash would run {rest.split()[0]!r} "
                                  "as a command); quote the value")
            break
        elif ch in ";&|<>()`":
            raise ConfigError(f"{where}: {ch!r} is shell syntax, not a value; quote the value")
        elif raw.startswith("$(", i):
            raise ConfigError(f"{where}: command substitution is not allowed in config.sh")
        elif ch == "\\":
            if i + 1 >= n:
                raise ConfigError(f"{where}: line continuations are not supported")
            out.append(raw[i + 1])
            i += 2
        else:
            j = i
            while j < n and raw[j] not in "'\"\\;&|<>()` \t#":
                j += 1
            word = raw[i:j]
            if word.startswith("~"):
                raise ConfigError(f"{where}: ~ is expanded by bash only; write $HOME instead")
            if "$(" in word:
                raise ConfigError(f"{where}: command substitution is not allowed in config.sh")
            out.append(_expand(word, scope, where))
            i = j
    return "".join(out)


def _unescape_expand(text: str, scope: _Scope, where: str) -> str:
    """Expand $VARs in a double-quoted string, honouring \\" \\\\ \\$ \\` escapes."""
    parts = re.split(r"(\\[\"\\$`])", text)
    return "".join(p[1] if p.startswith("\\") and len(p) == 2 else _expand(p, scope, where) for p in parts)


def parse_config_text(text: str, filename: str, warnings: list[str] | None = None) -> dict[str, tuple[str, int]]:
    """Return {KEY: (value, line number)} for a config.sh, refusing anything bash would execute.

    Unknown keys and CRLF line endings are appended to ``warnings`` when given."""
    scope = _Scope()
    found: dict[str, tuple[str, int]] = {}
    warnings = [] if warnings is None else warnings
    if "\r" in text:
        warnings.append(f"{filename}: Windows (CRLF) line endings; read as LF, but bash would keep a \\r at the "
                        "end of every value if you source it: convert it with dos2unix")
    for lineno, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        where = f"{filename}:{lineno}"
        match = _KEY_LINE.match(stripped)
        if not match:
            raise ConfigError(f"{where}: expected KEY=value, got {stripped[:60]!r}")
        key, raw = match.groups()
        value = _parse_value(raw, scope, where)
        scope[key] = value
        found[key] = (value, lineno)
    for key, (_, lineno) in found.items():
        if key not in SETTINGS_BY_KEY and key not in scope.used:
            warnings.append(f"{filename}:{lineno}: {unknown_key_message(key)}")
    return found


def unknown_key_message(key: str) -> str:
    """``KEY is not a setting (ignored); did you mean "KNOWN"?`` or the pointer to the list of settings."""
    close = difflib.get_close_matches(key, list(SETTINGS_BY_KEY), n=1, cutoff=0.75)
    fix = f'did you mean "{close[0]}"?' if close else "see config.sh.example for the settings"
    return f"{key} is not a setting (ignored); {fix}"


def find_project_root(start: Path | None = None) -> Path:
    """The project root: $COSMOS_PROJECT_ROOT, else the nearest folder up from cwd holding inputs/."""
    env = os.environ.get("COSMOS_PROJECT_ROOT")
    if env:
        return Path(env).resolve()
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "inputs").is_dir() and (folder / "outputs").is_dir():
            return folder
    return here


@dataclass
class Config:
    """Effective settings: values plus where each came from."""

    root: Path
    path: Path
    values: dict[str, str]
    sources: dict[str, str]
    warnings: list[str] = field(default_factory=list)

    def __getitem__(self, key: str) -> str:
        return self.values[key]

    def int(self, key: str) -> int:
        return int(self.values[key])

    def float(self, key: str) -> float:
        return float(self.values[key])

    def local_path(self, key: str) -> Path:
        """A path setting resolved against the project root."""
        return (self.root / os.path.expanduser(self.values[key])).resolve()

    def with_overrides(self, overrides: dict[str, object], *, source: str) -> Config:
        """A new Config with ``overrides`` (None values skipped) laid over this one, ``sources`` naming ``source``.

        The layer for per-run choices such as ``--num-gpu``: checked like every other value.
        """
        given = {key: str(value) for key, value in overrides.items() if value is not None}
        unknown = sorted(set(given) - set(SETTINGS_BY_KEY))
        if unknown:
            raise ValueError(f"not settings: {', '.join(unknown)}")
        values = {**self.values, **given}
        sources = {**self.sources, **dict.fromkeys(given, source)}
        _check_types(values, sources)
        return Config(root=self.root, path=self.path, values=values, sources=sources, warnings=self.warnings)

    def require(self, *keys: str) -> None:
        for key in keys:
            if not self.values.get(key):
                raise ConfigError(f"{key} is not set: set it in {self.path} (see config.sh.example) "
                                  f"or export {key}=...")


def _check_types(values: dict[str, str], sources: dict[str, str]) -> None:
    for key, value in values.items():
        kind = SETTINGS_BY_KEY[key].kind if key in SETTINGS_BY_KEY else "str"
        try:
            if kind == "int" and int(value) < 0:
                raise ValueError
            if kind == "float" and not float(value) >= 0:
                raise ValueError
        except ValueError:
            what = "a whole number >= 0" if kind == "int" else "a number >= 0"
            raise ConfigError(f"{sources[key]}: {key} must be {what}, got {value!r}") from None
    if values["TRANSPORT"] not in ("ssh", "local"):
        raise ConfigError(f"{sources['TRANSPORT']}: TRANSPORT must be ssh or local, got {values['TRANSPORT']!r}")
    if values["MODEL"] in REFUSED_MODELS:
        raise ConfigError(f"{sources['MODEL']}: MODEL={values['MODEL']} is not supported: "
                          f"{REFUSED_MODELS[values['MODEL']]}")
    if values["MODEL"] not in MODELS:
        raise ConfigError(f"{sources['MODEL']}: MODEL must be one of {', '.join(MODELS)}, got {values['MODEL']!r}")
    for key in ("DISABLE_GUARDRAILS", "COSMOS3_DIFFUSION_CACHE"):
        if values[key] not in ("yes", "no"):
            raise ConfigError(f"{sources[key]}: {key} must be yes or no, got {values[key]!r}")
    if int(values["UPSCALE_STEPS"]) < 1:
        raise ConfigError(f"{sources['UPSCALE_STEPS']}: UPSCALE_STEPS must be a whole number >= 1, "
                          f"got {values['UPSCALE_STEPS']!r}")
    if values["CRITIC"] not in CRITICS:
        raise ConfigError(f"{sources['CRITIC']}: CRITIC must be one of {', '.join(CRITICS)}, got {values['CRITIC']!r}")
    if int(values["CRITIC_TRIALS"]) < 1:
        raise ConfigError(f"{sources['CRITIC_TRIALS']}: CRITIC_TRIALS must be a whole number >= 1, "
                          f"got {values['CRITIC_TRIALS']!r}")
    if values["BACKEND"] not in ("docker", "slurm"):
        raise ConfigError(f"{sources['BACKEND']}: BACKEND must be docker or slurm, got {values['BACKEND']!r}")
    if values["SLURM_CONTAINER"] not in SLURM_CONTAINERS:
        raise ConfigError(f"{sources['SLURM_CONTAINER']}: SLURM_CONTAINER must be one of "
                          f"{', '.join(SLURM_CONTAINERS)}, got {values['SLURM_CONTAINER']!r}")
    if int(values["NUM_GPU"]) < 1:
        raise ConfigError(f"{sources['NUM_GPU']}: NUM_GPU must be a whole number >= 1, got {values['NUM_GPU']!r}")


def load_config(root: Path | None = None, *, warn: bool = True) -> Config:
    """Read config.sh (or $COSMOS_CONFIG) over the defaults, then apply environment overrides.

    With ``warn``, each of the config's warnings is one ``warning:`` line on stderr."""
    root = root or find_project_root()
    explicit = os.environ.get("COSMOS_CONFIG")
    path = Path(explicit).expanduser().resolve() if explicit else root / "config.sh"
    values = {s.key: s.default for s in SETTINGS}
    sources = {s.key: "default" for s in SETTINGS}
    warnings: list[str] = []
    if path.is_file():
        try:
            with open(path, encoding="utf-8", newline="") as handle:  # newline="": keep CRLF to warn about it
                text = handle.read()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read config ({exc}); check the file") from None
        for key, (value, lineno) in parse_config_text(text, str(path), warnings).items():
            values[key] = value
            sources[key] = f"{path}:{lineno}"
    elif explicit:
        raise ConfigError(f"{path}: config file not found (COSMOS_CONFIG points here); "
                          "fix COSMOS_CONFIG or copy config.sh.example there")
    for setting in SETTINGS:
        if setting.key in os.environ:
            values[setting.key] = os.environ[setting.key]
            sources[setting.key] = f"env {setting.key}"
        if setting.fallback and not values[setting.key]:  # empty: ~/.ssh/config may say (ssh_config.py), else this
            values[setting.key] = setting.fallback
            sources[setting.key] = "default"
    _check_types(values, sources)
    if warn:
        for line in warnings:
            click.echo(f"warning: {line}", err=True)
    return Config(root=root, path=path, values=values, sources=sources, warnings=warnings)


def example_text() -> str:
    """The text of config.sh.example, generated from SETTINGS."""
    lines = [
        "# cosmos-tools settings. Copy to config.sh (git-ignored) and edit.",
        "# Plain KEY=value lines: cosmos-tools reads this file with a strict parser and never runs it.",
        "# Quote values with spaces; $HOME and ${NAME} of earlier keys expand; no $(...) or backticks.",
        "# Environment variables override every key (e.g. NUM_GPU=4 ./scripts/full_cycle.sh ...).",
        "",
    ]
    for s in SETTINGS:
        lines.append(f"# {s.help}")
        lines.append(f"{s.key}={shlex.quote(s.default) if s.default else ''}")
    return "\n".join(lines) + "\n"
