"""``make demo``: the whole cycle on the built-in rehearsal GPU host, from a fresh clone, no config.sh needed.

Starts (or reuses) a rehearsal host in ``.cosmos/rehearsal`` (a real sshd on 127.0.0.1, stand-in docker and
transfer.py), writes a small shot into ``inputs/videos/demo_shot/`` with ffmpeg, writes a prompt with
``new_prompt``, runs ``scripts/full_cycle.sh`` against the host exactly as a user would, prints where the results
and the history line are, and stops the host again (``--keep-host`` leaves it up; stop it with
``cosmos-tools rehearsal down .cosmos/rehearsal``). Your own config.sh and GPU box are never touched.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

SHOT = "demo_shot"
PROMPT_TEXT = ("A rainy neon-lit street at night, reflections on wet asphalt, cinematic, "
               "shot on a 35mm lens")


def make_shot(folder: Path, frames: int = 48, width: int = 256, height: int = 144, fps: int = 24) -> Path:
    """color.mp4, depth.mp4 and segmentation.mp4 of a moving test scene (ffmpeg lavfi), same size and length."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    size = f"{width}x{height}"
    box = f"drawbox=x='mod(t*{width // 2},{width})':y={height // 4}:w={width // 4}:h={height // 2}:t=fill"
    jobs = {
        "color.mp4": (f"testsrc2=size={size}:rate={fps}",
                      ["-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-pix_fmt", "yuv420p"]),
        "depth.mp4": (f"gradients=size={size}:rate={fps}:c0=black:c1=white:n=2,format=gray,{box}:color=white",
                      ["-c:v", "libx264", "-preset", "veryfast", "-qp", "0", "-pix_fmt", "yuv420p",
                       "-color_range", "pc"]),
        "segmentation.mp4": (f"color=c=0x3cb44b:size={size}:rate={fps},{box}:color=0xe6194b",
                             ["-c:v", "libx264rgb", "-preset", "ultrafast", "-crf", "0"]),
    }
    for name, (source, codec) in jobs.items():
        target = folder / name
        tmp = folder / f".{name}.tmp.mp4"
        done = subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-y", "-f", "lavfi", "-i", source,
                               "-frames:v", str(frames), *codec, str(tmp)], capture_output=True, text=True)
        if done.returncode != 0:
            tmp.unlink(missing_ok=True)
            raise RuntimeError(f"ffmpeg could not write {target}: {done.stderr.strip()[-300:]}")
        os.replace(tmp, target)
    return folder


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
    parser.add_argument("--frames", type=int, default=48, help="length of the test shot (default 48)")
    args = parser.parse_args(argv)

    from .config import load_config
    from .errors import UserError
    from .prompts import new_prompt
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
        shot = cfg.local_path("LOCAL_VIDEOS_DIR") / SHOT
        print(f"demo: writing a {args.frames}-frame test shot into {shot}", file=sys.stderr)
        make_shot(shot, frames=args.frames)
        prompt = new_prompt(cfg, "demo", PROMPT_TEXT, shot=SHOT)
        print(f"demo: wrote {prompt.relative_to(root)}; running scripts/full_cycle.sh on it", file=sys.stderr)
        done = subprocess.run([str(root / "scripts" / "full_cycle.sh"), str(prompt)], cwd=root, env=env)
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
