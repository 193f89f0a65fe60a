"""Reading the Gemini API's answers into typed values, trusting none of them.

Every field is checked for its JSON type before it is used, so that an answer of the wrong
shape (a numeric `state`, `requestCount: "many"`, a list page that is an array, a `response`
that is a string) becomes one ProviderError naming the job, or the call, and the field, never
a crash or a wrong value. Names the client later puts in a URL path (`batches/…`, `files/…`)
must be one path segment, so a hostile answer cannot steer a later call elsewhere.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ..errors import ProviderError
from .base import JobState, RemoteJob

_STATES = {
    "PENDING": JobState.PENDING, "RUNNING": JobState.RUNNING, "SUCCEEDED": JobState.SUCCEEDED,
    "FAILED": JobState.FAILED, "CANCELLED": JobState.CANCELLED, "EXPIRED": JobState.EXPIRED,
    "UNSPECIFIED": JobState.PENDING,
}
_NAME = {kind: re.compile(rf"{kind}/[A-Za-z0-9][A-Za-z0-9._~-]*") for kind in ("batches", "files")}
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


def one_line(text: str, limit: int = 300) -> str:
    """Provider text made fit for a one-line message: no line breaks or control characters,
    at most `limit` characters."""
    text = _CONTROL.sub(" ", text).strip()
    return text if len(text) <= limit else text[:limit - 1] + "…"


def kind(value: object) -> str:
    """The JSON type of a value, as a message says it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array" if isinstance(value, list) else "an object"


class Reader:
    """Typed reads from one answer; every complaint names `whose` (a job, or the call whose
    answer it is) and the field, by its path in the answer."""

    def __init__(self, whose: str):
        self.whose = whose

    def wrong(self, path: str, value: object, expected: str) -> ProviderError:
        return ProviderError(f"{self.whose}: the provider sent {path} as {kind(value)}, "
                             f"expected {expected}")

    def mapping(self, value: object, path: str) -> dict[str, Any]:
        """An object, or {} when the field is absent (proto3 JSON omits empty fields)."""
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.wrong(path, value, "an object")
        return value

    def array(self, value: object, path: str) -> list[Any]:
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.wrong(path, value, "an array")
        return value

    def string(self, value: object, path: str) -> str | None:
        if value is None or isinstance(value, str):
            return value
        raise self.wrong(path, value, "a string")

    def count(self, value: object, path: str) -> int:
        """An int64 counter: proto3 JSON writes it as a string of digits; 0 when absent."""
        if value is None:
            return 0
        if type(value) is int and value >= 0:
            return value
        if isinstance(value, str) and value.isascii() and value.isdigit():
            return int(value)
        raise self.wrong(path, value, "a count")

    def name(self, value: object, path: str, kind_: str) -> str | None:
        """A resource name such as `batches/abc`, which the client later puts in a URL."""
        text = self.string(value, path)
        if text is not None and not _NAME[kind_].fullmatch(text):
            raise ProviderError(f"{self.whose}: the provider sent {path} "
                                f"{one_line(text, 80)!r}, which is not a {kind_}/… name")
        return text


def parse_state(wire: object, reader: Reader) -> JobState:
    """`BATCH_STATE_X` (the wire) or `JOB_STATE_X` (the SDK's names) to a JobState."""
    text = reader.string(wire, "metadata.state")
    for prefix in ("BATCH_STATE_", "JOB_STATE_"):
        if text is not None and text.startswith(prefix):
            state = _STATES.get(text[len(prefix):])
            if state is not None:
                return state
    raise ProviderError(f"{reader.whose}: unknown batch state {one_line(str(text), 80)!r} "
                        "from the provider")


