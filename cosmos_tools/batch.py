"""Batches: variants that one model load can serve, the batch's JSONL job, its results mapped back.

Cosmos-Transfer1 (below) and Cosmos-Transfer2.5 batch differently. Transfer2.5 (reference cosmos-transfer2.5.md
section 2.1) reads every record of its ``-i`` files with one model load, and every key of a record is its own (prompt,
video, seed, guidance, steps, resolution, sigma_max, controls' fields...); only the setup flags are shared, and they
come from the config. But the model it loads follows the union of the records' control keys (one key: that
checkpoint; several: the multi-control model, whose output differs), so its batches group the variants by their set of
control keys. Each record is the variant's own spec with its paths relative to the batch folder and a unique ``name``,
``line_<N>``: upstream writes ``line_<N>.mp4`` and friends, moved to the variant's run folder as ``output.mp4``...
A blocked record is skipped (``--keep-going``, upstream's default) and the batch goes on: nothing is queued again.
Other models run one spec per job.

transfer.py's batch mode (reference cosmos-transfer1.md section 3) reads one JSON object per line: a line
carries ``prompt``, ``visual_input`` (the variant's ``input_video_path``) and ``control_overrides`` (fields of
controls already in the spec, applied with ``dict.update``); everything else is shared by the whole batch
(seed, sigma_max, num_steps, guidance, negative_prompt, fps, presets, regional_prompts, the control set, and
the run settings of the command line). So variants go into one batch when their specs differ only in what a
line carries; the rest run as consecutive single jobs (``group_variants``).

A batch job has a folder of its own, ``outputs/batches/runs/<batch id>/`` (``outputs/batches/<batch name>`` links to
the latest), holding ``controlnet_spec.json`` (the shared spec: the first variant's), ``batch.jsonl``,
``items.json`` (each line's run folder and the files a single run would have there), ``spec_used.json``,
``batch_map.py``, ``run.log`` and ``exit_code``. Its command is that copy of remote/batch_map.py wrapped around
transfer.py: when transfer.py ends, the script gives line N its own run folder ``outputs/runs/<run id>/`` on the box
(``video_<N>/output.mp4`` and ``prompt.txt`` moved there as ``output.mp4`` and ``output.txt``, its part of the batch
log as ``run.log``, ``exit_code`` last) and writes ``mapping.json``. The batch never passes ``--batch_size``, so
each line is its own model batch and ``video_<N>`` is line N: no renumbering when the guardrail drops one. A blocked
line crashes transfer.py (upstream), so the lines before it keep their results, it is ``blocked``, and the lines
after it are ``pending``: never processed, no folder; the client queues them again as a new batch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from .remote.paths import RUN, JobPaths, container_name
from .validate import CONTROL_KEYS

TRANSFER1, TRANSFER25 = "transfer1-7b", "transfer2.5-2b"
BATCHES_DIR = "outputs/batches"
LINE_KEYS = ("prompt", "input_video_path")  # the spec keys a batch line carries (as prompt, visual_input)
ITEMS_FILE, JSONL_FILE, MAPPING_FILE = "items.json", "batch.jsonl", "mapping.json"
MAP_SCRIPT = "batch_map.py"  # remote/batch_map.py, written into the batch folder with the job's other files
SETTLED = ("ok", "blocked", "failed", "cancelled", "taken")  # a line's status in mapping.json; else "pending"


@dataclass(frozen=True)
class BatchPaths(JobPaths):
    """A batch job's paths: its folder ``outputs/batches/runs/<batch id>``, its "latest" link
    ``outputs/batches/<batch name>`` (start.sh points it at ``runs/<batch id>``), its container."""

    @classmethod
    def of_batch(cls, name: str, leaf: str | None = None) -> BatchPaths:
        folder = f"{BATCHES_DIR}/{name}" if leaf is None else f"{BATCHES_DIR}/runs/{leaf}"
        return cls(name=name, kind=RUN, folder=folder, container=container_name(name, RUN))

    @property
    def latest(self) -> str:
        return f"{BATCHES_DIR}/{self.name}"


@dataclass
class Group:
    """Variants (indexes into the list given to ``group_variants``) that run as one job: a batch if several."""

    members: list[int]
    differs: list[str] = field(default_factory=list)  # what the lines of a batch differ in (for people)
    alone: str = ""  # why a variant cannot share a batch with any other ("" when it just differs)

    @property
    def batch(self) -> bool:
        return len(self.members) > 1


def controls_of(spec: dict) -> dict[str, dict]:
    return {key: value for key, value in spec.items() if key in CONTROL_KEYS and isinstance(value, dict)}


def _unbatchable(spec: dict) -> str:
    """Why ``spec`` cannot be a batch line ("" if it can)."""
    if not isinstance(spec.get("prompt"), str):
        return "no prompt text (a batch line needs its own prompt)"
    if not isinstance(spec.get("input_video_path"), str):
        return "no input_video_path (a batch line needs its visual_input)"
    return ""


def shared_key(spec: dict) -> str:
    """What batch mode shares, as a comparable text: every top-level setting but the line's keys, the control
    set, and each control's field names (``input_control`` aside: a line can set it to null)."""
    top = {k: v for k, v in spec.items() if k not in LINE_KEYS and k not in CONTROL_KEYS and not k.startswith("_")}
    controls = {k: sorted(set(v) - {"input_control"}) for k, v in controls_of(spec).items()}
    return json.dumps([top, controls], sort_keys=True, ensure_ascii=False)


