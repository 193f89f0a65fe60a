"""Reading the Message Batches API's answers into typed values, trusting none of them.

Every field is checked for its JSON type before it is used, so that an answer of the wrong
shape (a numeric `processing_status`, `request_counts.processing: "many"`, a list page that
is an array) becomes one ProviderError naming the batch, or the call, and the field, never a
crash or a wrong value. A batch id the client later puts in a URL path must be one path
segment, so that a hostile answer cannot steer a later call elsewhere.

States. `in_progress` and `canceling` are RUNNING: `request_counts` counts every request as
`processing` until the whole batch has ended, so a batch that has not started cannot be told
from one that has. An `ended` batch is SUCCEEDED when any request was processed (succeeded or
errored): the core downloads it and keeps what finished; its expired requests are read as
unfinished (results.read_result), which the core sends again by itself, as it does an expired
OpenAI batch's, and its cancelled ones are failures, which spec.retry_failed may resend. An
ended batch none of whose requests was processed is CANCELLED when any was cancelled, else
EXPIRED (24 hours passed), which the core resubmits whole.

Times are RFC 3339 on the wire (`Z` or an offset, 0 to 9 digits of fraction) and RFC 3339 UTC
with `Z` here, keeping the fraction's digits, so that their string order is time order.

A batch carries no name, tag or metadata, and no model (each request names its own): every
RemoteJob read here has display_name "" and model "", and the core recognises its jobs from
the lockfile's intents (Dialect.tags_jobs is False).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ...errors import ProviderError
from ..base import JobState, RemoteJob
from ..reading import Reader, one_line

_STATUSES = ("in_progress", "canceling", "ended")
COUNTS = ("processing", "succeeded", "errored", "canceled", "expired")


@dataclass(frozen=True)
class Batch:
    """A MessageBatch as the client needs it: the job the core sees, and what downloads and
    deletes need besides (RemoteJob has no place for them)."""

    job: RemoteJob
    ended: bool
    results_url: str | None
    archived: bool              # its results are no longer available (29 days on)


def parse_batch(answer: object, whose: str = "the provider's answer") -> Batch:
    """A MessageBatch (create, get, cancel, or one item of a list). `whose` names the call
    until the batch's id is known; from then on complaints name the batch."""
    r = Reader(whose)
    if not isinstance(answer, dict):
        raise r.wrong("the batch", answer, "an object")
    name = r.ident(answer.get("id"), "id")
    if not name:
        raise ProviderError(f"{whose}: the provider sent a batch without an id")
    r.whose = name
    kind = r.string(answer.get("type"), "type")
    if kind not in (None, "message_batch"):
        raise ProviderError(f"{name}: the provider sent type {one_line(kind, 80)!r}, expected "
                            "message_batch")
    status = r.string(answer.get("processing_status"), "processing_status")
    if status not in _STATUSES:
        raise ProviderError(f"{name}: unknown processing_status {one_line(str(status), 80)!r} "
                            "from the provider")
    raw = r.mapping(answer.get("request_counts"), "request_counts")
    counts = {k: r.count(raw.get(k), f"request_counts.{k}") for k in COUNTS}
    total = sum(counts.values())
    done = counts["succeeded"] + counts["errored"]
    state, error = JobState.RUNNING, None
    if status == "ended":
        state, error = _ended(counts, total, done)
    results_url = r.string(answer.get("results_url"), "results_url")
    job = RemoteJob(
        name=name,
        display_name="",
        state=state,
        create_time=r.time(answer.get("created_at"), "created_at"),
        end_time=r.time(answer.get("ended_at"), "ended_at"),
        total=total, succeeded=counts["succeeded"],
        failed=counts["errored"] + counts["canceled"] + counts["expired"],
        pending=counts["processing"], error=error,
    )
    for field in ("expires_at", "cancel_initiated_at"):    # checked, not needed
        r.time(answer.get(field), field)
    archived = r.time(answer.get("archived_at"), "archived_at") is not None
    return Batch(job, status == "ended", results_url, archived)


def _ended(counts: dict[str, int], total: int, done: int) -> tuple[JobState, str | None]:
    """The state of an ended batch, and what to say of one whose requests none was done."""
    if done:
        return JobState.SUCCEEDED, None
    if counts["canceled"]:
        return JobState.CANCELLED, (f"cancelled before any of its {total} requests was "
                                    "processed")
    if counts["expired"]:
        return JobState.EXPIRED, (f"none of its {total} requests was processed before it "
                                  "expired (24 h)")
    return JobState.FAILED, "the batch ended without a request counted in request_counts"


def paging(token: str, limit: int) -> dict[str, Any]:
    """The query of the list page after the batch `token` names ("" for the first page)."""
    return {"limit": limit, **({"after_id": token} if token else {})}


def parse_page(page: object, whose: str) -> tuple[list[Any], str]:
    """One page of the list (`{"data", "has_more", "first_id", "last_id"}`): its items and
    the next page's token, `last_id` as the SDK pages ("" on the last page). A page that says
    more follow yet holds nothing, or names no last_id, has no way on, and is refused: a
    list cut short would hide a batch."""
    r = Reader(whose)
    if not isinstance(page, dict):
        raise r.wrong("the page", page, "an object")
    items = r.array(page.get("data"), "data")
    more = page.get("has_more")
    if type(more) is not bool:
        raise r.wrong("has_more", more, "true or false")
    if not more:
        return items, ""
    if not items:
        raise ProviderError(f"{whose}: the provider said more items follow an empty page; "
                            "stopping (its paging would never end)")
    token = r.ident(page.get("last_id"), "last_id")
    if not token:
        raise ProviderError(f"{whose}: the provider said more items follow but sent no "
                            "last_id to ask for them with; stopping (the list would be cut "
                            "short)")
    return items, token


def parse_deleted(answer: object, whose: str) -> None:
    """Checks a delete's answer (`{"id", "type": "message_batch_deleted"}`)."""
    r = Reader(whose)
    if not isinstance(answer, dict):
        raise r.wrong("the answer", answer, "an object")
    kind = r.string(answer.get("type"), "type")
    if kind != "message_batch_deleted":
        raise ProviderError(f"{whose}: the provider did not say the batch was deleted (type "
                            f"{one_line(str(kind), 80)!r})")
