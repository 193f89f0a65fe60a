"""The emulated model's structured answers: a JSON document that fits the schema a request
declares, derived from its prompt (each provider says where a request declares it).

A request that asks for JSON with a schema (Gemini's `responseSchema`, an OpenAPI subset, or
`responseJsonSchema`; OpenAI's `json_schema` response format; Anthropic's
`output_config.format`) is answered with the compact JSON of `document(schema, prompt)`
instead of "echo: " + prompt:

- an object holds every property of the schema, in its order (Gemini's `propertyOrdering`
  first), and no other;
- a string is "echo: " + prompt, cut to `maxLength` and padded with "." to `minLength`
  (`pattern` and `format` are not honoured);
- an `enum` (or `const`) takes the value at a hash of (the value's path, the prompt) modulo
  its length, so different prompts get different classes and the same prompt the same one;
- an integer or number is drawn the same way between `minimum` and `maximum` (0 to 100 where
  unbounded), a boolean by the hash's parity;
- an array holds `minItems` items, at least one (none when `maxItems` is 0);
- `anyOf` and `oneOf` take their first choice; `allOf` its schemas merged; `$ref` follows a
  reference within the schema (`#/$defs/...`); a list of types, the first that is not "null".

A request that asks for JSON without a schema (OpenAI's `json_object`, Gemini's
`responseMimeType` alone) gets `{"echo": prompt}`.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from typing import Any

from runner.emulator import model

_UNBOUNDED = (0, 100)


def text_of(schema: object, prompt: str) -> str:
    """The answer's text: the document for `schema` (None: no schema declared) as JSON."""
    value = {"echo": prompt} if schema is None else document(schema, prompt)
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def document(schema: object, prompt: str) -> Any:
    return _Maker(schema, prompt).make(schema, "$")


class _Maker:
    def __init__(self, root: object, prompt: str):
        self.root = root
        self.prompt = prompt

    def draw(self, path: str, size: int) -> int:
        digest = hashlib.sha256(f"{path}\0{self.prompt}".encode()).digest()
        return int.from_bytes(digest[:8], "big") % max(1, size)

    def make(self, schema: object, path: str, depth: int = 0) -> Any:
        if not isinstance(schema, Mapping) or depth > 32:
            return None
        schema = self.resolve(schema)
        if "const" in schema:
            return schema["const"]
        enum = schema.get("enum")
        if isinstance(enum, list) and enum:
            return enum[self.draw(path, len(enum))]
        for choice in ("anyOf", "oneOf"):
            options = schema.get(choice)
            if isinstance(options, list) and options:
                return self.make(options[0], path, depth + 1)
        parts = schema.get("allOf")
        if isinstance(parts, list):
            merged: dict[str, Any] = {}
            for part in parts:
                part = self.resolve(part) if isinstance(part, Mapping) else {}
                merged.update(part)
                merged["properties"] = {**merged.get("properties", {}),
                                        **part.get("properties", {})}
            return self.make(merged, path, depth + 1)
        kind = _kind(schema)
        if kind == "object" or (kind is None and "properties" in schema):
            return self.object(schema, path, depth)
        if kind == "array":
            size = max(_int(schema.get("minItems"), 1), 1)
            if _int(schema.get("maxItems"), size) == 0:
                return []
            return [self.make(schema.get("items"), f"{path}[{i}]", depth + 1)
                    for i in range(size)]
        if kind in ("integer", "number"):
            return self.number(schema, path, kind == "integer")
        if kind == "boolean":
            return self.draw(path, 2) == 1
        if kind == "null":
            return None
        return self.string(schema)

    def object(self, schema: Mapping[str, Any], path: str, depth: int) -> dict[str, Any]:
        properties = schema.get("properties")
        if not isinstance(properties, Mapping):
            return {}
        order = [name for name in schema.get("propertyOrdering") or () if name in properties]
        order += [name for name in properties if name not in order]
        return {name: self.make(properties[name], f"{path}.{name}", depth + 1)
                for name in order}

    def number(self, schema: Mapping[str, Any], path: str, whole: bool) -> int | float:
        low = _number(schema.get("minimum"), _UNBOUNDED[0])
        high = _number(schema.get("maximum"), max(low, 0) + _UNBOUNDED[1])
        if whole:
            low, high = math.ceil(low), math.floor(high)
        value = min(high, low + self.draw(path, int(max(0, high - low)) + 1))
        return int(value) if whole else float(value)

    def string(self, schema: Mapping[str, Any]) -> str:
        text = model.reply_text(self.prompt)
        longest = _int(schema.get("maxLength"), len(text))
        return text[:longest].ljust(_int(schema.get("minLength"), 0), ".")

    def resolve(self, schema: Mapping[str, Any]) -> Mapping[str, Any]:
        """`schema`, or what its local `$ref` points at (a few hops at most)."""
        for _ in range(8):
            ref = schema.get("$ref")
            if not (isinstance(ref, str) and ref.startswith("#")):
                return schema
            found: object = self.root
            for step in ref[1:].split("/")[1:]:
                found = found.get(step) if isinstance(found, Mapping) else None
            if not isinstance(found, Mapping):
                return {}
            schema = found
        return schema


def _kind(schema: Mapping[str, Any]) -> str | None:
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if isinstance(k, str) and k.lower() != "null"), None)
    return kind.lower() if isinstance(kind, str) else None


def _int(value: object, default: int) -> int:
    return int(_number(value, default))


def _number(value: object, default: float) -> float:
    """A bound as a schema gives it: a number, or (Gemini's int64) a string of one."""
    if isinstance(value, bool):
        return default
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return default
    return default
