"""``make demo``: the whole cycle on the built-in rehearsal GPU host, in a project of its own.

Lays out a demo project in a new temporary folder (or ``--dir``), starts a rehearsal host inside it (a real
sshd on 127.0.0.1, stand-in docker and transfer.py), renders PNG sequences of a test scene into its
``art/demo_render/`` with ffmpeg, then runs this checkout's scripts exactly as a user would, in that project:
``convert_png_sequences.sh``, ``new_prompt.sh`` and ``full_cycle.sh``. It prints where the results and the
history line are and stops the host again (``--keep-host`` leaves it up). The demo project is kept so the
results can be looked at; remove it when done. Your own inputs/, outputs/, art/, notes/, config.sh and GPU
box are never touched.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

from . import history

SHOT = "demo_shot"
PROMPT_TEXT = ("A rainy neon-lit street at night, reflections on wet asphalt, cinematic, "
               "shot on a 35mm lens")
SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
PROJECT_FOLDERS = ("art", "inputs/videos", "inputs/prompts", "outputs", "notes")


def make_render(folder: Path, frames: int = 121, width: int = 256, height: int = 144, fps: int = 24) -> Path:
    """A Nuke-style render folder of a moving test scene: color.1001.png..., 16-bit depth, a flat-colour mask."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    size = f"{width}x{height}"
    box = f"drawbox=x='mod(t*{width // 2},{width})':y={height // 4}:w={width // 4}:h={height // 2}:t=fill"
    sequences = {  # name: (lavfi source, pixel format of the PNGs)
        "color": (f"testsrc2=size={size}:rate={fps}", "rgb24"),
        "depth": (f"gradients=size={size}:rate={fps}:c0=white:c1=gray:n=2,{box}:color=black", "gray16be"),
        "segmentation": (f"color=c=0x3cb44b:size={size}:rate={fps},{box}:color=0xe6194b,"
                         f"drawbox=x=0:y={height * 3 // 4}:w={width}:h={height // 4}:t=fill:color=0x4363d8", "rgb24"),
    }
    for name, (source, pix_fmt) in sequences.items():
        done = subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-y", "-f", "lavfi", "-i", source,
                               "-frames:v", str(frames), "-pix_fmt", pix_fmt, "-start_number", "1001",
                               str(folder / f"{name}.%04d.png")], capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"ffmpeg could not render {name} frames into {folder}: {done.stderr.strip()[-300:]}")
    return folder


def make_project(folder: Path | None) -> Path:
    """The demo project: ``folder`` (new or empty) or a new temporary folder, laid out like a project."""
    if folder is None:
        root = Path(tempfile.mkdtemp(prefix="cosmos-demo-"))
    else:
        root = folder.resolve()
        if root.exists() and (not root.is_dir() or any(root.iterdir())):
            raise RuntimeError(f"{root}: --dir must be a new or empty folder (the demo writes a whole project "
                               "there); choose another one")
    for sub in PROJECT_FOLDERS:
        (root / sub).mkdir(parents=True, exist_ok=True)
    return root


def step(words: list[str], root: Path, env: dict[str, str], check: bool = True):
    """Run one of scripts/ in the demo project as a user would, showing the command line."""
    print(f"demo: $ scripts/{shlex.join(words)}", file=sys.stderr)
    done = subprocess.run([str(SCRIPTS / words[0]), *words[1:]], cwd=root, env=env)
    if check and done.returncode != 0:
        raise RuntimeError(f"scripts/{words[0]} failed (exit {done.returncode}); see its message above")
    return done


def clean_env(root: Path, config: Path) -> dict[str, str]:
    """This environment without any setting override, pointed at the rehearsal config and ``root``."""
    from .config import SETTINGS

    env = {k: v for k, v in os.environ.items() if k not in {s.key for s in SETTINGS}}
    env.update(COSMOS_PROJECT_ROOT=str(root), COSMOS_CONFIG=str(config))
    return env


def run_demo(root: Path, host_dir: Path, seconds: float | None, frames: int) -> tuple[int, str]:
    """Convert, new prompt and full cycle in ``root`` against a host in ``host_dir``: (exit status, prompt name)."""
    from .config import load_config
    from .rehearsal.host import up

    print(f"demo: starting the rehearsal GPU host in {host_dir} (real sshd on 127.0.0.1, stand-in docker)",
          file=sys.stderr)
    info = up(host_dir, seconds=seconds)
    env = clean_env(root, info.config)
    os.environ.clear()
    os.environ.update(env)
    cfg = load_config(root)
    render = root / "art" / "demo_render"
    print(f"demo: rendering a {frames}-frame test scene into art/demo_render/", file=sys.stderr)
    make_render(render, frames=frames)
    step(["convert_png_sequences.sh", str(render.relative_to(root)), SHOT], root, env)
    before = set(cfg.local_path("LOCAL_PROMPTS_DIR").glob(f"{SHOT}_*.json"))
    step(["new_prompt.sh", SHOT, PROMPT_TEXT], root, env)
    (prompt,) = set(cfg.local_path("LOCAL_PROMPTS_DIR").glob(f"{SHOT}_*.json")) - before
    done = step(["full_cycle.sh", str(prompt.relative_to(root))], root, env, check=False)
    return done.returncode, prompt.stem


def cosmos_tools_command() -> str:
    """The cosmos-tools command beside this Python (the project's .venv), else the bare name."""
    beside = Path(sys.executable).with_name("cosmos-tools")
    return str(beside) if beside.is_file() else "cosmos-tools"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cosmos_tools.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=None,
                        help="where to lay out the demo project: a new or empty folder (default: a new temporary one)")
    parser.add_argument("--keep-host", action="store_true", help="leave the rehearsal host running")
    parser.add_argument("--seconds", type=float, default=None, help="stand-in inference duration per job")
    parser.add_argument("--frames", type=int, default=121, help="length of the test shot (default 121)")
    args = parser.parse_args(argv)

    from .errors import UserError
    from .rehearsal.host import down

    try:
        root = make_project(args.dir)
    except (OSError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    host_dir = root / ".cosmos" / "rehearsal"
    print(f"demo: a demo project in {root} (your own inputs/, outputs/, art/ and notes/ are left alone)",
          file=sys.stderr)
    try:
        status, name = run_demo(root, host_dir, args.seconds, args.frames)
    except UserError as exc:
        exc.show()
        status, name = exc.exit_code, None
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        status, name = 1, None
    finally:
        if not args.keep_host:
            down(host_dir)
    quoted = shlex.quote(str(root))
    records = history.read_records(root / "notes" / "run_history.log", warn=lambda msg: None)
    if name is not None and records:
        folders = [root / records[-1][key] for key in ("output", "upscaled") if records[-1].get(key)]
        print(f"demo: results: {' and '.join(f'{folder}/' for folder in folders)} (output.mp4, run.log, "
              f"provenance.json, spec_used.json; outputs/{name} links to the latest run)", file=sys.stderr)
        print(f"demo: history: COSMOS_PROJECT_ROOT={quoted} {shlex.quote(cosmos_tools_command())} history "
              f"(the line is in {root / 'notes' / 'run_history.log'})", file=sys.stderr)
    host = (f"left running: stop it with `cosmos-tools rehearsal down {shlex.quote(str(host_dir))}`"
            if args.keep_host else "stopped")
    print(f"demo: rehearsal host {host}; the demo project is kept: remove it with `rm -rf {quoted}`",
          file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
