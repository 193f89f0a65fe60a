"""Failed requests: how many a batch may end with, and the follow-up batches that submit them
again.

A batch whose job succeeded may still hold requests that failed. `spec.retry_failed` allows
follow-up batches of just those, and `spec.allowed_failures` how many may remain for the batch
to count as healthy. Requests a job expired before running (`unfinished`, runner.providers.
dialect.UNFINISHED) are no fault of theirs: once retry_failed is spent, follow-ups of just
those go on by themselves, as many as a whole job that expires is submitted again
(max_attempts). Kept apart from the main table (runner.plan): a follow-up batch has a tag
(`-retryN`), a record (records.Retry) and rows of its own, and runner.desired reads the
allowance from the manifest.
"""

from __future__ import annotations

from typing import Any

from .actions import Action, Kind
from .providers.base import JobState
from .records import LockEntry
from .states import Desired, Observed
from .tags import retry_name


def allowance(allowed: int | str, requests: int) -> int:
    """How many of `requests` may fail: a count, or a share ("0.5%", rounded down)."""
    if isinstance(allowed, str):
        return int(float(allowed.rstrip("%")) * requests / 100)
    return allowed


def too_many_failures(want: Desired, failed: int) -> str | None:
    """Why the batch is not healthy when `failed` of its requests failed for good, or None."""
    if failed <= want.allowed_failures:
        return None
    return (f"{failed} of {want.requests} requests failed, more than the "
            f"{want.allowed_failures} allowed (spec.allowed_failures): see {want.errors_output}")


def only_unfinished(retry_failed: int, index: int) -> bool:
    """Whether the follow-up number `index` (from 0) sends only the unfinished requests: the
    follow-ups retry_failed allows send every failed request."""
    return index >= retry_failed


def for_retry(want: Desired, entry: LockEntry, observed: Observed, max_attempts: int = 3
              ) -> Action | None:
    """The action for the batch's follow-up batches, or None when there is nothing to do."""
    base: dict[str, Any] = dict(name=want.name, content_hash=want.content_hash, retry=True)
    retry = entry.open_retry
    if retry is not None:
        n = len(entry.retries)
        if retry.state == JobState.CREATING or retry.job is None:
            tagged = observed.tagged(retry.display_name)
            if tagged is not None:
                return Action(Kind.ADOPT, reason=f"retry {n}: an interrupted run created it",
                              requests=retry.requests, job=tagged, **base)
            return Action(Kind.RETRY, reason=f"retry {n}: an interrupted run did not submit it",
                          requests=retry.requests, display_name=retry.display_name, **base)
        job = observed.jobs.get(retry.job)
        if job is None:
            return Action(Kind.RECORD, reason=f"retry {n}: job deleted on the provider; its "
                          "requests stay in the errors output", **base)
        if job.state in (JobState.PENDING, JobState.RUNNING):
            return Action(Kind.WAIT, reason=f"retry {n} of {retry.requests} failed requests "
                          f"{job.state.value.lower()}", requests=retry.requests, job=job, **base)
        if job.state == JobState.SUCCEEDED:
            return Action(Kind.DOWNLOAD, reason=f"retry {n} succeeded, results not yet merged",
                          requests=retry.requests, job=job, **base)
        return Action(Kind.RECORD, reason=f"retry {n} {job.state.value.lower()}; its requests "
                      "stay in the errors output", job=job, **base)
    failed = entry.counts.get("failed", 0)
    gave_up = bool(entry.retries) and entry.retries[-1].state != JobState.SUCCEEDED
    if failed and len(entry.retries) < want.retry_failed and not gave_up:
        n = len(entry.retries) + 1
        return Action(Kind.RETRY, reason=f"resubmit {failed} failed requests (retry {n} of "
                      f"{want.retry_failed})", requests=failed,
                      display_name=retry_name(want.name, want.content_hash, n), **base)
    unfinished = entry.counts.get("unfinished", 0)
    if unfinished and len(entry.retries) < want.retry_failed + max_attempts - 1 and \
            not gave_up:
        n = len(entry.retries) + 1
        return Action(Kind.RETRY, reason=f"resubmit {unfinished} requests the job expired "
                      f"before running (retry {n})", requests=unfinished,
                      display_name=retry_name(want.name, want.content_hash, n), **base)
    return None
