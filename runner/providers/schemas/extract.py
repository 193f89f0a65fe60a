"""Copies of the providers' published request descriptions, in one plain JSON form.

Each description is read from the package its provider publishes on PyPI, at the version
installed: Google's `google-ai-generativelanguage` (the protocol buffer messages of the
Generative Language API v1beta, from which its REST discovery document is generated; JSON
names are the messages' `json_name`s), OpenAI's `openai` SDK and Anthropic's `anthropic`
SDK (the request parameter types, which Stainless generates from each company's OpenAPI
specification). Only the types the request refers to are kept.

The form (`describe`): `types` maps a type's name to `{"fields": {name: {"type": T,
"required": bool}}}`, where a type T is one of "string", "integer", "number", "boolean",
"null", "any", `{"enum": [...]}`, `{"ref": NAME}`, `{"array": T}`, `{"map": T}` (a mapping of
strings to T) or `{"anyOf": [T, ...]}`; `roots` names the request type of each endpoint.
"""

from __future__ import annotations

import collections.abc
import datetime
import importlib
import importlib.metadata
import typing
from typing import Any

import typing_extensions

Described = dict[str, Any]

_PROTO_SCALARS = {1: "number", 2: "number", 5: "integer", 7: "integer", 8: "boolean",
                  9: "string", 12: "string", 13: "integer", 15: "integer", 17: "integer"}
_PROTO_64 = {3, 4, 6, 16, 18}          # 64-bit integers: JSON numbers or decimal strings
_WELL_KNOWN: dict[str, Any] = {
    "google.protobuf.Struct": {"map": "any"}, "google.protobuf.Value": "any",
    "google.protobuf.ListValue": {"array": "any"}, "google.protobuf.Duration": "string",
    "google.protobuf.Timestamp": "string", "google.protobuf.FieldMask": "string",
    "google.type.Date": {"ref": "google.type.Date"}}
_REQUIRED_MARKS = (typing_extensions.Required,)
_OPTIONAL_MARKS = (typing_extensions.NotRequired,)
_REQUIRED = 2                           # google.api.FieldBehavior.REQUIRED


def _proto_type(field: Any, types: Described, behaviour: Any) -> Any:
    if field.type == 11:                # a message
        message = field.message_type
        if message.GetOptions().map_entry:
            return {"map": _proto_type(message.fields_by_name["value"], types, behaviour)}
        kind = _WELL_KNOWN.get(message.full_name)
        if kind is None or "ref" in kind:
            kind = {"ref": _proto_message(message, types, behaviour)}
    elif field.type == 14:              # an enum: its names, as JSON writes them
        kind = {"enum": [value.name for value in field.enum_type.values]}
    elif field.type in _PROTO_64:
        kind = {"anyOf": ["integer", "string"]}
    else:
        kind = _PROTO_SCALARS[field.type]
    repeated = field.is_repeated and not (field.type == 11
                                         and field.message_type.GetOptions().map_entry)
    return {"array": kind} if repeated else kind


def _proto_message(message: Any, types: Described, behaviour: Any) -> str:
    name: str = message.full_name.removeprefix("google.ai.generativelanguage.v1beta.")
    if name in types:
        return name
    fields: Described = {}
    types[name] = {"fields": fields}
    for field in message.fields:
        required = _REQUIRED in field.GetOptions().Extensions[behaviour]
        fields[field.json_name] = {"type": _proto_type(field, types, behaviour),
                                   "required": required}
    return name


def gemini() -> Described:
    """GenerateContentRequest of the Generative Language API v1beta and what it refers to."""
    module = importlib.import_module("google.ai.generativelanguage_v1beta.types")
    behaviour = importlib.import_module("google.api.field_behavior_pb2").field_behavior
    types: Described = {}
    root = _proto_message(module.GenerateContentRequest.pb().DESCRIPTOR, types, behaviour)
    return _described("google-ai-generativelanguage", {"": root}, types, {
        "api": "Generative Language API v1beta (generativelanguage.googleapis.com)",
        "url": "https://pypi.org/project/google-ai-generativelanguage/",
        "upstream": "https://github.com/googleapis/googleapis/tree/master/google/ai/"
                    "generativelanguage/v1beta",
        "discovery": "https://generativelanguage.googleapis.com/$discovery/rest?version=v1beta"})


def _typed_name(cls: type, types: Described) -> str:
    name: str = cls.__name__
    owner = types.get(name, {}).get("class")
    if owner is not None and owner != f"{cls.__module__}.{cls.__qualname__}":
        name = f"{cls.__module__.rsplit('.', 1)[-1]}.{name}"
    return name


