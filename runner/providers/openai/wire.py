"""Reading the OpenAI Batch and Files APIs' answers into typed values, trusting none of them.

Every field is checked for its JSON type before it is used, so that an answer of the wrong
shape (a numeric `status`, `request_counts.total: "many"`, a list page that is an array, a
file that is a string) becomes one ProviderError naming the batch, or the call, and the
field, never a crash or a wrong value. Ids the client later puts in a URL path (a batch's, its
files') must be one path segment, so that a hostile answer cannot steer a later call
elsewhere.

States: validating is PENDING; in_progress, finalizing and cancelling are RUNNING; completed,
failed and cancelled are themselves. An `expired` batch (24 h passed) keeps what it finished
in its output file and lists the rest in its error file as `batch_expired`: with an output
file it is SUCCEEDED (it ended with results), so that the core downloads it and keeps what
finished; the `batch_expired` requests are read as unfinished (results.read_result), which the
core sends again by itself, and only those. Without an output file nothing finished and it is
EXPIRED, which the core resubmits whole. Times are Unix seconds on the wire and RFC 3339 UTC
here, whose string order is time order.

A batch's `model` is left out of the RemoteJob: OpenAI may report the dated snapshot an alias
resolved to (`gpt-5-2025-08-07` for `gpt-5`), which the core's ownership check would read as
another model's job. The tag already names the model: it carries the content hash.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from ...errors import ProviderError
from ..base import JobState, RemoteJob
from ..reading import Reader, one_line

TAG = "batch_runner_tag"        # the metadata key that carries the runner's display name
_STATES = {
    "validating": JobState.PENDING, "in_progress": JobState.RUNNING,
    "finalizing": JobState.RUNNING, "cancelling": JobState.RUNNING,
    "completed": JobState.SUCCEEDED, "failed": JobState.FAILED,
    "expired": JobState.EXPIRED, "cancelled": JobState.CANCELLED,
}
_ENDS = ("completed_at", "failed_at", "expired_at", "cancelled_at")



class OpenAiReader(Reader):
    """Reader, with the ids and times OpenAI's answers carry."""

    def seconds(self, value: object, path: str) -> str | None:
        """A Unix time in seconds as RFC 3339 UTC (`2026-01-02T03:04:05Z`); None if absent."""
        if value is None:
            return None
        if type(value) is not int or value < 0:
            raise self.wrong(path, value, "a time in seconds")
        try:
            moment = datetime.fromtimestamp(value, tz=timezone.utc)
        except (OverflowError, OSError, ValueError):
            raise self.wrong(path, value, "a time in seconds") from None
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Batch:
    """A batch as the client needs it: the job the core sees, and its files (the error file
    has no place in RemoteJob, and downloads and deletes need it)."""

    job: RemoteJob
    output_file: str | None
    error_file: str | None

    @property
    def files(self) -> tuple[str, ...]:
        """Every file of the batch: its input, output and error files."""
        return tuple(f for f in (self.job.input_file, self.output_file, self.error_file) if f)

    @property
    def files_of_results(self) -> list[str]:
        """The files its results are in: the output file's answers, then the error file's."""
        return [f for f in (self.output_file, self.error_file) if f]


