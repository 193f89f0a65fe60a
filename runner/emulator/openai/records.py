"""What the emulator remembers about OpenAI batches, files and uploads, and how ids are made.

Records hold facts fixed when something happened (create time, the planned fate, the settled
outcome), never derived ones: a batch's validating / in_progress / finalizing phase is
computed from the clock on each read (runner.emulator.openai.lifecycle).

Batch and file ids carry their creation time, as real batch ids do (their first eight hex
digits are the creation second): lists are walked with `after=<id>`, and an id that still
tells its place after its record is deleted keeps a walk from breaking when a file goes.
"""

from __future__ import annotations

import dataclasses
import re
import secrets
import string

from runner.emulator.store import Record
from runner.emulator.wire import JSON

COMPLETED = "completed"
FAILED = "failed"
EXPIRED = "expired"
CANCELLED = "cancelled"
VALIDATING = "validating"
IN_PROGRESS = "in_progress"
FINALIZING = "finalizing"
CANCELLING = "cancelling"

# What an id may look like. Ids arrive in paths, queries and bodies and name files on disk, so
# anything else (a "../", say) is refused before it gets near the store.
ID_PATTERN = r"[A-Za-z0-9_-]{1,100}"
_ID = re.compile(ID_PATTERN)

_BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
_FILE_TIME_DIGITS = 10  # base62 digits of the creation time in microseconds
_MICROS = 1_000_000


@dataclasses.dataclass(frozen=True)
class BatchRecord(Record):
    """A batch: its request, what validation found, the fate planned at create time and,
    once settled, its end.

    `outcome` (completed, failed or expired) is chosen from the faults in force at create
    time, so later fault changes cannot rewrite a batch's history; `error_rate`, `seed` and
    `shuffle` likewise freeze how its results will be produced. `errors` holds validation
    errors (the batch fails when its validation ends). `planned_failures` is how many of
    its requests the failure rule fails, for the running counts.
    """

    id: str
    endpoint: str
    input_file_id: str
    completion_window: str
    metadata: dict[str, str] | None
    created_at: float
    latency: float
    outcome: str
    request_count: int = 0
    planned_failures: int = 0
    model: str | None = None
    errors: list[JSON] | None = None
    error_rate: float = 0.0
    seed: int = 0
    shuffle: bool = False
    output_expires_after: int | None = None
    cancelling_at: float | None = None
    status: str | None = None
    ended_at: float | None = None
    completed: int = 0
    failed: int = 0
    output_file_id: str | None = None
    error_file_id: str | None = None
    usage: JSON | None = None


@dataclasses.dataclass(frozen=True)
class FileRecord(Record):
    """A stored file; its bytes live in the blob of the same id."""

    id: str
    filename: str
    purpose: str
    size: int
    created_at: float
    expires_at: float | None = None


@dataclasses.dataclass(frozen=True)
class UploadRecord(Record):
    """An upload under way (`pending`) or ended: `completed` names the file it made."""

    id: str
    filename: str
    purpose: str
    mime_type: str
    size: int
    created_at: float
    expires_at: float
    file_expires_after: int | None = None
    status: str = "pending"
    file_id: str | None = None


@dataclasses.dataclass(frozen=True)
class PartRecord(Record):
    """One part of an upload; its bytes live beside it."""

    id: str
    upload_id: str
    size: int
    created_at: float


def is_id(text: str) -> bool:
    """Whether `text` could name a record (and is safe to look one up by)."""
    return _ID.fullmatch(text) is not None


def batch_id(now: float) -> str:
    """`batch_` and 32 hex digits: the creation second (8), its microseconds (5), random."""
    seconds = int(now)
    micros = min(int((now - seconds) * _MICROS), _MICROS - 1)
    return f"batch_{seconds:08x}{micros:05x}{secrets.token_hex(10)[:19]}"


def file_id(now: float) -> str:
    """`file-` and 22 base62 characters: the creation time in microseconds (10), random."""
    stamp = _base62(max(0, int(now * _MICROS)), _FILE_TIME_DIGITS)
    return "file-" + stamp + "".join(secrets.choice(_BASE62) for _ in range(12))


def random_id(prefix: str) -> str:
    """An id that needs no order (uploads, parts): a prefix and 24 random characters."""
    return prefix + "".join(secrets.choice(_BASE62) for _ in range(24))


def created_of(record_id: str) -> float | None:
    """The creation time a batch or file id carries, or None for an id we did not make."""
    try:
        if record_id.startswith("batch_") and len(record_id) == 38:
            digits = record_id.removeprefix("batch_")
            return int(digits[:8], 16) + int(digits[8:13], 16) / _MICROS
        if record_id.startswith("file-") and len(record_id) == 27:
            stamp = record_id.removeprefix("file-")[:_FILE_TIME_DIGITS]
            return _unbase62(stamp) / _MICROS
    except ValueError:
        return None
    return None


def _base62(number: int, width: int) -> str:
    digits = []
    for _ in range(width):
        number, digit = divmod(number, 62)
        digits.append(_BASE62[digit])
    return "".join(reversed(digits))


def _unbase62(text: str) -> int:
    number = 0
    for char in text:
        index = _BASE62.find(char)
        if index < 0:
            raise ValueError(f"not base62: {text!r}")
        number = number * 62 + index
    return number
