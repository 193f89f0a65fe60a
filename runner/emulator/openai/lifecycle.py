"""An OpenAI batch's state machine: where a batch stands at any moment, derived from the clock.

    validating --> in_progress --> finalizing --> completed
        |               |  '-- (24 h window passes) --> expired
        '--> failed     '--> cancelling --> cancelled     (cancel is possible until the end)

A batch's phase is not stored. For a latency L (emulator clock) it validates for the first
L/4, then either fails (invalid input, or the `fail` fault) or runs until 3L/4, finalizes
until L and completes. Requests finish evenly while it runs, which gives the running
`request_counts` and the share that an expired or cancelled batch has finished. A batch
whose run would end after its completion window (`expires_at`, 24 h after create) expires
then; the `expire` fault makes a batch run for twice its window, so it expires with half its
requests done. A cancel makes it `cancelling` for L/4 (at most 10 min), then `cancelled`.
Once a batch has settled (runner.emulator.openai.settle), its record holds its terminal
status and end, and its phase is read from there, so history never changes afterwards.
"""

from __future__ import annotations

import dataclasses
import math

from runner.emulator.openai.records import (
    CANCELLED,
    CANCELLING,
    COMPLETED,
    EXPIRED,
    FAILED,
    FINALIZING,
    IN_PROGRESS,
    VALIDATING,
    BatchRecord,
)

WINDOW = 24 * 3600.0
MAX_CANCELLING = 600.0
TERMINAL = frozenset({COMPLETED, FAILED, EXPIRED, CANCELLED})


@dataclasses.dataclass(frozen=True)
class Phase:
    """Where a batch stands at some moment, and since when."""

    status: str
    since: float

    @property
    def done(self) -> bool:
        return self.status in TERMINAL


@dataclasses.dataclass(frozen=True)
class Timeline:
    """The moments of a batch's planned life (before any cancel)."""

    created: float
    validated: float  # in_progress_at (or failed_at)
    ran: float  # finalizing_at, when the last request would finish
    finished: float  # completed_at
    expires: float

    @property
    def expiring(self) -> bool:
        return self.ran > self.expires

    def progress(self, moment: float) -> float:
        """The share of its requests the batch has finished by `moment`, from 0 to 1."""
        if moment < self.validated:
            return 0.0
        span = self.ran - self.validated
        return 1.0 if span <= 0 else min(1.0, (moment - self.validated) / span)


def timeline(record: BatchRecord) -> Timeline:
    start, latency = record.created_at, record.latency
    validated = start + latency / 4
    ran = start + 3 * latency / 4
    expires = start + WINDOW
    if record.outcome == EXPIRED:
        ran = validated + 2 * (expires - validated)
    return Timeline(start, validated, ran, start + latency, expires)


def cancelled_at(record: BatchRecord) -> float | None:
    if record.cancelling_at is None:
        return None
    return record.cancelling_at + min(record.latency / 4, MAX_CANCELLING)


def phase(record: BatchRecord, now: float) -> Phase:
    """Where `record` stands at `now`, before any settling a read may then do."""
    if record.status is not None:
        return Phase(record.status, record.ended_at or record.created_at)
    end = cancelled_at(record)
    if end is not None and record.cancelling_at is not None:
        return Phase(CANCELLED, end) if now >= end else Phase(CANCELLING, record.cancelling_at)
    times = timeline(record)
    if now < times.validated:
        return Phase(VALIDATING, times.created)
    if record.outcome == FAILED:
        return Phase(FAILED, times.validated)
    if times.expiring:
        if now >= times.expires:
            return Phase(EXPIRED, times.expires)
        return Phase(IN_PROGRESS, times.validated)
    if now >= times.finished:
        return Phase(COMPLETED, times.finished)
    if now >= times.ran:
        return Phase(FINALIZING, times.ran)
    return Phase(IN_PROGRESS, times.validated)


def finished_share(record: BatchRecord, ended: Phase) -> int:
    """How many requests (in input order) a batch ending in `ended` has answered."""
    if ended.status == FAILED:
        return 0
    times = timeline(record)
    moment = record.cancelling_at if ended.status == CANCELLED else ended.since
    return math.floor(times.progress(moment or ended.since) * record.request_count)


def running_counts(record: BatchRecord, now: float) -> tuple[int, int]:
    """(completed, failed) so far, for a batch that has not settled."""
    times = timeline(record)
    moment = min(now, record.cancelling_at if record.cancelling_at is not None else now)
    share = times.progress(moment)
    failed = math.floor(share * record.planned_failures)
    return math.floor(share * record.request_count) - failed, failed