def parse_batch(answer: object, whose: str = "the provider's answer") -> Batch:
    """A Batch object (create, get, cancel, or one item of a list). `whose` names the call
    until the batch's id is known; from then on complaints name the batch."""
    r = OpenAiReader(whose)
    if not isinstance(answer, dict):
        raise r.wrong("the batch", answer, "an object")
    name = r.ident(answer.get("id"), "id")
    if not name:
        raise ProviderError(f"{whose}: the provider sent a batch without an id")
    r.whose = name
    status = r.string(answer.get("status"), "status")
    state = _STATES.get(status or "")
    if state is None:
        raise ProviderError(f"{name}: unknown batch status {one_line(str(status), 80)!r} from "
                            "the provider")
    metadata = r.mapping(answer.get("metadata"), "metadata")
    counts = r.mapping(answer.get("request_counts"), "request_counts")
    total = r.count(counts.get("total"), "request_counts.total")
    done = r.count(counts.get("completed"), "request_counts.completed")
    failed = r.count(counts.get("failed"), "request_counts.failed")
    output = r.ident(answer.get("output_file_id"), "output_file_id")
    error_file = r.ident(answer.get("error_file_id"), "error_file_id")
    ends = [r.seconds(answer.get(field), field) for field in _ENDS]
    error = _errors(r, answer.get("errors")) if state == JobState.FAILED else None
    if state == JobState.EXPIRED and output is not None:
        state = JobState.SUCCEEDED      # what finished is kept (see the module docstring)
    job = RemoteJob(
        name=name,
        display_name=r.string(metadata.get(TAG), f"metadata.{TAG}") or "",
        state=state,
        create_time=r.seconds(answer.get("created_at"), "created_at"),
        end_time=next((end for end in ends if end is not None), None),
        total=total, succeeded=done, failed=failed,
        pending=max(0, total - done - failed) if not state.terminal else 0,
        error=error,
        results_file=output,
        input_file=r.ident(answer.get("input_file_id"), "input_file_id"),
    )
    return Batch(job, output, error_file)


def _errors(r: Reader, value: object) -> str:
    """A failed batch's `errors.data[]` as one line: `code: message (line N)`, each."""
    errors = r.mapping(value, "errors")
    said = []
    for i, item in enumerate(r.array(errors.get("data"), "errors.data")):
        item = r.mapping(item, f"errors.data[{i}]")
        code = r.string(item.get("code"), f"errors.data[{i}].code")
        message = r.string(item.get("message"), f"errors.data[{i}].message") or ""
        line = item.get("line")
        if line is not None and type(line) is not int:
            raise r.wrong(f"errors.data[{i}].line", line, "an integer")
        said.append((f"{code}: " if code else "") + message
                    + (f" (line {line})" if line is not None else ""))
    return one_line("; ".join(said) or "the batch failed; the provider gave no reason")


def paging(token: str, limit: int) -> dict[str, Any]:
    """The query of the list page after the item `token` names ("" for the first page)."""
    return {"limit": limit, **({"after": token} if token else {})}


def parse_models(page: object, whose: str) -> list[Any]:
    """The items of the list of models (`{"object": "list", "data"}`, one page)."""
    r = OpenAiReader(whose)
    if not isinstance(page, dict):
        raise r.wrong("the page", page, "an object")
    return r.array(page.get("data"), "data")


def parse_page(page: object, whose: str) -> tuple[list[Any], str]:
    """One page of a list (`{"object": "list", "data", "has_more", ...}`): its items and the
    next page's token, the last item's id as the SDK pages ("" on the last page). A page
    that says more follow yet holds nothing has no way on, and is refused."""
    r = OpenAiReader(whose)
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
    last = items[-1]
    if not isinstance(last, dict):
        raise r.wrong(f"data[{len(items) - 1}]", last, "an object")
    token = r.ident(last.get("id"), f"data[{len(items) - 1}].id")
    if not token:
        raise ProviderError(f"{whose}: the provider sent an item without an id")
    return items, token


@dataclass(frozen=True)
class FileObject:
    id: str
    filename: str
    purpose: str
    status: str
    bytes: int


def parse_file(answer: object, whose: str) -> FileObject:
    """A FileObject (an upload's answer, or one item of the files list)."""
    r = OpenAiReader(whose)
    if not isinstance(answer, dict):
        raise r.wrong("the file", answer, "an object")
    file_id = r.ident(answer.get("id"), "file.id")
    if not file_id:
        raise ProviderError(f"{whose}: the provider sent a file without an id")
    return FileObject(file_id, r.string(answer.get("filename"), "file.filename") or "",
                      r.string(answer.get("purpose"), "file.purpose") or "",
                      r.string(answer.get("status"), "file.status") or "processed",
                      r.count(answer.get("bytes"), "file.bytes"))


def parse_deleted(answer: object, whose: str) -> bool:
    """Whether a delete's answer (`{"id", "object", "deleted"}`) says the file is gone."""
    r = Reader(whose)
    if not isinstance(answer, dict):
        raise r.wrong("the answer", answer, "an object")
    deleted = answer.get("deleted")
    if type(deleted) is not bool:
        raise r.wrong("deleted", deleted, "true or false")
    return deleted
