"""What the emulator remembers about an Anthropic Message Batch, as stored on disk.

A record holds facts fixed when something happened (create, cancel, settle), never derived
ones: whether a batch is still `in_progress` is computed from the clock on each read
(runner.emulator.anthropic.lifecycle), so a record is rewritten only when a batch is canceled
or settles.
"""

from __future__ import annotations

import dataclasses
import secrets
import string

from runner.emulator.store import Record

# In ASCII order, so that ids written with it sort as the numbers they encode.
_ALPHABET = string.digits + string.ascii_uppercase + string.ascii_lowercase
_TIME_DIGITS = 9  # microseconds since 1970 in base 62: good until the year 6000
_RANDOM_DIGITS = 13


def new_batch_id(now: float) -> str:
    """`msgbatch_` + the create time + randomness. Ids sort as their create times do, so a
    list resumes after (or before) any id, even that of a batch deleted meanwhile."""
    micros = max(0, int(now * 1_000_000))
    digits = []
    for _ in range(_TIME_DIGITS):
        micros, digit = divmod(micros, len(_ALPHABET))
        digits.append(_ALPHABET[digit])
    tail = "".join(secrets.choice(_ALPHABET) for _ in range(_RANDOM_DIGITS))
    return "msgbatch_" + "".join(reversed(digits)) + tail


@dataclasses.dataclass(frozen=True)
class BatchRecord(Record):
    """A Message Batch: its requests' count, the plan fixed at create time, and its end.

    `duration` is how long (emulator clock) answering every request takes; requests finish
    evenly over it, in input order, which decides which ones a cancel or the 24 h expiry
    catches. `version` is the `anthropic-version` the batch was created with, which decides
    which parameters its requests may carry. `fail`, `error_rate`, `seed` and `shuffle` freeze
    the faults in force at create time. The counts are filled in when the batch settles.
    """

    id: str
    create_time: float
    duration: float
    request_count: int
    version: str
    fail: bool = False
    error_rate: float = 0.0
    seed: int = 0
    shuffle: bool = False
    cancel_time: float | None = None
    end_time: float | None = None
    succeeded: int = 0
    errored: int = 0
    canceled: int = 0
    expired: int = 0
