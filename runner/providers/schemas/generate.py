"""JSON Schemas of `spec.request` from the copies of the providers' descriptions.

Every object refuses a key its description does not name (`additionalProperties: false`), so
a misspelt `maxOutputToken` or `safetySetting` fails `validate` with a "did you mean", at any
depth. Then the runner's own rules (`RULES`) are applied: they are the runner's choices, not
the provider's, and each says why.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

PUBLISHED = Path(__file__).resolve().parent / "published"
PROVIDERS = Path(__file__).resolve().parent.parent

Schema = dict[str, Any]

_STREAM = "the Batch API refuses streamed requests; leave {} out"
_REMOVED = ("API version 2026-10-21, which the runner uses, removed temperature, top_p and "
            "top_k; leave them out")
_NOT_EMPTY = {"minItems": 1, "minLength": 1}

# Per provider: {root type: {field: rule}}; a rule is None (the field is dropped: the model,
# which the runner adds), a string (the field is refused, saying why), or keywords merged
# into the field's schema. "*" applies to every root of the provider.
RULES: dict[str, dict[str, dict[str, None | str | Schema]]] = {
    "gemini": {
        "GenerateContentRequest": {"model": None,
                                   "contents": {"minItems": 1, "required": True}},
        "Content": {"parts": {"minItems": 1, "required": True}},
    },
    "openai": {
        "*": {"model": None, "stream": _STREAM.format("stream"),
              "stream_options": _STREAM.format("stream_options")},
        "CompletionCreateParamsNonStreaming": {"messages": {"minItems": 1},
                                               "max_completion_tokens": {"minimum": 1},
                                               "max_tokens": {"minimum": 1}},
        "ResponseCreateParamsNonStreaming": {
            "background": "a batch runs in the background already; leave background out",
            "input": {**_NOT_EMPTY, "required": True}, "max_output_tokens": {"minimum": 1}},
        "EmbeddingCreateParams": {"input": _NOT_EMPTY},
    },
    "anthropic": {
        "MessageCreateParamsNonStreaming": {
            "model": "spec.model names the model; leave model out of spec.request",
            "stream": "Message Batches do not stream; leave stream out",
            "temperature": _REMOVED, "top_p": _REMOVED, "top_k": _REMOVED,
            "messages": {"minItems": 1}, "max_tokens": {"minimum": 1}},
    },
}

# Where each provider's schemas go, by the endpoint its description names them for.
TARGETS = {"gemini": {"": "gemini/request.schema.json"},
           "openai": {"/v1/chat/completions": "openai/chat.schema.json",
                      "/v1/responses": "openai/responses.schema.json",
                      "/v1/embeddings": "openai/embeddings.schema.json"},
           "anthropic": {"": "anthropic/request.schema.json"}}

_TITLES = {"gemini": "a Gemini GenerateContentRequest",
           "openai": "an OpenAI request body for {endpoint}",
           "anthropic": "the params of one Anthropic Messages request"}


def _schema_of(kind: Any) -> Schema:
    if isinstance(kind, str):
        return {} if kind == "any" else {"type": kind}
    if "ref" in kind:
        return {"$ref": f"#/$defs/{kind['ref']}"}
    if "enum" in kind:
        return {"enum": kind["enum"]}
    if "array" in kind:
        return {"type": "array", "items": _schema_of(kind["array"])}
    if "map" in kind:
        return {"type": "object", "additionalProperties": _schema_of(kind["map"])}
    return _any_of([_schema_of(choice) for choice in kind["anyOf"]])


def _any_of(choices: list[Schema]) -> Schema:
    if {} in choices:
        return {}
    if {"type": "string"} in choices:   # an open string beside named ones (model ids)
        choices = [c for c in choices if not all(isinstance(v, str)
                                                 for v in c.get("enum", [0]))]
    plain = [c["type"] for c in choices if list(c) == ["type"]]
    rest = [c for c in choices if list(c) != ["type"]]
    merged = [{"type": plain[0] if len(plain) == 1 else plain}] if plain else []
    both = merged + rest
    return both[0] if len(both) == 1 else {"anyOf": both}


def _object(fields: dict[str, Any], rules: dict[str, None | str | Schema]) -> Schema:
    properties: Schema = {}
    required = [name for name, field in fields.items() if field["required"]]
    for name, field in fields.items():
        properties[name] = _schema_of(field["type"])
    for name, rule in rules.items():
        if rule is None:
            properties.pop(name, None)
            required = [r for r in required if r != name]
        elif isinstance(rule, str):
            properties[name] = {"not": {}, "description": rule}
            required = [r for r in required if r != name]
        elif name in properties:
            extra = {k: v for k, v in rule.items() if k != "required"}
            properties[name] = _keywords(properties[name], extra)
            if rule.get("required") and name not in required:
                required.append(name)
    schema: Schema = {"type": "object", "additionalProperties": False,
                      "properties": dict(sorted(properties.items()))}
    if required:
        schema["required"] = sorted(required)
    return schema


def _keywords(schema: Schema, extra: Schema) -> Schema:
    """Keywords that apply to a field whatever its type: a length or a bound is checked by
    JSON Schema only on the types it belongs to."""
    if "anyOf" in schema:
        return {"anyOf": [_keywords(choice, extra) for choice in schema["anyOf"]]}
    return {**schema, **extra}


def _reachable(root: str, defs: dict[str, Schema]) -> list[str]:
    seen: list[str] = []
    todo = [root]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.append(name)
        text = json.dumps(defs[name])
        todo.extend(part.split('"', 1)[0] for part in text.split('"#/$defs/')[1:])
    return sorted(seen)


def schemas(provider: str, described: dict[str, Any]) -> dict[str, Schema]:
    """The schema of each endpoint's request (by the path it is written to)."""
    rules = RULES[provider]
    roots = set(described["roots"].values())
    defs = {name: _object(t["fields"], {**(rules.get("*", {}) if name in roots else {}),
                                        **rules.get(name, {})})
            for name, t in described["types"].items()}
    source = described["source"]
    out = {}
    for endpoint, root in described["roots"].items():
        names = _reachable(root, defs)
        title = _TITLES[provider].format(endpoint=endpoint)
        out[TARGETS[provider][endpoint]] = {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$comment": f"Generated by python -m runner.providers.schemas generate from "
                        f"published/{provider}.json ({source['package']} "
                        f"{source['version']}, extracted {source['extracted']}); do not edit.",
            "title": f"spec.request of a {provider} manifest",
            "description": f"{title[0].upper()}{title[1:]}, without the model (spec.model "
                           f"names it). Every string in it is a Jinja2 template rendered per "
                           f"row.",
            **defs[root], "$defs": {n: defs[n] for n in names if n != root}}
    return out


def load(provider: str) -> dict[str, Any]:
    described: dict[str, Any] = json.loads(
        (PUBLISHED / f"{provider}.json").read_text(encoding="utf-8"))
    return described


def render(schema: Schema) -> str:
    return json.dumps(schema, indent=1, ensure_ascii=False) + "\n"


def stale() -> list[Path]:
    """The generated schemas that differ from what their copies give now."""
    return [PROVIDERS / path for provider in RULES
            for path, schema in schemas(provider, load(provider)).items()
            if not (PROVIDERS / path).is_file()
            or (PROVIDERS / path).read_text(encoding="utf-8") != render(schema)]


def write_all() -> list[Path]:
    written = []
    for provider in RULES:
        for path, schema in schemas(provider, load(provider)).items():
            (PROVIDERS / path).write_text(render(schema), encoding="utf-8")
            written.append(PROVIDERS / path)
    return written
