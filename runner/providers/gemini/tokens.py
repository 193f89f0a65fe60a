"""Which parts of a GenerateContentRequest are prompt, and what bounds its output.

Prompt: the text parts of `contents` and `systemInstruction`, and the JSON of non-text,
non-media parts (functionCall, functionResponse, executableCode) and of `tools`, which are
sent as prompt too; each string by the shared rule of `runner.tokens.text_tokens`.

Media parts (`inlineData`, `fileData`) are counted at a flat `MEDIA_TOKENS` each: what Gemini
charges for an image of at most 384 px a side, for each 768 px tile of a larger one, and for a
PDF page. Audio (32 tokens a second) and video (263 a second) depend on their length and are
not estimated; the count of media parts says how many parts the flat figure stood in for.

The output bound is `generationConfig.maxOutputTokens` times `candidateCount` (default 1).
Thinking tokens count against maxOutputTokens, so the bound holds for thinking models too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...tokens import integer_setting, json_text, text_tokens

MEDIA_TOKENS = 258
OUTPUT_BOUND_SETTING = "generationConfig.maxOutputTokens"

_MEDIA_KEYS = ("inlineData", "inline_data", "fileData", "file_data")


def request_tokens(request: Mapping[str, Any]) -> tuple[int, int]:
    """(estimated input tokens, media parts) of one GenerateContentRequest."""
    tokens = media = 0
    contents = request.get("contents")
    blocks = list(contents) if isinstance(contents, list) else []
    if isinstance(request.get("systemInstruction"), dict):
        blocks.append(request["systemInstruction"])
    for block in blocks:
        parts = block.get("parts") if isinstance(block, dict) else None
        for part in parts if isinstance(parts, list) else []:
            if not isinstance(part, dict):
                continue
            if isinstance(part.get("text"), str):
                tokens += text_tokens(part["text"])
            elif any(k in part for k in _MEDIA_KEYS):
                media += 1
                tokens += MEDIA_TOKENS
            else:
                tokens += text_tokens(json_text(part))
    if request.get("tools"):
        tokens += text_tokens(json_text(request["tools"]))
    return tokens, media


def output_bound(request: Mapping[str, Any]) -> int | None:
    """The most output tokens one request may produce; None when it sets no maxOutputTokens."""
    config = request.get("generationConfig")
    if not isinstance(config, dict):
        return None
    limit = integer_setting(config.get("maxOutputTokens"))
    if limit is None:
        return None
    return limit * max(integer_setting(config.get("candidateCount")) or 1, 1)
