"""``make demo``: the whole cycle on the built-in rehearsal GPU host, from a fresh clone, no config.sh needed.

Starts (or reuses) a rehearsal host in ``.cosmos/rehearsal`` (a real sshd on 127.0.0.1, stand-in docker and
transfer.py), renders PNG sequences of a test scene into ``art/demo_render/`` with ffmpeg, then runs the
scripts exactly as a user would: ``convert_png_sequences.sh`` (into ``inputs/videos/demo_shot/``),
``new_prompt.sh`` and ``full_cycle.sh`` against the host; prints where the results and the history line
are, and stops the host again (``--keep-host`` leaves it up; stop it with
``cosmos-tools rehearsal down .cosmos/rehearsal``). Your own config.sh and GPU box are never touched.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
from pathlib import Path

SHOT = "demo_shot"
PROMPT_TEXT = ("A rainy neon-lit street at night, reflections on wet asphalt, cinematic, "
               "shot on a 35mm lens")


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


def step(words: list[str], scripts: Path, root: Path, env: dict[str, str], check: bool = True):
    """Run one of scripts/ as a user would, showing the command line."""
    print(f"demo: $ ./scripts/{shlex.join(words)}", file=sys.stderr)
    done = subprocess.run([str(scripts / words[0]), *words[1:]], cwd=root, env=env)
    if check and done.returncode != 0:
        raise RuntimeError(f"scripts/{words[0]} failed (exit {done.returncode}); see its message above")
    return done


def clean_env(root: Path, config: Path) -> dict[str, str]:
    """This environment without any setting override, pointed at the rehearsal config and ``root``."""
    from .config import SETTINGS

    env = {k: v for k, v in os.environ.items() if k not in {s.key for s in SETTINGS}}
    env.update(COSMOS_PROJECT_ROOT=str(root), COSMOS_CONFIG=str(config))
    return env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cosmos_tools.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1],
                        help="project root (default: this checkout)")
    parser.add_argument("--keep-host", action="store_true", help="leave the rehearsal host running")
    parser.add_argument("--seconds", type=float, default=None, help="stand-in inference duration per job")
    parser.add_argument("--frames", type=int, default=121, help="length of the test shot (default 121)")
    args = parser.parse_args(argv)

    from .config import load_config
    from .errors import UserError
    from .rehearsal.host import down, up

    root = args.root.resolve()
    host_dir = root / ".cosmos" / "rehearsal"
    print(f"demo: starting the rehearsal GPU host in {host_dir} (real sshd on 127.0.0.1, stand-in docker)",
          file=sys.stderr)
    try:
        info = up(host_dir, seconds=args.seconds)
        env = clean_env(root, info.config)
        os.environ.clear()
        os.environ.update(env)
        cfg = load_config(root)
        render = root / "art" / "demo_render"
        print(f"demo: rendering a {args.frames}-frame test scene into {render.relative_to(root)}/", file=sys.stderr)
        make_render(render, frames=args.frames)
        scripts = root / "scripts"
        step(["convert_png_sequences.sh", str(render), SHOT], scripts, root, env)
        before = set(cfg.local_path("LOCAL_PROMPTS_DIR").glob(f"{SHOT}_*.json"))
        step(["new_prompt.sh", SHOT, PROMPT_TEXT], scripts, root, env)
        (prompt,) = set(cfg.local_path("LOCAL_PROMPTS_DIR").glob(f"{SHOT}_*.json")) - before
        done = step(["full_cycle.sh", str(prompt.relative_to(root))], scripts, root, env, check=False)
    except UserError as exc:
        exc.show()
        return exc.exit_code
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        if not args.keep_host:
            down(host_dir)
    where = "left running: stop it with `cosmos-tools rehearsal down .cosmos/rehearsal`" if args.keep_host \
        else "stopped"
    print(f"demo: results in outputs/{prompt.stem}/ and outputs/{prompt.stem}_upscaled/, history in "
          f"notes/run_history.log (`cosmos-tools history`); rehearsal host {where}", file=sys.stderr)
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
