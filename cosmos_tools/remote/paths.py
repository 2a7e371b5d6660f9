"""Where a job lives: its folder, log, exit-code file, spec file and container, defined once."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

RUN, UPSCALE = "run", "up"
UPSCALED_SUFFIX = "_upscaled"


def container_name(name: str, kind: str) -> str:
    """``ct1-<kind>-<sanitised name, 40 chars max>-<sha1(name)[:10]>``: Docker allows [a-zA-Z0-9][a-zA-Z0-9_.-]*."""
    digest = hashlib.sha1(name.encode("utf-8", "surrogateescape"), usedforsecurity=False).hexdigest()[:10]
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-.")[:40].rstrip("-.")
    return "-".join(part for part in ("ct1", kind, safe, digest) if part)


@dataclass(frozen=True)
class JobPaths:
    """The paths of the run (``kind`` RUN) or upscale (UPSCALE) of ``name``, relative to REMOTE_DIR.

    The same relative paths hold in the local project and in the container (``/workspace``).
    """

    name: str
    kind: str
    folder: str
    container: str

    @classmethod
    def of(cls, name: str, kind: str) -> JobPaths:
        folder = f"outputs/{name}" if kind == RUN else f"outputs/{name}{UPSCALED_SUFFIX}"
        return cls(name=name, kind=kind, folder=folder, container=container_name(name, kind))

    @property
    def log(self) -> str:
        return f"{self.folder}/run.log"

    @property
    def exit_code(self) -> str:
        return f"{self.folder}/exit_code"

    @property
    def spec(self) -> str:
        return f"{self.folder}/controlnet_spec.json"
