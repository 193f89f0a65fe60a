"""What the planned submissions will cost, and whether a budget allows them."""

from __future__ import annotations

from collections.abc import Callable

from .actions import SUBMITS, Plan
from .errors import BudgetError
from .manifest import Manifest
from .pricing import CostEstimate, budget_refusals, estimate_cost, load_prices
from .providers.registry import dialect_of
from .render import Renderer
from .stream import Streams
from .tokens import TokenCounter, TokenEstimate, estimate_requests
from .workspace import Workspace

Costs = dict[str, "CostEstimate | None"]


def plan_costs(ws: Workspace, plan: Plan,
               counter_for: Callable[[Manifest], TokenCounter] | None = None,
               streams: Streams | None = None) -> Costs:
    """The cost range of each batch the plan submits (None: its model has no price). A
    follow-up batch of failures, or the shards of a split batch to be submitted, are priced at
    their share of the whole batch's requests.
    `counter_for(manifest)` counts a request's input tokens exactly (the provider's countTokens)
    instead of the offline estimate; otherwise the tokens come from `streams`, the run's one
    rendering of each manifest, when given."""
    table = load_prices(ws.directory)
    costs: Costs = {}
    for action in plan.actions:
        if action.kind not in SUBMITS:
            continue
        m = ws.manifest(action.name)
        if counter_for is not None:
            tokens = estimate_manifest(m, counter_for(m))
        elif streams is not None and (tally := streams.of(m).rendered.tokens) is not None:
            tokens = tally
        else:
            tokens = estimate_manifest(m)
        estimate = estimate_cost(table, m.model, tokens)
        if estimate is not None:    # a follow-up of failures, or some shards of a batch
            estimate = estimate.share(action.requests)
        costs[action.name] = estimate
    return costs


def estimate_manifest(manifest: Manifest, count: TokenCounter | None = None) -> TokenEstimate:
    """Renders the manifest's rows as a stream and tallies each request as it comes, by its
    provider's reading of a request (runner.tokens)."""
    return estimate_requests(dialect_of(manifest),
                             (req.request for req in Renderer(manifest).requests()), count,
                             manifest.endpoint)


def check_budgets(ws: Workspace, plan: Plan, max_cost: float | None,
                  streams: Streams | None = None) -> Costs:
    """Refuses, naming the batch, before anything is sent; estimates only when a budget is set."""
    budgets = {m.name: m.budget for m in ws.manifests if m.budget is not None}
    if not budgets and max_cost is None:
        return {}
    costs = plan_costs(ws, plan, streams=streams)
    refusals = budget_refusals(costs, budgets, max_cost)
    if refusals:
        raise BudgetError("; ".join(refusals) + "; nothing was sent")
    return costs
