"""Google's Gemini API Batch Mode: the dialect the core reads through, and the HTTP client.

The input file holds `{"key", "request"}` lines, a request being a GenerateContentRequest
(`request.schema.json`, without the model, which the create call names); results come back
as `{"key", "response"}` or `{"key", "error"}` lines (`results`). Jobs carry a displayName,
the runner's tag. A job that has not finished 48 hours after its creation expires.
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
from .client import CHUNK, DEFAULT_BASE_URL, LIMITS, GeminiProvider

FRAMING = Framing(b'{"key":', b',"request":')

__all__ = ["DIALECT", "GeminiDialect", "GeminiProvider"]


@cache
def _schema() -> Mapping[str, Any]:
    text = resources.files(__name__).joinpath("request.schema.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


@dataclass(frozen=True)
class GeminiDialect:
    name: str = "gemini"
    limits: Limits = LIMITS
    endpoint: Endpoint = Endpoint(DEFAULT_BASE_URL, ("GEMINI_API_KEY", "GOOGLE_API_KEY"),
                                  "GEMINI_BASE_URL")
    expiry: str = "48 h"
    output_bound_setting: str = tokens.OUTPUT_BOUND_SETTING
    model_hint: str = "give a model id such as gemini-2.5-flash (a models/ prefix is accepted)"
    endpoints: tuple[str, ...] = ()
    tags_jobs: bool = True          # the displayName
    maps_keys: bool = False         # any string is a key

    def framing(self, endpoint: str | None) -> Framing:
        return FRAMING

    def request_schema(self, endpoint: str | None) -> Mapping[str, Any]:
        return _schema()

    def wire_key(self, key: str) -> str:
        return key

    def key_of_wire(self, wire: str) -> str:
        return wire

    def model_id(self, model: str) -> str:
        return model.removeprefix("models/")

    def body(self, request: Mapping[str, Any], model: str) -> dict[str, Any]:
        return dict(request)        # the create call names the model, not each line

    def result_key(self, result: Mapping[str, Any]) -> object:
        return result.get("key")

    def read_result(self, result: Mapping[str, Any] | None) -> Answer | dict[str, Any]:
        return results.read_result(result)

    def usage(self, raw: Mapping[str, Any]) -> Usage:
        return results.usage_of(raw)

    def json_answer(self, request: Mapping[str, Any], endpoint: str | None
                    ) -> JsonAnswer | None:
        return answers.json_answer(request)

    def sample_result(self, key: str, text: str, model: str, endpoint: str | None
                      ) -> dict[str, Any]:
        return answers.sample_result(key, text, model)

    def request_tokens(self, request: Mapping[str, Any], endpoint: str | None
                       ) -> tuple[int, int]:
        return tokens.request_tokens(request)

    def output_bound(self, request: Mapping[str, Any], endpoint: str | None) -> int | None:
        return tokens.output_bound(request)

    def connect(self, api_key: str, base_url: str | None, tuning: Mapping[str, int]
                ) -> Provider:
        return GeminiProvider(api_key, base_url,
                              inline_limit=tuning.get("inline_limit", self.limits.inline_bytes),
                              chunk_size=tuning.get("chunk_size", CHUNK))


DIALECT = GeminiDialect()
