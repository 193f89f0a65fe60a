"""Everything the terminal shows: plans, status tables, JSON for machines."""

from __future__ import annotations

import json
from typing import Any

from .plan import CHANGES, Kind, Plan
from .providers.base import RemoteJob
from .workspace import Workspace

PLAN_FORMAT = 1


def plan_text(plan: Plan, directory: str) -> str:
    lines = [f"batch-runner plan for {directory}", ""]
    shown = [a for a in plan.actions if a.kind != Kind.NOTHING]
    width = max((len(a.name) for a in plan.actions), default=0)
    for a in plan.actions:
        if a.kind == Kind.NOTHING:
            continue
        count = f"{a.requests} requests" if a.requests else ""
        lines.append(f"  {a.symbol:>3} {a.name:<{width}}  {a.kind.value:<8}  {count:<16}  "
                     f"{a.reason}")
    unchanged = len(plan.actions) - len(shown)
    if not shown:
        lines.append("  No changes. Outputs are up to date with the manifests.")
    elif unchanged:
        lines.append(f"      ({unchanged} unchanged)")
    lines += ["", plan.summary()]
    lines += [f"warning: {w}" for w in plan.warnings]
    return "\n".join(lines)


def plan_json(plan: Plan) -> str:
    doc: dict[str, Any] = {
        "format_version": PLAN_FORMAT,
        "changes": bool(plan.changes),
        "actions": [{
            "name": a.name, "action": a.kind.value, "symbol": a.symbol, "reason": a.reason,
            "requests": a.requests, "content_hash": a.content_hash,
            "display_name": a.display_name, "job": a.job.name if a.job else None,
            "change": a.kind in CHANGES,
        } for a in plan.actions],
        "summary": plan.summary(),
        "warnings": list(plan.warnings),
    }
    return json.dumps(doc, indent=2)


def status_rows(ws: Workspace, remote: dict[str, RemoteJob | None]) -> list[dict[str, Any]]:
    rows = []
    names = [m.name for m in ws.manifests] + sorted(set(ws.lock.batches) -
                                                    {m.name for m in ws.manifests})
    for name in names:
        entry = ws.lock.batches.get(name)
        job = remote.get(entry.job) if entry and entry.job else None
        rows.append({
            "name": name,
            "recorded": entry.state if entry else "not submitted",
            "remote": (job.state.value if job else ("gone" if entry and entry.job else "-")),
            "job": entry.job if entry else None,
            "requests": entry.requests if entry else None,
            "succeeded": (entry.counts.get("succeeded") if entry and entry.counts
                          else (job.succeeded if job else None)),
            "failed": (entry.counts.get("failed") if entry and entry.counts
                       else (job.failed if job else None)),
            "manifest": "present" if name in {m.name for m in ws.manifests} else "removed",
        })
    return rows


def status_text(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "No batches declared."
    head = ["NAME", "RECORDED", "REMOTE", "REQUESTS", "OK", "FAILED", "JOB"]
    body = [[r["name"], r["recorded"], r["remote"], _s(r["requests"]), _s(r["succeeded"]),
             _s(r["failed"]), r["job"] or "-"] for r in rows]
    widths = [max(len(x) for x in col) for col in zip(head, *body)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip()
                     for row in [head, *body])


def _s(v: object) -> str:
    return "-" if v is None else str(v)
