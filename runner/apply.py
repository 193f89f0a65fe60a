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
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import orjson

from .costs import check_budgets
from .desired import input_path, outputs_hash, render_into, spec_hash, spec_inputs
from .errors import OutputError, ProviderError, RunnerError
from .failpoints import hit
from .fsutil import atomic_writer
from .lockfile import LockEntry, Retry, held
from .manifest import Manifest
from .outputs import write_outputs
from .plan import Action, Desired, Kind, Observed, Plan, best, display_name, retry_name
from .providers.base import AmbiguousCreate, JobState, Provider, RemoteJob
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
                 desired: list[Desired], observed: Observed | None = None):
        self.ws = ws
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

    # -- journal ---------------------------------------------------------------------------

    def _record(self, name: str, entry: LockEntry) -> None:
        self.ws.lock.batches[name] = entry
        self.ws.save_lock()

    def _entry_for(self, m: Manifest, action: Action, rendered_hash: str, requests: int,
                   inputs: dict[str, Any]) -> LockEntry:
        """A new record, with the inputs digested before rendering: an edit made while the
        job runs is then seen by the next plan, not recorded as if it had been sent."""
        return LockEntry(
            manifest=m.rel_source, spec_hash=spec_hash(inputs), inputs=inputs,
            content_hash=rendered_hash, provider=m.provider, model=m.model, requests=requests,
            display_name=display_name(m.name, rendered_hash, action.attempt),
            state=JobState.CREATING.value, outputs_hash=outputs_hash(m),
            attempts=action.attempt)

    # -- steps -----------------------------------------------------------------------------

    def _cancel_superseded(self, m: Manifest, action: Action) -> None:
        for job in action.old_jobs:
            self.provider.cancel_job(job)
            self.report(f"{m.name}: cancelled superseded job {job}")

    def submit(self, m: Manifest, action: Action) -> None:
        """Render, record the intent, look for the tag (a job an earlier run created and
        then lost), and only then create."""
        self._cancel_superseded(m, action)
        path = input_path(self.ws.state_dir, action.content_hash or "sha256:pending")
        path.parent.mkdir(parents=True, exist_ok=True)
        rows = spec_inputs(m, {})
        with atomic_writer(path, "wb") as sink:
            rendered = render_into(m, sink)
        if rendered.content_hash != action.content_hash:
            final = input_path(self.ws.state_dir, rendered.content_hash)
            os.replace(path, final)
            path = final
        inputs = dict(rows, **({"templates": rendered.templates} if rendered.templates else {}))
        entry = self._entry_for(m, action, rendered.content_hash, rendered.requests, inputs)
        self._record(m.name, entry)
        hit("after-intent")
        job = self._find(entry.display_name) or self._create(m, entry, path)
        self._bind(m.name, entry, job)
        hit("after-job-recorded")
        self.outcome.submitted.append(m.name)
        self.report(f"{m.name}: submitted {rendered.requests} requests as {job.name} "
                    f"({entry.display_name})")
        with contextlib.suppress(FileNotFoundError):
            path.unlink()

    def _find(self, tag: str, *, fresh: bool = False) -> RemoteJob | None:
        """The best job carrying `tag`, from the run's listing (`fresh`: listed again now)."""
        if self._listing is None or fresh:
            self._listing = {j.name: j for j in self.provider.list_jobs()}
        return best([j for j in self._listing.values() if j.display_name == tag])

    def _create(self, m: Manifest, record: LockEntry | Retry, path: Path) -> RemoteJob:
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
        if self._listing is not None:
            self._listing[job.name] = job
        return job

    def _bind(self, name: str, entry: LockEntry, job: RemoteJob) -> None:
        entry.job = job.name
        entry.state = job.state.value
        entry.submitted_at = entry.submitted_at or job.create_time or now()
        if job.input_file:
            entry.input_file = job.input_file
        self._record(name, entry)

    def adopt(self, m: Manifest, action: Action) -> None:
        assert action.job is not None and action.content_hash is not None
        self._cancel_superseded(m, action)
        entry = self.ws.lock.batches.get(m.name)
        if entry is None or entry.content_hash != action.content_hash:
            rows = spec_inputs(m, {})
            rendered = render_into(m)
            inputs = dict(rows, **({"templates": rendered.templates} if rendered.templates
                                   else {}))
            entry = self._entry_for(m, action, rendered.content_hash, rendered.requests, inputs)
        entry.display_name = action.job.display_name
        entry.attempts = max(entry.attempts, action.attempt)
        self._bind(m.name, entry, action.job)
        self.report(f"{m.name}: adopted {action.job.name} ({action.reason})")

    def submit_retry(self, m: Manifest, action: Action) -> None:
        """A follow-up batch of only the requests that failed: intent first, as for any batch."""
        entry = self.ws.lock.batches[m.name]
        retry = entry.open_retry
        failed = _failed_keys(m)
        path = input_path(self.ws.state_dir, f"sha256:retry-{m.name}")
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_writer(path, "wb") as sink:
            rendered = render_into(m, sink, only=failed)
        if rendered.requests == 0:          # nothing left to retry: close an interrupted one
            if retry is not None and retry.job is None:
                entry.retries.remove(retry)
                self.ws.save_lock()
            path.unlink(missing_ok=True)
            return
        if retry is None:
            assert action.display_name is not None
            retry = Retry(rendered.content_hash, rendered.requests, action.display_name,
                          JobState.CREATING.value)
            entry.retries.append(retry)
            self._record(m.name, entry)
        job = self._find(retry.display_name) or self._create(m, retry, path)
        self._bind_retry(m.name, retry, job)
        self.outcome.submitted.append(m.name)
        self.report(f"{m.name}: resubmitted {rendered.requests} failed requests as {job.name} "
                    f"({retry.display_name})")
        with contextlib.suppress(FileNotFoundError):
            path.unlink()

    def _bind_retry(self, name: str, retry: Retry, job: RemoteJob) -> None:
        retry.job, retry.state = job.name, job.state.value
        retry.submitted_at = retry.submitted_at or job.create_time or now()
        if job.input_file:
            retry.input_file = job.input_file
        self.ws.save_lock()

    def _results(self, name: str, record: LockEntry | Retry, job: RemoteJob | None) -> Path:
        """The record's results on disk, downloaded again if this machine has not got them."""
        assert record.job is not None
        path = self.ws.state_dir / "results" / f"{record.job.rsplit('/', 1)[-1]}.jsonl"
        if path.is_file():
            return path
        job = job if job is not None and job.name == record.job else \
            self.provider.get_job(record.job)
        if job is None or job.state != JobState.SUCCEEDED:
            raise ProviderError(f"the results of {record.job} are no longer on the provider")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".part")
        self.provider.download_results(job, tmp, on_progress=lambda got, total:
                                       self.progress.transfer(name, "download", got, total))
        os.replace(tmp, path)
        return path

    def collect(self, m: Manifest, job: RemoteJob) -> None:
        """Download results and write the outputs, merging the results of every follow-up
        batch over the main job's; the lockfile records them last."""
        entry = self.ws.lock.batches[m.name]
        retry = entry.open_retry
        if retry is not None and retry.job == job.name:
            retry.state, retry.finished_at = JobState.SUCCEEDED.value, job.end_time or now()
        else:
            retry = None
            entry.state = JobState.SUCCEEDED.value
            entry.finished_at = job.end_time or entry.finished_at or now()
        records: list[LockEntry | Retry] = [entry]
        records += [r for r in entry.retries if r.state == JobState.SUCCEEDED.value]
        paths = [self._results(m.name, r, job) for r in records]
        written = write_outputs(m, paths, paths[0].parent)
        hit("after-outputs")
        entry.counts = {"succeeded": written.succeeded, "failed": written.failed}
        entry.spent = spent(load_prices(self.ws.directory), m.model, written.usage).to_dict()
        entry.outputs = written.outputs
        entry.outputs_hash = outputs_hash(m)
        entry.error = None
        self._record(m.name, entry)
        if not (written.failed and len(entry.retries) < m.retry_failed):
            for path in paths:      # no follow-up will need them again
                path.unlink(missing_ok=True)
        self.outcome.completed.append(m.name)
        extra = f", {written.failed} failed (see {m.errors.rel})" if written.failed else ""
        if written.unmatched:
            extra += (f"; {written.unmatched} result(s) carried keys no request has, and were "
                      "left out")
        merged = f" (with retry {len(entry.retries)})" if retry is not None else ""
        self.report(f"{m.name}: wrote {', '.join(o.rel for o in m.outputs)}{merged}: "
                    f"{written.succeeded} succeeded{extra}")

    def record_terminal(self, name: str, job: RemoteJob) -> None:
        entry = self.ws.lock.batches[name]
        entry.state = job.state.value
        entry.finished_at = job.end_time or now()
        entry.error = job.error
        self._record(name, entry)

    # -- the whole run ---------------------------------------------------------------------

    def run(self, plan: Plan) -> Outcome:
        inflight: dict[str, RemoteJob | None] = {}
        for action in plan.actions:
            self._act(action, inflight)
        if inflight and self.options.wait:
            self._wait(inflight)
        self.outcome.pending = sorted(inflight)
        return self.outcome

    def _act(self, action: Action, inflight: dict[str, RemoteJob | None]) -> None:
        name = action.name
        if action.kind == Kind.ORPHAN:
            if self.options.prune:
                self._prune(name)
            return
        if action.kind == Kind.FAILED:
            self.outcome.failed.append(name)
            self.progress.error(f"{name}: {action.reason}")
            if action.job is not None and self.ws.lock.batches[name].state != action.job.state:
                self.record_terminal(name, action.job)
            return
        if action.kind == Kind.NOTHING:
            return
        m = self.ws.manifest(name)
        entry = self.ws.lock.batches.get(name)
        if action.kind in (Kind.CREATE, Kind.REPLACE, Kind.RESUBMIT):
            self.submit(m, action)
            inflight[name] = None
        elif action.kind == Kind.RETRY:
            self.submit_retry(m, action)
            if self.ws.lock.batches[name].open_retry is not None:
                inflight[name] = None
        elif action.kind == Kind.ADOPT and action.retry:
            assert entry is not None and entry.open_retry is not None and action.job is not None
            self._bind_retry(name, entry.open_retry, action.job)
            self.report(f"{name}: adopted {action.job.name} ({action.reason})")
            inflight[name] = action.job
        elif action.kind == Kind.ADOPT:
            self.adopt(m, action)
            inflight[name] = action.job
        elif action.kind == Kind.WAIT:
            inflight[name] = action.job
        elif action.kind == Kind.DOWNLOAD:
            assert action.job is not None
            self.collect(m, action.job)
            self._next_retry(m, inflight)
        elif action.kind == Kind.RECORD and action.retry:
            assert entry is not None and entry.open_retry is not None
            self._close_retry(name, entry.open_retry, action.job)
        elif action.kind == Kind.RECORD:
            assert entry is not None
            want = self.desired[name]
            entry.inputs, entry.spec_hash = dict(want.inputs), want.spec_hash
            self._record(name, entry)

    def _prune(self, name: str) -> None:
        """Cancels and deletes the remote jobs the lockfile records for a removed manifest;
        its outputs stay unless asked. Acts on the lockfile's own records only."""
        entry = self.ws.lock.batches[name]
        records: list[LockEntry | Retry] = [entry, *entry.retries]
        for record in records:
            if record.job is None and record.state == JobState.CREATING.value:
                found = self._find(record.display_name)     # created just before a crash?
                record.job = found.name if found is not None else None
            if record.job is None:
                continue
            if record.state in ("CREATING", "PENDING", "RUNNING"):
                self.provider.cancel_job(record.job)
            self.provider.delete_job(record.job)
        if self.options.prune_outputs:
            for rel in entry.outputs:
                path = self.ws.directory / rel
                if path.resolve().is_relative_to(self.ws.directory.resolve()):
                    path.unlink(missing_ok=True)
        del self.ws.lock.batches[name]
        self.ws.save_lock()
        kept = "deleted its outputs" if self.options.prune_outputs else "kept its outputs"
        self.report(f"{name}: pruned: deleted {sum(1 for r in records if r.job)} remote job(s), "
                    f"{kept}")

    def _next_retry(self, m: Manifest, inflight: dict[str, RemoteJob | None]) -> None:
        """After results are written: a follow-up batch of the failures, if the policy allows."""
        entry = self.ws.lock.batches[m.name]
        failed = entry.counts.get("failed", 0)
        gave_up = bool(entry.retries) and entry.retries[-1].state != JobState.SUCCEEDED.value
        if not failed or gave_up or len(entry.retries) >= m.retry_failed:
            return
        n = len(entry.retries) + 1
        self.submit_retry(m, Action(Kind.RETRY, m.name, "failed requests", failed,
                                    entry.content_hash, retry_name(m.name, entry.content_hash, n),
                                    retry=True))
        if entry.open_retry is not None:
            inflight[m.name] = None

    def _close_retry(self, name: str, retry: Retry, job: RemoteJob | None) -> None:
        """A follow-up that ended without results: its requests stay in the errors output."""
        retry.state = job.state.value if job is not None else JobState.CANCELLED.value
        retry.finished_at = (job.end_time if job is not None else None) or now()
        retry.error = job.error if job is not None else "job deleted on the provider"
        self.ws.save_lock()
        self.report(f"{name}: retry {retry.job} ended {retry.state.lower()}; its requests stay "
                    "in the errors output")

    def _refresh(self, inflight: dict[str, RemoteJob | None]) -> None:
        """Fresh state for every in-flight job not already known to be finished: one paged
        list when there are several, a get each otherwise."""
        stale = {name: self.ws.lock.batches[name].current_job for name, job in inflight.items()
                 if job is None or not job.state.terminal}
        if len(stale) > LIST_THRESHOLD:
            listed = {j.name: j for j in self.provider.list_jobs()}
            fresh = {name: listed.get(job or "") for name, job in stale.items()}
        else:
            fresh = {name: self.provider.get_job(job) if job else None
                     for name, job in stale.items()}
        inflight.update(fresh)

    def _wait(self, inflight: dict[str, RemoteJob | None]) -> None:
        """Polls until every in-flight job is terminal (or the timeout), collecting as it goes."""
        backoff = Backoff(self.options.poll_base, self.options.poll_cap)
        start = self.options.clock()
        while inflight:
            self._refresh(inflight)
            for name in sorted(inflight):
                entry = self.ws.lock.batches[name]
                job = inflight[name]
                inflight[name] = None
                hit("while-polling")
                if job is None:
                    raise ProviderError(f"{name}: job {entry.current_job} disappeared from the "
                                        "provider while waiting; run apply again to resubmit")
                retry = entry.open_retry
                if retry is not None and retry.job != job.name:
                    retry = None
                self.progress.state(name, job.state.value, job.succeeded + job.failed
                                    if job.total else None, job.total or None)
                record: LockEntry | Retry = retry if retry is not None else entry
                if record.state != job.state.value and not job.state.terminal:
                    record.state = job.state.value
                    self.ws.save_lock()
                if not job.state.terminal:
                    continue
                del inflight[name]
                if job.state == JobState.SUCCEEDED:
                    self.collect(self.ws.manifest(name), job)
                    self._next_retry(self.ws.manifest(name), inflight)
                elif retry is not None:
                    self._close_retry(name, retry, job)
                elif job.state == JobState.EXPIRED and entry.attempts < self.options.max_attempts:
                    self.record_terminal(name, job)
                    action = Action(Kind.RESUBMIT, name, "job expired", entry.requests,
                                    entry.content_hash, attempt=entry.attempts + 1)
                    self.report(f"{name}: job expired; resubmitting (attempt {action.attempt})")
                    self.submit(self.ws.manifest(name), action)
                    inflight[name] = None
                else:
                    self.record_terminal(name, job)
                    self.outcome.failed.append(name)
                    self.progress.error(f"{name}: job {job.state.value.lower()}"
                                + (f": {job.error}" if job.error else ""))
            if not inflight:
                break
            if self.options.timeout is not None and \
                    self.options.clock() - start >= self.options.timeout:
                raise RunnerError(f"timed out after {self.options.timeout:g}s with "
                                  f"{len(inflight)} batch(es) still running "
                                  f"({', '.join(sorted(inflight))}); run apply again to resume")
            self.options.sleep(backoff.next_delay())


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
    with held(first.directory, lock_timeout):
        ws = first.reloaded()               # the lockfile again: another run may have saved
        if ws.lock != first.lock:
            desired = ws.desired()
        observed = observe(provider, ws.lock, desired)
        plan = make_plan(desired, ws.lock, observed, max_attempts=options.max_attempts,
                         resubmit=options.resubmit)
        if show_plan is not None:
            show_plan(plan)
        check_budgets(ws, plan, options.max_cost)
        progress = progress or Progress(io.StringIO(), tty=False, quiet=True)
        return Applier(ws, provider, options, progress, desired, observed).run(plan)


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
