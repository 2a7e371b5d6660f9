"""Helpers for the prompt, validation and render tests: tiny real MP4s made by ffmpeg, and project trees."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from cosmos_tools.config import SETTINGS, load_config

HOSTILE_NAMES = [
    "plain",
    "with space",
    "it's",
    'say "hi"',
    "$(touch pwned)",
    "`touch pwned`",
    "semi;colon&amp|pipe>redir",
    "new\nline",
    "trailing newline\n",
    "tab\there",
    "ünïcødé-鏡-🎬",
    "-leading-dash",
    "*glob?[x]",
    "back\\slash",
    "$HOME ${PATH}",
    "~tilde",
]


def make_video(path: Path, frames: int = 121, size: tuple[int, int] = (64, 36), fps: int = 24) -> Path:
    """Encode a small real H.264 MP4 (ffmpeg's test pattern)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    width, height = size
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc=size={width}x{height}:rate={fps}",
                    "-frames:v", str(frames), "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
                    str(path)], check=True)
    return path


class VideoLibrary:
    """Videos encoded once per test module and hard-linked into each project."""

    KINDS = {
        "ok": {"frames": 121},
        "short": {"frames": 24},
        "one": {"frames": 1},
        "f100": {"frames": 100},
        "square": {"frames": 121, "size": (48, 48)},
        "wide": {"frames": 121, "size": (96, 24)},
        "fps30": {"frames": 121, "fps": 30},
    }

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.made: dict[str, Path] = {}

    def get(self, kind: str) -> Path:
        if kind not in self.made:
            self.made[kind] = make_video(self.folder / f"{kind}.mp4", **self.KINDS[kind])
        return self.made[kind]

    def put(self, kind: str, target: Path) -> Path:
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(self.get(kind), target)
        except OSError:
            shutil.copyfile(self.get(kind), target)
        return target


def make_project(root: Path, videos: VideoLibrary | None = None, shots: dict | None = None) -> Path:
    """A project tree: inputs/prompts, outputs, and shot folders {shot: {file name: video kind}}."""
    for folder in ("inputs/prompts", "inputs/videos", "outputs", "notes"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    for shot, files in (shots or {}).items():
        (root / "inputs/videos" / shot).mkdir(parents=True, exist_ok=True)
        for name, kind in files.items():
            videos.put(kind, root / "inputs/videos" / shot / name)
    return root


FULL_SHOT = {"color.mp4": "ok", "depth.mp4": "ok", "segmentation.mp4": "ok"}


def clean_env(monkeypatch) -> None:
    """Make load_config see only the test's project: no config keys from the caller's environment."""
    for setting in SETTINGS:
        monkeypatch.delenv(setting.key, raising=False)
    monkeypatch.delenv("COSMOS_CONFIG", raising=False)
    monkeypatch.delenv("COSMOS_PROJECT_ROOT", raising=False)


def project_config(root: Path, monkeypatch, **settings):
    """load_config for ``root``, with settings given as environment overrides."""
    clean_env(monkeypatch)
    for key, value in settings.items():
        monkeypatch.setenv(key, str(value))
    return load_config(root)


def cli_env(root: Path, **settings) -> dict[str, str]:
    """Environment for running the CLI or a script on project ``root``."""
    env = {k: v for k, v in os.environ.items() if k not in {s.key for s in SETTINGS} and k != "COSMOS_CONFIG"}
    env.update({"COSMOS_PROJECT_ROOT": str(root), "NO_COLOR": "1"}, **{k: str(v) for k, v in settings.items()})
    return env


def make_spec_project(folder: Path, videos: VideoLibrary) -> Path:
    """A project with shot1 (every modality) and the files a full spec names: a .pt weight map, a regions file."""
    root = make_project(folder, videos, {"shot1": FULL_SHOT})
    (root / "weights").mkdir()
    (root / "weights/mask.pt").write_bytes(b"pt")
    (root / "regions.json").write_text("[[0, 0, 1, 1]]")
    return root


def with_changes(spec: dict, changes: dict) -> dict:
    """``spec`` with ``changes`` applied: a value sets its key, None removes it."""
    for key, value in changes.items():
        if value is None:
            spec.pop(key, None)
        else:
            spec[key] = value
    return spec


def write_prompt_json(root: Path, spec: dict, name: str) -> Path:
    """``spec`` as inputs/prompts/NAME.json under ``root``."""
    path = root / "inputs" / "prompts" / f"{name}.json"
    path.write_text(json.dumps(spec, indent=2) + "\n", encoding="utf-8")
    return path


def prompt_problems(root: Path, cfg, spec: dict, name: str) -> list:
    """What ``check`` finds in ``spec`` written as prompt NAME."""
    from cosmos_tools.prompts import read_prompt
    from cosmos_tools.validate import check_prompt

    return check_prompt(read_prompt(write_prompt_json(root, spec, name)), cfg).problems
