"""Answers as output templates see them: the text, and the JSON it holds.

A successful answer's text is parsed as JSON once and offered to csv columns as `json` (None
when the text is not JSON); the `fromjson` filter (runner.sandbox) parses any other string.
When the request declares its answer JSON (the dialect's `json_answer`: Gemini's
`responseMimeType`, OpenAI's response format, Anthropic's output format), an answer that is
not JSON, or does not match the declared schema, fails its request: it goes to the errors
output with the reason, and counts as failed for `spec.retry_failed` and
`spec.allowed_failures`, as any other failed request does.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import jsonschema
import orjson
from jsonschema.exceptions import best_match
from jsonschema.validators import validator_for

from .errors import ManifestError, clipped
from .manifest import Manifest
from .providers.dialect import Answer, JsonAnswer


def template_context(manifest: Manifest, key: str, index: int, row: Any, answer: Answer,
                     request_hash: str, value: Any) -> dict[str, Any]:
    """What a csv column template has in scope for one answer (`value`: its JSON)."""
    return {"key": key, "index": index, "row": row, "vars": manifest.vars,
            "text": answer.text, "finish_reason": answer.finish_reason,
            "usage": answer.usage_raw, "request_hash": request_hash,
            "response": answer.response, "json": value}


def parse(text: str) -> Any:
    """The value a JSON text holds; None for text that is not JSON."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return None


def where(declared: JsonAnswer) -> str:
    """Where the request declares its answer, as a manifest path."""
    return ".".join(("spec", "request", *declared.at))


class AnswerCheck:
    """Reads each answer's JSON and, when the request declares one, checks it."""

    def __init__(self, manifest: Manifest, declared: JsonAnswer | None):
        self.declared = declared
        self._validator: Any = None
        if declared is not None and declared.schema is not None:
            self._validator = validator(manifest, declared)

    def read(self, text: str) -> tuple[Any, str | None]:
        """The answer's JSON (None when it is not), and why it fails its request (None
        when it does not)."""
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError as e:
            if self.declared is None:
                return None, None
            return None, (f"the answer is not JSON, as {where(self.declared)} asks: "
                          f"{clipped(str(e))}")
        if self._validator is not None:
            error = best_match(self._validator.iter_errors(value))
            if error is not None:
                assert self.declared is not None
                return value, (f"the answer does not match {where(self.declared)}: at "
                               f"{error.json_path}: {clipped(error.message)}")
        return value, None


def validator(manifest: Manifest, declared: JsonAnswer) -> Any:
    """A validator of the declared schema; a schema that is not one is the manifest's
    error, at its line."""
    schema = dict(declared.schema or {})
    kind = validator_for(schema)
    try:
        kind.check_schema(schema)
    except jsonschema.SchemaError as e:
        at = ("spec", "request", *declared.at)
        raise ManifestError(f"{where(declared)} is not a valid schema: {clipped(e.message)}",
                            path=manifest.source, where=str(manifest.line_of(at))) from None
    return kind(schema)


def stand_in(schema: Mapping[str, Any], full: bool = False) -> Any:
    """The least document `schema` allows an answer to be: an object with its required
    properties only (`full`: all of them), an array of one item, "" and zeros, the first
    of an enum: the JSON that output templates are checked against before anything is
    sent. A part of the schema that says nothing gives Anything."""
    return _stand_in(schema, schema, full, 0)


def _stand_in(schema: object, root: Mapping[str, Any], full: bool, depth: int) -> Any:
    if not isinstance(schema, Mapping) or depth > 32:
        return Anything()
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        found: object = root
        for step in ref[2:].split("/"):
            found = found.get(step) if isinstance(found, Mapping) else None
        return _stand_in(found, root, full, depth + 1)
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    for choice in ("anyOf", "oneOf", "allOf"):
        if isinstance(schema.get(choice), list) and schema[choice]:
            return _stand_in(schema[choice][0], root, full, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    properties = schema.get("properties")
    if kind == "object" or isinstance(properties, Mapping):
        properties = properties if isinstance(properties, Mapping) else {}
        required = schema.get("required")
        names = list(properties) if full else \
            [n for n in required if isinstance(n, str)] if isinstance(required, list) else []
        return {name: _stand_in(properties.get(name), root, full, depth + 1) for name in names}
    if kind == "array":
        if schema.get("maxItems") == 0:
            return []
        return [_stand_in(schema.get("items"), root, full, depth + 1)]
    if kind in ("integer", "number"):
        low = schema.get("minimum", 0)
        return low if isinstance(low, (int, float)) else 0
    return {"string": "", "boolean": False, "null": None}.get(
        kind if isinstance(kind, str) else "", Anything())


class Anything(str):
    """An answer's JSON when nothing says its shape: any field of it is another Anything; it
    prints as nothing, compares false and takes part in arithmetic as itself, so that only
    the other names of a column are checked. Stands in for `json` where the request declares
    no schema."""

    def __new__(cls) -> Anything:
        return super().__new__(cls, "")

    def __getattr__(self, name: str) -> Anything:
        if name.startswith("_"):
            raise AttributeError(name)
        return self

    def __getitem__(self, name: object) -> Anything:
        return self

    def __iter__(self) -> Iterator[Anything]:
        yield self          # a list of one item of anything

    def _same(self, *_: object) -> Anything:
        return self

    def _false(self, *_: object) -> bool:
        return False

    def __int__(self) -> int:
        return 0

    def __float__(self) -> float:
        return 0.0

    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = _same
    __truediv__ = __rtruediv__ = __floordiv__ = __mod__ = __rmod__ = _same
    __round__ = __neg__ = __abs__ = _same
    __lt__ = __le__ = __gt__ = __ge__ = _false
