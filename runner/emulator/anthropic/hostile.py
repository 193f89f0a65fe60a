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

from collections.abc import Callable, Iterator
from typing import Any

from runner.emulator.anthropic.errors import api_key
from runner.emulator.hostile import (
    Shapes,
    array_page,
    distort_lines,
    each,
    last_id_page,
    string_items,
)


def _is_page(body: Any) -> bool:
    return isinstance(body, dict) and isinstance(body.get("data"), list) and "has_more" in body



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



def _numeric_status(batch: dict[str, Any]) -> None:
    batch["processing_status"] = 3


def _wordy_counts(batch: dict[str, Any]) -> None:
    batch["request_counts"] = {**batch.get("request_counts", {}), "processing": "many"}


def _numeric_results_url(batch: dict[str, Any]) -> None:
    if batch.get("results_url"):
        batch["results_url"] = 1




WRONG: dict[str, Callable[[Any], Any]] = {
    "state": each(_batches, _numeric_status),
    "request-count": each(_batches, _wordy_counts),
    "response": each(_batches, _numeric_results_url),
    "page": array_page(_is_page),
    "operation": string_items(_is_page),
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
    return distort_lines(data, _message, WRONG_IN_RESULTS[fault])


def _message(line: dict[str, Any]) -> dict[str, Any] | None:
    result = line.get("result")
    message = result.get("message") if isinstance(result, dict) else None
    return message if isinstance(message, dict) else None


SHAPES = Shapes(
    is_page=_is_page,
    next_page=last_id_page,
    page_token="after_id",
    api_key=api_key,
    messages=_errors,
    wrong_types=WRONG,
)
