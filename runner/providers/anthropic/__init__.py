"""Anthropic's Message Batches API: the dialect the core reads through, and the HTTP client.

A manifest's request is the params of one Messages request (`request.schema.json`, without
the model, which `body` adds: each request of a batch names its own). An input line is
`{"custom_id": KEY, "params": BODY}`; the create call sends the lines themselves, inline, as
its `requests` (there is no input file), and results come back as `{"custom_id", "result"}`
lines (`results`). A batch that has not finished 24 hours after its creation expires,
keeping what it finished. A batch carries no name, tag or metadata, so the core recognises
its jobs from the lockfile's intents (`tags_jobs` is False).

Keys. `custom_id` must match `^[a-zA-Z0-9_-]{1,64}$`, so keys are mapped (`keys`): a key
that matches and does not start with `__` is sent as it is; any other is sent as `__`
followed by the unpadded base64url of its UTF-8 bytes (`é/1` is sent as `__w6kvMQ`), which
stays within that alphabet and is reversed exactly when results are read; a key whose
custom_id would pass 64 characters (more than 46 bytes of UTF-8, for a key of other
characters) is refused when the batch is rendered, naming the row.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from ...limits import Limits
from ...usage import Usage
from ..base import Provider
from ..dialect import Answer, Endpoint, Framing, JsonAnswer
from . import answers, keys, results, tokens
from .client import API_VERSION, DEFAULT_BASE_URL, LIMITS, AnthropicProvider

FRAMING = Framing(b'{"custom_id":', b',"params":')

__all__ = ["API_VERSION", "DIALECT", "AnthropicDialect", "AnthropicProvider"]


@cache
def _schema() -> Mapping[str, Any]:
    text = resources.files(__name__).joinpath("request.schema.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


@dataclass(frozen=True)
class AnthropicDialect:
    name: str = "anthropic"
    limits: Limits = LIMITS
    endpoint: Endpoint = Endpoint(DEFAULT_BASE_URL, ("ANTHROPIC_API_KEY",), "ANTHROPIC_BASE_URL",
                                  emulator_prefix="/anthropic")
    expiry: str = "24 h"
    output_bound_setting: str = tokens.OUTPUT_BOUND_SETTING
    model_hint: str = "give a model id such as claude-sonnet-4-5 or claude-haiku-4-5"
    endpoints: tuple[str, ...] = ()
    tags_jobs: bool = False         # a batch keeps no name, tag or metadata
    maps_keys: bool = True          # custom_id takes 64 of [A-Za-z0-9_-] (see `keys`)

    def framing(self, endpoint: str | None) -> Framing:
        return FRAMING

    def request_schema(self, endpoint: str | None) -> Mapping[str, Any]:
        return _schema()

    def wire_key(self, key: str) -> str:
        return keys.wire_key(key)

    def key_of_wire(self, wire: str) -> str:
        return keys.key_of_wire(wire)

    def model_id(self, model: str) -> str:
        return model

    def body(self, request: Mapping[str, Any], model: str) -> dict[str, Any]:
        return {"model": model, **request}      # every request names its model

    def result_key(self, result: Mapping[str, Any]) -> object:
        return result.get("custom_id")

    def read_result(self, result: Mapping[str, Any] | None) -> Answer | dict[str, Any]:
        return results.read_result(result)

    def usage(self, raw: Mapping[str, Any]) -> Usage:
        return results.usage_of(raw)

    def json_answer(self, request: Mapping[str, Any], endpoint: str | None
                    ) -> JsonAnswer | None:
        return answers.json_answer(request)

    def sample_result(self, key: str, text: str, model: str, endpoint: str | None
                      ) -> dict[str, Any]:
        return answers.sample_result(self.wire_key(key), text, model)

    def request_tokens(self, request: Mapping[str, Any], endpoint: str | None
                       ) -> tuple[int, int]:
        return tokens.request_tokens(request)

    def output_bound(self, request: Mapping[str, Any], endpoint: str | None) -> int | None:
        return tokens.output_bound(request)

    def connect(self, api_key: str, base_url: str | None, tuning: Mapping[str, int]
                ) -> Provider:
        """The client; `tuning`'s inline limit does not apply (every batch goes inline, and
        none may be uploaded), nor its upload chunk."""
        return AnthropicProvider(api_key, base_url)


DIALECT = AnthropicDialect()
