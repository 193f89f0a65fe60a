"""Where OpenAI's answers keep what the hostile faults distort (runner.emulator.hostile).

Lists are `{"object": "list", "data", "first_id", "last_id", "has_more"}`, continued with
`after=<id>`: the paging faults make a page claim `has_more` with `last_id` set to the fault's
token, and, since the list is answered from its start whatever `after` says, a client that
follows the last item's id (as the SDK does) is handed the same page again. Errors are
`{"error": {"message", ...}}`, and a failed batch's validation errors carry messages too. The
key comes as `Authorization: Bearer`. `WRONG` breaks, for each name of Faults.wrong_types,
the OpenAI field it stands for in an answer. OpenAI's results are never in an answer but in
result files, so `candidates` and `parts` (Gemini's results' fields) break a result file's
answered lines as it is downloaded instead (`distort_results`): their `choices` (`output`,
`data`) and each choice's `message` (output item's `content`, embedding's vector).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from runner.emulator.hostile import (
    Shapes,
    array_page,
    distort_lines,
    each,
    last_id_page,
    string_items,
)
from runner.emulator.messages import Request


def _is_page(body: Any) -> bool:
    return isinstance(body, dict) and body.get("object") == "list" and "has_more" in body



def api_key(request: Request) -> str:
    scheme, _, key = request.headers.get("Authorization", "").strip().partition(" ")
    return key.strip() if scheme.lower() == "bearer" else ""


def _batches(body: Any) -> Iterator[dict[str, Any]]:
    """The Batch objects in an answer: the answer itself, or a list's items."""
    if isinstance(body, dict) and body.get("object") == "batch":
        yield body
    elif _is_page(body):
        yield from (b for b in body["data"] if isinstance(b, dict) and b.get("object") == "batch")


def _messages(body: Any) -> Iterator[dict[str, Any]]:
    """Every object with a `message` an answer carries: the error, and batch errors."""
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        yield body["error"]
    for batch in _batches(body):
        errors = batch.get("errors")
        for item in errors.get("data", []) if isinstance(errors, dict) else []:
            if isinstance(item, dict):
                yield item



def _numeric_status(batch: dict[str, Any]) -> None:
    batch["status"] = 3


def _wordy_count(batch: dict[str, Any]) -> None:
    batch["request_counts"] = {**batch.get("request_counts", {}), "total": "many"}


def _listed_output(batch: dict[str, Any]) -> None:
    if batch.get("output_file_id") is not None:
        batch["output_file_id"] = [batch["output_file_id"]]




def _string_files(body: Any) -> Any:
    if isinstance(body, dict) and body.get("object") == "file" and "bytes" in body:
        return body["id"]
    if isinstance(body, dict) and isinstance(body.get("file"), dict):
        body["file"] = body["file"].get("id", "?")
    elif _is_page(body):
        body["data"] = [item.get("id", "?") if isinstance(item, dict) and
                        item.get("object") == "file" else item for item in body["data"]]
    return body


WRONG: dict[str, Callable[[Any], Any]] = {
    "state": each(_batches, _numeric_status),
    "request-count": each(_batches, _wordy_count),
    "response": each(_batches, _listed_output),
    "page": array_page(_is_page),
    "operation": string_items(_is_page),
    "file": _string_files,
}


def _many_choices(body: dict[str, Any]) -> None:
    for field in ("choices", "output", "data"):
        if field in body:
            body[field] = "many"


def _string_parts(body: dict[str, Any]) -> None:
    for field, part, wrong in (("choices", "message", "text"), ("output", "content", ["text"]),
                               ("data", "embedding", "vector")):
        for item in body.get(field, []):
            if isinstance(item, dict):
                item[part] = wrong


WRONG_IN_RESULTS: dict[str, Callable[[dict[str, Any]], None]] = {
    "candidates": _many_choices,
    "parts": _string_parts,
}


def distort_results(data: bytes, fault: str) -> bytes:
    """A result file's lines with `fault` (a key of WRONG_IN_RESULTS) in each answer."""
    return distort_lines(data, _answered, WRONG_IN_RESULTS[fault])


def _answered(line: dict[str, Any]) -> dict[str, Any] | None:
    response = line.get("response")
    if isinstance(response, dict) and response.get("status_code") == 200:
        body: dict[str, Any] = response["body"]
        return body
    return None


SHAPES = Shapes(
    is_page=_is_page,
    next_page=last_id_page,
    page_token="after",
    api_key=api_key,
    messages=_messages,
    wrong_types=WRONG,
)
