"""The emulated model's answers in OpenAI's shapes (the rule itself: runner.emulator.model).

The prompt of a request is the text it asks about, joined with "\\n", per endpoint:
- /v1/chat/completions: the `content` of every message but the `system` and `developer` ones
  (a string, or the `text` of its text parts), as Gemini's prompt leaves out its
  systemInstruction;
- /v1/responses: `input` when it is a string, else the content of each input message but the
  `system` and `developer` ones (`instructions` is left out likewise);
- /v1/embeddings: `input` (a string, or each string of a list).

Chat answers "echo: " + prompt as `choices[0].message.content` with finish_reason "stop" and
usage prompt_tokens / completion_tokens / total_tokens; the Responses API answers the same
text as `output[0].content[0].text` with usage input_tokens / output_tokens. A request that
asks for JSON (chat's `response_format`, the Responses API's `text.format`: `json_schema` or
`json_object`) gets a document that fits its schema instead (runner.emulator.documents);
embeddings answer one unit vector per input, derived from a hash of its text (`dimensions`
long, 16 if unset).
The answer's `model` is the request's. A request that fails (a prompt containing
EMULATOR_FAIL, or one the batch's `request_error_rate` picks) gets an error body instead.
"""

from __future__ import annotations

import base64
import hashlib
import math
import struct
from collections.abc import Mapping
from typing import Any

from runner.emulator import documents, model
from runner.emulator.openai.errors import error_type
from runner.emulator.wire import JSON

CHAT = "/v1/chat/completions"
RESPONSES = "/v1/responses"
EMBEDDINGS = "/v1/embeddings"
ENDPOINTS = (CHAT, RESPONSES, EMBEDDINGS)
DEFAULT_DIMENSIONS = 16
MAX_DIMENSIONS = 3072
_HIDDEN_ROLES = frozenset({"system", "developer"})
_NOT_ALNUM = str.maketrans("", "", "-_=")  # what base64 adds to an id
# What each endpoint needs in a request's body, as the real one answers its absence.
_REQUIRED = {CHAT: "messages", RESPONSES: "input", EMBEDDINGS: "input"}


def prompt_of(endpoint: str, body: Mapping[str, Any]) -> str:
    if endpoint == EMBEDDINGS:
        return "\n".join(_inputs(body))
    if endpoint == RESPONSES and isinstance(body.get("input"), str):
        return str(body["input"])
    items = body.get("messages" if endpoint == CHAT else "input")
    texts: list[str] = []
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict) and item.get("role") not in _HIDDEN_ROLES:
            texts.extend(_texts(item.get("content")))
    return "\n".join(texts)


def _texts(content: Any) -> list[str]:
    if isinstance(content, str):
        return [content]
    parts = content if isinstance(content, list) else []
    return [p["text"] for p in parts if isinstance(p, dict) and isinstance(p.get("text"), str)]


def _inputs(body: Mapping[str, Any]) -> list[str]:
    found = body.get("input")
    if isinstance(found, str):
        return [found]
    return [item for item in found if isinstance(item, str)] if isinstance(found, list) else []


def failure(
    endpoint: str, body: Mapping[str, Any], prompt: str, policy: model.FailurePolicy, identity: str
) -> tuple[int, JSON] | None:
    """The HTTP status and error body of a request that fails, else None."""
    needed = _REQUIRED[endpoint]
    if needed not in body:
        return 400, _error(f"Missing required parameter: '{needed}'.", "INVALID_ARGUMENT",
                           needed, "missing_required_parameter")
    failed = policy.failure(prompt, identity)
    if failed is None:
        return None
    status = 500 if failed.status == "INTERNAL" else 400
    return status, _error(failed.message, failed.status)


def _error(message: str, status: str, param: str | None = None, code: str | None = None) -> JSON:
    return {"error": {"message": message, "type": error_type(status), "param": param,
                      "code": code}}


