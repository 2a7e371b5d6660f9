"""The remote user as the probe sees it: what DOCKER_USER=auto and relative remote paths resolve against."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BoxAccount:
    """The box's ``id -u``, ``id -g`` and ``$HOME``, learned by the probe for one run."""

    uid: str
    gid: str
    home: str

    @property
    def docker_user(self) -> str:
        return f"{self.uid}:{self.gid}"
