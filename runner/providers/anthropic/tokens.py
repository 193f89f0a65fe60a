"""Which parts of a Messages request are prompt, and what bounds its output.

Prompt, each string by the shared rule of `runner.tokens.text_tokens`: `system` (a string, or
its text blocks), the text of every message's `content` (a string, or its `text` blocks) plus
MESSAGE_TOKENS a message for the role and separators the chat format adds, and the JSON of
other blocks (tool uses and results, search results) and of `tools`, which are sent as prompt
too. Thinking blocks of earlier turns count by their JSON as well: an estimate errs on the
side of more.

Media blocks (`image`, `document`) are counted at a flat MEDIA_TOKENS each: what Anthropic's
rule (width x height / 750) gives for the largest image it takes unscaled, about 1.15
megapixels. A PDF's pages and a smaller image cost otherwise; the count of media blocks says
how many the flat figure stood in for.

The output bound is `max_tokens`, which thinking tokens count against too; a request has one
kind of output, so the endpoint is never needed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...tokens import integer_setting, json_text, text_tokens

MESSAGE_TOKENS = 3
MEDIA_TOKENS = 1600
OUTPUT_BOUND_SETTING = "max_tokens"

_MEDIA = ("image", "document")


def request_tokens(request: Mapping[str, Any]) -> tuple[int, int]:
    """(estimated input tokens, media blocks) of one request's params."""
    tally = _Tally()
    tally.content(request.get("system"))
    messages = request.get("messages")
    for message in messages if isinstance(messages, list) else []:
        if isinstance(message, dict):
            tally.tokens += MESSAGE_TOKENS
            tally.content(message.get("content"))
    if request.get("tools"):
        tally.tokens += text_tokens(json_text(request["tools"]))
    return tally.tokens, tally.media


class _Tally:
    def __init__(self) -> None:
        self.tokens = self.media = 0

    def content(self, content: object) -> None:
        """A string, or a list of blocks."""
        if isinstance(content, str):
            self.tokens += text_tokens(content)
        for block in content if isinstance(content, list) else []:
            if not isinstance(block, dict):
                continue
            kind = block.get("type")
            if kind == "text" and isinstance(block.get("text"), str):
                self.tokens += text_tokens(block["text"])
            elif kind in _MEDIA:
                self.media += 1
                self.tokens += MEDIA_TOKENS
            else:
                self.tokens += text_tokens(json_text(block))


def output_bound(request: Mapping[str, Any]) -> int | None:
    """The most output tokens one request may produce: its max_tokens (which the API
    requires, so None only for a request it would refuse)."""
    return integer_setting(request.get("max_tokens"))