def parse_operation(op: object, whose: str = "the provider's answer") -> RemoteJob:
    """A batch from its Operation (create, get, or one item of a list). `whose` names the call
    until the operation's own name is known; from then on complaints name the job."""
    r = Reader(whose)
    if not isinstance(op, dict):
        raise r.wrong("the operation", op, "an object")
    meta = r.mapping(op.get("metadata"), "metadata")
    name = r.name(op.get("name"), "name", "batches") or \
        r.name(meta.get("name"), "metadata.name", "batches")
    if not name:
        raise ProviderError(f"{whose}: the provider sent an operation without a name")
    r.whose = name
    response = r.mapping(op.get("response"), "response")
    output = r.mapping(meta.get("output"), "metadata.output") or response
    where = "metadata.output" if meta.get("output") else "response"
    stats = r.mapping(meta.get("batchStats"), "metadata.batchStats")
    inline = r.mapping(output.get("inlinedResponses"), f"{where}.inlinedResponses")
    items = inline.get("inlinedResponses")
    if items is not None:
        items = r.array(items, f"{where}.inlinedResponses.inlinedResponses")
        for i, item in enumerate(items):
            field = f"{where}.inlinedResponses.inlinedResponses[{i}]"
            if not isinstance(item, dict):
                raise r.wrong(field, item, "an object")
            r.mapping(item.get("metadata"), f"{field}.metadata")
    error = r.mapping(op.get("error"), "error") or None
    input_config = r.mapping(meta.get("inputConfig"), "metadata.inputConfig")
    model = r.string(meta.get("model"), "metadata.model") or ""
    return RemoteJob(
        name=name,
        display_name=r.string(meta.get("displayName"), "metadata.displayName") or "",
        state=parse_state(meta.get("state", "BATCH_STATE_UNSPECIFIED"), r),
        model=model.removeprefix("models/"),
        create_time=r.string(meta.get("createTime"), "metadata.createTime"),
        end_time=r.string(meta.get("endTime"), "metadata.endTime"),
        total=r.count(stats.get("requestCount"), "metadata.batchStats.requestCount"),
        succeeded=r.count(stats.get("successfulRequestCount"),
                          "metadata.batchStats.successfulRequestCount"),
        failed=r.count(stats.get("failedRequestCount"), "metadata.batchStats.failedRequestCount"),
        pending=r.count(stats.get("pendingRequestCount"),
                        "metadata.batchStats.pendingRequestCount"),
        error=None if error is None else _status(r, error),
        results_file=r.name(output.get("responsesFile"), f"{where}.responsesFile", "files"),
        input_file=r.name(input_config.get("fileName"), "metadata.inputConfig.fileName", "files"),
        inline_results=items,
    )


def _status(r: Reader, error: dict[str, Any]) -> str:
    """A google.rpc.Status as one line: `message (code N)`."""
    message = r.string(error.get("message"), "error.message") or ""
    code = error.get("code")
    if code is not None and type(code) is not int:
        raise r.wrong("error.code", code, "an integer")
    return one_line(f"{message} (code {code})")


def parse_page(page: object, items: str, whose: str) -> tuple[list[Any], str]:
    """One page of a list: its `items` (`operations`, `files`) and the next page's token
    ("" on the last page)."""
    r = Reader(whose)
    if not isinstance(page, dict):
        raise r.wrong("the page", page, "an object")
    return (r.array(page.get(items), items),
            r.string(page.get("nextPageToken"), "nextPageToken") or "")


def parse_file(resource: object, whose: str) -> tuple[str, str, str]:
    """(name, displayName, state) of a File resource."""
    r = Reader(whose)
    resource = r.mapping(resource, "file")
    name = r.name(resource.get("name"), "file.name", "files")
    if not name:
        raise ProviderError(f"{whose}: the provider sent a file without a name")
    return (name, r.string(resource.get("displayName"), "file.displayName") or "",
            r.string(resource.get("state"), "file.state") or "ACTIVE")


def parse_uploaded(answer: object, whose: str) -> str:
    """The file's name from the answer to an upload's final chunk: `{"file": {...}}`."""
    if not isinstance(answer, dict) or "file" not in answer:
        raise Reader(whose).wrong("the answer", answer, "an object holding file")
    return parse_file(answer["file"], whose)[0]


def parse_count(answer: object, whose: str) -> int:
    r = Reader(whose)
    if not isinstance(answer, dict):
        raise r.wrong("the answer", answer, "an object")
    return r.count(answer.get("totalTokens"), "totalTokens")


def error_message(body: bytes, text: str) -> str:
    """The message of an error answer (`{"error": {"message"}}`), else the start of its text."""
    try:
        answer = json.loads(body)
    except ValueError:
        answer = None
    err = answer.get("error") if isinstance(answer, dict) else None
    if isinstance(err, dict) and err.get("message"):
        return one_line(str(err["message"]))
    return one_line(str(err) if err else text, 300 if err else 200)