def _typed_dict(cls: type, types: Described) -> str:
    name = _typed_name(cls, types)
    if name in types:
        return name
    fields: Described = {}
    types[name] = {"class": f"{cls.__module__}.{cls.__qualname__}", "fields": fields}
    for key, hint in typing.get_type_hints(cls, include_extras=True).items():
        mark = typing.get_origin(hint)
        required = mark in _REQUIRED_MARKS or (
            key in getattr(cls, "__required_keys__", ()) and mark not in _OPTIONAL_MARKS)
        wire = key
        while typing.get_origin(hint) in (*_REQUIRED_MARKS, *_OPTIONAL_MARKS,
                                          typing.Annotated):
            for extra in getattr(hint, "__metadata__", ()):
                wire = getattr(extra, "alias", None) or wire    # `from_` is sent as `from`
            hint = typing.get_args(hint)[0]
        fields[wire] = {"type": _typed(hint, types), "required": required}
    return name


def _typed(hint: Any, types: Described) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Annotated, typing_extensions.Annotated):
        return _typed(args[0], types)
    if origin in (typing.Literal, typing_extensions.Literal):
        return {"enum": list(args)}
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        choices = [_typed(arg, types) for arg in args if not _response_object(arg)]
        return {"anyOf": [c for i, c in enumerate(choices) if c not in choices[:i]]}
    if hint is type(None):
        return "null"
    if isinstance(hint, type) and typing_extensions.is_typeddict(hint):
        return {"ref": _typed_dict(hint, types)}
    for kind, names in (("string", (str, bytes, datetime.date, datetime.datetime)),
                        ("boolean", (bool,)), ("integer", (int,)), ("number", (float,))):
        if hint in names:
            return kind
    if origin is not None and isinstance(origin, type):
        if issubclass(origin, collections.abc.Mapping):
            return {"map": _typed(args[1], types) if len(args) == 2 else "any"}
        if issubclass(origin, collections.abc.Iterable) or origin.__name__ == "SequenceNotStr":
            return {"array": _typed(args[0], types) if args else "any"}
    if getattr(hint, "__value__", None) is not None:           # a `type X = ...` alias
        return _typed(hint.__value__, types)
    return "any"                        # object, a file, anything the SDK leaves open


def _response_object(hint: Any) -> bool:
    """Whether a type is one of the SDK's response models (a block of an answer, which
    the SDK also takes back in a request and sends as the block's params)."""
    while typing.get_origin(hint) in (typing.Annotated, typing_extensions.Annotated):
        hint = typing.get_args(hint)[0]
    if typing.get_origin(hint) is typing.Union:
        return all(_response_object(arg) for arg in typing.get_args(hint))
    return isinstance(hint, type) and hasattr(hint, "model_fields")


def _sdk(package: str, roots: dict[str, tuple[str, str]], source: dict[str, str]
         ) -> Described:
    types: Described = {}
    named = {endpoint: _typed_dict(getattr(importlib.import_module(module), cls), types)
             for endpoint, (module, cls) in roots.items()}
    for described in types.values():
        del described["class"]
    return _described(package, named, types, source)


def openai() -> Described:
    """The bodies of the three endpoints the runner sends batches to."""
    return _sdk("openai", {
        "/v1/chat/completions": ("openai.types.chat.completion_create_params",
                                 "CompletionCreateParamsNonStreaming"),
        "/v1/responses": ("openai.types.responses.response_create_params",
                          "ResponseCreateParamsNonStreaming"),
        "/v1/embeddings": ("openai.types.embedding_create_params", "EmbeddingCreateParams")}, {
        "api": "OpenAI API: chat completions, responses, embeddings",
        "url": "https://pypi.org/project/openai/",
        "upstream": "https://github.com/openai/openai-openapi (CreateChatCompletionRequest, "
                    "CreateResponse, CreateEmbeddingRequest)"})


def anthropic() -> Described:
    """The params of one Messages request."""
    return _sdk("anthropic", {"": ("anthropic.types.message_create_params",
                                   "MessageCreateParamsNonStreaming")}, {
        "api": "Anthropic Messages API",
        "url": "https://pypi.org/project/anthropic/",
        "upstream": "Anthropic's OpenAPI specification, as the SDK's MessageCreateParams"})


def _described(package: str, roots: dict[str, str], types: Described,
               source: dict[str, str]) -> Described:
    return {"source": {**source, "package": package,
                       "version": importlib.metadata.version(package),
                       "extracted": datetime.date.today().isoformat(),
                       "trimmed": "only the types the request refers to; descriptions left "
                                  "out"},
            "roots": roots, "types": dict(sorted(types.items()))}


EXTRACTORS = {"gemini": gemini, "openai": openai, "anthropic": anthropic}
