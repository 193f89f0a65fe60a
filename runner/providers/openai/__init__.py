"""OpenAI's Batch API: the dialect the core reads through, and the HTTP client.

A manifest picks the endpoint every request of its batch goes to (`spec.endpoint`): chat
completions (the default), responses or embeddings; each has its request schema
(`<kind>.schema.json`, the body without the model, which `body` adds: OpenAI names it in every
line). An input line is `{"custom_id": KEY, "method": "POST", "url": ENDPOINT, "body": BODY}`;
results come back as output and error file lines keyed by custom_id (`results`). custom_id
takes any string (no restriction is documented), so keys are sent as they are. A batch that
has not finished 24 hours after its creation expires, keeping what it finished.
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
from . import answers, results, tokens
from .client import DEFAULT_BASE_URL, LIMITS, OpenAIProvider
from .tokens import CHAT, EMBEDDINGS, RESPONSES

ENDPOINTS = (CHAT, RESPONSES, EMBEDDINGS)
_SCHEMAS = {CHAT: "chat.schema.json", RESPONSES: "responses.schema.json",
            EMBEDDINGS: "embeddings.schema.json"}
FRAMINGS = {endpoint: Framing(b'{"custom_id":',
                              b',"method":"POST","url":"' + endpoint.encode() + b'","body":')
            for endpoint in ENDPOINTS}

__all__ = ["DIALECT", "OpenAIDialect", "OpenAIProvider"]


@cache
def _schema(endpoint: str) -> Mapping[str, Any]:
    text = resources.files(__name__).joinpath(_SCHEMAS[endpoint]).read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


@dataclass(frozen=True)
class OpenAIDialect:
    name: str = "openai"
    limits: Limits = LIMITS
    endpoint: Endpoint = Endpoint(DEFAULT_BASE_URL, ("OPENAI_API_KEY",), "OPENAI_BASE_URL",
                                  emulator_prefix="/openai/v1")
    expiry: str = "24 h"
    output_bound_setting: str = tokens.OUTPUT_BOUND_SETTING
    model_hint: str = "give a model id such as gpt-4o-mini or gpt-5"
    endpoints: tuple[str, ...] = ENDPOINTS
    tags_jobs: bool = True          # in its metadata
    maps_keys: bool = False         # custom_id takes any string

    def framing(self, endpoint: str | None) -> Framing:
        return FRAMINGS[endpoint or CHAT]

    def request_schema(self, endpoint: str | None) -> Mapping[str, Any]:
        return _schema(endpoint or CHAT)

    def wire_key(self, key: str) -> str:
        return key

    def key_of_wire(self, wire: str) -> str:
        return wire

    def model_id(self, model: str) -> str:
        return model

    def body(self, request: Mapping[str, Any], model: str) -> dict[str, Any]:
        return {"model": model, **request}      # every line names its model

    def result_key(self, result: Mapping[str, Any]) -> object:
        return result.get("custom_id")

    def read_result(self, result: Mapping[str, Any] | None) -> Answer | dict[str, Any]:
        return results.read_result(result)

    def usage(self, raw: Mapping[str, Any]) -> Usage:
        return results.usage_of(raw)

    def json_answer(self, request: Mapping[str, Any], endpoint: str | None
                    ) -> JsonAnswer | None:
        return answers.json_answer(request, endpoint or CHAT)

    def sample_result(self, key: str, text: str, model: str, endpoint: str | None
                      ) -> dict[str, Any]:
        return answers.sample_result(key, text, model, endpoint or CHAT)

    def request_tokens(self, request: Mapping[str, Any], endpoint: str | None
                       ) -> tuple[int, int]:
        return tokens.request_tokens(request, endpoint)

    def output_bound(self, request: Mapping[str, Any], endpoint: str | None) -> int | None:
        return tokens.output_bound(request, endpoint)

    def connect(self, api_key: str, base_url: str | None, tuning: Mapping[str, int]
                ) -> Provider:
        """The client; `tuning`'s inline limit does not apply (OpenAI takes no inline
        requests), nor its upload chunk (an input file goes in one call)."""
        return OpenAIProvider(api_key, base_url)


DIALECT = OpenAIDialect()
