"""Costs: what a batch should cost before it is sent, what it did cost after, whether its
budget allows it, and amounts as people read them. The prices come from the price table
(runner.pricetable), and every cost is at the batch price.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from .layout import PRICES_FILE
from .pricetable import PriceTable, load_prices
from .tokens import TokenEstimate
from .usage import LONG_PROMPT_TOKENS, Spent, Usage

# re-exported: the record of spending is priced here, and callers load the table to price with
__all__ = ["Spent", "Usage", "load_prices"]


@dataclass(frozen=True)
class CostEstimate:
    """A batch's cost before it is sent, at the batch price: `low` pays for the input only,
    `high` also for the most output the requests' output limit allows (None when unbounded)."""

    model: str
    requests: int
    input_tokens: int
    max_output_tokens: int | None
    low: float
    high: float | None
    currency: str
    prices_as_of: str
    counted: bool = False                       # input tokens from countTokens
    notes: tuple[str, ...] = field(default=())  # caveats a reader should see
    bound_setting: str = ""                     # the request setting that would bound `high`

    def share(self, requests: int) -> CostEstimate:
        """The estimate for `requests` of this batch's requests at its average request: what a
        follow-up batch of only the failed requests is expected to cost."""
        if not self.requests or requests == self.requests:
            return self
        f = requests / self.requests
        return replace(self, requests=requests, input_tokens=round(self.input_tokens * f),
                       max_output_tokens=None if self.max_output_tokens is None
                       else round(self.max_output_tokens * f),
                       low=self.low * f, high=None if self.high is None else self.high * f)

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "requests": self.requests,
                "input_tokens": self.input_tokens, "max_output_tokens": self.max_output_tokens,
                "low": round(self.low, 6), "high": None if self.high is None
                else round(self.high, 6), "currency": self.currency,
                "prices_as_of": self.prices_as_of,
                "input_counted_by": "provider" if self.counted else "estimate",
                "notes": list(self.notes)}



def estimate_cost(table: PriceTable, model: str, tokens: TokenEstimate) -> CostEstimate | None:
    """The cost range of sending a batch; None when the model has no price."""
    price = table.lookup(model)
    if price is None:
        return None
    notes = []
    long = price.long_context is not None and tokens.largest_request > LONG_PROMPT_TOKENS
    if long:
        notes.append(f"a request is over {LONG_PROMPT_TOKENS:,} input tokens: the upper bound "
                     "uses the long-context price for the whole batch")
    if tokens.media_parts:
        notes.append(f"{tokens.media_parts} media part(s) counted at a flat rate; "
                     "--count-tokens counts them exactly")
    high = None
    if tokens.max_output_tokens is not None:
        high = price.batch(tokens.input_tokens, tokens.max_output_tokens, long=long)
    return CostEstimate(model, tokens.requests, tokens.input_tokens, tokens.max_output_tokens,
                        price.batch(tokens.input_tokens, 0), high, table.currency, price.as_of,
                        tokens.counted, tuple(notes), tokens.bound_setting)


def actual_cost(table: PriceTable, model: str, usage: Usage) -> float | None:
    """What recorded usage cost at the batch price; None when the model has no price."""
    price = table.lookup(model)
    if price is None:
        return None
    u = usage
    return (price.batch(u.input_tokens - u.long_input_tokens,
                        u.output_tokens - u.long_output_tokens,
                        cached=u.cached_input_tokens - u.long_cached_input_tokens,
                        written=u.cache_write_tokens - u.long_cache_write_tokens)
            + price.batch(u.long_input_tokens, u.long_output_tokens,
                          cached=u.long_cached_input_tokens, written=u.long_cache_write_tokens,
                          long=True))


def spent(table: PriceTable, model: str, usage: Usage) -> Spent:
    """The record of a finished batch: its usage, priced now."""
    price = table.lookup(model)
    return Spent(usage, actual_cost(table, model, usage), table.currency,
                 price.as_of if price is not None else "")


def budget_refusals(costs: Mapping[str, CostEstimate | None], budgets: Mapping[str, float],
                    max_cost: float | None) -> list[str]:
    """Why `apply` must not send, one line per reason, naming the batch; empty when it may.

    `costs` holds the batches about to be submitted. A budget is a promise not to spend more,
    so it is checked against the upper bound; a batch without one (no output limit) or
    without a price cannot be checked and is refused with what to do about it."""
    out = []
    for name, budget in sorted(budgets.items()):
        if name not in costs:
            continue
        cost = costs[name]
        if cost is None:
            out.append(f"{name}: its model has no price in the price table, so spec.budget "
                       f"cannot be checked; add the model to {PRICES_FILE}")
        elif cost.high is None:
            out.append(f"{name}: spec.budget is {money(budget, cost.currency)} but the cost has "
                       f"no upper bound; set {cost.bound_setting or 'an output limit'}")
        elif cost.high > budget:
            out.append(f"{name}: may cost up to {money(cost.high, cost.currency)}, over its "
                       f"spec.budget of {money(budget, cost.currency)}")
    if max_cost is not None and costs:
        unpriced = sorted(n for n, c in costs.items() if c is None)
        unbounded = sorted(n for n, c in costs.items() if c is not None and c.high is None)
        if unpriced or unbounded:
            out.extend(f"{n}: --max-cost cannot be checked: its model has no price" for n in
                       unpriced)
            out.extend(f"{n}: --max-cost cannot be checked: no upper bound; set "
                       f"{c.bound_setting or 'an output limit'}" for n, c in sorted(costs.items())
                       if c is not None and c.high is None)
        else:
            highs = {n: c.high for n, c in costs.items() if c is not None and c.high is not None}
            currency = next(c.currency for c in costs.values() if c is not None)
            total = sum(highs.values())
            if total > max_cost:
                each = ", ".join(f"{n} {money(h, currency)}" for n, h in
                                 sorted(highs.items(), key=lambda kv: -kv[1]))
                out.append(f"the batches to submit may cost up to {money(total, currency)} "
                           f"({each}), over --max-cost {money(max_cost, currency)}")
    return out


def money(amount: float, currency: str = "USD") -> str:
    """An amount for people: cents from a unit up, four decimals below, `<$0.0001` for dust."""
    number = "0.0001" if 0 < amount < 0.00005 else f"{amount:,.{2 if amount >= 1 else 4}f}"
    dust = "<" if 0 < amount < 0.00005 else ""
    return f"{dust}${number}" if currency == "USD" else f"{dust}{number} {currency}"
