"""Carries out a plan through a provider, journaling every step in the lockfile.

The order that makes creation safe: the intent (state CREATING, with the content hash and the
displayName tag) is saved before the create call, and the job name right after it. A run killed
anywhere leaves either an entry that the next plan resolves by finding the tagged job, or
nothing submitted. A create whose answer was lost is resolved by looking for the tag, never by
a blind retry.
"""

from __future__ import annotations

import contextlib
import io
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import orjson

from .costs import check_budgets
from .desired import (Rendered, input_path, outputs_hash, record_for, render_into,
                      render_recorded)
from .downloads import cached, discard, keep, results_path
from .errors import InputsChanged, OutputError, ProviderError, ResultsError, RunnerError
from .failpoints import hit
from .sweep import sweep
from .identity import Identity, establish
from .fsutil import atomic_writer
from .hashing import file_digest
from .limits import limits_for
from .lockfile import LIVE, LockEntry, Part, Retry, held
from .lockfile import lock_path as lockfile_path
from .manifest import Manifest
from .outputs import write_outputs
from .plan import (CANCELLED_BY_USER, SUBMITS, Action, Desired, Kind, Observed, Plan, best,
                   display_name, foreign, retry_name, too_many_failures, twins)
from .providers.base import AmbiguousCreate, JobState, Provider, RemoteJob, time_limit
from .plan import plan as make_plan
from .pricing import load_prices, spent
from .progress import Progress
from .retry import Backoff, Sleep, real_sleep
from .workspace import LIST_THRESHOLD, Workspace, observe

@dataclass
class Options:
    wait: bool = True
    timeout: float | None = None
    prune: bool = False
    prune_outputs: bool = False
    max_cost: float | None = None
    max_attempts: int = 3
    resubmit: frozenset[str] = frozenset()
    max_jobs: int | None = None     # jobs in flight at once; None: the provider's limit
    take_over: Path | None = None   # the original of a copied directory, whose jobs it may end
    poll_base: float = 2.0
    poll_cap: float = 60.0
    sleep: Sleep = field(default=real_sleep)
    clock: Callable[[], float] = field(default=time.monotonic)


