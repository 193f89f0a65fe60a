"""Reading one line of an OpenAI batch's output or error file.

A line is `{"id", "custom_id", "response": {"status_code", "request_id", "body"}, "error"}`.
It succeeded when `error` is null and `response.status_code` is 200; then `body` is the
endpoint's own answer, told apart by what it holds (the line does not say which endpoint):

- chat completions (`choices`): the text is `choices[0].message.content`; a null content
  fails its request, saying why (the model's `refusal`, or the finish reason, such as
  `tool_calls` or `content_filter`);
- responses (`output`): the text of every `output_text` part of the output messages, joined;
  none (a refusal, only tool calls, a failed or incomplete response with nothing written)
  fails likewise;
- embeddings (`data`): the vector as JSON text (one per input, a list of them for several).

Any other line is its request's failure: `error` as the provider gave it (`batch_expired` for
a request an expired batch never reached), or the HTTP error in `response.body.error` with
its status code. Every field is checked for its type first, so that a line of the wrong shape
fails its own request, naming the field, and never raises.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from ...usage import Usage
from ..dialect import UNFINISHED, Answer, Malformed, provider_error

_NUMERIC = b"0123456789-+.eE,"     # all a JSON array of numbers holds between its brackets


def read_result(result: Mapping[str, Any] | None) -> Answer | dict[str, Any]:
    """A result line's Answer when it is a success; otherwise the error to record."""
    if result is None:
        return {"message": "the provider returned no result for this key"}
    try:
        error = result.get("error")
        if error is not None:
            out: dict[str, Any] = provider_error(error) if type(error) is dict else \
                {"message": str(error)}
            if out.get("code") == "batch_expired":      # never run: sent again by the core
                out[UNFINISHED] = True
            return out
        response = _object(result.get("response"), "response")
        status = response.get("status_code")
        if type(status) is not int:
            raise Malformed("response.status_code", status, "an integer")
        body = _object(response.get("body"), "response.body")
        if status != 200:
            return _http_error(status, body)
        return _answer(body)
    except ValueError as e:     # Malformed, or a usage count that is not one
        return {"message": f"the provider's result is malformed: {e}"}


def _object(value: object, field: str) -> dict[str, Any]:
    if type(value) is not dict:
        raise Malformed(field, value, "an object")
    return value


def _http_error(status: int, body: Mapping[str, Any]) -> dict[str, Any]:
    error = body.get("error")
    if type(error) is dict:
        return {**provider_error(error), "status_code": status}
    return {"message": f"the request failed with HTTP {status}", "status_code": status}


def _answer(body: dict[str, Any]) -> Answer | dict[str, Any]:
    usage = body.get("usage")
    if not (usage is None or type(usage) is dict):
        raise Malformed("response.body.usage", usage, "an object")
    raw = usage or {}
    if "choices" in body:
        text, finish, why = _chat(body)
    elif "output" in body:
        text, finish, why = _responses(body)
    elif "data" in body:
        text, finish, why = _embeddings(body), None, ""
    else:
        raise Malformed("response.body", body, "an answer with choices, output or data")
    if text is None:
        return {"message": why, "response": body}
    return Answer(text, finish, usage_of(raw), raw, body)


def _chat(body: Mapping[str, Any]) -> tuple[str | None, str | None, str]:
    choices = body["choices"]
    if type(choices) is not list:
        raise Malformed("response.body.choices", choices, "an array")
    if not choices:
        return None, None, "the response has no choices"
    first = _object(choices[0], "response.body.choices[0]")
    message = _object(first.get("message"), "response.body.choices[0].message")
    finish = _string(first.get("finish_reason"), "response.body.choices[0].finish_reason")
    content = _string(message.get("content"), "response.body.choices[0].message.content")
    refusal = _string(message.get("refusal"), "response.body.choices[0].message.refusal")
    if content is not None:
        return content, finish, ""
    if refusal is not None:
        return None, finish, f"the model refused: {refusal}"
    return None, finish, f"the response has no content (finish_reason: {finish or 'none given'})"


