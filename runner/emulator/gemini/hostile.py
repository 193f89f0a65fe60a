"""Where Gemini's answers keep what the hostile faults distort (runner.emulator.hostile).

Lists are `{"operations": [...]}` or `{"files": [...]}` with a `nextPageToken`; errors are
google.rpc.Status objects, in an error answer and in failed jobs' Operations; the key comes
in `x-goog-api-key` or `?key=`; an upload goes on at `x-goog-upload-url`. `WRONG` breaks, for
each name of Faults.wrong_types, the Gemini field it stands for.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from runner.emulator.hostile import Shapes
from runner.emulator.messages import Request


def _is_page(body: Any) -> bool:
    return isinstance(body, dict) and ("operations" in body or "files" in body)


def _next_page(body: dict[str, Any], token: str) -> None:
    body["nextPageToken"] = token


def _api_key(request: Request) -> str:
    return request.headers.get("x-goog-api-key") or request.query.get("key", "")


def _operations(body: Any) -> Iterator[dict[str, Any]]:
    """The Operations in an answer: the answer itself (create, get), or a list's items."""
    if isinstance(body, dict) and isinstance(body.get("metadata"), dict):
        yield body
    elif isinstance(body, dict):
        yield from (op for op in body.get("operations", []) if isinstance(op, dict))


def _statuses(body: Any) -> Iterator[dict[str, Any]]:
    """Every google.rpc.Status an answer carries: an error answer's, and failed jobs'."""
    for holder in [body, *(op for op in _operations(body) if op is not body)]:
        if isinstance(holder, dict) and isinstance(holder.get("error"), dict):
            yield holder["error"]


def _responses(body: Any) -> Iterator[dict[str, Any]]:
    """The GenerateContentResponses of finished inline jobs, in both places they appear."""
    for op in _operations(body):
        for output in (op["metadata"].get("output"), op.get("response")):
            if isinstance(output, dict):
                for item in output.get("inlinedResponses", {}).get("inlinedResponses", []):
                    if isinstance(item.get("response"), dict):
                        yield item["response"]


def _each(body: Any, change: Callable[[dict[str, Any]], None]) -> Any:
    for op in _operations(body):
        change(op)
    return body


def _numeric_state(op: dict[str, Any]) -> None:
    op["metadata"]["state"] = 3


def _wordy_count(op: dict[str, Any]) -> None:
    op["metadata"].setdefault("batchStats", {})["requestCount"] = "many"


def _string_response(op: dict[str, Any]) -> None:
    if op.get("done"):
        op["response"] = "done"
        op["metadata"].pop("output", None)


def _array_page(body: Any) -> Any:
    if isinstance(body, dict) and ("operations" in body or "files" in body):
        return body.get("operations", body.get("files"))
    return body


def _string_operations(body: Any) -> Any:
    if isinstance(body, dict) and isinstance(body.get("operations"), list):
        body["operations"] = [op.get("name", "?") for op in body["operations"]]
    return body


def _string_candidates(body: Any) -> Any:
    for response in _responses(body):
        response["candidates"] = "many"
    return body


def _string_parts(body: Any) -> Any:
    for response in _responses(body):
        for candidate in response.get("candidates", []):
            candidate.get("content", {})["parts"] = ["text"]
    return body


def _string_files(body: Any) -> Any:
    if isinstance(body, dict) and isinstance(body.get("file"), dict):
        body["file"] = body["file"].get("name", "?")
    elif isinstance(body, dict) and isinstance(body.get("files"), list):
        body["files"] = [f.get("name", "?") for f in body["files"]]
    return body


WRONG: dict[str, Callable[[Any], Any]] = {
    "state": lambda body: _each(body, _numeric_state),
    "request-count": lambda body: _each(body, _wordy_count),
    "response": lambda body: _each(body, _string_response),
    "page": _array_page,
    "operation": _string_operations,
    "candidates": _string_candidates,
    "parts": _string_parts,
    "file": _string_files,
}


SHAPES = Shapes(
    is_page=_is_page,
    next_page=_next_page,
    page_token="pageToken",
    api_key=_api_key,
    messages=_statuses,
    wrong_types=WRONG,
    upload_url_header="x-goog-upload-url",
)
