"""What plans look like: the terminal text, JSON for machines, markdown for pull requests."""

from __future__ import annotations

import json
import re
from dataclasses import fields
from typing import Any

import pytest

from runner.actions import Action, Kind, Plan
from runner.display import cost_range, cost_total, plan_json, plan_markdown, plan_text, status_text
from runner.pricing import CostEstimate, Spent, Usage
from runner.providers.base import JobState, RemoteJob
from runner.status import BatchStatus, Health, Sync

H = "a" * 64


def cost(low: float, high: float | None, *, counted: bool = False,
         notes: tuple[str, ...] = ()) -> CostEstimate:
    return CostEstimate("gemini-2.5-flash", 5, 1000, None if high is None else 640, low, high,
                        "USD", "2026-11-23", counted, notes, "generationConfig.maxOutputTokens")


def sample() -> Plan:
    return Plan((
        Action(Kind.REPLACE, "product-summaries", "row data changed | <b>x</b>", 5, H),
        Action(Kind.CREATE, "new-one", "new batch", 3, H),
        Action(Kind.DOWNLOAD, "review-sentiment", "output missing: results/review_s.csv", 4, H),
        Action(Kind.NOTHING, "translations", "up to date", 2, H),
    ), ("--resubmit x: no such batch",))


def cells(row: str) -> list[str]:
    """The cells of a markdown table row, split at pipes that are not escaped."""
    return [c.strip() for c in re.split(r"(?<!\\)\|", row)[1:-1]]


def test_plan_text_without_costs_is_unchanged() -> None:
    assert plan_text(sample(), "batches.d/") == """\
batch-runner plan for batches.d/

  -/+ product-summaries  replace   5 requests        row data changed | <b>x</b>
    + new-one            create    3 requests        new batch
    ~ review-sentiment   download  4 requests        output missing: results/review_s.csv
      (1 unchanged)

Plan: 2 to submit (1 replacing), 0 to adopt, 0 in flight, 1 to download, 1 unchanged.
warning: --resubmit x: no such batch"""


def test_plan_text_with_costs_prices_only_submissions() -> None:
    costs = {"product-summaries": cost(0.0015, 0.0095), "new-one": cost(0.25, None),
             "review-sentiment": cost(1, 2)}
    lines = plan_text(sample(), "batches.d/", costs).splitlines()
    assert re.split(r"\s{2,}", lines[2].strip()) == [
        "-/+ product-summaries", "replace", "5 requests", "$0.0015 – $0.0095",
        "row data changed | <b>x</b>"]
    assert "≥ $0.2500" in lines[3]
    assert "$1.00" not in lines[4]           # downloading costs nothing new
    assert "Estimated cost of the submissions: ≥ $0.2515." in lines
    assert lines[-1] == ("warning: new-one: no generationConfig.maxOutputTokens, so the cost "
                         "has no upper bound")


def test_cost_total_sums_submissions_and_tracks_what_it_cannot_bound() -> None:
    plan = sample()
    total = cost_total(plan, {"product-summaries": cost(0.5, 1.0), "new-one": cost(0.25, 0.5),
                              "review-sentiment": cost(7, 9)})
    assert (total.low, total.high, total.unpriced, total.submits) == (0.75, 1.5, (), 2)
    unpriced = cost_total(plan, {"product-summaries": cost(0.5, 1.0), "new-one": None})
    assert (unpriced.low, unpriced.high, unpriced.unpriced) == (0.5, None, ("new-one",))
    assert cost_total(plan, {}).submits == 0


