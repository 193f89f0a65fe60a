"""A Message Batch's life, derived from the clock: when it ends, and how each request ends.

Requests are answered one after another, evenly over the batch's `duration`, in input order:
request i of n is answered at create + duration * (i + 1) / n. A batch ends when all are
answered, when 24 h have passed since create (`expires_at`: the requests not yet answered
end `expired`), or a little after a cancel (`CANCEL_GRACE`, while it reads `canceling`: the
requests not answered when the cancel came end `canceled`). So a canceled or expired batch
keeps the results of the requests answered before, as the real one does.

Once a batch has settled (runner.emulator.anthropic.settle), its record holds its end time
and counts, and is read from there, so history never changes afterwards.
"""

from __future__ import annotations

import dataclasses

from runner.emulator.anthropic.records import BatchRecord
from runner.emulator.wire import ApiError

EXPIRY = 24 * 3600.0
# How long results stay downloadable after create; then the batch reads `archived_at`.
RETENTION = 29 * 24 * 3600.0
# How long a canceled batch reads `canceling` before it ends (never past its natural end).
CANCEL_GRACE = 60.0

IN_PROGRESS = "in_progress"
CANCELING = "canceling"
ENDED = "ended"


def end_of(record: BatchRecord) -> float:
    """When the batch ends (or ended): answered, expired, or canceled and wound down."""
    if record.end_time is not None:
        return record.end_time
    natural = record.create_time + min(record.duration, EXPIRY)
    if record.cancel_time is not None:
        return min(natural, record.cancel_time + CANCEL_GRACE)
    return natural


def answered(record: BatchRecord, index: int) -> bool:
    """Whether request `index` was answered before a cancel or the expiry stopped the batch."""
    cutoff = record.create_time + EXPIRY
    if record.cancel_time is not None:
        cutoff = min(cutoff, record.cancel_time)
    done = record.create_time + record.duration * (index + 1) / record.request_count
    return done <= cutoff


def unanswered(record: BatchRecord) -> str:
    """The result type of a request the batch never answered."""
    return "canceled" if record.cancel_time is not None else "expired"


def status(record: BatchRecord, now: float) -> str:
    """`processing_status` at `now`, before any settling a read may then do."""
    if now >= end_of(record):
        return ENDED
    return CANCELING if record.cancel_time is not None else IN_PROGRESS


@dataclasses.dataclass(frozen=True)
class Observation:
    """A batch as one read saw it: its record, its status, and when that read happened."""

    record: BatchRecord
    status: str
    now: float

    @property
    def archived(self) -> bool:
        """Whether its results are no longer available (29 days after create)."""
        return self.now >= self.record.create_time + RETENTION


def not_found(batch_id: str) -> ApiError:
    return ApiError("NOT_FOUND", f"Message batch {batch_id} not found.")
