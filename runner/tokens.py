"""Input tokens of a batch, estimated offline, and the most output it may produce.

`plan` prices a batch before it is sent, without a key or a network, so the input is counted
by a rule rather than by the model's tokenizer. The rule is an estimate, not a count; it is
meant to be within tens of percent for prose, and `--count-tokens` replaces it with the
provider's countTokens answer (pass a `count` function to `TokenTally`/`estimate_manifest`).

The rule, per text string (text parts of `contents` and `systemInstruction`, and the JSON of
non-text, non-media parts such as functionCall, functionResponse or executableCode, and of
`tools`, which are sent as prompt too):

- Latin script, digits, punctuation and spaces (U+0000-U+024F, U+1E00-U+1EFF, U+2000-U+206F):
  4 characters a token, the usual figure for English with Gemini's tokenizer;
- CJK (Han, kana, Hangul, CJK punctuation, full-width forms): 1 token a character, as those
  scripts have about one character per token or fewer;
- any other script (Cyrillic, Greek, Arabic, Devanagari, Thai, emoji, ...): 2 characters a
  token;
- rounded up per string.

Media parts (`inlineData`, `fileData`) are counted at a flat `MEDIA_TOKENS` each: what Gemini
charges for an image of at most 384 px a side, for each 768 px tile of a larger one, and for a
PDF page. Audio (32 tokens a second) and video (263 a second) depend on their length and are
not estimated; `media_parts` says how many parts the flat figure stood in for, so a display
can say so.

The output bound is each request's `generationConfig.maxOutputTokens` times its
`candidateCount` (default 1). Thinking tokens count against maxOutputTokens, so the bound
holds for thinking models too. A request without maxOutputTokens has no bound, and then the
batch has none (None).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .manifest import Manifest
from .render import Renderer

MEDIA_TOKENS = 258

TokenCounter = Callable[[Mapping[str, Any]], int]

_LATIN = re.compile(r"[\u0000-\u024f\u1e00-\u1eff\u2000-\u206f]")
_CJK = re.compile(r"[\u1100-\u11ff\u3000-\u303f\u3040-\u30ff\u3130-\u318f\u31f0-\u31ff"
                  r"\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef"
                  r"\U00020000-\U0002fa1f]")
_MEDIA_KEYS = ("inlineData", "inline_data", "fileData", "file_data")


@dataclass(frozen=True)
class TokenEstimate:
    """A batch's input and its output bound, summed over its requests."""

    requests: int
    input_tokens: int
    max_output_tokens: int | None    # sum of per-request bounds; None if any request has none
    largest_request: int = 0         # input tokens of the biggest request (tiers are per request)
    media_parts: int = 0             # inlineData/fileData parts counted at MEDIA_TOKENS each
    counted: bool = False            # input tokens came from the provider, not the offline rule


def text_tokens(text: str) -> int:
    """The offline estimate for one string (see the module docstring for the rule)."""
    if text.isascii():
        return -(-len(text) // 4)
    latin = _LATIN.subn("", text)[1]
    cjk = _CJK.subn("", text)[1]
    other = len(text) - latin - cjk
    return -(-(latin + 2 * other + 4 * cjk) // 4)


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
                tokens += text_tokens(_json(part))
    if request.get("tools"):
        tokens += text_tokens(_json(request["tools"]))
    return tokens, media


def output_bound(request: Mapping[str, Any]) -> int | None:
    """The most output tokens one request may produce; None when it sets no maxOutputTokens."""
    config = request.get("generationConfig")
    if not isinstance(config, dict):
        return None
    limit = _integer(config.get("maxOutputTokens"))
    if limit is None:
        return None
    return limit * max(_integer(config.get("candidateCount")) or 1, 1)


class TokenTally:
    """Adds requests up one at a time, so that a batch of any size is estimated in constant
    memory, in whatever loop already renders it. `count`, if given, replaces the offline rule
    for input tokens (the provider's countTokens)."""

    def __init__(self, count: TokenCounter | None = None):
        self._count = count
        self._requests = self._input = self._largest = self._media = 0
        self._output: int | None = 0

    def add(self, request: Mapping[str, Any]) -> None:
        if self._count is not None:
            tokens, media = self._count(request), 0
        else:
            tokens, media = request_tokens(request)
        self._requests += 1
        self._input += tokens
        self._largest = max(self._largest, tokens)
        self._media += media
        bound = output_bound(request)
        self._output = None if bound is None or self._output is None else self._output + bound

    def result(self) -> TokenEstimate:
        return TokenEstimate(self._requests, self._input, self._output, self._largest,
                             self._media, counted=self._count is not None)


def estimate_requests(requests: Iterable[Mapping[str, Any]], count: TokenCounter | None = None
                      ) -> TokenEstimate:
    tally = TokenTally(count)
    for request in requests:
        tally.add(request)
    return tally.result()


def estimate_manifest(manifest: Manifest, count: TokenCounter | None = None) -> TokenEstimate:
    """Renders the manifest's rows as a stream and tallies each request as it comes."""
    return estimate_requests((req.request for req in Renderer(manifest).requests()), count)


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def _integer(value: Any) -> int | None:
    """An integer setting; a templated one renders as a string of digits."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None
