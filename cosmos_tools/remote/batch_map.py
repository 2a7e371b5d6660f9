"""Run inside a batch job's container as ``python3 FOLDER/batch_map.py FOLDER -- COMMAND...`` (cwd /workspace).

Runs COMMAND (Transfer1's transfer.py with ``--batch_input_path FOLDER/batch.jsonl``, or Transfer2.5's inference.py
with ``-i FOLDER/batch.jsonl``), then gives each line N of the batch its own run folder, named in FOLDER/items.json
(``[{"dir", "latest", "files": {name: text}, "output", "take", "cut", "keep_going"}]``):
- line N's ``output`` (``video_<N>/output.mp4``; Transfer2.5: ``<record name>.mp4``) exists in FOLDER, and so does
  every one before it: ``ok``; its files move into the run folder (``take``: ``{"folder": "video_<N>"}`` moves that
  folder's files, prompt.txt as output.txt; ``{"prefix": NAME}`` moves ``NAME.*`` and ``NAME_*`` as ``output.*``,
  ``output_*``);
- a line without one: ``blocked`` if its part of the log says the guardrail blocked it, ``cancelled`` if the job was
  stopped by a signal, else ``failed``. It ends the batch unless it is blocked and ``keep_going`` (Transfer2.5 skips
  a blocked sample and goes on: the next lines are judged by their own output);
- the lines after a blocked line that ended the batch: ``pending`` (never processed; no folder: the client queues
  them again); after any other end: ``failed`` or ``cancelled`` like it.
The log is cut into one part per line after the first log line holding every text of one of the line's ``cut``
alternatives (``Saved prompt to`` + ``video_<N>/prompt.txt``...), searched in order. Each settled run folder gets the
item's files, its part of the batch log as ``run.log`` (after a line naming the batch), the "latest" link of its
prompt, and ``exit_code`` last. A run folder that exists already is never touched (``taken``). FOLDER/mapping.json
(``[{"line", "dir", "status"}]``) is written atomically; one line per item goes to stdout (the batch log). Exits with
COMMAND's exit code. TERM/INT are left to COMMAND (the runner signals the whole process group): what it saved before
it stopped is still mapped.
"""

import json
import os
import signal
import subprocess
import sys

GUARDRAIL = ("GUARDRAIL BLOCKED", "Guardrail blocked generation")  # Transfer1, Transfer2.5
STOPPED = (130, 137, 143)


def write_atomic(path, data):
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def log_parts(log, items):
    """The batch log cut after each line's first log line that holds every text of one of its ``cut`` alternatives:
    one part per line, and the rest."""
    parts, current, line_no = [], [], 0
    for text in log.splitlines(keepends=True):
        current.append(text)
        if line_no < len(items) and any(all(t in text for t in alt) for alt in items[line_no]["cut"]):
            parts.append("".join(current))
            current, line_no = [], line_no + 1
    parts.append("".join(current))
    return parts + [""] * (len(items) + 1 - len(parts))


def take(folder, item, run):
    """Move the line's files from the batch folder into its run folder, under a single run's names."""
    how = item["take"]
    if "folder" in how:
        video = f"{folder}/{how['folder']}"
        if os.path.isdir(video):
            for name in os.listdir(video):
                target = {"output.mp4": "output.mp4", "prompt.txt": "output.txt"}.get(name, name)
                os.replace(f"{video}/{name}", f"{run}/{target}")
            os.rmdir(video)
        return
    prefix = how["prefix"]
    for name in os.listdir(folder):
        if name.startswith((f"{prefix}.", f"{prefix}_")):
            os.replace(f"{folder}/{name}", f"{run}/output{name[len(prefix):]}")


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
    take(folder, item, run)
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
    parts = log_parts(log, items)
    rows, stop, ended = [], None, ""  # the line that ended the batch, and how it ended
    for index, item in enumerate(items):
        output = f"{folder}/{item['output']}"
        if stop is None and os.path.isfile(output) and os.path.getsize(output) > 0:
            status = "ok"
        elif stop is None:
            blocked = any(marker in parts[index] for marker in GUARDRAIL)
            status = "blocked" if blocked else "cancelled" if rc in STOPPED else "failed"
            if not (blocked and item.get("keep_going")):
                stop, ended = index, status
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
