"""STAND-IN for the Cosmos 3 Reasoner (cosmos-framework's ``model_mode: "reasoner"``) on a rehearsal host.

No model looks at any video. The Cosmos 3 stand-in ``cosmos_framework/scripts/inference.py`` imports this module
(its sibling in the stand-in checkout) and calls ``run(records, output_dir)`` with the reasoner samples it loaded:
dicts with upstream's keys, ``vision_path`` resolved (absolute, or relative to the working folder). For each one
it writes upstream's outputs, ``OUT/<name>/reasoner_text.txt`` and ``OUT/<name>/sample_outputs.json``
(``"status": "success"``, ``reasoner_text``, the files). The text starts with a rating 1-5 derived from the
video's bytes and the sample's seed (``rating``): the same every time, different between videos, and it says it
is a stand-in. Standard library only.
"""

import hashlib
import json
import os


def rating(video: bytes, seed: int) -> int:
    """The stand-in's deterministic 1-5 rating of a video for a seed."""
    return 1 + int.from_bytes(hashlib.sha256(video + str(seed).encode()).digest()[:4], "big") % 5


def answer(video_path: str, seed: int) -> str:
    with open(video_path, "rb") as f:
        score = rating(f.read(), seed)
    return (f"{score}\nSTAND-IN reasoner of a cosmos-tools rehearsal host: no model watched "
            f"{os.path.basename(video_path)}; the rating {score} is derived from the video's bytes and the seed "
            f"({seed}), the same on every run.")


def run(records, output_dir):
    """Write reasoner_text.txt and sample_outputs.json for every reasoner sample of ``records``."""
    for record in records:
        if record.get("model_mode") != "reasoner":
            continue
        if not str(record.get("prompt") or "").strip():
            raise ValueError(f"{record.get('name')}: a reasoner sample needs a non-empty prompt")
        text = answer(str(record["vision_path"]), int(record.get("seed") or 0))
        folder = os.path.join(output_dir, record["name"])
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, "reasoner_text.txt"), "w", encoding="utf-8") as f:
            f.write(text)
        with open(os.path.join(folder, "sample_outputs.json"), "w", encoding="utf-8") as f:
            json.dump({"status": "success", "reasoner_text": text, "files": ["reasoner_text.txt"]}, f, indent=2)
        print(f"[stand-in reasoner] {record['name']}: {text.splitlines()[0]} of 5 (no model)", flush=True)
