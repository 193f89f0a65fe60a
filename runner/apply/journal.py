"""The journal: every change of a batch's lockfile record, saved as it is made.

A run killed anywhere leaves a lockfile the next plan can resolve, because each step is saved
in the order that makes it safe: the intent (CREATING, with the content hash and the tag)
before the create call, the job name right after it, SUCCEEDED only once the results are on
this machine, the outputs' digests last.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from ..desired import Rendered, record_for
from ..errors import InputsChanged
from ..manifest import Manifest
from ..outputs import Written
from ..providers.base import JobState, RemoteJob
from ..recognise import intent_time, newest
from ..records import LockEntry, Part, Retry
from ..states import Desired
from ..workspace import Workspace


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class Journal:
    """The run's lockfile records; `desired` holds the batches as the plan saw them."""

    def __init__(self, ws: Workspace, desired: Mapping[str, Desired]):
        self.ws = ws
        self.desired = desired

    def entry(self, name: str) -> LockEntry:
        return self.ws.lock.batches[name]

    def get(self, name: str) -> LockEntry | None:
        return self.ws.lock.batches.get(name)

    def save(self) -> None:
        self.ws.save_lock()

    def label(self, name: str, record: Part | Retry) -> str:
        """How progress names a job: the batch, and which shard of it when it is split."""
        parts = self.entry(name).parts()
        for i, part in enumerate(parts):
            if part is record and len(parts) > 1:
                return f"{name} [shard {i + 1}/{len(parts)}]"
        return name

    # -- laying out ---------------------------------------------------------------------------

    def relay(self, m: Manifest, inputs: dict[str, Any], rendered: Rendered) -> LockEntry:
        """The batch recorded anew as it renders now, which must be what the plan saw: rows
        edited while apply runs would otherwise be sent, and the running jobs of the requests
        they replace dropped from the record, without anyone having seen a plan. Saved by the
        step it prepares (the intent, the bind, the outputs), so that submitting a shard
        writes the lockfile once."""
        if rendered.content_hash != self.desired[m.name].content_hash:
            raise InputsChanged(m.name, m.source)
        entry = record_for(m, rendered, inputs, self.get(m.name))
        self.ws.lock.batches[m.name] = entry
        return entry

    def spec(self, name: str) -> None:
        """A manifest edited without changing its requests: its inputs recorded anew."""
        entry, want = self.entry(name), self.desired[name]
        entry.inputs, entry.spec_hash = dict(want.inputs), want.spec_hash
        self.save()

    def forget(self, name: str) -> None:
        del self.ws.lock.batches[name]
        self.save()

    # -- a job's life -------------------------------------------------------------------------

    def intent(self, part: Part, tag: str, attempt: int, after: str | None = None) -> None:
        """Before the create call: the tag to find the job by, should the answer be lost, and
        when (`submitted_at`, until the job's own creation time replaces it): the job of a
        provider that keeps no tag is recognised by its time and size (runner.recognise)."""
        bound = part.job is not None
        when = intent_time(time.time(), newest((after, part.submitted_at if bound else None)),
                           part.submitted_at if not bound else None)
        part.display_name = tag
        part.state, part.attempts = JobState.CREATING, attempt
        part.job = part.input_file = part.finished_at = part.error = None
        part.submitted_at = when
        self.save()

    def unbind(self, record: Part | Retry, job: RemoteJob) -> None:
        """A job that turned out not to be the record's (runner.apply.confirm): the record is
        an intent again, which neither that job nor the one the record had before can match
        (see recognise.intent_time)."""
        record.submitted_at = intent_time(time.time(),
                                          newest((record.submitted_at, job.create_time)))
        record.state = JobState.CREATING
        record.inferred = False
        record.job = record.input_file = record.finished_at = record.error = None
        self.save()

    def retry_intent(self, entry: LockEntry, retry: Retry, after: str | None = None) -> None:
        retry.submitted_at = intent_time(time.time(), after)
        entry.retries.append(retry)
        self.save()

    def drop_retry(self, entry: LockEntry, retry: Retry) -> None:
        """An interrupted follow-up left with nothing to send."""
        entry.retries.remove(retry)
        self.save()

    def uploaded(self, record: Part | Retry, file: str) -> None:
        record.input_file = file
        self.save()

    def bind(self, record: Part | Retry, job: RemoteJob) -> None:
        record.job = job.name
        record.state = job.state
        record.inferred = job.inferred
        record.submitted_at = job.create_time or record.submitted_at or now()
        if job.input_file:
            record.input_file = job.input_file
        self.save()

    def adopt(self, part: Part, job: RemoteJob, attempt: int) -> None:
        part.display_name = job.display_name
        part.attempts = max(part.attempts, attempt)
        self.bind(part, job)

    def rebind(self, record: Part | Retry, job: RemoteJob) -> None:
        """The record's own job, found by its tag, instead of one that was not."""
        record.job = job.name
        self.save()

    def seen(self, record: Part | Retry, state: JobState) -> None:
        if record.state != state:
            record.state = state
            self.save()

    def succeeded(self, record: Part | Retry, job: RemoteJob) -> None:
        """Not saved here: the caller saves once the results are on this machine (a shard's
        at once, a whole batch's with its outputs), so that a record saved SUCCEEDED never
        lacks them."""
        record.state = JobState.SUCCEEDED
        record.finished_at = job.end_time or record.finished_at or now()

    def terminal(self, name: str, job: RemoteJob) -> None:
        """A job that ended without results, as the provider says it did."""
        record = self.record_of(name, job.name)
        if record is None:
            return
        record.state = job.state
        record.finished_at = job.end_time or now()
        record.error = job.error
        self.save()

    def close_retry(self, retry: Retry, job: RemoteJob | None) -> None:
        """A follow-up that ended without results (None: deleted on the provider)."""
        retry.state = job.state if job is not None else JobState.CANCELLED
        retry.finished_at = (job.end_time if job is not None else None) or now()
        retry.error = job.error if job is not None else "job deleted on the provider"
        self.save()

    def outputs(self, name: str, written: Written, spent: dict[str, Any],
                outputs_hash: str) -> None:
        """The outputs written, recorded last: a run killed before writes them again."""
        entry = self.entry(name)
        entry.counts = {"succeeded": written.succeeded, "failed": written.failed}
        if written.unfinished:
            entry.counts["unfinished"] = written.unfinished
        entry.spent = spent
        entry.outputs = written.outputs
        entry.outputs_hash = outputs_hash
        entry.error = None
        self.save()

    # -- finding records ----------------------------------------------------------------------

    def record_of(self, name: str, job: str) -> Part | Retry | None:
        """The record (a part or a follow-up) of `job`."""
        entry = self.entry(name)
        return next((r for r in [*entry.parts(), *entry.retries] if r.job == job), None)


def part_of(entry: LockEntry, content_hash: str | None) -> Part | None:
    return next((p for p in entry.parts() if p.content_hash == content_hash), None)
