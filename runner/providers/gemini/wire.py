"""Reading the Gemini API's answers into typed values, trusting none of them.

Every field is checked for its JSON type before it is used, so that an answer of the wrong
shape (a numeric `state`, `requestCount: "many"`, a list page that is an array, a `response`
that is a string) becomes one ProviderError naming the job, or the call, and the field, never
a crash or a wrong value. Names the client later puts in a URL path (`batches/…`, `files/…`)
must be one path segment, so a hostile answer cannot steer a later call elsewhere.
"""

from __future__ import annotations

import re
from typing import Any

from ...errors import ProviderError
from ..base import JobState, RemoteJob
from ..reading import Reader, one_line

_STATES = {
    "PENDING": JobState.PENDING, "RUNNING": JobState.RUNNING, "SUCCEEDED": JobState.SUCCEEDED,
    "FAILED": JobState.FAILED, "CANCELLED": JobState.CANCELLED, "EXPIRED": JobState.EXPIRED,
    "UNSPECIFIED": JobState.PENDING,
}
# Partial responses (Google's `fields` system parameter, which every method of the API takes):
# a batch's state, counts and names without its inline answers, which a finished batch sent
# inline carries in full, twice (`metadata.output` and `response`), on every get and in every
# list page; and the answers alone, once, when they are read.
JOB_FIELDS = ("name,done,error,metadata(name,displayName,model,state,createTime,endTime,"
              "batchStats,inputConfig.fileName,output.responsesFile),response.responsesFile")
LIST_FIELDS = f"operations({JOB_FIELDS}),nextPageToken"
ANSWER_FIELDS = "metadata.output.inlinedResponses"
_NAME = {kind: re.compile(rf"{kind}/[A-Za-z0-9][A-Za-z0-9._~-]*") for kind in ("batches", "files")}


class GeminiReader(Reader):
    """Reader, with the resource names Gemini's answers carry."""

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
    r = GeminiReader(whose)
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
    error = r.mapping(op.get("error"), "error") or None
    input_config = r.mapping(meta.get("inputConfig"), "metadata.inputConfig")
    model = r.string(meta.get("model"), "metadata.model") or ""
    return RemoteJob(
        name=name,
        display_name=r.string(meta.get("displayName"), "metadata.displayName") or "",
        state=parse_state(meta.get("state", "BATCH_STATE_UNSPECIFIED"), r),
        model=model.removeprefix("models/"),
        create_time=r.time(meta.get("createTime"), "metadata.createTime"),
        end_time=r.time(meta.get("endTime"), "metadata.endTime"),
        total=r.count(stats.get("requestCount"), "metadata.batchStats.requestCount"),
        succeeded=r.count(stats.get("successfulRequestCount"),
                          "metadata.batchStats.successfulRequestCount"),
        failed=r.count(stats.get("failedRequestCount"), "metadata.batchStats.failedRequestCount"),
        pending=r.count(stats.get("pendingRequestCount"),
                        "metadata.batchStats.pendingRequestCount"),
        error=None if error is None else _status(r, error),
        results_file=r.name(output.get("responsesFile"), f"{where}.responsesFile", "files"),
        input_file=r.name(input_config.get("fileName"), "metadata.inputConfig.fileName", "files"),
    )


def _status(r: GeminiReader, error: dict[str, Any]) -> str:
    """A google.rpc.Status as one line: `message (code N)`."""
    message = r.string(error.get("message"), "error.message") or ""
    code = error.get("code")
    if code is not None and type(code) is not int:
        raise r.wrong("error.code", code, "an integer")
    return one_line(f"{message} (code {code})")


def paging(token: str, fields: str | None = None) -> dict[str, Any]:
    """The query of the list page `token` names ("" for the first), with the partial-response
    mask `fields` if given."""
    return {"pageSize": 100, **({"pageToken": token} if token else {}),
            **({"fields": fields} if fields else {})}


def parse_page(page: object, whose: str, items: str) -> tuple[list[Any], str]:
    """One page of a list: its `items` (`operations`, `files`) and the next page's token
    ("" on the last page)."""
    r = Reader(whose)
    if not isinstance(page, dict):
        raise r.wrong("the page", page, "an object")
    return (r.array(page.get(items), items),
            r.string(page.get("nextPageToken"), "nextPageToken") or "")


def parse_file(resource: object, whose: str) -> tuple[str, str, str]:
    """(name, displayName, state) of a File resource."""
    r = GeminiReader(whose)
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