def test_plan_markdown_is_a_review_ready_table() -> None:
    costs = {"product-summaries": cost(0.0015, 0.0095), "new-one": None,
             "review-sentiment": cost(1, 2)}
    assert plan_markdown(sample(), "batches.d/", costs) == """\
### batch-runner plan for `batches.d/`

**Plan: 2 to submit (1 replacing), 0 to adopt, 0 in flight, 1 to download, 1 unchanged.**

|  | action | batch | requests | reason | estimated cost |
| :-: | --- | --- | --: | --- | --: |
| `-/+` | replace | `product-summaries` | 5 | row data changed \\| &lt;b&gt;x&lt;/b&gt; | $0.0015 – $0.0095 |
| `+` | create | `new-one` | 3 | new batch | unknown |
| `~` | download | `review-sentiment` | 4 | output missing: results/review\\_s.csv | – |
|  | **to submit** | 2 batch(es) | **8** |  | **≥ $0.0015 + 1 unpriced** |

Unchanged (1): `translations`.

**Warnings**

- --resubmit x: no such batch
- new-one: no price for its model in the price table; add it to prices.json beside the manifests

<sub>Cost at the batch price (prices as of 2026-11-23); input tokens estimated offline (about \
4 characters a token for Latin text, one a character for CJK, a flat figure for a media part); \
--count-tokens asks the provider instead. The low figure pays for input only, the high one for \
every request writing all the output its limit allows (thinking included).</sub>
"""


def test_every_markdown_row_has_as_many_cells_as_the_header() -> None:
    plan = Plan((Action(Kind.CREATE, "a", "x | y | z", 1, H),
                 Action(Kind.FAILED, "b", "job failed: bad `input` | see * and _", 1, H)))
    for costs in (None, {"a": cost(0.1, 0.2)}):
        rows = [line for line in plan_markdown(plan, "d", costs).splitlines()
                if line.startswith("|")]
        assert len(rows) == (4 if costs is None else 5)
        assert {len(cells(r)) for r in rows} == {5 if costs is None else 6}
        assert cells(rows[3])[4] == "job failed: bad \\`input\\` \\| see \\* and \\_"


def test_plan_markdown_without_changes_or_costs() -> None:
    plan = Plan(tuple(Action(Kind.NOTHING, f"b{i:02d}", "up to date", 1, H) for i in range(23)))
    text = plan_markdown(plan, "batches.d/")
    assert "No changes. Outputs are up to date with the manifests." in text
    assert "|" not in text and "<sub>" not in text and "Warnings" not in text
    assert "Unchanged (23): `b00`, `b01`," in text and "`b19` and 3 more." in text
    assert "`b20`" not in text


def test_plan_markdown_says_when_the_provider_counted_and_shows_notes() -> None:
    plan = Plan((Action(Kind.CREATE, "a", "new batch", 1, H),))
    text = plan_markdown(plan, "d", {"a": cost(0.1, 0.2, counted=True,
                                                notes=("1 media part(s) counted at a flat rate",))})
    assert "input tokens counted by the provider's countTokens" in text
    assert "- a: 1 media part(s) counted at a flat rate" in text
    assert "| **$0.1000 – $0.2000** |" in text


def test_plan_json_carries_estimated_cost_only_when_asked() -> None:
    plain = json.loads(plan_json(sample()))
    assert "estimated_cost" not in plain and all("estimated_cost" not in a
                                                   for a in plain["actions"])
    doc = json.loads(plan_json(sample(), {"product-summaries": cost(0.5, 1.0), "new-one": None,
                                          "review-sentiment": cost(1, 2)}))
    by_name = {a["name"]: a["estimated_cost"] for a in doc["actions"]}
    assert by_name["product-summaries"]["high"] == 1.0
    assert by_name["product-summaries"]["input_counted_by"] == "estimate"
    assert by_name["new-one"] is None and by_name["review-sentiment"] is None
    assert doc["estimated_cost"] == {"low": 0.5, "high": None, "currency": "USD",
                                     "unpriced": ["new-one"]}
    assert doc["warnings"][-1].startswith("new-one: no price")


