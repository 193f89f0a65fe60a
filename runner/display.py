"""Everything the terminal shows: plans, status tables, JSON for machines, and the markdown
summary a pull request carries.

A plan may come with cost estimates (`costs`: batch name -> CostEstimate, or None when the
model has no price). Only actions that submit a batch are charged: adopting, waiting and
downloading spend nothing new, so their estimates are not shown even when given. For a retry
(a follow-up of only the failed requests) the caller passes the estimate's `share`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .actions import SUBMITS, Action, Kind, Plan
from .pricing import CostEstimate, Spent, money
from .status import BatchStatus

# 2: each action is Action.to_dict (`kind`, `job` as an object, `parts`); 1 said `action`,
# `job` as a name and `shards`
PLAN_FORMAT = 2

Costs = Mapping[str, CostEstimate | None]

# How many unchanged batches a markdown plan names before it only counts them.
UNCHANGED_NAMED = 20


@dataclass(frozen=True)
class CostTotal:
    """The cost of every submission in a plan. `high` is None when a batch has no upper bound
    or no price; `unpriced` names the batches left out of `low` for want of a price."""

    low: float
    high: float | None
    currency: str
    unpriced: tuple[str, ...]
    submits: int


def _charged(plan: Plan, costs: Costs) -> list[Action]:
    return [a for a in plan.actions if a.kind in SUBMITS and a.name in costs]


def cost_total(plan: Plan, costs: Costs) -> CostTotal:
    charged = _charged(plan, costs)
    known = [c for a in charged if (c := costs[a.name]) is not None]
    unpriced = tuple(a.name for a in charged if costs[a.name] is None)
    highs = [c.high for c in known]
    high = None if unpriced or None in highs else sum(h for h in highs if h is not None)
    currency = known[0].currency if known else "USD"
    return CostTotal(sum(c.low for c in known), high, currency, unpriced, len(charged))


def cost_range(cost: CostEstimate | None) -> str:
    """`$0.0012 – $0.0150`; `≥ $0.0012` without an upper bound; `unknown` without a price."""
    if cost is None:
        return "unknown"
    return _range(cost.low, cost.high, cost.currency)


def _range(low: float, high: float | None, currency: str) -> str:
    """A range of costs; amounts under a hundredth of a cent (`<$0.0001`) are said once, not
    as `≥ <$0.0001` or `<$0.0001 – <$0.0001`."""
    if high is None:
        return f"input {money(low, currency)}, output unbounded" if _dust(low) \
            else f"≥ {money(low, currency)}"
    if _dust(high):
        return money(high, currency)
    return f"{money(low, currency)} – {money(high, currency)}"


def _dust(amount: float) -> bool:
    return 0 < amount < 0.00005


def _total_range(total: CostTotal) -> str:
    text = _range(total.low, total.high, total.currency)
    return text + (f" + {len(total.unpriced)} unpriced" if total.unpriced else "")


def cost_warnings(plan: Plan, costs: Costs) -> list[str]:
    """What a reader must know to trust the estimate: missing prices, missing bounds, caveats."""
    out = []
    for a in _charged(plan, costs):
        cost = costs[a.name]
        if cost is None:
            out.append(f"{a.name}: no price for its model in the price table; add it to "
                       "prices.json beside the manifests")
            continue
        if cost.high is None:
            out.append(f"{a.name}: no {cost.bound_setting or 'output limit'}, so the cost has no "
                       "upper bound")
        out.extend(f"{a.name}: {note}" for note in cost.notes)
    return out


def _estimate_note(plan: Plan, costs: Costs) -> str:
    known = [c for a in _charged(plan, costs) if (c := costs[a.name]) is not None]
    dates = sorted({c.prices_as_of for c in known if c.prices_as_of})
    when = f" (prices as of {', '.join(dates)})" if dates else ""
    if known and all(c.counted for c in known):
        method = "input tokens counted by the provider's countTokens"
    else:
        method = ("input tokens estimated offline (about 4 characters a token for Latin text, "
                  "one a character for CJK, a flat figure for a media part); --count-tokens asks "
                  "the provider instead")
    return (f"Cost at the batch price{when}; {method}. The low figure pays for input only, the "
            "high one for every request writing all the output its limit allows (thinking "
            "included).")


def plan_text(plan: Plan, directory: str, costs: Costs | None = None) -> str:
    lines = [f"batch-runner plan for {directory}", ""]
    shown = [a for a in plan.actions if a.kind != Kind.NOTHING]
    width = max((len(a.name) for a in plan.actions), default=0)
    charged = {a.name for a in _charged(plan, costs)} if costs is not None else set()
    counts = {a.name: _count(a) for a in shown}
    room = max(16, *map(len, counts.values())) if counts else 16
    for a in shown:
        price = ""
        if costs is not None:
            price = f"{cost_range(costs[a.name]) if a.name in charged else '':<20}  "
        lines.append(f"  {a.symbol:>3} {a.name:<{width}}  {a.kind.value:<8}  "
                     f"{counts[a.name]:<{room}}  {price}{a.reason}")
    unchanged = len(plan.actions) - len(shown)
    if not shown:
        lines.append("  No changes. Outputs are up to date with the manifests.")
    elif unchanged:
        lines.append(f"      ({unchanged} unchanged)")
    lines += ["", plan.summary()]
    if costs is not None and charged:
        lines += [f"Estimated cost of the submissions: {_total_range(cost_total(plan, costs))}.",
                  _estimate_note(plan, costs)]
    lines += [f"warning: {w}" for w in plan.warnings]
    if costs is not None:
        lines += [f"warning: {w}" for w in cost_warnings(plan, costs)]
    return "\n".join(lines)


def _count(a: Action) -> str:
    """`12 requests`; `1 to send, 99,999 reused` for a batch that reuses stored results."""
    if a.reused:
        return f"{a.requests:,} to send, {a.reused:,} reused"
    return f"{a.requests} requests" if a.requests else ""


def plan_json(plan: Plan, costs: Costs | None = None) -> str:
    """The plan for machines: each action as `Action.to_dict` makes it, the library's names.
    With `costs`, each action carries `estimated_cost` (null for an action that submits
    nothing or a model without a price) and the plan a total."""
    actions = []
    for a in plan.actions:
        item = a.to_dict()
        if costs is not None:
            cost = costs.get(a.name) if a.kind in SUBMITS else None
            item["estimated_cost"] = cost.to_dict() if cost is not None else None
        actions.append(item)
    doc: dict[str, Any] = {
        "format_version": PLAN_FORMAT,
        "changes": bool(plan.changes),
        "actions": actions,
        "summary": plan.summary(),
        "warnings": list(plan.warnings) + (cost_warnings(plan, costs) if costs is not None
                                           else []),
    }
    if costs is not None:
        total = cost_total(plan, costs)
        doc["estimated_cost"] = {"low": round(total.low, 6), "high": None if total.high is None
                                 else round(total.high, 6), "currency": total.currency,
                                 "unpriced": list(total.unpriced)}
    return json.dumps(doc, indent=2)


def plan_markdown(plan: Plan, directory: str, costs: Costs | None = None) -> str:
    """A review-ready summary for a pull request comment (GitHub-flavoured markdown): the
    changes with their reasons, request counts and estimated cost, the total, the warnings and
    how the estimate was made. Text from manifests and the provider is escaped."""
    lines = [f"### batch-runner plan for `{_code(directory)}`", "",
             f"**{_md(plan.summary())}**", ""]
    shown = [a for a in plan.actions if a.kind != Kind.NOTHING]
    unchanged = [a.name for a in plan.actions if a.kind == Kind.NOTHING]
    priced = costs is not None
    charged = {a.name for a in _charged(plan, costs)} if costs is not None else set()
    if not shown:
        lines.append("No changes. Outputs are up to date with the manifests.")
    else:
        head = ["", "action", "batch", "requests", "reason"] + (["estimated cost"] if priced
                                                                 else [])
        align = [":-:", "---", "---", "--:", "---"] + (["--:"] if priced else [])
        lines += [_row(head), _row(align)]
        for a in shown:
            cells = [f"`{a.symbol}`", a.kind.value, f"`{a.name}`", _count(a).removesuffix(
                " requests"), _md(a.reason)]
            if costs is not None:
                cells.append(_md(cost_range(costs[a.name])) if a.name in charged else "–")
            lines.append(_row(cells))
        if costs is not None and charged:
            total = cost_total(plan, costs)
            requests = sum(a.requests for a in shown if a.kind in SUBMITS)
            lines.append(_row(["", "**to submit**", f"{total.submits} batch(es)",
                               f"**{requests}**", "", f"**{_md(_total_range(total))}**"]))
    if unchanged:
        named = ", ".join(f"`{n}`" for n in unchanged[:UNCHANGED_NAMED])
        more = len(unchanged) - UNCHANGED_NAMED
        lines += ["", f"Unchanged ({len(unchanged)}): {named}"
                  + (f" and {more} more" if more > 0 else "") + "."]
    warnings = list(plan.warnings) + (cost_warnings(plan, costs) if costs is not None else [])
    if warnings:
        lines += ["", "**Warnings**", ""] + [f"- {_md(w)}" for w in warnings]
    if costs is not None and charged:
        lines += ["", f"<sub>{_md(_estimate_note(plan, costs))}</sub>"]
    return "\n".join(lines) + "\n"


_MD_SPECIAL = {c: "\\" + c for c in "\\`*_[]|"}
_MD_SPECIAL.update({"<": "&lt;", ">": "&gt;", "&": "&amp;", "\n": " ", "\r": " "})


def _md(text: str) -> str:
    """Text as it reads, inside a table cell or a list item: nothing in it is markup."""
    return "".join(_MD_SPECIAL.get(c, c) for c in text)


def _code(text: str) -> str:
    """Text inside a code span: backticks cannot be escaped there, so they are dropped."""
    return text.replace("`", "'").replace("|", "\\|")


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def status_text(rows: Sequence[BatchStatus], spent: Mapping[str, Spent] | None = None) -> str:
    """One line per batch, on both axes (sync, health), with why it is out of sync. With
    `spent` (batch name -> what its finished jobs used), the tokens and cost too."""
    if not rows:
        return "No batches declared."
    spent = spent or {}
    head = ["NAME", "SYNC", "HEALTH", "RECORDED", "REMOTE", "REQUESTS", "OK", "FAILED"]
    head += ["TOKENS IN/OUT", "COST"] if spent else []
    head += ["JOB", "REASON"]
    body = []
    for r in rows:
        line = [r.name, r.sync.value, r.health.value, r.recorded or "-", r.remote or "-",
                str(r.requests), _s(r.succeeded), _s(r.failed)]
        if spent:
            used = spent.get(r.name)
            line += ["-", "-"] if used is None else [
                f"{used.usage.input_tokens:,} / {used.usage.output_tokens:,}",
                "unknown" if used.cost is None else money(used.cost, used.currency)]
        body.append(line + [r.job or "-", r.reason])
    widths = [max(len(x) for x in col) for col in zip(head, *body)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip()
                     for row in [head, *body])


def _s(v: object) -> str:
    return "-" if v is None else str(v)
