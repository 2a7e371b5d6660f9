"""Run folders built directly on disk for the review tests: small ffmpeg-made MP4s, history lines, no sshd."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from cosmos_tools import history

HOSTILE_RUN = "<img src=x onerror=\"document.title='pwned'\"> & \"q\" 'a' %{pts} :x\\y-1"
HOSTILE_PROMPT = "</script><script>document.title='pwned'</script> <b>bold</b> & \"quotes\" 'single'"
FPS = 24
FRAMES = 48


def clip(cache: Path, pattern: str, frames: int = FRAMES) -> Path:
    """A small H.264 MP4 of an ffmpeg test source (encoded once per pattern and length, then copied)."""
    path = cache / f"{pattern.replace('=', '_').replace(':', '_')}-{frames}.mp4"
    if not path.is_file():
        cache.mkdir(parents=True, exist_ok=True)
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"{pattern}=size=192x108:rate={FPS}",
                        "-frames:v", str(frames), "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
                        str(path)], check=True)
    return path


def make_project(root: Path, cache: Path, shot: str = "alley") -> Path:
    """A project with one shot (color, depth, segmentation) and empty outputs/notes."""
    for sub in ("inputs/prompts", "outputs/runs", "notes"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    videos = root / "inputs" / "videos" / shot
    videos.mkdir(parents=True, exist_ok=True)
    for name, pattern in (("color", "testsrc"), ("depth", "smptebars"), ("segmentation", "rgbtestsrc")):
        shutil.copyfile(clip(cache, pattern), videos / f"{name}.mp4")
    return root


def base_spec(shot: str = "alley", **changes) -> dict:
    spec = {"prompt": "a wet alley at night", "input_video_path": f"inputs/videos/{shot}/color.mp4",
            "seed": 1, "sigma_max": 70,
            "edge": {"control_weight": 0.5},
            "depth": {"control_weight": 0.5, "input_control": f"inputs/videos/{shot}/depth.mp4"}}
    for key, value in changes.items():
        node = spec
        *parents, leaf = key.split("__")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return spec


def make_run(root: Path, cache: Path, run_id: str, spec: dict, *, status: str = "ok", shot: str = "alley",
             log: str = "", upscale: bool = False, computed: tuple[str, ...] = (), history_line: bool = True,
             run_s: float = 12.5) -> Path:
    """outputs/runs/<run id>/ as a downloaded run leaves it, and its history line."""
    folder = root / "outputs" / "runs" / run_id
    folder.mkdir(parents=True)
    name = run_id.rsplit("-", 1)[0]
    (folder / "prompt_spec.json").write_text(json.dumps(spec), encoding="utf-8")
    (folder / "spec_used.json").write_text(json.dumps({"spec": spec, "command": ["python3"], "docker": []}),
                                           encoding="utf-8")
    (folder / "provenance.json").write_text(json.dumps({"run_id": run_id, "prompt_name": name, "seed": spec["seed"],
                                                        "shot": shot, "timings": {"run_s": run_s}}),
                                            encoding="utf-8")
    lines = [f"[cosmos-run] start {run_id}", *(f"progress line {i}" for i in range(30)), log]
    if status == "blocked":
        lines.append("GUARDRAIL BLOCKED: the prompt was refused")
    (folder / "run.log").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (folder / "exit_code").write_text("0\n" if status == "ok" else "1\n", encoding="utf-8")
    if status == "ok":
        pattern = ("testsrc2", "mandelbrot", "life", "cellauto", "colorspectrum")[len(list(folder.parent.iterdir()))
                                                                              % 5]
        shutil.copyfile(clip(cache, pattern), folder / "output.mp4")
        for key in computed:
            shutil.copyfile(clip(cache, "smptehdbars"), folder / f"{key}_input_control_0.mp4")
        if upscale:
            up = folder.parent / f"{run_id}_upscaled"
            up.mkdir()
            shutil.copyfile(clip(cache, "testsrc2"), up / "output.mp4")
    if history_line:
        history.append_record(root / "notes" / "run_history.log", {
            "run": name, "run_id": run_id, "prompt": f"inputs/prompts/{name}.json", "shot": shot,
            "seed": spec["seed"], "status": status, "exit": 0 if status == "ok" else 1, "run_s": run_s,
            "output": f"outputs/runs/{run_id}"})
    return folder


def score(folder: Path, value: float | None, answer: str = "4, 4 of 5") -> None:
    """A critic.json as `critique` writes it (the fields the review reads)."""
    (folder / "critic.json").write_text(json.dumps({"score": value, "answer": answer, "critic": "cosmos3"}),
                                        encoding="utf-8")
