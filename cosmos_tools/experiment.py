"""Experiments: the cycle of several prompt files, or of a sweep manifest, over one connection.

Every prompt is checked before anything is sent. The variants are grouped (batch.py): variants whose specs
differ only in what a batch line carries run as one ``--batch_input_path`` job (one model load), the others as
consecutive single runs (cycle.py's ``Session.ensure_run``). The files are uploaded once (their union). Each
variant is still its own run: own run id, own folder ``outputs/runs/<run id>/`` (made on the box by
remote/batch_map.py for a batched one), downloaded when its job ends, one history line. A line blocked by the
guardrail ends its batch (upstream crashes): it is ``blocked``, the lines before it keep their results and the
lines after it are queued again as a new batch. With an upscale weight, a 4K upscale of every variant that
ended ok follows (one job each: upstream forces batch size 1 for upscaling). A variant whose latest run
finished ok with the same spec is not run again (unless ``force``); a batch still queued or running on the box
with the same work (a client killed while it ran) is re-attached to, not started again. A summary table ends
the output.
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
    batch_line,
    describe,
    group_variants,
    jsonl,
    read_mapping,
)
from .cycle import CycleResult, Session, Steps, history_line, local_rel, say
from .errors import Interrupted, JobFailed, RemoteError, UserError
from .jobs import START_TRIES, Box, Job, Outcome, Remote, Runner, RunTaken, report_failure, spec_bytes
from .plan import Plan, check_upscale_length, plan_prompt
from .remote import script
from .remote.paths import RUN, JobPaths, latest_folder, run_id_of
from .render import run_spec
from .runs import local_job_folder, next_run_number


@dataclass
class Variant:
    """One prompt of the experiment and what became of it."""

    plan: Plan
    spec: dict  # the spec a single run of it would use (render.run_spec)
    session: Session | None = None  # set when the experiment connects
    result: CycleResult = field(default_factory=lambda: CycleResult(status="pending"))
    reused: bool = False  # its latest run finished ok with the same spec before: nothing run
    recorded: bool = False  # its history line is written

    @property
    def name(self) -> str:
        return self.plan.name

    @property
    def connected(self) -> Session:
        """Its session, once the experiment has connected."""
        if self.session is None:
            raise RuntimeError(f"internal error: variant {self.name!r} used before the experiment connected")
        return self.session


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


def plan_variants(cfg, paths: list[Path], *, upscale: bool) -> tuple[str, list[Variant]]:
    """Read and check every prompt (all before anything is sent); refuse two prompts of one name."""
    name, prompts = read_inputs(cfg, paths)
    variants = []
    for path in prompts:
        plan = plan_prompt(cfg, path, None)
        if upscale:
            check_upscale_length(cfg, plan)
        variants.append(Variant(plan=plan, spec=run_spec(plan.name, plan.prompt, cfg)))
    seen: dict[str, Path] = {}
    for v in variants:
        if v.name in seen:
            raise UserError(f"{v.plan.path} and {seen[v.name]} are both prompt {v.name!r}; give each prompt once")
        seen[v.name] = v.plan.path
    return name, variants


def grouping(variants: list[Variant]) -> list[Group]:
    return group_variants([v.spec for v in variants])


def run_experiment(cfg, paths: list[Path], *, upscale: float | None = None, force: bool = False,
                   dry_run: bool = False, review: bool = True, echo=None, critique: bool = False,
                   upscale_best: int = 0, best_weight: float | None = None) -> None:
    """The cycle of every variant; raises JobFailed when any did not end ok (after the table).

    ``critique``: score the variants that ended ok (critic.py) before the review page; ``upscale_best``: then
    upscale the K best-scored ones with ``best_weight``."""
    name, variants = plan_variants(cfg, paths, upscale=upscale is not None or upscale_best > 0)
    groups = grouping(variants)
    for line in describe(groups, [v.name for v in variants]):
        print(line)
    if dry_run:
        print("dry run: nothing sent or started")
        return
    Experiment(cfg, name, variants, upscale=upscale, force=force, review=review, echo=echo,
               critique=critique or upscale_best > 0, upscale_best=upscale_best, best_weight=best_weight).run(groups)


class Experiment:
    """The jobs of one experiment over one connection."""

    def __init__(self, cfg, name: str, variants: list[Variant], *, upscale: float | None, force: bool,
                 review: bool = True, echo=None, critique: bool = False, upscale_best: int = 0,
                 best_weight: float | None = None) -> None:
        self.cfg, self.name, self.variants = cfg, name, variants
        self.upscale, self.force, self.review, self.echo = upscale, force, review, echo
        self.clock = time.monotonic()
        self.started = history.now_iso()
        self.upload_s = 0.0
        self.batches = 0
        self._remote: Remote | None = None
        self.upscaling: Variant | None = None  # the variant whose upscale runs now
        self.critique, self.upscale_best, self.best_weight = critique, upscale_best, best_weight  # the last step

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
            self._upload()
            self._probe()
            queue = deque(groups)
            if self.remote.backend.side_by_side:
                queue = deque(self._side_by_side(groups))
            while queue:
                group = queue.popleft()
                todo = [self.variants[i] for i in group.members if not self._reuse(self.variants[i])]
                if len(todo) > 1:
                    pending = self._batch(todo)
                    if pending:
                        queue.appendleft(Group([self.variants.index(v) for v in pending]))
                elif todo:
                    self._single(todo[0])
            for v in self.variants:
                if self.upscale is not None and v.result.run is not None and v.result.status == "ok":
                    self.upscaling = v
                    self._upscale(v, v.result.run, self.upscale)
                    self.upscaling = None
                self._record(v)
            if self.critique:
                self._critique()
        except KeyboardInterrupt:
            error = Interrupted("interrupted (Ctrl-C)")
        except UserError as exc:
            error = exc
        finally:
            if self._remote is not None:
                self._remote.close()
        if error is not None:
            if self.upscaling is not None:  # its run ended ok, its upscale did not
                self.upscaling.result.status = "cancelled" if isinstance(error, Interrupted) else "failed"
                self.upscaling.result.error = error.format_message()
            for v in self.variants:
                self._record(v)
        self._table()
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
        rank_experiment(self.cfg, runs, name=f"critique-{self.name}", remote=self.remote, best=self.upscale_best,
                        weight=self.best_weight)

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

    def _probe(self) -> None:
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

    def _reuse(self, v: Variant) -> bool:
        """True (and the variant settled) if its latest run finished ok with the same spec."""
        if self.force or v.reused:
            return v.reused
        state = (v.connected.box or v.connected.probe()).jobs[latest_folder(v.name, RUN)]
        same = state.spec_sha == hashlib.sha256(spec_bytes(v.spec)).hexdigest()
        if state.verdict == "ok" and same:
            v.reused = True
            run = v.connected.current(RUN)
            v.result.run, v.result.status, v.result.exit = run, "ok", 0
            say(f"{run.label} already finished ok on the box with the same spec; not running it again")
            self._download(v, run)
        return v.reused

    def _single(self, v: Variant) -> None:
        begin = time.monotonic()
        outcome = v.connected.ensure_run(force=self.force)
        v.result.durations["run"] = time.monotonic() - begin
        self._settle(v, outcome.job, outcome.status, outcome.state.exit_code, outcome.message, outcome)
        if not outcome.reused:
            v.result.started.append(outcome.job)

    def _side_by_side(self, groups: list[Group]) -> list[Group]:
        """Slurm runs jobs side by side: submit every single-variant job at once, then follow each to its end (in
        order: the cluster runs them meanwhile); the groups left for the loop (batches, variants found done)."""
        singles: list[tuple[Group, list[Variant]]] = []
        rest: list[tuple[Group, list[Variant]]] = []
        for group in groups:
            todo = [self.variants[i] for i in group.members if not self._reuse(self.variants[i])]
            (singles if len(todo) == 1 else rest).append((group, todo))
        submitted = []
        for _, (v,) in singles:
            v.connected.runner.detach_hint = False
            begin = time.monotonic()
            submitted.append((v, v.connected.ensure_run(detach=True, force=self.force), begin))
        current = None
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
            waiting = [o.job for v, o, _ in submitted
                       if v is not current and v.result.run is None and o.status in ("detached", "running")]
            for job in waiting:
                with contextlib.suppress(UserError):
                    self.remote.cancel(job.dir, job.container)
            say(f"Ctrl-C: cancelled the {len(waiting)} other submitted job(s) of this experiment")
            raise
        return [group for group, _ in rest]

    def _batch(self, members: list[Variant]) -> list[Variant]:
        """Run ``members`` as one batch job; the members never processed (after a blocked line)."""
        from .render import render_batch
        from .sync import download_tree

        self.batches += 1
        name = f"{self.name}~batch{self.batches}"
        shared = members[0].spec
        lines = [batch_line(shared, v.spec) for v in members]
        remote = self.remote
        box = remote.retrying("reading job state", lambda: remote.probe(
            [BatchPaths.of_batch(name).folder, *(latest_folder(v.name, RUN) for v in members)]))
        run_ids = [r.get("run_id", "") for r in history.read_records(history.history_path(self.cfg),
                                                                     warn=lambda msg: None)]

        def new_job(k: int) -> Job:
            rendered = render_batch(name, shared, self.cfg, account=box.account, leaf=run_id_of(name, k))
            items = []
            for line, (v, data) in enumerate(zip(members, lines, strict=True)):
                number = next_run_number(self.cfg, v.name, box.jobs[latest_folder(v.name, RUN)].leaf, run_ids)
                run_id = run_id_of(v.name, number)
                own = replace(rendered, name=v.name, spec=v.spec, output_dir=JobPaths.of(v.name, RUN, run_id).folder)
                made = v.connected.make_job(own, v.plan.text, run_id, batch=rendered.output_dir, batch_line=line,
                                          batch_input=data)
                items.append({"dir": made.dir, "latest": latest_folder(v.name, RUN),
                              "files": {k: b.decode("utf-8") for k, b in made.files.items()}})
            files = {"controlnet_spec.json": spec_bytes(shared), JSONL_FILE: jsonl(lines),
                     MAP_SCRIPT: script("batch_map.py").encode("utf-8"),
                     ITEMS_FILE: (json.dumps(items, indent=2, ensure_ascii=False) + "\n").encode(),
                     "spec_used.json": (json.dumps({**rendered.spec_used(), "lines": lines}, indent=2,
                                                   ensure_ascii=False) + "\n").encode()}
            return Job(BatchPaths.of_batch(name, run_id_of(name, k)), docker=list(rendered.docker), files=files,
                       spec_sha=hashlib.sha256(files["controlnet_spec.json"]).hexdigest())

        runner = Runner(remote, echo=self.echo)
        begin = time.monotonic()
        outcome = self._reattach(runner, name, box, spec_bytes(shared), jsonl(lines))
        if outcome is None:
            first = next_run_number(self.cfg, name, box.jobs[BatchPaths.of_batch(name).folder].leaf, [])
            say(f"batch {name}: {len(members)} variants, one model load")
            outcome = self._start(runner, new_job, first)
        seconds = time.monotonic() - begin
        job = outcome.job
        local = local_job_folder(self.cfg, job.dir)
        remote.retrying("download", lambda: download_tree(remote.t, job.dir, local, progress=False, missing_ok=True))
        rows = read_mapping((local / MAPPING_FILE).read_bytes(), len(members)) if (local / MAPPING_FILE).is_file() \
            else None
        if rows is None:
            report_failure(outcome, say)
            why = f"batch {job.dir} ended without mapping its lines ({outcome.message or outcome.status})"
            for v in members:
                v.result.status, v.result.error, v.result.durations["run"] = "failed", why, seconds
            return []
        pending = []
        for v, row in zip(members, rows, strict=True):
            v.result.durations["run"] = seconds
            if row["status"] == "pending":
                pending.append(v)
                continue
            run = Job(JobPaths.of(v.name, RUN, row["dir"].rsplit("/", 1)[-1]))
            v.result.started.append(run)
            status = row["status"]
            message = {"blocked": f"{run.label}: the guardrail blocked it (GUARDRAIL BLOCKED in {run.dir}/run.log); "
                                  "change the prompt",
                       "taken": f"{run.label}: its run folder was taken on the box by another client; run it again",
                       "cancelled": f"{run.label}: stopped by a signal", "failed": f"{run.label}: the batch failed "
                       f"(see {run.dir}/run.log)"}.get(status, "")
            self._settle(v, run, "failed" if status == "taken" else status, _exit_code(local_job_folder(
                self.cfg, run.dir)), message)
        if pending:
            say(f"the guardrail blocked a line of batch {name}; queueing the {len(pending)} line(s) after it again "
                "as a new batch")
        return pending

    def _reattach(self, runner: Runner, name: str, box: Box, shared: bytes, lines: bytes) -> Outcome | None:
        """Follow batch ``name`` to its end if the box still queues or runs it with this same work (its
        controlnet_spec.json is ``shared``, its batch.jsonl is ``lines``): a client killed while it ran left it
        there. None if there is no such batch (then a new one starts)."""
        state = box.jobs[BatchPaths.of_batch(name).folder]
        if state.leaf is None or state.exit_code is not None:
            return None
        job = Job(BatchPaths.of_batch(name, state.leaf))
        entry = next((e for e in box.waiting() if e.folder == job.dir), None)
        if entry is None and job.container not in box.running:
            return None
        if state.spec_sha != hashlib.sha256(shared).hexdigest() or self._box_file(job, JSONL_FILE) != lines:
            say(f"batch {name} on the box ({job.dir}) holds other lines or another spec; starting a new batch")
            return None
        queued = entry is not None and entry.state == "pending"
        where = f"queued behind {entry.ahead} job(s)" if entry is not None and queued else "running"
        say(f"batch {name} is already {where} on the box ({job.dir}) with these variants; re-attaching to its log")
        return runner.follow(job, offset=-20, queued=queued)

    def _box_file(self, job: Job, file: str) -> bytes | None:
        """The bytes of ``file`` in the job's folder on the box; None if it cannot be read."""
        remote = self.remote
        done = remote.retrying(f"reading {job.dir}/{file}",
                               lambda: remote.t.run(["cat", "--", f"{job.dir}/{file}"], check=False))
        return done.stdout if done.rc == 0 else None

    def _start(self, runner: Runner, new_job, first: int) -> Outcome:
        for k in range(first, first + START_TRIES):
            try:
                return runner.start(new_job(k), detach=False)
            except RunTaken:
                continue
        raise RemoteError(f"could not start a batch of {self.name!r}: {START_TRIES} batch folders in a row were taken "
                          "on the box by other clients; try again")

    def _settle(self, v: Variant, run: Job, status: str, exit_code: int | None, message: str,
                outcome: Outcome | None = None) -> None:
        v.result.run, v.result.status, v.result.exit = run, status, exit_code
        if status != "ok":
            v.result.error = message
            if outcome is not None:
                report_failure(outcome, say)
            else:
                say(f"FAILED {message}")
        self._download(v, run)
        if self.upscale is None or status != "ok":
            self._record(v)  # complete: its line now, not at the end (a client killed later loses none)

    def _download(self, v: Variant, job: Job) -> None:
        begin = time.monotonic()
        v.connected.download(job, missing_ok=True)
        v.result.durations["download"] = v.result.durations.get("download", 0.0) + time.monotonic() - begin

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
        """The variant's history line, once, if anything ran for it."""
        result = v.result
        if v.recorded or not result.started:
            return
        result.durations["upload"] = self.upload_s
        result.durations["total"] = time.monotonic() - self.clock
        for job in result.started:
            provenance.add_timings(local_job_folder(self.cfg, job.dir), result.durations)
        history_line(self.cfg, v.plan, self.started, result, Steps(upscale=self.upscale), v.session)
        v.recorded = True

    def _table(self) -> None:
        rows = [("variant", "run id", "status", "output")]
        for v in self.variants:
            run = v.result.run
            output = ""
            if run is not None and run.run_id:
                video = local_job_folder(self.cfg, (v.result.upscale or run).dir) / "output.mp4"
                output = local_rel(self.cfg, video) if video.is_file() else local_rel(
                    self.cfg, local_job_folder(self.cfg, run.dir))
            status = v.result.status + (" (found done)" if v.reused else "")
            rows.append((v.name, run.run_id if run is not None else "", status, output))
        widths = [max(len(r[i]) for r in rows) for i in range(3)]
        for row in rows:
            print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + "  " + row[3])
        lines = sum(1 for v in self.variants if v.recorded)
        print(f"history ({local_rel(self.cfg, history.history_path(self.cfg))}): {lines} line(s) added")
        say(f"{time.monotonic() - self.clock:.1f} s over {self.remote.connections if self.remote else 0} SSH "
            "connection(s)")


def _exit_code(folder: Path) -> int | None:
    try:
        return int((folder / "exit_code").read_text().strip())
    except (OSError, ValueError):
        return None
