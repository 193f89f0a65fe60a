"""Reading one line of a Message Batch's results: `{"custom_id", "result": {"type", ...}}`.

The result is a union on `type`:

- `succeeded`, with the `message`: its text is every `text` block of `content`, joined in
  order (thinking, tool use and other blocks are not text); `finish_reason` is its
  `stop_reason`. A message without a text block (only tool use, say), or one the model
  refused (`stop_reason: refusal`), fails its request, saying why, with the message kept;
- `errored`, with an ErrorResponse (`{"type": "error", "error": {"type", "message"},
  "request_id"}`): the request's error is the inner `error`, with the request id;
- `canceled` and `expired`: the batch was cancelled, or ran out of its 24 hours, before the
  request was processed. An expired request is marked unfinished (dialect.UNFINISHED), which
  the core sends again by itself; a cancelled one is a failure like any other, sent again
  only as spec.retry_failed allows (someone chose to stop it).

Every field is checked for its type first, so that a line of the wrong shape fails its own
request, naming the field, and never raises.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...usage import Usage
from ..dialect import UNFINISHED, Answer, Malformed, provider_error

_UNPROCESSED = {
    "canceled": "the batch was cancelled before this request was processed",
    "expired": "the batch expired (24 h) before this request was processed",
}


def read_result(result: Mapping[str, Any] | None) -> Answer | dict[str, Any]:
    """A result line's Answer when it succeeded; otherwise the error to record."""
    if result is None:
        return {"message": "the provider returned no result for this key"}
    try:
        outcome = _object(result.get("result"), "result")
        kind = outcome.get("type")
        if kind == "succeeded":
            return _answer(_object(outcome.get("message"), "result.message"))
        if kind == "errored":
            return _error(outcome.get("error"))
        if kind == "canceled":
            return {"type": kind, "message": _UNPROCESSED[kind]}
        if kind == "expired":       # never run: sent again by the core
            return {"type": kind, "message": _UNPROCESSED[kind], UNFINISHED: True}
        raise Malformed("result.type", kind, "succeeded, errored, canceled or expired")
    except ValueError as e:     # Malformed, or a usage count that is not one
        return {"message": f"the provider's result is malformed: {e}"}


def _answer(message: dict[str, Any]) -> Answer | dict[str, Any]:
    content = message.get("content")
    if type(content) is not list:
        raise Malformed("result.message.content", content, "an array")
    texts: list[str] = []
    for i, block in enumerate(content):
        block = _object(block, f"result.message.content[{i}]")
        if block.get("type") == "text":
            text = block.get("text")
            if type(text) is not str:
                raise Malformed(f"result.message.content[{i}].text", text, "a string")
            texts.append(text)
    stop = message.get("stop_reason")
    if not (stop is None or type(stop) is str):
        raise Malformed("result.message.stop_reason", stop, "a string")
    usage = _object(message.get("usage"), "result.message.usage")
    read = usage_of(usage)          # raises for a count that is not one, whatever the text
    if stop == "refusal":
        return {"message": "the model refused (stop_reason: refusal)", "response": message}
    if not texts:
        return {"message": f"the response has no text (stop_reason: {stop or 'none given'})",
                "response": message}
    return Answer("".join(texts), stop, read, usage, message)


def _error(value: object) -> dict[str, Any]:
    """The inner error of an ErrorResponse, with its request id."""
    response = _object(value, "result.error")
    error = _object(response.get("error"), "result.error.error")
    message = error.get("message")
    if type(message) is not str:
        raise Malformed("result.error.error.message", message, "a string")
    request_id = response.get("request_id")
    out = provider_error(error)
    return {**out, "request_id": request_id} if type(request_id) is str else out


def _object(value: object, field: str) -> dict[str, Any]:
    if type(value) is not dict:
        raise Malformed(field, value, "an object")
    return value


def usage_of(raw: Mapping[str, Any]) -> Usage:
    """The usage of one message. `input_tokens` counts only the prompt after the last cache
    breakpoint; the prompt read from the cache (`cache_read_input_tokens`) and written to it
    (`cache_creation_input_tokens`) are counted apart. All three are prompt the model read:
    Usage's input is their sum, the cache's shares said apart for their own rates. Raises
    ValueError naming a count that is not one."""
    read = _count(raw, "cache_read_input_tokens")
    written = _count(raw, "cache_creation_input_tokens")
    return Usage.of_request(_count(raw, "input_tokens") + read + written,
                            _count(raw, "output_tokens"), cached=read, written=written)


def _count(raw: Mapping[str, Any], name: str) -> int:
    value = raw.get(name)
    if value is None:
        return 0
    if type(value) is not int or value < 0:
        raise ValueError(f"usage.{name} is not a count of tokens")
    return value