@dataclass
class Outcome:
    submitted: list[str] = field(default_factory=list)
    completed: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class Applier:
    def __init__(self, ws: Workspace, provider: Provider, options: Options, progress: Progress,
                 desired: list[Desired], observed: Observed | None = None,
                 identity: Identity = Identity()):
        self.ws = ws
        self.identity = identity
        self.provider = provider
        self.options = options
        self.progress = progress
        self.report = progress.message
        self.outcome = Outcome()
        # every job on the provider, listed once per run (or by the plan) and kept up to date
        # with what this run creates: a tag is looked up before every create
        self._listing: dict[str, RemoteJob] | None = \
            dict(observed.jobs) if observed is not None and observed.complete else None
        self.desired = {d.name: d for d in desired}
        self._rendered: dict[str, tuple[dict[str, Any], Rendered]] = {}
        self._queued: list[Action] = []     # submissions waiting for a job slot
        self._created: list[tuple[str, Part | Retry]] = []     # jobs created, to check twice
        self._written: dict[str, tuple[str | None, ...]] = {}  # batch -> jobs its outputs hold
        self._max_jobs = options.max_jobs or limits_for(provider.name).concurrent_jobs

    # -- journal ---------------------------------------------------------------------------

    def _record(self, name: str, entry: LockEntry) -> None:
        self.ws.lock.batches[name] = entry
        self.ws.save_lock()

    def _render(self, m: Manifest, files: bool, need: str | None = None
                ) -> tuple[dict[str, Any], Rendered]:
        """The batch rendered once a run (with its shards' input files when `files`), with
        its inputs. The same requests are cut as the lockfile records them, so a shard
        resubmitted keeps its hash. With `files`, rendered again only if the input file of
        the shard `need` is gone (submitted already, and now resubmitted)."""
        cached = self._rendered.get(m.name)
        if cached is not None and (not files or cached[1].paths and (
                need is None or input_path(self.ws.state_dir, need).is_file())):
            return cached
        entry = self.ws.lock.batches.get(m.name)
        cuts = [p.requests for p in entry.parts()] if entry is not None and \
            entry.content_hash == self.desired[m.name].content_hash else []
        inputs, rendered = render_recorded(m, self.ws.state_dir / "inputs" if files else None,
                                           cuts)
        self._rendered[m.name] = (inputs, rendered)
        return inputs, rendered

    def _part(self, m: Manifest, content_hash: str | None, files: bool
              ) -> tuple[LockEntry, Part]:
        """The batch's record laid out as the manifest renders now (the parts whose requests
        are unchanged keep their jobs), and the part holding `content_hash`."""
        entry = self.ws.lock.batches.get(m.name)
        part = _find_part(entry, content_hash) if entry is not None else None
        if entry is not None and part is not None and not files and \
                entry.content_hash == self.desired[m.name].content_hash:
            return entry, part
        entry = self._relay(m, files, content_hash)
        part = _find_part(entry, content_hash)
        if part is None:
            raise InputsChanged(m.name, m.source)
        return entry, part

    def _relay(self, m: Manifest, files: bool = False, need: str | None = None) -> LockEntry:
        """The batch recorded anew as it renders now, which must be what the plan saw: rows
        edited while apply runs would otherwise be sent, and the running jobs of the
        requests they replace dropped from the record, without anyone having seen a plan."""
        inputs, rendered = self._render(m, files, need)
        if rendered.content_hash != self.desired[m.name].content_hash:
            raise InputsChanged(m.name, m.source)
        entry = record_for(m, rendered, inputs, self.ws.lock.batches.get(m.name))
        self.ws.lock.batches[m.name] = entry
        return entry

    # -- steps -----------------------------------------------------------------------------

    def _cancel_superseded(self, m: Manifest, action: Action) -> None:
        for job in action.old_jobs:
            if self.identity.guards(job):
                self.report(f"{m.name}: superseded {self.identity.refusal(job)}")
                continue
            self.provider.cancel_job(job)
            self.report(f"{m.name}: cancelled superseded job {job}")

    def submit(self, m: Manifest, action: Action) -> str:
        """Render, record the intent, look for the tag (a job an earlier run created and
        then lost), and only then create. Returns the job's name."""
        entry, part = self._part(m, action.content_hash, files=True)
        part.display_name = display_name(m.name, part.content_hash, action.attempt)
        part.state, part.attempts = JobState.CREATING, action.attempt
        part.job = part.input_file = part.submitted_at = part.finished_at = part.error = None
        self._record(m.name, entry)
        hit("after-intent")
        path = input_path(self.ws.state_dir, part.content_hash)
        job = self._find(part.display_name) or self._create(m, part, path)
        self._bind(m.name, part, job)
        hit("after-job-recorded")
        _note(self.outcome.submitted, m.name)
        self.report(f"{self._label(m.name, part)}: submitted {part.requests} requests as "
                    f"{job.name} ({part.display_name})")
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        return job.name

    def _label(self, name: str, record: Part | Retry) -> str:
        """How progress names a job: the batch, and which shard of it when it is split."""
        parts = self.ws.lock.batches[name].parts()
        for i, part in enumerate(parts):
            if part is record and len(parts) > 1:
                return f"{name} [shard {i + 1}/{len(parts)}]"
        return name

    def _find(self, tag: str, *, fresh: bool = False) -> RemoteJob | None:
        """The best job carrying `tag`, from the run's listing (`fresh`: listed again now)."""
        if self._listing is None or fresh:
            self._listing = {j.name: j for j in self.provider.list_jobs()}
        return best([j for j in self._listing.values() if j.display_name == tag])

    def _create(self, m: Manifest, record: Part | Retry, path: Path) -> RemoteJob:
        """Upload if too big to send inline, then create; `record` (the batch or a follow-up)
        is already saved with its tag, and gets the uploaded file's name before the create."""
        size = path.stat().st_size
        inline = size + 64 * record.requests < self.provider.inline_limit
        if not inline:
            record.input_file = self.provider.find_file(record.display_name) or \
                self.provider.upload_file(path, record.display_name, on_progress=lambda sent,
                                          total: self.progress.transfer(m.name, "upload", sent,
                                                                        total))
            self.ws.save_lock()
        try:
            if inline:
                job = self.provider.create_job(m.model, record.display_name, inline_lines=path)
            else:
                job = self.provider.create_job(m.model, record.display_name,
                                               input_file=record.input_file)
        except AmbiguousCreate as e:
            self.report(f"{m.name}: the answer to create was lost ({e}); looking for the job")
            for delay in (0.5, 2.0, 5.0):
                self.options.sleep(delay)
                found = self._find(record.display_name, fresh=True)
                if found is not None:
                    return found
            raise ProviderError(f"{m.name}: create may or may not have reached the provider; "
                                "the intent is recorded, and the next apply looks for the job "
                                "again before creating it") from None
        entry = self.ws.lock.batches[m.name]
        why = foreign(m.name, entry.model, record, job)
        if why is not None:
            # an answer about another job: this create's job, if it exists, carries the tag
            self.report(f"{m.name}: the provider answered the create with job {job.name}, "
                        f"which is not this batch's ({why}); looking for it by its tag")
            found = self._find(record.display_name, fresh=True)
            if found is None:
                raise ProviderError(f"{m.name}: the provider answered the create with job "
                                    f"{job.name}, which is not this batch's ({why}); the "
                                    "intent is recorded, and the next apply looks for the "
                                    "job by its tag before creating it")
            return found
        if self._listing is not None:
            self._listing[job.name] = job
        self._created.append((m.name, record))
        return job

    def _heal(self, inflight: Inflight) -> None:
        """Another machine may have created the same job at the same time (the tag search
        before a create cannot see a create under way elsewhere). After creating, list again:
        of two jobs with one tag, every run keeps the same one (see plan.twins), cancels the
        other and records the one kept."""
        if not self._created:
            return
        created, self._created = self._created, []
        self._find("", fresh=True)
        assert self._listing is not None
        for name, record in created:
            keep, others = twins(self._listing.values(), record.display_name)
            for job in others:
                self.provider.cancel_job(job.name)
                self.report(f"{self._label(name, record)}: another run created the same job "
                            f"at the same time; cancelled {job.name}, keeping "
                            f"{keep.name if keep else record.job}")
            if keep is not None and record.job is not None and keep.name != record.job:
                inflight.pop(record.job, None)
                inflight[keep.name] = (name, keep)
                self._bind(name, record, keep)

    def _bind(self, name: str, part: Part | Retry, job: RemoteJob) -> None:
        part.job = job.name
        part.state = job.state
        part.submitted_at = part.submitted_at or job.create_time or now()
        if job.input_file:
            part.input_file = job.input_file
        self.ws.save_lock()

    def adopt(self, m: Manifest, action: Action) -> None:
        assert action.job is not None
        entry, part = self._part(m, action.content_hash, files=False)
        part.display_name = action.job.display_name
        part.attempts = max(part.attempts, action.attempt)
        self.ws.lock.batches[m.name] = entry
        self._bind(m.name, part, action.job)
        self.report(f"{self._label(m.name, part)}: adopted {action.job.name} ({action.reason})")

    def submit_retry(self, m: Manifest, action: Action) -> None:
        """A follow-up batch of only the requests that failed: intent first, as for any batch."""
        entry = self.ws.lock.batches[m.name]
        retry = entry.open_retry
        failed = _failed_keys(m)
        path = input_path(self.ws.state_dir, f"sha256:retry-{m.name}")
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_writer(path, "wb") as sink:
            rendered = render_into(m, sink, only=failed, sent=entry.content_hash)
        if rendered.requests == 0:          # nothing left to retry: close an interrupted one
            if retry is not None and retry.job is None:
                entry.retries.remove(retry)
                self.ws.save_lock()
            path.unlink(missing_ok=True)
            return
        if retry is None:
            assert action.display_name is not None
            retry = Retry(rendered.content_hash, rendered.requests, action.display_name,
                          JobState.CREATING)
            entry.retries.append(retry)
            self._record(m.name, entry)
        job = self._find(retry.display_name) or self._create(m, retry, path)
        self._bind(m.name, retry, job)
        self.outcome.submitted.append(m.name)
        self.report(f"{m.name}: resubmitted {rendered.requests} failed requests as {job.name} "
                    f"({retry.display_name})")
        with contextlib.suppress(FileNotFoundError):
            path.unlink()

    def _results(self, name: str, record: Part | Retry, job: RemoteJob | None) -> Path:
        """The record's results on disk, downloaded again if this machine has not got them or
        its copy is damaged (see `cached`). The job is checked to be the record's own first:
        the lockfile is text that people edit and merge."""
        assert record.job is not None
        path = results_path(self.ws.state_dir, record.job)
        if cached(path):
            return path
        job = job if job is not None and job.name == record.job else \
            self.provider.get_job(record.job)
        entry = self.ws.lock.batches[name]
        why = foreign(name, entry.model, record, job) \
            if job is not None else None
        if job is not None and why is not None:
            self.report(f"{name}: the lockfile names job {record.job}, which is not this "
                        f"batch's ({why}); looking for it by its tag")
            job = self._own_job(name, record)
            record.job = job.name
            self.ws.save_lock()
            path = results_path(self.ws.state_dir, job.name)
            if cached(path):
                return path
        if job is None or job.state != JobState.SUCCEEDED:
            raise ProviderError(f"the results of {record.job} are no longer on the provider")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".part")
        self.provider.download_results(job, tmp, on_progress=lambda got, total:
                                       self.progress.transfer(name, "download", got, total))
        keep(tmp, path)
        return path

    def _own_job(self, name: str, record: Part | Retry) -> RemoteJob:
        """The succeeded job that carries the record's tag, for a record whose job was not
        its own; none found is an error: the results cannot be told apart."""
        entry = self.ws.lock.batches[name]
        self._find("", fresh=True)
        assert self._listing is not None
        mine = [j for j in self._listing.values() if j.state == JobState.SUCCEEDED
                and foreign(name, entry.model, record, j) is None]
        found = best(mine)
        if found is None:
            raise ProviderError(f"{name}: no succeeded job on the provider carries the tag of "
                                f"{record.display_name}; run plan to see what apply would "
                                "submit", path=self.ws.lock_path)
        return found

    def collect(self, m: Manifest, job: RemoteJob | None) -> bool:
        """Marks the job's record succeeded and, once every part of the batch is in, writes
        the outputs from all their results, merging every follow-up batch's over them; the
        lockfile records them last. A shard that finishes before the others has its results
        fetched now, and waits. Returns whether the outputs were written."""
        entry = self.ws.lock.batches[m.name]
        record = _find_job(entry, job.name) if job is not None else None
        if job is not None and record is not None:
            record.state = JobState.SUCCEEDED
            record.finished_at = job.end_time or record.finished_at or now()
            if entry.shards:    # recorded before the other shards' results are fetched
                self._results(m.name, record, job)
                self.ws.save_lock()
        if not entry.settled:
            if job is None or record is None:
                raise InputsChanged(m.name, m.source)
            waiting = sum(1 for p in entry.parts() if p.state != JobState.SUCCEEDED)
            self.report(f"{self._label(m.name, record)}: succeeded; results fetched, waiting "
                        f"for {waiting} more shard(s)")
            return False
        records: list[Part | Retry] = [*entry.parts()]
        records += [r for r in entry.retries if r.state == JobState.SUCCEEDED]
        # a later results file wins for a key: oldest first, so each key gets its newest
        # result (a follow-up's over its job's, a shard resubmitted since over a follow-up's)
        records.sort(key=lambda r: r.submitted_at or "")
        jobs = tuple(r.job for r in records)
        if self._written.get(m.name) == jobs:
            return False    # written this run from these very results (shards re-adopted)
        paths = [self._results(m.name, r, job) for r in records]
        try:
            written = write_outputs(m, paths, paths[0].parent, sent=entry.content_hash)
        except ResultsError as e:
            bad = next((r for r, p in zip(records, paths) if str(p) == e.path), None)
            if bad is None:
                raise
            discard(Path(e.path or ""))
            raise ProviderError(f"{m.name}: the results of job {bad.job} do not parse "
                                f"({Path(e.path or '').name} line {e.where}: {e.args[0]}); "
                                "the copy was removed, and the next apply downloads them "
                                "again", path=m.source) from None
        hit("after-outputs")
        entry.counts = {"succeeded": written.succeeded, "failed": written.failed}
        entry.spent = spent(load_prices(self.ws.directory), m.model, written.usage).to_dict()
        entry.outputs = written.outputs
        entry.outputs_hash = outputs_hash(m)
        entry.error = None
        self._record(m.name, entry)
        self._written[m.name] = jobs
        if not (written.failed and len(entry.retries) < m.retry_failed):
            for path in paths:      # no follow-up will need them again
                discard(path)
        _note(self.outcome.completed, m.name)
        extra = f", {written.failed} failed (see {m.errors.rel})" if written.failed else ""
        if written.unmatched:
            extra += (f"; {written.unmatched} result(s) carried keys no request has, and were "
                      "left out")
        if written.repeated:
            extra += (f"; {written.repeated} result(s) repeated a key within one results "
                      "file, and the last of each was kept")
        merged = f" (with retry {len(entry.retries)})" if isinstance(record, Retry) else ""
        shards = f" from {len(entry.shards)} shards" if entry.shards else ""
        self.report(f"{m.name}: wrote {', '.join(o.rel for o in m.outputs)}{shards}{merged}: "
                    f"{written.succeeded} succeeded{extra}")
        return True

    def record_terminal(self, name: str, job: RemoteJob) -> None:
        record = _find_job(self.ws.lock.batches[name], job.name)
        if record is None:
            return
        record.state = job.state
        record.finished_at = job.end_time or now()
        record.error = job.error
        self.ws.save_lock()

    # -- the whole run ---------------------------------------------------------------------

    def run(self, plan: Plan) -> Outcome:
        # the jobs already running count against the cap on jobs in flight from the start
        inflight: Inflight = {a.job.name: (a.name, a.job) for batch in plan.actions
                              for a in (batch.parts or (batch,))
                              if a.kind in (Kind.WAIT, Kind.ADOPT) and a.job is not None}
        try:
            for action in plan.actions:
                self._act(action, inflight)
            self._heal(inflight)
            if inflight and self.options.wait:
                self._wait(inflight)
        finally:
            for _, rendered in self._rendered.values():     # shards never submitted
                for path in rendered.paths:
                    path.unlink(missing_ok=True)
        self.outcome.pending = sorted({name for name, _ in inflight.values()}
                                      | {a.name for a in self._queued})
        return self.outcome

    def _act(self, action: Action, inflight: Inflight) -> None:
        name = action.name
        if action.parts:                # a split batch: each shard in turn
            self._lay_out(action)
            for part in action.parts:
                self._act(part, inflight)
            return
        if action.kind in SUBMITS and not self._slot_free(inflight):
            if not self._queued:
                self.report(f"{self._max_jobs} jobs in flight, the most at once; the next "
                            "submissions wait for one to finish")
            self._queued.append(action)
            return
        if action.kind == Kind.ORPHAN:
            if self.options.prune:
                self._prune(name)
            return
        if action.kind == Kind.FAILED:
            _note(self.outcome.failed, name)
            self.progress.error(f"{name}: {action.reason}")
            entry = self.ws.lock.batches[name]
            record = _find_job(entry, action.job.name) if action.job is not None else None
            if action.job is not None and record is not None and \
                    record.state != action.job.state:
                self.record_terminal(name, action.job)
            return
        if action.kind == Kind.LOST:
            _note(self.outcome.failed, name)
            self.progress.error(f"{name}: {action.reason}")
            return
        if action.kind == Kind.NOTHING:
            return
        m = self.ws.manifest(name)
        self._cancel_superseded(m, action)
        entry = self.ws.lock.batches.get(name)
        if action.kind in (Kind.CREATE, Kind.REPLACE, Kind.RESUBMIT):
            inflight[self.submit(m, action)] = (name, None)
        elif action.kind == Kind.RETRY:
            self.submit_retry(m, action)
            self._track_retry(name, inflight)
        elif action.kind == Kind.ADOPT and action.retry:
            assert entry is not None and entry.open_retry is not None and action.job is not None
            self._bind(name, entry.open_retry, action.job)
            self.report(f"{name}: adopted {action.job.name} ({action.reason})")
            inflight[action.job.name] = (name, action.job)
        elif action.kind == Kind.ADOPT:
            assert action.job is not None
            self.adopt(m, action)
            inflight[action.job.name] = (name, action.job)
        elif action.kind == Kind.WAIT:
            assert action.job is not None
            inflight[action.job.name] = (name, action.job)
        elif action.kind == Kind.DOWNLOAD:
            assert entry is not None
            if entry.content_hash != self.desired[name].content_hash:
                # shards dropped (rows removed from the end): the rest are still good
                self._relay(m)
            if self.collect(m, action.job):
                self._next_retry(m, inflight)
        elif action.kind == Kind.RECORD and action.retry:
            assert entry is not None and entry.open_retry is not None
            self._close_retry(name, entry.open_retry, action.job)
        elif action.kind == Kind.RECORD:
            assert entry is not None
            want = self.desired[name]
            entry.inputs, entry.spec_hash = dict(want.inputs), want.spec_hash
            self._record(name, entry)

    def _lay_out(self, action: Action) -> None:
        """Before a split batch's shards are acted on: cancel the jobs of requests no longer
        wanted, and record the batch as it renders now when its requests changed, so that
        no shard waits for one that was dropped (rows removed from the end)."""
        m = self.ws.manifest(action.name)
        self._cancel_superseded(m, action)
        entry = self.ws.lock.batches.get(action.name)
        if entry is not None and entry.content_hash != self.desired[action.name].content_hash:
            files = any(p.kind in SUBMITS for p in action.parts)
            self._relay(m, files)
            self.ws.save_lock()

    def _slot_free(self, inflight: Inflight) -> bool:
        """Whether one more job may be submitted: providers cap the jobs a project runs at
        once (a split batch can have many), and a create over the cap is refused."""
        if self._max_jobs is None:
            return True
        live = sum(1 for _, seen in inflight.values() if seen is None or not seen.state.terminal)
        return live < self._max_jobs

    def _submit_queued(self, inflight: Inflight) -> None:
        while self._queued and self._slot_free(inflight):
            self._act(self._queued.pop(0), inflight)

    def _track_retry(self, name: str, inflight: Inflight) -> None:
        retry = self.ws.lock.batches[name].open_retry
        if retry is not None and retry.job is not None:
            inflight[retry.job] = (name, None)

    def _prune(self, name: str) -> None:
        """Cancels and deletes the remote jobs the lockfile records for a removed manifest;
        its outputs stay unless asked. Acts on the lockfile's own records only."""
        entry = self.ws.lock.batches[name]
        records: list[Part | Retry] = [*entry.parts(), *entry.retries]
        for record in records:
            if record.job is None and record.state == JobState.CREATING:
                found = self._find(record.display_name)     # created just before a crash?
                record.job = found.name if found is not None else None
            if record.job is None:
                continue
            if self.identity.guards(record.job):
                self.report(f"{name}: not pruned remotely: {self.identity.refusal(record.job)}")
                record.job = None
                continue
            if record.state in LIVE:
                self.provider.cancel_job(record.job)
            self.provider.delete_job(record.job)
        kept = "kept its outputs"
        if self.options.prune_outputs:
            deleted, left = self._prune_outputs(entry)
            kept = f"deleted {deleted} output(s)" + (
                f"; left {', '.join(left)}: changed since written, or not the runner's to "
                "delete" if left else "")
        del self.ws.lock.batches[name]
        self.ws.save_lock()
        self.report(f"{name}: pruned: deleted {sum(1 for r in records if r.job)} remote job(s), "
                    f"{kept}")

    def _prune_outputs(self, entry: LockEntry) -> tuple[int, list[str]]:
        """Deletes the outputs the runner wrote for a removed batch: only files inside the
        directory, that no manifest reads or writes, whose bytes are still the ones recorded.
        The lockfile is committed text, so its paths are not trusted further than that."""
        root = self.ws.directory.resolve()
        taken = {lockfile_path(root)}
        for m in self.ws.manifests:
            taken.add(m.source.resolve())
            taken.update(o.path.resolve() for o in m.declared_paths())
            if m.rows is not None:
                taken.add(m.rows.resolve())
        deleted, left = 0, []
        for rel, digest in sorted(entry.outputs.items()):
            path = (self.ws.directory / rel)
            real = path.resolve()
            if not path.is_file():
                continue
            if (not real.is_relative_to(root) or real in taken or path.is_symlink()
                    or real.is_relative_to(self.ws.state_dir.resolve())
                    or file_digest(real) != digest):
                left.append(rel)
                continue
            path.unlink()
            deleted += 1
        return deleted, left

    def _next_retry(self, m: Manifest, inflight: Inflight) -> None:
        """After results are written: a follow-up batch of the failures, if the policy allows."""
        entry = self.ws.lock.batches[m.name]
        failed = entry.counts.get("failed", 0)
        gave_up = bool(entry.retries) and entry.retries[-1].state != JobState.SUCCEEDED
        if not failed or gave_up or len(entry.retries) >= m.retry_failed:
            why = too_many_failures(self.desired[m.name], failed)
            if why is not None:
                _note(self.outcome.failed, m.name)
                self.progress.error(f"{m.name}: {why}")
            return
        n = len(entry.retries) + 1
        self.submit_retry(m, Action(Kind.RETRY, m.name, "failed requests", failed,
                                    entry.content_hash, retry_name(m.name, entry.content_hash, n),
                                    retry=True))
        self._track_retry(m.name, inflight)

    def _close_retry(self, name: str, retry: Retry, job: RemoteJob | None) -> None:
        """A follow-up that ended without results: its requests stay in the errors output."""
        retry.state = job.state if job is not None else JobState.CANCELLED
        retry.finished_at = (job.end_time if job is not None else None) or now()
        retry.error = job.error if job is not None else "job deleted on the provider"
        self.ws.save_lock()
        self.report(f"{name}: retry {retry.job} ended {retry.state.lower()}; its requests stay "
                    "in the errors output")

    def _twin(self, name: str, record: Part | Retry, job: RemoteJob) -> RemoteJob | None:
        """For a job cancelled outside this run: the job of the same tag that another run
        kept (see `_heal`), now recorded instead; None when there is none."""
        if job.state != JobState.CANCELLED or record.error == CANCELLED_BY_USER:
            return None
        self._find("", fresh=True)
        assert self._listing is not None
        keep, _ = twins(self._listing.values(), record.display_name)
        if keep is None or keep.name == job.name:
            return None
        self.report(f"{self._label(name, record)}: {job.name} was cancelled by another run "
                    f"that created the same job; recording {keep.name}")
        self._bind(name, record, keep)
        return keep

    def _refresh(self, inflight: Inflight) -> None:
        """Fresh state for every in-flight job not already known to be finished: one paged
        list when there are several, a get each otherwise."""
        stale = {job: name for job, (name, seen) in inflight.items()
                 if seen is None or not seen.state.terminal}
        if len(stale) > LIST_THRESHOLD:
            listed = {j.name: j for j in self.provider.list_jobs()}
            fresh = {job: listed.get(job) for job in stale}
        else:
            fresh = {job: self.provider.get_job(job) for job in stale}
        inflight.update((job, (stale[job], seen)) for job, seen in fresh.items())

    def _wait(self, inflight: Inflight) -> None:
        """Polls until every in-flight job is terminal (or the timeout), collecting as it goes."""
        backoff = Backoff(self.options.poll_base, self.options.poll_cap)
        start = self.options.clock()
        while inflight or self._queued:
            self._submit_queued(inflight)
            self._heal(inflight)
            self._refresh(inflight)
            for job_name in list(inflight):     # in the order submitted
                name, job = inflight.pop(job_name)
                entry = self.ws.lock.batches[name]
                record = _find_job(entry, job_name)
                hit("while-polling")
                if record is None:      # superseded meanwhile
                    continue
                if job is None:
                    raise ProviderError(f"{name}: job {job_name} disappeared from the "
                                        "provider while waiting; run apply again to resubmit")
                self.progress.state(self._label(name, record), job.state.value,
                                    job.succeeded + job.failed if job.total else None,
                                    job.total or None)
                if not job.state.terminal:
                    if record.state != job.state:
                        record.state = job.state
                        self.ws.save_lock()
                    inflight[job_name] = (name, None)
                    continue
                m = self.ws.manifest(name)
                if job.state == JobState.SUCCEEDED:
                    if self.collect(m, job):
                        self._next_retry(m, inflight)
                elif isinstance(record, Retry):
                    self._close_retry(name, record, job)
                elif job.state == JobState.EXPIRED and record.attempts < self.options.max_attempts:
                    self.record_terminal(name, job)
                    action = Action(Kind.RESUBMIT, name, "job expired", record.requests,
                                    record.content_hash, attempt=record.attempts + 1)
                    self.report(f"{self._label(name, record)}: job expired; resubmitting "
                                f"(attempt {action.attempt})")
                    inflight[self.submit(m, action)] = (name, None)
                elif (twin := self._twin(name, record, job)) is not None:
                    inflight[twin.name] = (name, twin)
                else:
                    self.record_terminal(name, job)
                    _note(self.outcome.failed, name)
                    self.progress.error(f"{self._label(name, record)}: job "
                                        f"{job.state.value.lower()}"
                                        + (f": {job.error}" if job.error else ""))
            if not inflight and not self._queued:
                break
            delay = backoff.next_delay()
            if self.options.timeout is not None:
                left = self.options.timeout - (self.options.clock() - start)
                if left > 0:        # never sleep past the time limit
                    self.options.sleep(min(delay, left))
                if self.options.clock() - start >= self.options.timeout:
                    names = sorted({name for name, _ in inflight.values()}
                                   | {a.name for a in self._queued})
                    raise RunnerError(f"timed out after {self.options.timeout:g}s with "
                                      f"{len(names)} batch(es) still running "
                                      f"({', '.join(names)}); run apply again to resume")
            else:
                self.options.sleep(delay)


