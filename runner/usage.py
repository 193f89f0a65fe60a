"""What a finished batch used and cost: the record the lockfile keeps, whatever the provider.

Each provider's dialect reads its own responses' usage into `Usage` (`Dialect.usage`); from
there on, summing, pricing and recording are the same for every provider.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

# Over this many prompt tokens, a request is billed at its model's long-context price, where
# the price table gives one.
LONG_PROMPT_TOKENS = 200_000


@dataclass(frozen=True)
class Usage:
    """Tokens a batch used, as its responses report them. Output includes thinking tokens,
    which are billed as output. `input_tokens` is every prompt token, those read from or
    written to the provider's prompt cache included: `cached_input_tokens` and
    `cache_write_tokens` say how many of them were, as they are billed at their own rates
    (OpenAI's cached input, Anthropic's cache reads and writes). The `long_` counts are the
    part of each count from responses whose prompt was over LONG_PROMPT_TOKENS, billed at the
    long-context price."""

    input_tokens: int = 0
    output_tokens: int = 0
    long_input_tokens: int = 0
    long_output_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    long_cached_input_tokens: int = 0
    long_cache_write_tokens: int = 0

    @classmethod
    def of_request(cls, prompt: int, output: int, cached: int = 0, written: int = 0) -> Usage:
        """The usage of one response that read `prompt` tokens, `cached` of them from the
        prompt cache and `written` of them into it, and wrote `output`. Raises ValueError
        when the cache's share is more than the prompt."""
        return _of_request(prompt, output, cached, written)

    def __add__(self, other: Usage) -> Usage:
        # spelled out: a batch's usage is summed once a response, a million times for a big one
        return _new(Usage, self.input_tokens + other.input_tokens,
                    self.output_tokens + other.output_tokens,
                    self.long_input_tokens + other.long_input_tokens,
                    self.long_output_tokens + other.long_output_tokens,
                    self.cached_input_tokens + other.cached_input_tokens,
                    self.cache_write_tokens + other.cache_write_tokens,
                    self.long_cached_input_tokens + other.long_cached_input_tokens,
                    self.long_cache_write_tokens + other.long_cache_write_tokens)

    def to_dict(self) -> dict[str, int]:
        """For the lockfile: the cache and long-context counts only when there are any."""
        return {k: v for k, v in vars(self).items()
                if v or k in ("input_tokens", "output_tokens")}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Usage:
        return cls(**{f.name: int(data.get(f.name, 0)) for f in fields(cls)})


@functools.lru_cache(maxsize=1 << 14)
def _of_request(prompt: int, output: int, cached: int, written: int) -> Usage:
    """Usage.of_request, one object for each set of counts: a join reads a million
    responses, whose counts repeat (a Usage is frozen, so it can be shared)."""
    if cached + written > prompt:
        raise ValueError(f"usage counts {cached + written} cached input tokens of a prompt "
                         f"of {prompt}")
    if prompt > LONG_PROMPT_TOKENS:
        return _new(Usage, prompt, output, prompt, output, cached, written, cached, written)
    return _new(Usage, prompt, output, 0, 0, cached, written, 0, 0)


class Tally:
    """Usage summed in place, a response at a time: a join sums a million, and a frozen
    Usage made for each sum cost a sixth of the join. Most responses count prompt and
    output tokens alone (every other count is part of a long prompt's or a cache's), so
    those two are ints here and the rest is summed as Usage."""

    __slots__ = ("input_tokens", "output_tokens", "rest")

    def __init__(self) -> None:
        self.input_tokens = self.output_tokens = 0
        self.rest = Usage()

    def add(self, usage: Usage) -> None:
        if usage.long_input_tokens or usage.cached_input_tokens or usage.cache_write_tokens:
            self.rest += usage
        else:
            self.input_tokens += usage.input_tokens
            self.output_tokens += usage.output_tokens

    def total(self) -> Usage:
        return self.rest + _new(Usage, self.input_tokens, self.output_tokens, 0, 0, 0, 0, 0, 0)


def _new(cls: type[Usage], input_tokens: int, output_tokens: int, long_input: int,
         long_output: int, cached: int, written: int, long_cached: int, long_written: int
         ) -> Usage:
    """A Usage made without the frozen dataclass's __init__ (a setattr a field through
    object.__setattr__, 4x slower): one is made per response, twice."""
    usage = object.__new__(cls)
    fields = usage.__dict__
    fields["input_tokens"] = input_tokens
    fields["output_tokens"] = output_tokens
    fields["long_input_tokens"] = long_input
    fields["long_output_tokens"] = long_output
    fields["cached_input_tokens"] = cached
    fields["cache_write_tokens"] = written
    fields["long_cached_input_tokens"] = long_cached
    fields["long_cache_write_tokens"] = long_written
    return usage


@dataclass(frozen=True)
class Spent:
    """What a finished batch used and cost at the prices of the day it was recorded; the
    lockfile keeps it (`to_dict`) so that `status` shows it without asking the provider."""

    usage: Usage
    cost: float | None              # None: the model had no price when it was recorded
    currency: str = "USD"
    prices_as_of: str = ""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"usage": self.usage.to_dict(), "currency": self.currency}
        if self.cost is not None:
            out["cost"] = round(self.cost, 6)
        if self.prices_as_of:
            out["prices_as_of"] = self.prices_as_of
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Spent:
        cost = data.get("cost")
        return cls(Usage.from_dict(data.get("usage", {})),
                   None if cost is None else float(cost), str(data.get("currency", "USD")),
                   str(data.get("prices_as_of", "")))
