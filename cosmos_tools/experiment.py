"""Experiments: the cycle of several prompt files, or of a sweep manifest, over one connection.

Every prompt is checked before anything is sent. The variants are grouped (batch.py): variants that one model load
can serve run as one batch job, the others as consecutive single runs (cycle.py's ``Session.ensure_run``). The files
are uploaded once (their union). Each variant is still its own run: own run id, own folder ``outputs/runs/<run id>/``
(made on the box by remote/batch_map.py for a batched one), downloaded when its job ends, one history line. A line
blocked by the guardrail ends a Transfer1 batch (upstream crashes): it is ``blocked``, the lines before it keep their
results and the lines after it are queued again as a new batch. With ``upscale``, a 4K upscale of every variant that
ended ok follows (one job each: upstream forces batch size 1 for upscaling), with the variant's own ``_upscale``
settings. A summary table and the review page end the output.

What the box already holds is never run twice. Before grouping, each variant is looked up there:
- its latest run is queued or running: re-attached (never batched with others);
- it is a line of a batch still queued or running with this same spec (a client killed or detached while it ran):
  that batch is re-attached, its lines taken when it ends;
- its latest run has this same spec and ended ok or blocked: found, reported from its folder, not run again;
- its latest run has this same spec, ended otherwise, and has no history line yet (it ended while no client
  followed it): collected, reported as it ended, not run again (the next re-run runs it again);
- otherwise (another spec, a reported failure, ``force``) it runs.
Every variant settled here gets its history line once (a run found done that has none yet gets it now).

``detach``: upload, queue every job of the experiment (nothing that depends on results: no upscales, no requeue
after a blocked line), say what was queued and return; the same command later re-attaches and collects.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from collections import deque
from dataclasses import dataclass, field, replace
from pathlib import Path

from . import history, provenance
from .batch import (
    ITEMS_FILE,
    JSONL_FILE,
    MAP_SCRIPT,
    MAPPING_FILE,
    BatchPaths,
    Group,
    batch_lines,
    describe,
    group_variants,
    is_batch_folder,
    jsonl,
    line_item,
    read_items,
    read_mapping,
)
from .cycle import CycleResult, Session, Steps, history_line, local_rel, say
from .errors import Interrupted, JobFailed, RemoteError, UserError
from .jobs import (
    START_TRIES,
    STATUS_OF_VERDICT,
    Box,
    Job,
    Outcome,
    Remote,
    Runner,
    RunTaken,
    current_job,
    report_failure,
    spec_bytes,
)
from .plan import Plan, check_upscale_length, plan_prompt
from .remote import script
from .remote.codes import QueueCode
from .remote.paths import RUN, JobPaths, latest_folder, run_id_of, split_leaf
from .render import run_spec
from .runs import local_job_folder, next_run_number

LIVE = ("running", "queued")


@dataclass
class Variant:
    """One prompt of the experiment and what became of it."""

    plan: Plan
    spec: dict  # the spec a single run of it would use (render.run_spec)
    upscale: float | None = None  # its upscaler's control weight when the experiment upscales
    session: Session | None = None  # set when the experiment connects
    result: CycleResult = field(default_factory=lambda: CycleResult(status="pending"))
    found: str = ""  # settled by a run found on the box: "done" (ok), "blocked" or "collected" (ended otherwise)
    live: bool = False  # its latest run is queued or running on the box: re-attached, never batched
    attached: bool = False  # a line of a live batch that holds its spec: that batch is followed
    due: bool = False  # its history line is owed though nothing started here (found without a line, cancelled)
    recorded: bool = False  # its history line is written
    queued: str = ""  # --detach: where its job is ("queued behind 2 jobs", "running")

    @property
    def name(self) -> str:
        return self.plan.name

    @property
    def connected(self) -> Session:
        """Its session, once the experiment has connected."""
        if self.session is None:
            raise RuntimeError(f"internal error: variant {self.name!r} used before the experiment connected")
        return self.session


@dataclass
class BatchJob:
    """A batch job on the box and the variants of this experiment it carries, by their run folders."""

    name: str
    job: Job
    lines: int  # every line of the batch (some may not be ours)
    members: dict[str, Variant]  # run folder -> variant


def read_inputs(cfg, paths: list[Path]) -> tuple[str, list[Path]]:
    """(experiment name, prompt files) of one sweep manifest or of several prompt files."""
    if len(paths) == 1:
        manifest = _manifest(paths[0])
        if manifest is not None:
            return _manifest_prompts(cfg, paths[0], manifest)
    for path in paths:
        if _manifest(path) is not None:
            raise UserError(f"{path} is a sweep manifest: give it alone, or give prompt files only")
    return Path(paths[0]).stem, list(paths)


def _manifest(path: Path) -> dict | None:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # not a manifest; reading it as a prompt says what is wrong
    return data if isinstance(data, dict) and "variants" in data and "base" in data else None


def _manifest_prompts(cfg, path: Path, manifest: dict) -> tuple[str, list[Path]]:
    variants = manifest["variants"]
    prompts = [v.get("prompt") for v in variants] if isinstance(variants, list) and all(
        isinstance(v, dict) for v in variants) else None
    if not prompts or not all(isinstance(p, str) and p for p in prompts):
        raise UserError(f"{path}: \"variants\" must be a non-empty list of {{\"prompt\": <path>, ...}}; make the "
                        "manifest again with scripts/sweep.sh")
    name = manifest.get("name")
    return name if isinstance(name, str) and name else Path(path).stem, [cfg.root / p for p in prompts]


def plan_variants(cfg, paths: list[Path], *, upscale: bool, upscale_weight=None) -> tuple[str, list[Variant]]:
    """Read and check every prompt (all before anything is sent); refuse two prompts of one name.

    With ``upscale``, each variant's upscaler weight is ``upscale_weight`` (the command line), else its prompt's
    ``_upscale.control_weight``, else UPSCALE_WEIGHT; its ``_upscale`` prompt, seed and steps are checked here too.
    """
    from .render import upscale_settings, upscale_weight_of

    name, prompts = read_inputs(cfg, paths)
    variants = []
    for path in prompts:
        plan = plan_prompt(cfg, path, None)
        weight = None
        if upscale:
            check_upscale_length(cfg, plan)
            weight = upscale_weight_of(cfg, plan.prompt, upscale_weight)
            upscale_settings(cfg, plan.prompt)
        variants.append(Variant(plan=plan, spec=run_spec(plan.name, plan.prompt, cfg), upscale=weight))
    seen: dict[str, Path] = {}
    for v in variants:
        if v.name in seen:
            raise UserError(f"{v.plan.path} and {seen[v.name]} are both prompt {v.name!r}; give each prompt once")
        seen[v.name] = v.plan.path
    return name, variants


def grouping(cfg, variants: list[Variant]) -> list[Group]:
    return group_variants([v.spec for v in variants], cfg["MODEL"])


def run_experiment(cfg, paths: list[Path], *, upscale: bool = False, upscale_weight=None, force: bool = False,
                   dry_run: bool = False, detach: bool = False, review: bool = True, echo=None,
                   critique: bool = False, upscale_best: int = 0) -> None:
    """The cycle of every variant; raises JobFailed when any did not end ok (after the table).

    ``detach``: queue every job and return (the same call later collects the results). ``critique``: score the
    variants that ended ok (critic.py) before the review page; ``upscale_best``: then upscale the K best-scored ones
    (each with its own upscale settings, as ``upscale`` would)."""
    name, variants = plan_variants(cfg, paths, upscale=upscale or upscale_best > 0, upscale_weight=upscale_weight)
    groups = grouping(cfg, variants)
    for line in describe(groups, [v.name for v in variants]):
        print(line)
    if dry_run:
        print("dry run: nothing sent or started")
        return
    Experiment(cfg, name, variants, upscale=upscale, force=force, detach=detach, review=review, echo=echo,
               critique=critique or upscale_best > 0, upscale_best=upscale_best).run(groups)


class Experiment:
    """The jobs of one experiment over one connection."""

    def __init__(self, cfg, name: str, variants: list[Variant], *, upscale: bool = False, force: bool = False,
                 detach: bool = False, review: bool = True, echo=None, critique: bool = False,
                 upscale_best: int = 0) -> None:
        self.cfg, self.name, self.variants = cfg, name, variants
        self.upscale, self.force, self.detach, self.review, self.echo = upscale, force, detach, review, echo
        self.clock = time.monotonic()
        self.started = history.now_iso()
        self.upload_s = 0.0
        self.batches = 0
        self._remote: Remote | None = None
        self.upscaling: Variant | None = None  # the variant whose upscale runs now
        self.run_ids: set[str] = set()  # run ids the history has a line for
        self.critique, self.upscale_best = critique, upscale_best  # the last step (critic.py)

    @property
    def remote(self) -> Remote:
        """The connection, once ``run`` has made it."""
        if self._remote is None:
            raise RuntimeError(f"internal error: experiment {self.name!r} used before it connected")
        return self._remote

    def run(self, groups: list[Group]) -> None:
        error: UserError | None = None
        try:
            self._remote = Remote(self.cfg, say=say)
            for v in self.variants:
                v.session = Session(self.cfg, v.plan, echo=self.echo, remote=self.remote)
            self.run_ids = set(self.variants[0].connected.run_ids)
            self._upload()
            box = self._probe()
            for v in self.variants:
                self._look_up(v, box)
            for batch in self._live_batches(box):
                self._follow_batch(batch, box)
            queue = deque(groups)
            if self.remote.backend.side_by_side:
                queue = deque(self._side_by_side(groups))
            while queue:
                group = queue.popleft()
                members = [self.variants[i] for i in group.members]
                for v in members:
                    if v.live and not v.found:
                        self._single(v)
                todo = [v for v in members if not (v.found or v.live or v.attached)]
                if len(todo) > 1:
                    pending = self._batch(todo)
                    if pending:
                        queue.appendleft(Group([self.variants.index(v) for v in pending]))
                elif todo:
                    self._single(todo[0])
            if not self.detach:
                self._upscales()
                if self.critique:
                    self._critique()
        except KeyboardInterrupt:
            error = Interrupted("interrupted (Ctrl-C)")
        except UserError as exc:
            error = exc
        finally:
            if self._remote is not None:
                self._remote.close()
        if error is not None and self.upscaling is not None:  # its run ended ok, its upscale did not
            self.upscaling.result.status = "cancelled" if isinstance(error, Interrupted) else "failed"
            self.upscaling.result.error = error.format_message()
        for v in self.variants:
            self._record(v)
        self._table()
        if self.detach and error is None:
            self._detached()
            return
        if self.review:
            self._write_review()
        if error is not None:
            raise error
        failed = [v for v in self.variants if v.result.status != "ok"]
        if failed:
            raise JobFailed(f"{len(failed)} of {len(self.variants)} variants did not end ok: "
                            f"{', '.join(v.name for v in failed)}")

    def _critique(self) -> None:
        """Score the variants that ended ok and upscale the ``upscale_best`` best of them (critic.py)."""
        from .critic import rank_experiment

        runs = [(v.plan, v.result.run.run_id) for v in self.variants
                if v.result.status == "ok" and v.result.run is not None and v.result.run.run_id]
        weights = {v.result.run.run_id: v.upscale for v in self.variants if v.result.run is not None}
        rank_experiment(self.cfg, runs, name=f"critique-{self.name}", remote=self.remote, best=self.upscale_best,
                        weights=weights)

    def _write_review(self) -> None:
        """The review page and contact sheet of the variants' runs, so the experiment can be judged by eye."""
        from .review_page import write_review

        run_ids = [v.result.run.run_id for v in self.variants if v.result.run is not None and v.result.run.run_id]
        if not run_ids:
            return
        try:
            page = write_review(self.cfg, run_ids, title=f"experiment {self.name}")
        except UserError as exc:  # the runs are in place; only the page is missing
            say(f"no review page: {exc.format_message()}")
            return
        print(f"review: {local_rel(self.cfg, page)} (and its contact sheet beside it)")

    def _detached(self) -> None:
        waiting = [v for v in self.variants if v.queued]
        say(f"detached: {len(waiting)} variant(s) queued or running on the box; run the same command again to "
            "collect them (history lines, downloads, review), or watch them with `cosmos-tools queue`")

    # --- steps ---------------------------------------------------------------------------------------------

    def _upload(self) -> None:
        """The union of every variant's files, once."""
        from .sync import upload_files

        files = list({rel: (local, rel) for v in self.variants for local, rel in v.plan.uploads}.values())
        begin = time.monotonic()
        report = self.remote.retrying("upload", lambda: upload_files(self.remote.t, files))
        self.upload_s = time.monotonic() - begin
        for v in self.variants:
            v.connected.digests.update(report.digests)
        say(f"upload: {len(report.sent)} sent ({report.bytes_sent / 1e6:.1f} MB), {len(report.skipped)} already on "
            f"the box, {report.seconds:.1f} s")

    def _probe(self) -> Box:
        """Read the box for every variant: the first one with the box's facts, the others from one more reading."""
        first = self.variants[0].connected
        first.probe()
        folders = [folder for v in self.variants for folder in v.connected.runner.watch]
        box = self.remote.retrying("reading job state", lambda: self.remote.probe(folders))
        for v in self.variants[1:]:
            if v.connected.old_layout(box):
                v.connected.probe()  # its first reading: moves the old layout's results, as a single cycle does
            else:
                v.connected.facts, v.connected.box = first.facts, box
        return box

    def _look_up(self, v: Variant, box: Box) -> None:
        """What the box holds for ``v`` (module docstring): live, found done or blocked, collected, or nothing."""
        state = (v.connected.box or box).jobs[latest_folder(v.name, RUN)]
        if state.verdict in LIVE or JobPaths.of(v.name, RUN).container in box.running:
            v.live = True
            return
        if self.force or state.leaf is None or state.spec_sha != hashlib.sha256(spec_bytes(v.spec)).hexdigest():
            return
        run = current_job(v.name, RUN, state)
        verdict, recorded = state.verdict, run.run_id in self.run_ids
        if verdict == "ok":
            v.found = "done"
            say(f"{run.label} already finished ok on the box with the same spec; not running it again")
        elif verdict == "blocked":
            v.found = "blocked"
            say(f"{run.label} was blocked by the guardrail with the same spec ({run.dir}/run.log); not running it "
                "again: change the prompt (or --force)")
        elif verdict != "absent" and not recorded:
            v.found = "collected"
            say(f"{run.label} ended {verdict} while no client followed it; collecting it (a re-run runs it again)")
        else:
            return
        v.due = not recorded
        status = STATUS_OF_VERDICT.get(verdict, "failed")
        self._settle(v, run, status, state.exit_code, "" if status == "ok" else state.failure(run.label))

    def _single(self, v: Variant) -> None:
        begin = time.monotonic()
        before = (v.connected.box.jobs[latest_folder(v.name, RUN)].leaf if v.connected.box else None)
        try:
            outcome = v.connected.ensure_run(detach=self.detach, force=self.force)
        except Interrupted:
            self._after_single_interrupt(v, before)
            raise
        v.result.durations["run"] = time.monotonic() - begin
        if outcome.status in ("detached", "running"):
            v.result.run, v.queued = outcome.job, _where(outcome.state.queued, outcome.state.verdict)
            return
        self._settle(v, outcome.job, outcome.status, outcome.state.exit_code, outcome.message, outcome)
        if not outcome.reused:
            v.result.started.append(outcome.job)

    def _side_by_side(self, groups: list[Group]) -> list[Group]:
        """Slurm runs jobs side by side: submit every single-variant job at once, then follow each to its end (in
        order: the cluster runs them meanwhile); the groups left for the loop (batches, variants live or found).
        Detached, the loop submits every job and returns anyway."""
        if self.detach:
            return groups
        singles: list[Variant] = []
        rest: list[Group] = []
        for group in groups:
            members = [self.variants[i] for i in group.members]
            if len(members) == 1 and not (members[0].found or members[0].live or members[0].attached):
                singles.append(members[0])
            else:
                rest.append(group)
        submitted = []
        for v in singles:
            v.connected.runner.detach_hint = False
            begin = time.monotonic()
            submitted.append((v, v.connected.ensure_run(detach=True, force=self.force), begin))
        current: Variant | None = None
        try:
            for v, outcome, begin in submitted:
                current = v
                if outcome.status in ("detached", "running"):
                    outcome = v.connected.runner.follow(outcome.job, queued=True,
                                                        offset=0 if outcome.status == "detached" else -20)
                v.result.durations["run"] = time.monotonic() - begin
                self._settle(v, outcome.job, outcome.status, outcome.state.exit_code, outcome.message, outcome)
                if not outcome.reused:
                    v.result.started.append(outcome.job)
        except (Interrupted, KeyboardInterrupt):  # Ctrl-C stops this command's jobs: the ones not followed yet too
            waiting = [(v, o.job) for v, o, _ in submitted
                       if v is not current and v.result.run is None and o.status in ("detached", "running")]
            for v, job in waiting:  # each keeps its own history line, cancelled
                with contextlib.suppress(UserError):
                    self.remote.cancel(job.dir, job.container)
                v.result.run, v.result.status, v.result.error = job, "cancelled", "cancelled (Ctrl-C)"
                v.result.started.append(job)
            say(f"Ctrl-C: cancelled the {len(waiting)} other submitted job(s) of this experiment")
            raise
        return rest

    def _after_single_interrupt(self, v: Variant, before: str | None) -> None:
        """Ctrl-C while ``v`` ran alone: the run it started, now stopped or removed from the queue, gets its line."""
        box = self.remote.retrying("reading job state", lambda: self.remote.probe([latest_folder(v.name, RUN)]))
        state = box.jobs[latest_folder(v.name, RUN)]
        if state.leaf is None or state.leaf == before or state.verdict in (*LIVE, "absent"):
            return
        run = current_job(v.name, RUN, state)
        v.result.started.append(run)
        self._settle(v, run, STATUS_OF_VERDICT.get(state.verdict, "failed"), state.exit_code,
                     state.failure(run.label))

    # --- batches -------------------------------------------------------------------------------------------

    def _live_batches(self, box: Box) -> list[BatchJob]:
        """Batches queued or running on the box that hold a variant's exact spec (a client killed or detached while
        they ran): those variants are marked attached, not run again."""
        entries = [e for e in box.waiting() if is_batch_folder(e.folder)]
        wanted = {latest_folder(v.name, RUN): v for v in self.variants if not (v.found or v.live)}
        if not entries or not wanted:
            return []
        found = []
        for entry, items in zip(entries, read_items(self.remote, [e.folder for e in entries]).values(),
                                strict=True):
            members = {}
            for item in items:
                v = wanted.get(item["latest"])
                spec = item.get("files", {}).get("controlnet_spec.json")
                if v is not None and not v.attached and spec == spec_bytes(v.spec).decode("utf-8"):
                    v.attached, members[item["dir"]] = True, v
            if not members:
                continue
            name = split_leaf(entry.leaf)[0]
            job = Job(BatchPaths.of_batch(name, entry.leaf))
            where = _where(entry.ahead, "queued" if entry.state == "pending" else "running")
            say(f"batch {name} is already {where} on the box ({job.dir}) with {len(members)} of these variants; "
                + ("leaving it there" if self.detach else "re-attaching to its log"))
            for folder, v in members.items():
                v.result.run, v.queued = Job(JobPaths.of(v.name, RUN, folder.rsplit("/", 1)[-1])), where
            found.append(BatchJob(name, job, len(items), members))
        return found

    def _follow_batch(self, batch: BatchJob, box: Box) -> None:
        """Follow a re-attached batch to its end and take its lines (unless detached)."""
        if self.detach:
            return
        entry = next((e for e in box.waiting() if e.folder == batch.job.dir), None)
        runner = Runner(self.remote, echo=self.echo)
        begin = time.monotonic()
        try:
            outcome = runner.follow(batch.job, offset=-20, queued=entry is not None and entry.state == "pending")
        except Interrupted:
            self._after_batch_interrupt(batch)
            raise
        for v in batch.members.values():
            v.queued = ""
        pending = self._take_lines(batch, outcome, time.monotonic() - begin)
        for v in pending:  # lines after a blocked one: run as a group of their own
            v.attached = False

    def _batch(self, members: list[Variant]) -> list[Variant]:
        """Run ``members`` as one batch job; the members never processed (after a blocked line)."""
        from .render import render_batch

        self.batches += 1
        name = f"{self.name}~batch{self.batches}"
        shared, model = members[0].spec, self.cfg["MODEL"]
        remote = self.remote
        box = remote.retrying("reading job state", lambda: remote.probe(
            [BatchPaths.of_batch(name).folder, *(latest_folder(v.name, RUN) for v in members)]))

        def new_job(k: int) -> Job:
            rendered = render_batch(name, shared, self.cfg, account=box.account, leaf=run_id_of(name, k))
            lines = batch_lines(model, [v.plan.prompt for v in members], [v.spec for v in members],
                                rendered.output_dir)
            items = []
            for line, (v, data) in enumerate(zip(members, lines, strict=True)):
                number = next_run_number(self.cfg, v.name, box.jobs[latest_folder(v.name, RUN)].leaf, self.run_ids)
                run_id = run_id_of(v.name, number)
                own = replace(rendered, name=v.name, spec=v.spec, output_dir=JobPaths.of(v.name, RUN, run_id).folder)
                made = v.connected.make_job(own, v.plan.text, run_id, batch=rendered.output_dir, batch_line=line,
                                            batch_input=data)
                items.append({"dir": made.dir, "latest": latest_folder(v.name, RUN),
                              "files": {k: b.decode("utf-8") for k, b in made.files.items()},
                              **line_item(model, line)})
            files = {"controlnet_spec.json": spec_bytes(shared), JSONL_FILE: jsonl(lines),
                     MAP_SCRIPT: script("batch_map.py").encode("utf-8"),
                     ITEMS_FILE: (json.dumps(items, indent=2, ensure_ascii=False) + "\n").encode(),
                     "spec_used.json": (json.dumps({**rendered.spec_used(), "lines": lines}, indent=2,
                                                   ensure_ascii=False) + "\n").encode()}
            return Job(BatchPaths.of_batch(name, run_id_of(name, k)), docker=list(rendered.docker), files=files,
                       spec_sha=hashlib.sha256(files["controlnet_spec.json"]).hexdigest())

        runner = Runner(remote, echo=self.echo)
        begin = time.monotonic()
        first = next_run_number(self.cfg, name, box.jobs[BatchPaths.of_batch(name).folder].leaf, [])
        say(f"batch {name}: {len(members)} variants, one model load")
        started: list[BatchJob] = []
        try:
            outcome = self._start(runner, new_job, first, members, started)
        except Interrupted:
            if started:
                self._after_batch_interrupt(started[0])
            raise
        batch = started[0]
        if self.detach:
            where = _where(outcome.state.queued, outcome.state.verdict)
            for v in members:
                v.queued = where
            return []
        return self._take_lines(batch, outcome, time.monotonic() - begin)

    def _start(self, runner: Runner, new_job, first: int, members: list[Variant], started: list[BatchJob]) -> Outcome:
        """Queue the batch in its first free folder (and follow it unless detached); ``started`` gets it once it is
        queued (the caller's to settle after a Ctrl-C)."""
        for k in range(first, first + START_TRIES):
            job = new_job(k)
            items = json.loads(job.files[ITEMS_FILE])
            batch = BatchJob(split_leaf(job.paths.leaf)[0], job, len(members),
                             {item["dir"]: v for item, v in zip(items, members, strict=True)})
            for item, v in zip(items, members, strict=True):
                v.result.run = Job(JobPaths.of(v.name, RUN, item["dir"].rsplit("/", 1)[-1]))
            started[:] = [batch]
            try:
                return runner.start(job, detach=self.detach)
            except RunTaken:
                started.clear()
                continue
        raise RemoteError(f"could not start a batch of {self.name!r}: {START_TRIES} batch folders in a row were taken "
                          "on the box by other clients; try again")

    def _take_lines(self, batch: BatchJob, outcome: Outcome, seconds: float) -> list[Variant]:
        """Download the ended batch and settle each of our lines from its mapping.json; the lines left pending."""
        from .sync import download_tree

        remote, job = self.remote, batch.job
        local = local_job_folder(self.cfg, job.dir)
        remote.retrying("download", lambda: download_tree(remote.t, job.dir, local, progress=False, missing_ok=True))
        mapping = local / MAPPING_FILE
        rows = read_mapping(mapping.read_bytes(), batch.lines) if mapping.is_file() else None
        members = list(batch.members.values())
        for v in members:
            v.result.durations["run"] = seconds
        if rows is None:
            if outcome.state.exit_code == QueueCode.CANCELLED:
                self._unstarted(batch, "removed from the queue before it started (Ctrl-C or `cosmos-tools kill`)")
                return []
            report_failure(outcome, say)
            why = f"batch {job.dir} ended without mapping its lines ({outcome.message or outcome.status})"
            for v in members:
                v.result.status, v.result.error, v.result.run, v.due = "failed", why, None, True
                self._record(v)
            return []
        pending = []
        for row in rows:
            if row["dir"] not in batch.members:
                continue  # a line of someone else's, or of a spec since changed
            v = batch.members[row["dir"]]
            if row["status"] == "pending":
                v.result.run = None
                pending.append(v)
                continue
            run = Job(JobPaths.of(v.name, RUN, row["dir"].rsplit("/", 1)[-1]))
            v.result.started.append(run)
            status = row["status"]
            message = {"blocked": f"{run.label}: the guardrail blocked it (GUARDRAIL BLOCKED in {run.dir}/run.log); "
                                  "change the prompt",
                       "taken": f"{run.label}: its run folder was taken on the box by another client; run it again",
                       "cancelled": f"{run.label}: stopped by a signal (Ctrl-C or `cosmos-tools kill`)",
                       "failed": f"{run.label}: the batch failed (see {run.dir}/run.log)"}.get(status, "")
            self._settle(v, run, "failed" if status == "taken" else status, _exit_code(local_job_folder(
                self.cfg, run.dir)), message)
        if pending:
            say(f"the guardrail blocked a line of batch {batch.name}; queueing the {len(pending)} line(s) after it "
                "again as a new batch")
        return pending

    def _after_batch_interrupt(self, batch: BatchJob) -> None:
        """Ctrl-C while ``batch`` was followed (and asked to stop): each of its variants gets its line: the lines it
        saved are ok, the others cancelled. A batch left running (a second Ctrl-C) is collected by a re-run."""
        remote = self.remote
        box = remote.retrying("reading job state", lambda: remote.probe([batch.job.dir]))
        state = box.jobs[batch.job.dir]
        if state.verdict in LIVE:
            return
        if state.exit_code is None:
            self._unstarted(batch, "interrupted before it was queued")
            return
        outcome = Outcome(STATUS_OF_VERDICT.get(state.verdict, "failed"), state, job=batch.job,
                          message=state.failure(batch.name))
        self._take_lines(batch, outcome, 0.0)

    def _unstarted(self, batch: BatchJob, why: str) -> None:
        """A batch that never ran: each variant is cancelled, without a run (its run folder was never made)."""
        for v in batch.members.values():
            v.result.status, v.result.error, v.result.run, v.due = "cancelled", f"batch {batch.name}: {why}", None, True
            self._record(v)

    # --- settling, downloads, upscales ---------------------------------------------------------------------

    def _settle(self, v: Variant, run: Job, status: str, exit_code: int | None, message: str,
                outcome: Outcome | None = None) -> None:
        v.result.run, v.result.status, v.result.exit = run, status, exit_code
        if status != "ok":
            v.result.error = message
            if outcome is not None:
                report_failure(outcome, say)
            elif message:
                say(f"FAILED {message}")
        self._download(v, run)
        if not self.upscale or status != "ok":
            self._record(v)  # complete: its line now, not at the end (a client killed later loses none)

    def _download(self, v: Variant, job: Job) -> None:
        begin = time.monotonic()
        v.connected.download(job, missing_ok=True)
        v.result.durations["download"] = v.result.durations.get("download", 0.0) + time.monotonic() - begin

    def _upscales(self) -> None:
        for v in self.variants:
            if self.upscale and v.upscale is not None and v.result.run is not None and v.result.status == "ok":
                self.upscaling = v
                self._upscale(v, v.result.run, v.upscale)
                self.upscaling = None
            self._record(v)

    def _upscale(self, v: Variant, run: Job, weight: float) -> None:
        session = v.connected
        begin = time.monotonic()
        try:
            session.probe()
            session.check_upscale_input(run)
            up = session.ensure_upscale(run, weight)
        finally:
            v.result.durations["upscale"] = time.monotonic() - begin
        v.result.upscale = up.job
        if not up.reused:
            v.result.started.append(up.job)
        self._download(v, up.job)
        if up.status != "ok":
            report_failure(up, say)
            v.result.status, v.result.error = "failed", "upscale: " + up.message

    # --- the record ----------------------------------------------------------------------------------------

    def _record(self, v: Variant) -> None:
        """The variant's history line, once, if anything ran for it (or it is owed one); none while it waits."""
        result = v.result
        if v.recorded or v.queued and result.status == "pending" or not (result.started or v.due):
            return
        result.durations["upload"] = self.upload_s
        result.durations["total"] = time.monotonic() - self.clock
        for job in result.started:
            provenance.add_timings(local_job_folder(self.cfg, job.dir), result.durations)
        steps = Steps(upscale=v.upscale if self.upscale else None)  # --upscale-best upscales as attempts of their own
        history_line(self.cfg, v.plan, self.started, result, steps, v.session)
        v.recorded = True
        if result.run is not None and result.run.run_id:
            self.run_ids.add(result.run.run_id)

    def _table(self) -> None:
        rows = [("variant", "run id", "status", "output")]
        for v in self.variants:
            run = v.result.run
            output = ""
            if run is not None and run.run_id:
                video = local_job_folder(self.cfg, (v.result.upscale or run).dir) / "output.mp4"
                output = local_rel(self.cfg, video) if video.is_file() else local_rel(
                    self.cfg, local_job_folder(self.cfg, run.dir))
            status = v.queued if v.queued and v.result.status == "pending" else \
                v.result.status + (f" (found {v.found})" if v.found in ("done", "blocked") else
                                   " (collected)" if v.found else "")
            rows.append((v.name, run.run_id if run is not None else "", status, output))
        widths = [max(len(r[i]) for r in rows) for i in range(3)]
        for row in rows:
            print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + "  " + row[3])
        lines = sum(1 for v in self.variants if v.recorded)
        print(f"history ({local_rel(self.cfg, history.history_path(self.cfg))}): {lines} line(s) added")
        say(f"{time.monotonic() - self.clock:.1f} s over {self.remote.connections if self._remote else 0} SSH "
            "connection(s)")


def _where(ahead: int | None, verdict: str) -> str:
    """Where a queued job is, for people: ``queued behind N jobs`` or ``running``."""
    if ahead:
        return f"queued behind {ahead} job" + ("" if ahead == 1 else "s")
    return verdict


def _exit_code(folder: Path) -> int | None:
    try:
        return int((folder / "exit_code").read_text().strip())
    except (OSError, ValueError):
        return None
