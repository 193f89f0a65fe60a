"""Answers of a hostile or broken server, so that tests can prove a client survives them.

Switched on through Faults like the others (see `Faults` for each): list pages that never end,
answers that trickle in a byte at a time, error messages that quote the API key back, fields of
the wrong JSON type, an upload URL on another server. The API routes stay as they are: these
act on the request before a route sees it (`first_page`) and on the reply after (`distort`).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from runner.emulator.messages import Reply, Request
from runner.emulator.wire import dumps

if TYPE_CHECKING:
    from runner.emulator.faults import Faults

_REPEATED = "the-same-page-again"


def first_page(request: Request, faults: Faults) -> Request:
    """With endless or repeating pages, a list is answered from its start whatever the token
    (which would not decode)."""
    if (faults.repeat_page_token or faults.endless_pages) and "pageToken" in request.query:
        query = {k: v for k, v in request.query.items() if k != "pageToken"}
        return dataclasses.replace(request, query=query)
    return request


def distort(request: Request, reply: Reply, faults: Faults) -> Reply:
    """The reply as the faults that are on would have the server send it."""
    if faults.trickle:
        reply = dataclasses.replace(reply, trickle=faults.trickle)
    if faults.upload_url and "x-goog-upload-url" in reply.headers:
        moved = urlsplit(reply.headers["x-goog-upload-url"])
        url = f"{faults.upload_url.rstrip('/')}{moved.path}?{moved.query}"
        reply = dataclasses.replace(reply, headers={**reply.headers, "x-goog-upload-url": url})
    paging = faults.repeat_page_token or faults.endless_pages
    if not (paging or faults.echo_key or faults.wrong_types) or reply.stream is not None \
            or not reply.body:
        return reply
    body = json.loads(reply.body)
    if faults.echo_key:
        key = request.headers.get("x-goog-api-key") or request.query.get("key", "")
        for status in _statuses(body):
            status["message"] = f"{status.get('message', '')} [API key: {key}]"
    if paging and isinstance(body, dict) and ("operations" in body or "files" in body):
        body["nextPageToken"] = _REPEATED if faults.repeat_page_token else \
            f"page-{_page_number(request) + 1}"
    if faults.wrong_types:
        body = _WRONG[faults.wrong_types](body)
    return dataclasses.replace(reply, body=dumps(body))


def _page_number(request: Request) -> int:
    token = request.query.get("pageToken", "")
    number = token.removeprefix("page-")
    return int(number) if number.isdigit() else 1


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


_WRONG: dict[str, Callable[[Any], Any]] = {
    "state": lambda body: _each(body, _numeric_state),
    "request-count": lambda body: _each(body, _wordy_count),
    "response": lambda body: _each(body, _string_response),
    "page": _array_page,
    "operation": _string_operations,
    "candidates": _string_candidates,
    "parts": _string_parts,
    "file": _string_files,
}
