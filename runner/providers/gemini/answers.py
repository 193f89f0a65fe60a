"""What a Gemini request says of its answer's shape, and a result line of that shape.

A request asks for JSON with `generationConfig.responseMimeType: application/json`, and gives
the answer's schema as `responseJsonSchema` (JSON Schema) or `responseSchema` (Google's subset
of the OpenAPI 3.0 Schema object: upper-case types, `nullable`, `propertyOrdering`, int64
bounds written as strings), which `json_schema_of` turns into the JSON Schema it means. The
API reads each field under its camelCase or its snake_case name.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..dialect import JsonAnswer

JSON = "application/json"
# Schema fields with the same meaning in JSON Schema; the others (`format`, whose "enum" is
# not JSON Schema's, `example`, `propertyOrdering`) do not bind the answer.
_SAME = ("title", "description", "enum", "required", "minimum", "maximum", "pattern",
         "default")
_COUNTS = ("minItems", "maxItems", "minLength", "maxLength", "minProperties",
           "maxProperties")


def _pick(obj: Mapping[str, Any], camel: str) -> Any:
    if camel in obj:
        return obj[camel]
    return obj.get("".join("_" + c.lower() if c.isupper() else c for c in camel))


def json_answer(request: Mapping[str, Any]) -> JsonAnswer | None:
    config = _pick(request, "generationConfig")
    if not isinstance(config, Mapping) or _pick(config, "responseMimeType") != JSON:
        return None
    for name in ("responseJsonSchema", "responseSchema"):
        schema = _pick(config, name)
        if isinstance(schema, Mapping):
            converted = schema if name == "responseJsonSchema" else json_schema_of(schema)
            return JsonAnswer(converted, ("generationConfig", name))
    return JsonAnswer(None, ("generationConfig", "responseMimeType"))


def json_schema_of(schema: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON Schema an OpenAPI-subset `responseSchema` means."""
    out: dict[str, Any] = {}
    for name, value in schema.items():
        if name in _SAME:
            out[name] = value
        elif name in _COUNTS and isinstance(value, (int, str)) and str(value).isdigit():
            out[name] = int(value)          # int64: a string in proto3 JSON
        elif name == "type" and isinstance(value, str) and value != "TYPE_UNSPECIFIED":
            out["type"] = value.lower()
        elif name == "properties" and isinstance(value, Mapping):
            out["properties"] = {key: json_schema_of(sub) for key, sub in value.items()
                                 if isinstance(sub, Mapping)}
        elif name == "items" and isinstance(value, Mapping):
            out["items"] = json_schema_of(value)
        elif name in ("anyOf", "any_of") and isinstance(value, list):
            out["anyOf"] = [json_schema_of(sub) for sub in value if isinstance(sub, Mapping)]
    if _pick(schema, "nullable") is True:
        if "type" in out:
            out["type"] = [out["type"], "null"]
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
    return out


def sample_result(key: str, text: str, model: str) -> dict[str, Any]:
    """A result line with the fields every answer has (not those some have: a thinking
    model's `thoughtsTokenCount`, a cache's `cachedContentTokenCount`)."""
    return {"key": key, "response": {
        "candidates": [{"content": {"parts": [{"text": text}], "role": "model"},
                        "finishReason": "STOP", "index": 0}],
        "usageMetadata": {"promptTokenCount": 1, "candidatesTokenCount": 1,
                          "totalTokenCount": 2,
                          "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 1}]},
        "modelVersion": model, "responseId": "sample"}}
