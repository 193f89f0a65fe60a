"""What an OpenAI request says of its answer's shape, and a result line of that shape.

Chat completions ask for JSON with `response_format`, the Responses API with `text.format`:
`{"type": "json_schema", ...}` with the answer's JSON Schema (under `json_schema.schema` for
chat, `schema` for responses), or `{"type": "json_object"}` for any JSON. Embeddings answer
vectors, never asked for.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..dialect import JsonAnswer
from .tokens import CHAT, EMBEDDINGS, RESPONSES


def json_answer(request: Mapping[str, Any], endpoint: str) -> JsonAnswer | None:
    if endpoint == CHAT:
        at: tuple[str, ...] = ("response_format",)
        found = request.get("response_format")
    elif endpoint == RESPONSES:
        at = ("text", "format")
        text = request.get("text")
        found = text.get("format") if isinstance(text, Mapping) else None
    else:
        return None
    kind = found.get("type") if isinstance(found, Mapping) else None
    if kind == "json_object":
        return JsonAnswer(None, at)
    if kind != "json_schema":
        return None
    assert isinstance(found, Mapping)
    if endpoint == CHAT:
        at = (*at, "json_schema")
        found = found.get("json_schema")
    schema = found.get("schema") if isinstance(found, Mapping) else None
    return JsonAnswer(schema if isinstance(schema, Mapping) else {}, (*at, "schema"))


def sample_result(key: str, text: str, model: str, endpoint: str) -> dict[str, Any]:
    """A result line with the fields every answer of the endpoint has."""
    return {"id": "batch_req_sample", "custom_id": key, "error": None,
            "response": {"status_code": 200, "request_id": "sample",
                         "body": _body(text, model, endpoint)}}


def _body(text: str, model: str, endpoint: str) -> dict[str, Any]:
    if endpoint == EMBEDDINGS:
        return {"object": "list", "model": model,
                "data": [{"object": "embedding", "index": 0, "embedding": [0.0]}],
                "usage": {"prompt_tokens": 1, "total_tokens": 1}}
    if endpoint == RESPONSES:
        return {"id": "resp_sample", "object": "response", "created_at": 0,
                "status": "completed", "model": model, "error": None,
                "incomplete_details": None, "instructions": None, "metadata": {},
                "output": [{"type": "message", "id": "msg_sample", "status": "completed",
                            "role": "assistant", "content": [
                                {"type": "output_text", "text": text, "annotations": []}]}],
                "usage": {"input_tokens": 1, "output_tokens": 1, "total_tokens": 2,
                          "input_tokens_details": {"cached_tokens": 0},
                          "output_tokens_details": {"reasoning_tokens": 0}}}
    return {"id": "chatcmpl-sample", "object": "chat.completion", "created": 0, "model": model,
            "choices": [{"index": 0, "logprobs": None, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": text, "refusal": None,
                                     "annotations": []}}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2,
                      "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                      "completion_tokens_details": {"reasoning_tokens": 0,
                                                    "audio_tokens": 0}},
            "service_tier": "default", "system_fingerprint": None}