def test_plan_json_is_the_librarys_action_under_its_own_names() -> None:
    """Format 2: each action is Action.to_dict, every field of Action under its own name
    (`kind`, `job` as the job's name and state, `parts` the same way), then its properties."""
    old = RemoteJob("batches/old", "split-aaaa", JobState.RUNNING, total=4)
    part = Action(Kind.REPLACE, "split", "shard 2 of 3: row data changed", 4, H,
                  display_name="split-bbbb", old_jobs=("batches/old",), part=1, attempt=2)
    split = Action(Kind.REPLACE, "split", "shard 2 of 3: row data changed", 4, H, parts=(part,))
    waiting = Action(Kind.WAIT, "w", "job running", 2, H, job=old)
    done = Action(Kind.NOTHING, "d", "up to date", 2, H, recorded="batches/done")
    doc = json.loads(plan_json(Plan((split, waiting, done))))
    assert doc["format_version"] == 2
    assert doc["actions"] == [split.to_dict(), waiting.to_dict(), done.to_dict()]
    names = {f.name for f in fields(Action)} | {"symbol", "job_name", "change"}
    [first, wait, nothing] = doc["actions"]
    assert set(first) == set(first["parts"][0]) == names
    assert first["kind"] == "replace" and first["symbol"] == "-/+" and first["change"] is True
    assert first["parts"] == [{
        "kind": "replace", "name": "split", "reason": "shard 2 of 3: row data changed",
        "requests": 4, "content_hash": H, "display_name": "split-bbbb", "job": None,
        "old_jobs": ["batches/old"], "attempt": 2, "retry": False, "part": 1, "parts": [],
        "recorded": None, "reused": 0, "symbol": "-/+", "job_name": None, "change": True}]
    assert wait["job"] == {"name": "batches/old", "state": "RUNNING"}
    assert wait["job_name"] == "batches/old"
    assert (nothing["job"], nothing["recorded"], nothing["job_name"], nothing["change"]) == (
        None, "batches/done", "batches/done", False)


def status(name: str, sync: Sync, health: Health, reason: str, **kw: Any) -> BatchStatus:
    fields: dict[str, Any] = {"recorded": "SUCCEEDED", "remote": None, "job": "batches/1",
                              "requests": 2, "succeeded": 2, "failed": 0}
    return BatchStatus(name, sync, health, reason, **{**fields, **kw})


def test_status_text_shows_both_axes_and_the_reason() -> None:
    rows = [status("tiny", Sync.OUT_OF_SYNC, Health.HEALTHY, "output missing: out/tiny.jsonl"),
            status("new", Sync.OUT_OF_SYNC, Health.MISSING, "new batch", recorded=None, job=None,
                   succeeded=None, failed=None)]
    assert status_text(rows) == """\
NAME  SYNC       HEALTH   RECORDED   REMOTE  REQUESTS  OK  FAILED  JOB        REASON
tiny  OutOfSync  Healthy  SUCCEEDED  -       2         2   0       batches/1  output missing: out/tiny.jsonl
new   OutOfSync  Missing  -          -       2         -   -       -          new batch"""
    assert status_text([]) == "No batches declared."


def test_status_text_shows_what_finished_batches_used_and_cost() -> None:
    rows = [status("tiny", Sync.SYNCED, Health.HEALTHY, "up to date"),
            status("odd", Sync.SYNCED, Health.HEALTHY, "up to date"),
            status("new", Sync.OUT_OF_SYNC, Health.MISSING, "new batch")]
    spent = {"tiny": Spent(Usage(12_345, 678), 0.0123, "USD", "2026-11-23"),
             "odd": Spent(Usage(10, 5), None)}
    lines = status_text(rows, spent).splitlines()
    assert re.split(r"\s{2,}", lines[0])[8:10] == ["TOKENS IN/OUT", "COST"]
    assert re.split(r"\s{2,}", lines[1])[8:10] == ["12,345 / 678", "$0.0123"]
    assert re.split(r"\s{2,}", lines[2])[8:10] == ["10 / 5", "unknown"]
    assert re.split(r"\s{2,}", lines[3])[8:10] == ["-", "-"]


@pytest.mark.parametrize("low, high, text", [
    (0.00001, 0.00002, "<$0.0001"),
    (0.00001, 0.5, "<$0.0001 – $0.5000"),
    (0.00001, None, "input <$0.0001, output unbounded"),
    (0.2, None, "≥ $0.2000"),
    (0.0012, 0.015, "$0.0012 – $0.0150")])
def test_a_cost_under_a_hundredth_of_a_cent_is_said_once(low: float, high: float | None,
                                                         text: str) -> None:
    assert cost_range(cost(low, high)) == text
