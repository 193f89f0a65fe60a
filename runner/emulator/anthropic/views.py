"""Records as the wire shows them: MessageBatch objects and list pages.

Shapes follow Anthropic's API reference and SDK types: every field is always present, the
unknown ones null; times are RFC 3339 with microseconds and a "Z"; `request_counts` puts every
request under `processing` until the whole batch has ended; `results_url` is absolute (the
SDK fetches it as it is), built from the origin and prefix the client itself used.
"""

from __future__ import annotations

import datetime

from runner.emulator.anthropic.lifecycle import ENDED, EXPIRY, RETENTION, Observation
from runner.emulator.wire import JSON


def time_of(epoch: float) -> str:
    moment = datetime.datetime.fromtimestamp(epoch, tz=datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def results_path(batch_id: str) -> str:
    return f"/v1/messages/batches/{batch_id}/results"


def message_batch(seen: Observation, base_url: str) -> JSON:
    record, ended = seen.record, seen.status == ENDED
    if ended:
        counts = {"processing": 0, "succeeded": record.succeeded, "errored": record.errored,
                  "canceled": record.canceled, "expired": record.expired}
    else:
        counts = {"processing": record.request_count, "succeeded": 0, "errored": 0,
                  "canceled": 0, "expired": 0}
    cancel = record.cancel_time
    return {
        "id": record.id,
        "type": "message_batch",
        "processing_status": seen.status,
        "request_counts": counts,
        "ended_at": time_of(record.end_time) if ended and record.end_time is not None else None,
        "created_at": time_of(record.create_time),
        "expires_at": time_of(record.create_time + EXPIRY),
        "archived_at": time_of(record.create_time + RETENTION) if seen.archived else None,
        "cancel_initiated_at": None if cancel is None else time_of(cancel),
        "results_url": base_url + results_path(record.id) if ended else None,
    }


def page(batches: list[JSON], has_more: bool) -> JSON:
    """A list answer: `first_id` and `last_id` always present (null when empty), as the SDK
    pages on with `after_id=last_id` (or `before_id=first_id`)."""
    return {
        "data": batches,
        "has_more": has_more,
        "first_id": batches[0]["id"] if batches else None,
        "last_id": batches[-1]["id"] if batches else None,
    }
