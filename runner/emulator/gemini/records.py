"""What the emulator remembers about batches, files and uploads, as stored on disk.

Records hold facts fixed when something happened (create time, the fault plan, the settled
outcome), never derived ones: a batch's PENDING/RUNNING phase is computed from the clock on
each read, so a record is rewritten only when a batch settles or is cancelled.
"""

from __future__ import annotations

import dataclasses

from runner.emulator.store import Record
from runner.emulator.wire import JSON

SUCCEEDED = "BATCH_STATE_SUCCEEDED"
FAILED = "BATCH_STATE_FAILED"
CANCELLED = "BATCH_STATE_CANCELLED"
EXPIRED = "BATCH_STATE_EXPIRED"
PENDING = "BATCH_STATE_PENDING"
RUNNING = "BATCH_STATE_RUNNING"


@dataclasses.dataclass(frozen=True)
class BatchRecord(Record):
    """A batch job: its input, the fate planned at create time and, once settled, its end.

    `outcome` is the terminal state chosen from the faults in force at create time, so later
    fault changes cannot rewrite a job's history. `error_rate`, `seed` and `shuffle` likewise
    freeze how its results will be produced.
    """

    id: str
    model: str
    display_name: str
    create_time: float
    latency: float
    outcome: str
    request_count: int
    input_file: str | None = None
    priority: int = 0
    error_rate: float = 0.0
    seed: int = 0
    shuffle: bool = False
    state: str | None = None
    end_time: float | None = None
    error: JSON | None = None
    succeeded: int = 0
    failed: int = 0
    output_file: str | None = None

    @property
    def name(self) -> str:
        return f"batches/{self.id}"


@dataclasses.dataclass(frozen=True)
class FileRecord(Record):
    """A stored file; its bytes live in the store's blob of the same id."""

    id: str
    display_name: str
    mime_type: str
    size_bytes: int
    create_time: float
    sha256: str
    source: str = "UPLOADED"

    @property
    def name(self) -> str:
        return f"files/{self.id}"


@dataclasses.dataclass(frozen=True)
class UploadSession(Record):
    """A resumable upload; the bytes received so far are the length of its part file.

    A finalized session is kept (state "final") so that a client which lost the final
    response can ask again and learn the file it created.
    """

    id: str
    file_id: str
    display_name: str
    mime_type: str
    total: int | None
    create_time: float
    state: str = "active"
