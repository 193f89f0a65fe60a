"""Where Anthropic's answers keep what the hostile faults distort (runner.emulator.hostile).

Lists are `{"data", "has_more", "first_id", "last_id"}`, continued with `after_id`; errors
are ErrorResponses whose `error` holds the message; the key comes in `x-api-key` or as a
Bearer token. `WRONG` breaks, for each name of Faults.wrong_types that has an Anthropic
counterpart, the field it stands for: "state" is `processing_status`, "request-count" is
`request_counts`, "response" is `results_url`, "page" the list, "operation" its items.
Results are JSONL, out of the shared distortions' reach, so `WRONG_IN_RESULTS` breaks the
Messages in them as the results route serves them: "candidates" is a Message's `content`,
"parts" its blocks. "file" (Gemini's and OpenAI's files) has no counterpart.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

from runner.emulator.anthropic.errors import api_key
from runner.emulator.hostile import Shapes
from runner.emulator.wire import dumps


def _is_page(body: Any) -> bool:
    return isinstance(body, dict) and isinstance(body.get("data"), list) and "has_more" in body


def _next_page(body: dict[str, Any], token: str) -> None:
    body["has_more"] = True
    body["last_id"] = token


def _errors(body: Any) -> Iterator[dict[str, Any]]:
    if isinstance(body, dict) and body.get("type") == "error" and isinstance(
            body.get("error"), dict):
        yield body["error"]


def _batches(body: Any) -> Iterator[dict[str, Any]]:
    """The MessageBatches in an answer: the answer itself, or a list's items."""
    if isinstance(body, dict) and body.get("type") == "message_batch":
        yield body
    elif _is_page(body):
        yield from (item for item in body["data"] if isinstance(item, dict))


def _each(change: Callable[[dict[str, Any]], None]) -> Callable[[Any], Any]:
    def apply(body: Any) -> Any:
        for batch in _batches(body):
            change(batch)
        return body
    return apply


def _numeric_status(batch: dict[str, Any]) -> None:
    batch["processing_status"] = 3


def _wordy_counts(batch: dict[str, Any]) -> None:
    batch["request_counts"] = {**batch.get("request_counts", {}), "processing": "many"}


def _numeric_results_url(batch: dict[str, Any]) -> None:
    if batch.get("results_url"):
        batch["results_url"] = 1


def _array_page(body: Any) -> Any:
    return body["data"] if _is_page(body) else body


def _string_items(body: Any) -> Any:
    if _is_page(body):
        body["data"] = [item.get("id", "?") if isinstance(item, dict) else item
                        for item in body["data"]]
    return body


WRONG: dict[str, Callable[[Any], Any]] = {
    "state": _each(_numeric_status),
    "request-count": _each(_wordy_counts),
    "response": _each(_numeric_results_url),
    "page": _array_page,
    "operation": _string_items,
}


def _string_content(message: dict[str, Any]) -> None:
    message["content"] = "many"


def _string_blocks(message: dict[str, Any]) -> None:
    message["content"] = ["text" for _ in message.get("content", [])]


WRONG_IN_RESULTS: dict[str, Callable[[dict[str, Any]], None]] = {
    "candidates": _string_content,
    "parts": _string_blocks,
}


def distort_results(data: bytes, fault: str) -> bytes:
    """Result lines with `fault` (a key of WRONG_IN_RESULTS) in each succeeded Message."""
    change = WRONG_IN_RESULTS[fault]
    lines = []
    for raw in data.splitlines():
        line = json.loads(raw)
        result = line.get("result")
        if isinstance(result, dict) and isinstance(result.get("message"), dict):
            change(result["message"])
        lines.append(dumps(line) + b"\n")
    return b"".join(lines)


SHAPES = Shapes(
    is_page=_is_page,
    next_page=_next_page,
    page_token="after_id",
    api_key=api_key,
    messages=_errors,
    wrong_types=WRONG,
)
