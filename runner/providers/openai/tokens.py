"""Which parts of an OpenAI request are prompt, and what bounds its output, per endpoint.

Prompt, each string by the shared rule of `runner.tokens.text_tokens`:
- chat completions: the text of every message's `content` (a string, or its `text` parts),
  plus MESSAGE_TOKENS a message for the role and separators OpenAI's chat format adds, and the
  JSON of `tools` (and the older `functions`), which are sent as prompt too;
- responses: `instructions`, and `input` (a string, or items: messages as above, other items
  such as function outputs by their JSON), and the JSON of `tools`;
- embeddings: every input string; an input given as token ids counts one token an id.

Media parts (images, audio, files) are counted at a flat figure each: IMAGE_TOKENS, what a
1024 x 1024 image costs at `detail: high` on GPT-4o class models (85 base + 4 tiles of 170),
or LOW_DETAIL_TOKENS at `detail: low`. Larger images, audio and documents depend on their
size, which the runner does not read; the count of media parts says how many the flat figure
stood in for.

The output bound: chat, `max_completion_tokens` (or the older `max_tokens`) times `n`
(default 1; reasoning tokens count against it); responses, `max_output_tokens`; embeddings
produce no output, bound 0. The endpoint is the manifest's; without one (a caller that does
not know it), it is told from the request's keys: `messages` is chat, `dimensions` or
`encoding_format` embeddings, anything else responses.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...tokens import integer_setting, json_text, text_tokens

CHAT = "/v1/chat/completions"
RESPONSES = "/v1/responses"
EMBEDDINGS = "/v1/embeddings"

MESSAGE_TOKENS = 3
IMAGE_TOKENS = 765
LOW_DETAIL_TOKENS = 85
OUTPUT_BOUND_SETTING = "max_completion_tokens (chat) or max_output_tokens (responses)"

_TEXT_PARTS = ("text", "input_text", "output_text")
_MEDIA_PARTS = ("image_url", "input_image", "input_audio", "file", "input_file")


def kind_of(request: Mapping[str, Any], endpoint: str | None) -> str:
    """The endpoint a request goes to: the manifest's, else told from its keys."""
    if endpoint is not None:
        return endpoint
    if "messages" in request:
        return CHAT
    if "dimensions" in request or "encoding_format" in request:
        return EMBEDDINGS
    return RESPONSES


def request_tokens(request: Mapping[str, Any], endpoint: str | None) -> tuple[int, int]:
    """(estimated input tokens, media parts) of one request body."""
    kind = kind_of(request, endpoint)
    if kind == EMBEDDINGS:
        return _embedding_inputs(request.get("input")), 0
    tally = _Tally()
    if kind == CHAT:
        messages = request.get("messages")
        for message in messages if isinstance(messages, list) else []:
            tally.message(message)
        for key in ("tools", "functions"):
            if request.get(key):
                tally.tokens += text_tokens(json_text(request[key]))
        return tally.tokens, tally.media
    if isinstance(request.get("instructions"), str):
        tally.tokens += text_tokens(request["instructions"])
    found = request.get("input")
    if isinstance(found, str):
        tally.tokens += text_tokens(found)
    for item in found if isinstance(found, list) else []:
        if isinstance(item, dict) and ("role" in item or item.get("type") == "message"):
            tally.message(item)
        else:
            tally.tokens += text_tokens(json_text(item))
    if request.get("tools"):
        tally.tokens += text_tokens(json_text(request["tools"]))
    return tally.tokens, tally.media


class _Tally:
    def __init__(self) -> None:
        self.tokens = self.media = 0

    def message(self, message: object) -> None:
        if not isinstance(message, dict):
            return
        self.tokens += MESSAGE_TOKENS
        content = message.get("content")
        if isinstance(content, str):
            self.tokens += text_tokens(content)
        for part in content if isinstance(content, list) else []:
            self.part(part)
        for key in ("tool_calls", "function_call"):
            if message.get(key):
                self.tokens += text_tokens(json_text(message[key]))

    def part(self, part: object) -> None:
        if not isinstance(part, dict):
            return
        kind = part.get("type")
        if kind in _TEXT_PARTS and isinstance(part.get("text"), str):
            self.tokens += text_tokens(part["text"])
        elif kind in _MEDIA_PARTS:
            self.media += 1
            image = part.get("image_url")
            detail = image.get("detail") if isinstance(image, dict) else part.get("detail")
            self.tokens += LOW_DETAIL_TOKENS if detail == "low" else IMAGE_TOKENS
        else:
            self.tokens += text_tokens(json_text(part))


def _embedding_inputs(found: object) -> int:
    """Tokens of an embeddings `input`: a string, strings, token ids, or lists of them."""
    if isinstance(found, str):
        return text_tokens(found)
    if not isinstance(found, list):
        return 0
    total = 0
    for item in found:
        if isinstance(item, str):
            total += text_tokens(item)
        elif isinstance(item, list):
            total += len(item)
        elif isinstance(item, int):
            total += 1
    return total


def output_bound(request: Mapping[str, Any], endpoint: str | None) -> int | None:
    """The most output tokens one request may produce; None when it sets no bound."""
    kind = kind_of(request, endpoint)
    if kind == EMBEDDINGS:
        return 0
    if kind == RESPONSES:
        return integer_setting(request.get("max_output_tokens"))
    limit = integer_setting(request.get("max_completion_tokens"))
    if limit is None:
        limit = integer_setting(request.get("max_tokens"))
    if limit is None:
        return None
    return limit * max(integer_setting(request.get("n")) or 1, 1)