def apply_directory(directory: Path, provider: Provider, options: Options | None = None,
                    progress: Progress | None = None, *, lock_timeout: float = 0.0,
                    show_plan: Callable[[Plan], None] | None = None,
                    prepared: tuple[Workspace, list[Desired]] | None = None) -> Outcome:
    """Plans and applies a manifest directory under its run lock: the whole of `runner apply`.

    Manifests, data and templates are read and rendered before anything is written (the run
    lock included), so bad input fails with nothing left behind. `prepared` passes in that
    work when the caller has already done it."""
    options = options or Options()
    first, desired = prepared or prepare(directory)
    with held(first.directory, lock_timeout), time_limit(provider, options.timeout):
        ws = first.reloaded()               # the lockfile again: another run may have saved
        if ws.lock != first.lock:
            desired = ws.desired()
        identity = establish(ws.directory, ws.lock, options.take_over)
        sweep(ws.state_dir, ws.lock, [ws.lock_path, *(o.path for m in ws.manifests
                                                       for o in m.declared_paths())])
        observed = observe(provider, ws.lock, desired)
        plan = make_plan(desired, ws.lock, observed, max_attempts=options.max_attempts,
                         resubmit=options.resubmit)
        if show_plan is not None:
            show_plan(plan)
        check_budgets(ws, plan, options.max_cost)
        progress = progress or Progress(io.StringIO(), tty=False, quiet=True)
        return Applier(ws, provider, options, progress, desired, observed, identity).run(plan)


