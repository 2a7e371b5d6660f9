"""Run inside a batch job's container as ``python3 FOLDER/batch_map.py FOLDER -- COMMAND...`` (cwd /workspace).

Runs COMMAND (transfer.py with ``--batch_input_path FOLDER/batch.jsonl``), then gives each line N of the batch
its own run folder, named in FOLDER/items.json (``[{"dir", "latest", "files": {name: text}}]``):
- line N has ``FOLDER/video_<N>/output.mp4`` (and the lines before it too): ``ok``; output.mp4 and prompt.txt
  (as output.txt) and the other files of video_<N> move into the run folder;
- the first line without one: ``blocked`` if its part of the log says GUARDRAIL BLOCKED, ``cancelled`` if the
  job was stopped by a signal, else ``failed``;
- the lines after a blocked one: ``pending`` (never processed; no folder: the client queues them again); after
  any other failure: ``failed`` or ``cancelled`` like it.
Each settled run folder gets the item's files, its part of the batch log as ``run.log`` (after a line naming
the batch), the "latest" link of its prompt, and ``exit_code`` last. A run folder that exists already is never
touched (``taken``). FOLDER/mapping.json (``[{"line", "dir", "status"}]``) is written atomically; one line per
item goes to stdout (the batch log). Exits with COMMAND's exit code. TERM/INT are left to COMMAND (the runner
signals the whole process group): what it saved before it stopped is still mapped.
"""

import json
import os
import signal
import subprocess
import sys

GUARDRAIL = "GUARDRAIL BLOCKED"
STOPPED = (130, 137, 143)


def write_atomic(path, data):
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def log_parts(log, folder, count):
    """The batch log cut after each line's ``Saved prompt to .../video_<N>/prompt.txt``: one part per line."""
    parts, current, line_no = [], [], 0
    for text in log.splitlines(keepends=True):
        current.append(text)
        if line_no < count and "Saved prompt to" in text and f"video_{line_no}/prompt.txt" in text:
            parts.append("".join(current))
            current, line_no = [], line_no + 1
    parts.append("".join(current))
    return parts + [""] * (count + 1 - len(parts))


def settle(folder, index, item, status, rc, part):
    """Make the run folder of line ``index``; ``taken`` if it exists already, else ``status``."""
    run = item["dir"]
    os.makedirs(os.path.dirname(run), exist_ok=True)
    try:
        os.mkdir(run)
    except FileExistsError:
        return "taken"
    for name, text in item["files"].items():
        write_atomic(f"{run}/{name}", text.encode("utf-8"))
    video = f"{folder}/video_{index}"
    if os.path.isdir(video):
        for name in os.listdir(video):
            target = {"output.mp4": "output.mp4", "prompt.txt": "output.txt"}.get(name, name)
            os.replace(f"{video}/{name}", f"{run}/{target}")
        os.rmdir(video)
    header = f"[cosmos-batch] line {index} of batch {folder} (its whole log: {folder}/run.log)\n"
    write_atomic(f"{run}/run.log", (header + part).encode("utf-8", "surrogateescape"))
    link, tmp = item["latest"], f"{item['latest']}.cosmos-link.{os.getpid()}"
    os.symlink(f"runs/{os.path.basename(run)}", tmp)
    os.replace(tmp, link)
    write_atomic(f"{run}/exit_code", f"{0 if status == 'ok' else rc or 1}\n".encode())
    return status


def main(folder, command):
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    rc = subprocess.call(command)
    rc = 128 - rc if rc < 0 else rc
    with open(f"{folder}/items.json", encoding="utf-8") as f:
        items = json.load(f)
    try:
        with open(f"{folder}/run.log", encoding="utf-8", errors="surrogateescape") as f:
            log = f.read()
    except FileNotFoundError:
        log = ""
    parts = log_parts(log, folder, len(items))
    rows, stop, ended = [], None, ""  # the first line without a result, and how it ended
    for index, item in enumerate(items):
        output = f"{folder}/video_{index}/output.mp4"
        if stop is None and os.path.isfile(output) and os.path.getsize(output) > 0:
            status = "ok"
        elif stop is None:
            stop = index
            status = ended = "blocked" if GUARDRAIL in parts[index] else "cancelled" if rc in STOPPED else "failed"
            parts[index] += "".join(parts[index + 1:])
        else:
            status = "pending" if ended == "blocked" else ended
        if status != "pending":
            part = parts[index] if stop is None or index == stop else \
                f"[cosmos-batch] not processed: line {stop} ended the batch\n"
            status = settle(folder, index, item, status, rc, part)
        rows.append({"line": index, "dir": item["dir"], "status": status})
        print(f"[cosmos-batch] line {index} -> {item['dir']}: {status}", flush=True)
    write_atomic(f"{folder}/mapping.json", (json.dumps(rows, indent=2) + "\n").encode())
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[3:]))
