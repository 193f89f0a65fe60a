"""Input tokens of a batch, estimated offline, and the most output it may produce.

`plan` prices a batch before it is sent, without a key or a network, so the input is counted
by a rule rather than by the model's tokenizer. The rule is an estimate, not a count; it is
meant to be within tens of percent for prose, and `--count-tokens` replaces it with the
provider's countTokens answer (pass a `count` function to `TokenTally`).

Which strings of a request are prompt, what a media part counts, and which setting bounds the
output are the provider's (`Dialect.request_tokens`, `Dialect.output_bound`); the rule per
text string is shared:

- Latin script, digits, punctuation and spaces (U+0000-U+024F, U+1E00-U+1EFF, U+2000-U+206F):
  4 characters a token, the usual figure for English;
- CJK (Han, kana, Hangul, CJK punctuation, full-width forms): 1 token a character, as those
  scripts have about one character per token or fewer;
- any other script (Cyrillic, Greek, Arabic, Devanagari, Thai, emoji, ...): 2 characters a
  token;
- rounded up per string.

A request without an output bound has none, and then the batch has none (None).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .providers.dialect import Dialect

TokenCounter = Callable[[Mapping[str, Any]], int]

_LATIN = re.compile(r"[\u0000-\u024f\u1e00-\u1eff\u2000-\u206f]")
_CJK = re.compile(r"[\u1100-\u11ff\u3000-\u303f\u3040-\u30ff\u3130-\u318f\u31f0-\u31ff"
                  r"\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef"
                  r"\U00020000-\U0002fa1f]")


@dataclass(frozen=True)
class TokenEstimate:
    """A batch's input and its output bound, summed over its requests."""

    requests: int
    input_tokens: int
    max_output_tokens: int | None    # sum of per-request bounds; None if any request has none
    largest_request: int = 0         # input tokens of the biggest request (tiers are per request)
    media_parts: int = 0             # media parts counted at a flat figure each
    counted: bool = False            # input tokens came from the provider, not the offline rule
    bound_setting: str = ""          # the request setting that bounds output, for messages


def text_tokens(text: str) -> int:
    """The offline estimate for one string (see the module docstring for the rule)."""
    if text.isascii():
        return -(-len(text) // 4)
    latin = _LATIN.subn("", text)[1]
    cjk = _CJK.subn("", text)[1]
    other = len(text) - latin - cjk
    return -(-(latin + 2 * other + 4 * cjk) // 4)


class TokenTally:
    """Adds requests up one at a time, so that a batch of any size is estimated in constant
    memory, in whatever loop already renders it. `count`, if given, replaces the offline rule
    for input tokens (the provider's countTokens)."""

    def __init__(self, dialect: Dialect, count: TokenCounter | None = None,
                 endpoint: str | None = None):
        self._dialect = dialect
        self._count = count
        self._endpoint = endpoint       # the manifest's spec.endpoint: what kind of request
        self._requests = self._input = self._largest = self._media = 0
        self._output: int | None = 0

    def add(self, request: Mapping[str, Any]) -> None:
        if self._count is not None:
            tokens, media = self._count(request), 0
        else:
            tokens, media = self._dialect.request_tokens(request, self._endpoint)
        self._requests += 1
        self._input += tokens
        self._largest = max(self._largest, tokens)
        self._media += media
        bound = self._dialect.output_bound(request, self._endpoint)
        self._output = None if bound is None or self._output is None else self._output + bound

    def result(self) -> TokenEstimate:
        return TokenEstimate(self._requests, self._input, self._output, self._largest,
                             self._media, counted=self._count is not None,
                             bound_setting=self._dialect.output_bound_setting)


def estimate_requests(dialect: Dialect, requests: Iterable[Mapping[str, Any]],
                      count: TokenCounter | None = None, endpoint: str | None = None
                      ) -> TokenEstimate:
    tally = TokenTally(dialect, count, endpoint)
    for request in requests:
        tally.add(request)
    return tally.result()


def json_text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def integer_setting(value: Any) -> int | None:
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