def records_key(spec: dict) -> str:
    """What a Transfer2.5 batch shares: the set of control keys (it picks the model the batch loads)."""
    from .models.transfer25 import CONTROL_KEYS as KEYS25

    return json.dumps(sorted(k for k in KEYS25 if spec.get(k) is not None))


def _key(model: str, spec: dict) -> tuple[str, str]:
    """(what a batch of ``model`` shares, as a comparable text; why ``spec`` must run alone, "" if it need not)."""
    if model == TRANSFER25:
        return records_key(spec), ""
    if model != TRANSFER1:
        return "", f"{model} runs one spec per job"
    why = _unbatchable(spec)
    return ("", why) if why else (shared_key(spec), "")


def group_variants(specs: list[dict], model: str = TRANSFER1) -> list[Group]:
    """Group run specs (``render.run_spec`` of each variant) by what a batch of ``model`` shares, in order of first
    use."""
    groups: list[Group] = []
    by_key: dict[str, Group] = {}
    for index, spec in enumerate(specs):
        key, why = _key(model, spec)
        if why:
            groups.append(Group([index], alone=why))
            continue
        if key in by_key:
            by_key[key].members.append(index)
        else:
            by_key[key] = Group([index])
            groups.append(by_key[key])
    for group in groups:
        if group.batch:
            group.differs = _differences([specs[i] for i in group.members], model)
    return groups


def _differences(specs: list[dict], model: str) -> list[str]:
    first = specs[0]
    line_keys = LINE_KEYS if model == TRANSFER1 else dict.fromkeys(
        k for s in specs for k in s if k != "name" and k not in controls_of(s))
    keys = [k for k in line_keys if any(s.get(k) != first.get(k) for s in specs)]
    for control, fields in controls_of(first).items():
        names = dict.fromkeys(name for s in specs for name in controls_of(s)[control])
        keys += [f"{control}.{name}" for name in names
                 if any(controls_of(s)[control].get(name) != fields.get(name) for s in specs)]
    return keys


def batch_line(shared: dict, spec: dict) -> dict:
    """The JSONL object of one variant against the batch's ``shared`` spec: its prompt, its input video, and the
    control fields it sets differently (a field only the shared spec has is ``input_control``: set to null)."""
    line: dict = {"visual_input": spec["input_video_path"], "prompt": spec["prompt"]}
    overrides = {}
    for control, base in controls_of(shared).items():
        own = controls_of(spec)[control]
        changed = {name: own.get(name) for name in [*own, *(n for n in base if n not in own)]
                   if own.get(name) != base.get(name)}
        if changed:
            overrides[control] = changed
    if overrides:
        line["control_overrides"] = overrides
    return line