Inflight = dict[str, "tuple[str, RemoteJob | None]"]   # job -> (its batch, as last seen)
def _find_part(entry: LockEntry, content_hash: str | None) -> Part | None:
    return next((p for p in entry.parts() if p.content_hash == content_hash), None)


def _find_job(entry: LockEntry, job: str) -> Part | Retry | None:
    """The record (a part or a follow-up) of `job`."""
    return next((r for r in [*entry.parts(), *entry.retries] if r.job == job), None)


def _note(names: list[str], name: str) -> None:
    if name not in names:
        names.append(name)


def prepare(directory: Path) -> tuple[Workspace, list[Desired]]:
    ws = Workspace.open(directory)
    return ws, ws.desired()


def _failed_keys(m: Manifest) -> set[str]:
    """Keys in the errors output: the requests a follow-up batch sends again."""
    keys = set()
    try:
        with open(m.errors.path, "rb") as f:
            for n, line in enumerate(f, 1):
                if line.strip():
                    keys.add(str(orjson.loads(line)["key"]))
    except (OSError, orjson.JSONDecodeError, KeyError, TypeError):
        raise OutputError(f"cannot read the failed requests from {m.errors.rel}; delete it and "
                          "run apply again, which writes it anew from the results",
                          path=m.source) from None
    return keys
