"""A Gemini batch's state machine: where a job stands at any moment, derived from the clock.

A job's phase is not stored: `phase()` derives it from the clock and the create time (PENDING
for the first third of the latency, RUNNING until the latency has passed, then the outcome
planned at create time; EXPIRED for anything unfinished 48 h after create). Once a job has
settled (runner.emulator.gemini.settle), its record holds its terminal state and end time,
and the phase is read from there, so history never changes afterwards.
"""

from __future__ import annotations

import dataclasses

from runner.emulator.gemini.records import (
    CANCELLED,
    EXPIRED,
    FAILED,
    PENDING,
    RUNNING,
    SUCCEEDED,
    BatchRecord,
)
from runner.emulator.wire import JSON, ApiError

EXPIRY = 48 * 3600.0
TERMINAL = frozenset({SUCCEEDED, FAILED, CANCELLED, EXPIRED})


@dataclasses.dataclass(frozen=True)
class Phase:
    """Where a job stands at some moment, and since when (its `updateTime`)."""

    state: str
    since: float

    @property
    def done(self) -> bool:
        return self.state in TERMINAL


def phase(record: BatchRecord, now: float) -> Phase:
    """Where `record` stands at `now`, before any settling a read may then do."""
    if record.state is not None:
        return Phase(record.state, record.end_time or record.create_time)
    start = record.create_time
    finish = start + record.latency
    if finish > start + EXPIRY and now >= start + EXPIRY:
        return Phase(EXPIRED, start + EXPIRY)
    if now >= finish:
        return Phase(record.outcome, finish)
    running_from = start + record.latency / 3
    if now >= running_from:
        return Phase(RUNNING, running_from)
    return Phase(PENDING, start)


@dataclasses.dataclass(frozen=True)
class RawArray:
    """A JSON array as the text it is stored as, spliced into an answer unparsed: a batch's
    20 MB of inline answers cost seconds to parse and write again on every read."""

    text: bytes


@dataclasses.dataclass(frozen=True)
class Observation:
    """A job as one read saw it: record, phase, and inline results once it has succeeded
    (parsed, or as their text)."""

    record: BatchRecord
    phase: Phase
    inline: list[JSON] | RawArray | None = None


def not_found(batch_id: str) -> ApiError:
    return ApiError("NOT_FOUND", f"Batch batches/{batch_id} not found.")