def record_name(index: int) -> str:
    """The ``name`` of a Transfer2.5 batch's record ``index``: unique, a plain file name, the stem of its outputs."""
    return f"line_{index}"


def batch_lines(model: str, prompts: list[dict], specs: list[dict], folder: str) -> list[dict]:
    """The JSONL objects of a batch in ``folder``: Transfer1 lines against the first spec (``batch_line``);
    Transfer2.5 records, each variant's own spec with its paths relative to ``folder`` and its ``record_name``."""
    if model == TRANSFER25:
        from .models import transfer25

        return [{**transfer25.run_spec(prompt, f"{folder}/{JSONL_FILE}"), "name": record_name(index)}
                for index, prompt in enumerate(prompts)]
    return [batch_line(specs[0], spec) for spec in specs]


def line_item(model: str, index: int) -> dict:
    """How remote/batch_map.py finds line ``index``'s result: its output file, the files to take, where its part of
    the log ends, and whether a blocked line ends the batch (Transfer1 crashes) or not (Transfer2.5 goes on)."""
    if model == TRANSFER25:
        name = record_name(index)
        return {"output": f"{name}.mp4", "take": {"prefix": name}, "keep_going": True,
                "cut": [["Saved video to", f"/{name}.mp4"], ["Guardrail blocked", name]]}
    return {"output": f"video_{index}/output.mp4", "take": {"folder": f"video_{index}"}, "keep_going": False,
            "cut": [["Saved prompt to", f"video_{index}/prompt.txt"]]}


def jsonl(lines: list[dict]) -> bytes:
    """batch.jsonl: one compact JSON object per line (transfer.py json.loads each line; no blank lines)."""
    return "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines).encode("utf-8")


def describe(groups: list[Group], names: list[str]) -> list[str]:
    """The grouping for people: one line per job, in the order they run."""
    out = []
    for number, group in enumerate(groups, 1):
        who = ", ".join(names[i] for i in group.members)
        if group.batch:
            out.append(f"job {number}: batch of {len(group.members)} (one model load; lines differ in "
                       f"{', '.join(group.differs) or 'nothing'}): {who}")
        else:
            out.append(f"job {number}: single run: {who}" + (f" ({group.alone})" if group.alone else ""))
    return out


def is_batch_folder(folder: str) -> bool:
    """A batch job's own folder on the box (``outputs/batches/runs/<batch id>``)."""
    return folder.startswith(f"{BATCHES_DIR}/runs/") and "/" not in folder.removeprefix(f"{BATCHES_DIR}/runs/")


def read_items(remote, folders: list[str]) -> dict[str, list[dict]]:
    """The lines of each batch folder on the box as its items.json lists them (``[{"dir", "latest", "files"}]``),
    in one round trip (remote/batch_items.sh); [] for a folder without a readable one."""
    from .errors import RemoteError

    if not folders:
        return {}
    done = remote.retrying("reading batch lines", lambda: remote.bash("batch_items.sh", *folders))
    parts = done.stdout.split(b"\0")[:-1]
    if done.rc != 0 or len(parts) != len(folders):
        raise RemoteError(f"unexpected answer from {remote.t.describe()} when reading the lines of batch jobs "
                          f"(exit {done.rc})")
    return {folder: _items(data) for folder, data in zip(folders, parts, strict=True)}


def _items(data: bytes) -> list[dict]:
    try:
        items = json.loads(data) if data else []
    except ValueError:
        return []
    ok = isinstance(items, list) and all(isinstance(i, dict) and isinstance(i.get("dir"), str) and
                                         isinstance(i.get("latest"), str) for i in items)
    return items if ok else []


def read_mapping(data: bytes | str, count: int) -> list[dict] | None:
    """mapping.json as written by remote/batch_map.py (``[{"line", "dir", "status"}]``); None if unusable."""
    try:
        rows = json.loads(data)
    except ValueError:
        return None
    if not isinstance(rows, list) or len(rows) != count or not all(
            isinstance(r, dict) and r.get("line") == i and isinstance(r.get("status"), str)
            for i, r in enumerate(rows)):
        return None
    return rows