def answer(endpoint: str, body: Mapping[str, Any], prompt: str, created: int) -> JSON:
    """The response body to `body`, whose prompt the caller has already computed."""
    name = str(body.get("model", ""))
    rid = model.response_id(body).translate(_NOT_ALNUM)
    if endpoint == EMBEDDINGS:
        return _embeddings(body, name)
    text = _reply(endpoint, body, prompt)
    prompt_tokens = model.prompt_tokens_of(prompt)
    answer_tokens = model.answer_tokens_of(text)
    total = prompt_tokens + answer_tokens
    if endpoint == CHAT:
        message: JSON = {"role": "assistant", "content": text, "refusal": None, "annotations": []}
        return {
            "id": f"chatcmpl-{rid}", "object": "chat.completion", "created": created,
            "model": name,
            "choices": [{"index": 0, "message": message, "logprobs": None,
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": answer_tokens,
                      "total_tokens": total,
                      "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                      "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0}},
            "service_tier": "default", "system_fingerprint": None,
        }
    output = {"type": "message", "id": f"msg_{rid}", "status": "completed", "role": "assistant",
              "content": [{"type": "output_text", "text": text, "annotations": []}]}
    return {
        "id": f"resp_{rid}", "object": "response", "created_at": created, "status": "completed",
        "model": name, "output": [output], "instructions": body.get("instructions"),
        "parallel_tool_calls": True, "tool_choice": "auto", "tools": [], "error": None,
        "incomplete_details": None, "metadata": body.get("metadata") or {},
        "usage": {"input_tokens": prompt_tokens,
                  "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
                  "output_tokens": answer_tokens,
                  "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": total},
    }


def _reply(endpoint: str, body: Mapping[str, Any], prompt: str) -> str:
    """The answer's text: an echo, or the JSON document the request's format asks for."""
    settings = body.get("response_format") if endpoint == CHAT else body.get("text")
    if endpoint == RESPONSES and isinstance(settings, dict):
        settings = settings.get("format")
    kind = settings.get("type") if isinstance(settings, dict) else None
    if kind == "json_object":
        return documents.text_of(None, prompt)
    if kind != "json_schema":
        return model.reply_text(prompt)
    assert isinstance(settings, dict)
    inner = settings.get("json_schema") if endpoint == CHAT else settings
    schema = inner.get("schema") if isinstance(inner, dict) else None
    return documents.text_of({} if schema is None else schema, prompt)


def usage_of(endpoint: str, response: JSON) -> tuple[int, int]:
    """The (input, output) tokens an answer reports, for the batch's `usage`."""
    usage = response.get("usage", {})
    if endpoint == RESPONSES:
        return usage.get("input_tokens", 0), usage.get("output_tokens", 0)
    return usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0)


def _embeddings(body: Mapping[str, Any], name: str) -> JSON:
    size = body.get("dimensions")
    if not isinstance(size, int) or isinstance(size, bool) or not 1 <= size <= MAX_DIMENSIONS:
        size = DEFAULT_DIMENSIONS
    as_base64 = body.get("encoding_format") == "base64"
    data: list[JSON] = []
    tokens = 0
    for index, text in enumerate(_inputs(body)):
        vector = embedding(text, size)
        tokens += model.prompt_tokens_of(text)
        value: Any = vector
        if as_base64:
            value = base64.b64encode(struct.pack(f"<{size}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": value})
    return {"object": "list", "data": data, "model": name,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}


def embedding(text: str, size: int) -> list[float]:
    """A unit vector of `size` derived from `text` alone, rounded to 6 digits."""
    raw: list[float] = []
    counter = 0
    while len(raw) < size:
        digest = hashlib.sha256(f"{counter}\0{text}".encode()).digest()
        raw.extend(int.from_bytes(digest[i:i + 4], "big") / 2**31 - 1.0 for i in range(0, 32, 4))
        counter += 1
    vector = raw[:size]
    norm = math.sqrt(sum(x * x for x in vector)) or 1.0
    return [round(x / norm, 6) for x in vector]
