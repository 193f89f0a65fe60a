"""The emulated model's answers in Anthropic's shape (the rule itself: runner.emulator.model).

- `prompt` is the text of every message of `messages`, in order, joined with "\\n": a string
  `content` as it is, a list of blocks by the `text` of its text blocks (`system` is ignored,
  as Gemini's `systemInstruction` is);
- the answer is a Message with one text block, `"echo: " + prompt`, cut at `max_tokens` (four
  characters a token, `stop_reason` "max_tokens") or whole (`stop_reason` "end_turn");
- `usage`: input_tokens = ceil(len(prompt) / 4), at least 1; output_tokens = ceil(len(text)
  / 4); the Message `id` is "msg_" + a hash of the request's canonical JSON (unpadded);
- a request that asks for JSON (`output_config.format`, `type: json_schema`) is answered with
  a document that fits its `schema` (runner.emulator.documents) instead of the echo, cut at
  `max_tokens` likewise (and then no longer JSON, as a real answer cut short is not);
- `model` is the request's own.

The real API checks each request's `params` only when it processes it ("validation errors are
returned when processing of the entire batch has ended", in Anthropic's batch guide), so a
request that lacks `model`, `max_tokens` or `messages`, or (in a batch created with API
version 2026-10-21 or later) carries `temperature`, `top_p` or `top_k`, ends `errored` with an
invalid_request_error rather than failing the create.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from runner.emulator import documents, model
from runner.emulator.wire import JSON

# The API version that removed the sampling parameters ("even at their default values").
SAMPLING_REMOVED = "2026-10-21"
_SAMPLING = ("temperature", "top_p", "top_k")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def prompt_of(params: Mapping[str, Any]) -> str:
    texts: list[str] = []
    messages = params.get("messages")
    for message in messages if isinstance(messages, list) else []:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            texts.append(content)
            continue
        for block in content if isinstance(content, list) else []:
            if isinstance(block, dict) and block.get("type") == "text" \
                    and isinstance(block.get("text"), str):
                texts.append(block["text"])
    return "\n".join(texts)


def invalid(params: Mapping[str, Any], version: str) -> str | None:
    """Why the API would refuse `params` in a batch created with `version`, else None."""
    if not isinstance(params.get("model"), str) or not params["model"]:
        return "model: Field required"
    max_tokens = params.get("max_tokens")
    if max_tokens is None:
        return "max_tokens: Field required"
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        return "max_tokens: Input should be an integer greater than or equal to 1"
    messages = params.get("messages")
    if messages is None:
        return "messages: Field required"
    if not isinstance(messages, list) or not messages:
        return "messages: Input should be a non-empty list"
    if _DATE.fullmatch(version) and version >= SAMPLING_REMOVED:
        for name in _SAMPLING:
            if name in params:
                return f"{name}: not supported with anthropic-version {version}; remove it"
    return None


def _reply(params: Mapping[str, Any], prompt: str) -> str:
    """The answer's text: an echo, or the JSON document the request's format asks for."""
    config = params.get("output_config")
    found = config.get("format") if isinstance(config, dict) else None
    if not (isinstance(found, dict) and found.get("type") == "json_schema"):
        return model.reply_text(prompt)
    schema = found.get("schema")
    return documents.text_of({} if schema is None else schema, prompt)


def message(params: Mapping[str, Any], prompt: str) -> JSON:
    """The Message answering `params` (already checked by `invalid`), whose prompt is given."""
    text, was_cut = model.cut(_reply(params, prompt), params["max_tokens"])
    return {
        "id": "msg_" + model.response_id(params).rstrip("="),
        "type": "message",
        "role": "assistant",
        "model": params["model"],
        "content": [{"type": "text", "text": text}],
        "stop_reason": "max_tokens" if was_cut else "end_turn",
        "stop_sequence": None,
        "usage": {
            "input_tokens": model.prompt_tokens_of(prompt),
            "output_tokens": model.answer_tokens_of(text),
        },
    }
