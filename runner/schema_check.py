"""Documents checked against our JSON schemas, and what is wrong said in words.

jsonschema's own messages name schema keywords ("'x' is not one of [...]", "Additional
properties are not allowed"); a user needs the key path, its line in the file and what to
write instead ("did you mean 'prompt'?"). A manifest is checked twice: by the manifest schema,
then `spec.request` by its provider's schema (each provider package has its own).
"""

from __future__ import annotations

import difflib
import json
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema

from .errors import ManifestError, excerpt
from .fastpath import is_template
from .providers import registry
from .yamllines import Document


@cache
def load_schema(name: str) -> dict[str, Any]:
    """A schema from the project's schemas/ folder: beside the package in a checkout (and an
    editable install), inside it as runner/schemas in a built wheel."""
    root = Path(__file__).resolve().parent.parent
    beside = root / "schemas" / name
    if (root / "pyproject.toml").is_file() and beside.is_file():
        text = beside.read_text(encoding="utf-8")
    else:
        text = resources.files("runner.schemas").joinpath(name).read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


_TYPE_NAMES = {"object": "a mapping", "array": "a list", "string": "a string",
               "integer": "an integer", "number": "a number", "boolean": "true or false",
               "null": "empty"}

# What a value that fails a schema pattern should look like, by the name of its key.
_PATTERN_HINTS = {
    "name": "use lowercase letters, digits and dashes, at most 63, starting and ending with a "
            "letter or digit",
    "rows": "a rows file must end in .jsonl, .csv, .json, .yaml, .yml or .parquet",
}


def _model_hint(data: Any) -> str:
    """What a model id of the manifest's provider looks like."""
    provider = data.get("spec", {}).get("provider") if isinstance(data, dict) else None
    if isinstance(provider, str) and provider in registry.PROVIDERS:
        return registry.dialect(provider).model_hint
    return "give a model id of letters, digits, '.', '_' and '-'"


def _type_name(value: Any) -> str:
    for name, kind in (("boolean", bool), ("integer", int), ("number", float), ("string", str),
                       ("array", list), ("object", dict)):
        if isinstance(value, kind):
            return _TYPE_NAMES[name]
    return _TYPE_NAMES["null"]


def _schema_message(error: jsonschema.ValidationError, path: list[str | int], data: Any) -> str:
    """A schema violation in words a user acts on; the key path is said by the caller."""
    kind, schema = error.validator, error.schema
    if kind == "oneOf" and path == ["spec"]:
        return "needs exactly one of 'rows' (a data file) or 'items' (inline rows)"
    if kind == "type" and isinstance(schema, dict):
        expected = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        wanted = " or ".join(_TYPE_NAMES.get(str(t), str(t)) for t in expected)
        if not path:
            return f"a manifest must be a mapping (apiVersion, kind, metadata, spec), " \
                   f"not {_type_name(error.instance)}"
        return f"must be {wanted}, not {_type_name(error.instance)}"
    if kind == "pattern" and path == ["spec", "model"]:
        return f"{excerpt(error.instance)} is not valid: {_model_hint(data)}"
    if kind == "pattern" and path and str(path[-1]) in _PATTERN_HINTS:
        return f"{excerpt(error.instance)} is not valid: {_PATTERN_HINTS[str(path[-1])]}"
    if kind == "enum" and isinstance(schema, dict):
        return f"{excerpt(error.instance)} is not supported; use one of: " \
               f"{', '.join(map(str, schema['enum']))}"
    if kind in ("minItems", "minLength", "minProperties"):
        return "must not be empty"
    if kind == "not" and isinstance(schema, dict) and schema.get("description"):
        # a key a provider's schema refuses outright, saying why (openai's `stream`)
        return f"not allowed: {schema['description']}"
    return str(error.message)


@cache
def validator(name: str) -> jsonschema.protocols.Validator:
    """The validator of one of our schemas, built once."""
    built: jsonschema.protocols.Validator = jsonschema.Draft202012Validator(load_schema(name))
    return built


def schema_error(doc: Document, source: Path) -> ManifestError | None:
    """The first thing wrong with a document by the manifest schema, then by its provider's
    request schema (each provider has its own: runner.providers), or None."""
    error = _first_error(validator("manifest.schema.json"), doc.data, doc, source, ())
    if error is not None:
        return error
    provider = doc.data["spec"]["provider"]
    if provider not in registry.PROVIDERS:
        return ManifestError(f"spec.provider: {excerpt(provider)} is not supported; use one "
                             f"of: {', '.join(registry.names())}", path=source,
                             where=str(doc.line_of(["spec", "provider"])))
    endpoint = doc.data["spec"].get("endpoint")
    endpoints = registry.dialect(provider).endpoints
    if endpoint is not None and endpoint not in endpoints:
        why = (f"is not supported; use one of: {', '.join(endpoints)}" if endpoints else
               f"does not apply to {provider}, whose requests all go to one place")
        return ManifestError(f"spec.endpoint: {excerpt(endpoint)} {why}", path=source,
                             where=str(doc.line_of(["spec", "endpoint"])))
    return _first_error(request_validator(provider, endpoint), doc.data["spec"]["request"], doc,
                        source, ("spec", "request"))


