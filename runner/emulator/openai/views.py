"""Records as OpenAI's wire shows them: Batch, FileObject and Upload objects.

Every field the SDK's types name is present, null where it does not apply yet; timestamps are
Unix seconds (integers). `request_counts` read {0, 0, 0} while a batch validates (as the
real create answer does) and count up while it runs; `usage` sums the answered requests'
tokens once the batch has ended.
"""

from __future__ import annotations

from runner.emulator.openai import lifecycle
from runner.emulator.openai.lifecycle import Phase
from runner.emulator.openai.records import (
    CANCELLED,
    CANCELLING,
    COMPLETED,
    EXPIRED,
    FAILED,
    FINALIZING,
    VALIDATING,
    BatchRecord,
    FileRecord,
    UploadRecord,
)
from runner.emulator.wire import JSON

_NO_USAGE: JSON = {
    "input_tokens": 0,
    "input_tokens_details": {"cached_tokens": 0},
    "output_tokens": 0,
    "output_tokens_details": {"reasoning_tokens": 0},
    "total_tokens": 0,
}


def _seconds(moment: float | None) -> int | None:
    return None if moment is None else int(moment)


def batch_object(record: BatchRecord, phase: Phase, now: float) -> JSON:
    """The Batch for a batch as a read at `now` saw it."""
    status = phase.status
    times = lifecycle.timeline(record)
    ran = status not in (VALIDATING, FAILED) and not (
        status in (CANCELLING, CANCELLED) and record.cancelling_at is not None
        and record.cancelling_at < times.validated)
    stamps: dict[str, float | None] = {
        "in_progress_at": times.validated if ran else None,
        "finalizing_at": times.ran if status in (FINALIZING, COMPLETED) else None,
        "completed_at": phase.since if status == COMPLETED else None,
        "failed_at": phase.since if status == FAILED else None,
        "expired_at": phase.since if status == EXPIRED else None,
        "cancelling_at": record.cancelling_at,
        "cancelled_at": phase.since if status == CANCELLED else None,
    }
    if record.status is not None:
        counts = {"total": record.request_count, "completed": record.completed,
                  "failed": record.failed}
    elif ran:
        completed, failed = lifecycle.running_counts(record, now)
        counts = {"total": record.request_count, "completed": completed, "failed": failed}
    else:
        counts = {"total": 0, "completed": 0, "failed": 0}
    errors = None
    if status == FAILED and record.errors:
        errors = {"object": "list", "data": record.errors}
    return {
        "id": record.id,
        "object": "batch",
        "endpoint": record.endpoint,
        "model": record.model,
        "errors": errors,
        "input_file_id": record.input_file_id,
        "completion_window": record.completion_window,
        "status": status,
        "output_file_id": record.output_file_id,
        "error_file_id": record.error_file_id,
        "created_at": int(record.created_at),
        "expires_at": int(times.expires),
        **{name: _seconds(moment) for name, moment in stamps.items()},
        "request_counts": counts,
        "usage": record.usage or _NO_USAGE,
        "metadata": record.metadata,
    }


def file_object(record: FileRecord) -> JSON:
    return {
        "id": record.id,
        "object": "file",
        "bytes": record.size,
        "created_at": int(record.created_at),
        "filename": record.filename,
        "purpose": record.purpose,
        "status": "processed",
        "expires_at": _seconds(record.expires_at),
        "status_details": None,
    }


def deleted(file_id: str) -> JSON:
    return {"id": file_id, "object": "file", "deleted": True}


def upload_object(record: UploadRecord, status: str, file: FileRecord | None) -> JSON:
    """An Upload; `status` is the record's, or `expired` once its hour has passed."""
    return {
        "id": record.id,
        "object": "upload",
        "bytes": record.size,
        "created_at": int(record.created_at),
        "expires_at": int(record.expires_at),
        "filename": record.filename,
        "purpose": record.purpose,
        "status": status,
        "file": None if file is None else file_object(file),
    }
