"""What an Anthropic request says of its answer's shape, and a result line of that shape.

A request asks for JSON with `output_config.format: {"type": "json_schema", "schema": ...}`
(structured outputs, generally available in the API version the client pins; the older
beta `output_format` is not part of it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..dialect import JsonAnswer


def json_answer(request: Mapping[str, Any]) -> JsonAnswer | None:
    config = request.get("output_config")
    found = config.get("format") if isinstance(config, Mapping) else None
    if not (isinstance(found, Mapping) and found.get("type") == "json_schema"):
        return None
    schema = found.get("schema")
    return JsonAnswer(schema if isinstance(schema, Mapping) else {},
                      ("output_config", "format", "schema"))


def sample_result(wire_key: str, text: str, model: str) -> dict[str, Any]:
    """A result line with the fields every answer has (not those some have: the cache's
    counts, a server tool's)."""
    return {"custom_id": wire_key, "result": {"type": "succeeded", "message": {
        "id": "msg_sample", "type": "message", "role": "assistant", "model": model,
        "content": [{"type": "text", "text": text}], "stop_reason": "end_turn",
        "stop_sequence": None, "usage": {"input_tokens": 1, "output_tokens": 1}}}}