def _responses(body: Mapping[str, Any]) -> tuple[str | None, str | None, str]:
    output = body["output"]
    if type(output) is not list:
        raise Malformed("response.body.output", output, "an array")
    status = _string(body.get("status"), "response.body.status")
    details = body.get("incomplete_details")
    if not (details is None or type(details) is dict):
        raise Malformed("response.body.incomplete_details", details, "an object")
    reason = _string((details or {}).get("reason"), "response.body.incomplete_details.reason")
    finish = reason if status == "incomplete" and reason else status
    texts: list[str] = []
    refusals: list[str] = []
    for i, item in enumerate(output):
        item = _object(item, f"response.body.output[{i}]")
        if item.get("type") != "message":
            continue
        content = item.get("content")
        if type(content) is not list:
            raise Malformed(f"response.body.output[{i}].content", content, "an array")
        for j, part in enumerate(content):
            where = f"response.body.output[{i}].content[{j}]"
            part = _object(part, where)
            if part.get("type") == "output_text":
                texts.append(_string(part.get("text"), f"{where}.text") or "")
            elif part.get("type") == "refusal":
                refusals.append(_string(part.get("refusal"), f"{where}.refusal") or "")
    if texts:
        return "".join(texts), finish, ""
    if refusals:
        return None, finish, f"the model refused: {' '.join(refusals)}"
    return None, finish, f"the response has no output_text (status: {finish or 'none given'})"


def _embeddings(body: Mapping[str, Any]) -> str:
    """The vector as JSON text, or its base64 text as sent (`encoding_format: base64`); a
    list of them, by `index`, for a request of several inputs. A vector is checked to hold
    numbers by its JSON text, in C: a Python loop over every number of 50,000 vectors of
    3,072 would cost seconds of the join."""
    data = body["data"]
    if type(data) is not list or not data:
        raise Malformed("response.body.data", data, "an array of embeddings")
    vectors: list[tuple[int, bytes]] = []
    for i, item in enumerate(data):
        item = _object(item, f"response.body.data[{i}]")
        vector = item.get("embedding")
        if type(vector) is str:
            text = orjson.dumps(vector)
        elif type(vector) is list and (text := orjson.dumps(vector))[1:-1].translate(
                None, _NUMERIC) == b"":
            pass
        else:
            raise Malformed(f"response.body.data[{i}].embedding", vector,
                            "an array of numbers (or base64 text)")
        index = item.get("index", i)
        if type(index) is not int:
            raise Malformed(f"response.body.data[{i}].index", index, "an integer")
        vectors.append((index, text))
    if len(vectors) == 1:
        text = vectors[0][1]
        return str(orjson.loads(text)) if text.startswith(b'"') else text.decode()
    vectors.sort(key=lambda pair: pair[0])
    return (b"[" + b",".join(text for _, text in vectors) + b"]").decode()


def _string(value: object, field: str) -> str | None:
    if value is None or type(value) is str:
        return value
    raise Malformed(field, value, "a string")


def usage_of(raw: Mapping[str, Any]) -> Usage:
    """The usage of one response: `input_tokens`/`output_tokens` (responses) or
    `prompt_tokens`/`completion_tokens` (chat, embeddings). Cached input is part of the
    input (`*_tokens_details.cached_tokens` says how much, priced at the cache rate), reasoning
    part of the output, as OpenAI counts them. Raises ValueError naming a count that is not
    one."""
    if "input_tokens" in raw or "output_tokens" in raw:
        return Usage.of_request(_count(raw, "input_tokens"), _count(raw, "output_tokens"),
                                cached=_cached(raw, "input_tokens_details"))
    return Usage.of_request(_count(raw, "prompt_tokens"), _count(raw, "completion_tokens"),
                            cached=_cached(raw, "prompt_tokens_details"))


def _cached(raw: Mapping[str, Any], details: str) -> int:
    found = raw.get(details)
    if found is None:
        return 0
    if type(found) is not dict:
        raise ValueError(f"usage.{details} is not an object")
    value = found.get("cached_tokens")
    if value is None:
        return 0
    if type(value) is not int or value < 0:
        raise ValueError(f"usage.{details}.cached_tokens is not a count of tokens")
    return value


def _count(raw: Mapping[str, Any], name: str) -> int:
    value = raw.get(name)
    if value is None:
        return 0
    if type(value) is not int or value < 0:
        raise ValueError(f"usage.{name} is not a count of tokens")
    return value