def _first_error(check: jsonschema.protocols.Validator, data: Any, doc: Document, source: Path,
                 prefix: tuple[str, ...]) -> ManifestError | None:
    if check.is_valid(data):            # the common case, without collecting every error
        return None
    errors = list(check.iter_errors(data))
    if not errors:
        return None
    error = max(errors, key=jsonschema.exceptions.relevance)
    if prefix:                          # a request: unions of the provider's types
        error = _narrow(error)
    elif error.context:
        error = jsonschema.exceptions.best_match(errors) or error
    if error.validator == "required":   # a misspelt key explains a missing one: name it
        error = next((e for e in errors if e.validator == "additionalProperties"
                      and e.absolute_path == error.absolute_path), error)
    path = [*prefix, *error.absolute_path]
    where = ".".join(str(p) if isinstance(p, str) else f"[{p}]" for p in path).replace(".[", "[")
    line = doc.line_of(path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = error.schema.get("properties", {}) if isinstance(error.schema, dict) else {}
        key = str(next(k for k in error.instance if k not in known))
        # a key the schema refuses outright (`not`, saying why) is no suggestion on its own
        refused = {k: v["description"] for k, v in known.items()
                   if isinstance(v, dict) and "not" in v and v.get("description")}
        close = difflib.get_close_matches(key, sorted(known), n=1)
        if close and close[0] in refused:
            hint = f"did you mean {close[0]!r}? it is not allowed: {refused[close[0]]}"
        else:
            hint = f"did you mean {close[0]!r}?" if close else \
                f"allowed: {', '.join(sorted(set(known) - set(refused)))}"
        msg = f"unknown key {excerpt(key)} ({hint})"
        line = doc.key_line(path, key)
    else:
        msg = _schema_message(error, path, doc.data)
    if len(msg) > 200:
        msg = msg[:197] + "..."
    return ManifestError(f"{where}: {msg}" if where else msg, path=source, where=str(line))


def _narrow(error: jsonschema.ValidationError) -> jsonschema.ValidationError:
    """The error inside a union (`anyOf`, `oneOf`) that says what is wrong: the one of the
    alternative the value meant, which its discriminating key names (`type: function`,
    `role: user`), rather than jsonschema's pick, which prefers the deepest error and so
    blames a discriminator of an alternative the value never meant."""
    while error.validator in ("anyOf", "oneOf") and error.context:
        branches: dict[int, list[jsonschema.ValidationError]] = {}
        for sub in error.context:
            branches.setdefault(int(sub.schema_path[0]), []).append(sub)
        meant = {i: subs for i, subs in branches.items() if not any(_rules_out(e) for e in subs)}
        if not meant:
            return _no_alternative(error, list(branches.values())) or error
        subs = min(meant.values(), key=len)
        error = max(subs, key=jsonschema.exceptions.relevance)
    return error


def _rules_out(error: jsonschema.ValidationError) -> bool:
    """Whether an error shows the value is not of this alternative at all: another type,
    or another constant at a discriminating key."""
    if not error.relative_path:
        return error.validator == "type"
    return len(error.relative_path) == 1 and error.validator in ("enum", "const")


def _no_alternative(error: jsonschema.ValidationError,
                    branches: list[list[jsonschema.ValidationError]]
                    ) -> jsonschema.ValidationError | None:
    """A value whose discriminating key names no alternative: that key, with every value
    the alternatives take."""
    keyed = [e for subs in branches for e in subs
             if len(e.relative_path) == 1 and e.validator in ("enum", "const")]
    keys = {e.relative_path[0] for e in keyed}
    if len(keys) != 1 or not isinstance(error.instance, dict):
        return None
    key = keys.pop()
    values: list[Any] = []
    for e in keyed:
        schema = e.schema if isinstance(e.schema, dict) else {}
        for v in schema.get("enum", [schema["const"]] if "const" in schema else []):
            if v not in values:
                values.append(v)
    return jsonschema.ValidationError(
        "not one of the values", validator="enum", path=[*error.absolute_path, key],
        schema={"enum": values}, instance=error.instance.get(key))


def _unless_templated(check: Any) -> Any:
    """A keyword's check that lets a template through: what `{{ row.max }}` renders to is
    known row by row only, so a templated string stands for a value of any type and shape
    (the provider checks what it renders to)."""
    def checked(validator: Any, value: Any, instance: Any, schema: Any) -> Any:
        if isinstance(instance, str) and is_template(instance):
            return
        yield from check(validator, value, instance, schema)
    return checked


_SCALAR_KEYWORDS = ("type", "enum", "const", "pattern", "format", "minimum", "maximum",
                    "exclusiveMinimum", "exclusiveMaximum", "minLength", "maxLength",
                    "multipleOf")
_RequestValidator = jsonschema.validators.extend(  # type: ignore[no-untyped-call]
    jsonschema.Draft202012Validator, {
    k: _unless_templated(jsonschema.Draft202012Validator.VALIDATORS[k])
    for k in _SCALAR_KEYWORDS})


@cache
def request_validator(provider: str, endpoint: str | None) -> jsonschema.protocols.Validator:
    """The validator of a provider's `spec.request` (for requests to `endpoint`), built
    once."""
    built: jsonschema.protocols.Validator = _RequestValidator(
        registry.dialect(provider).request_schema(endpoint))
    return built
