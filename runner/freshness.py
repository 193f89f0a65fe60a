"""Whether a batch's record still holds for its manifest and outputs, and if not, why.

The reasons are the ones a plan shows for a changed batch. The same answers decide, before
planning, whether the provider must be asked about a batch at all (runner.workspace.observe):
an unchanged plan makes no call.
"""

from __future__ import annotations

from .providers.base import JobState
from .records import LockEntry, Part, Retry
from .states import Desired, Observed


def change_reason(entry: LockEntry, want: Desired) -> str:
    """Says which input moved the content hash, as precisely as the recorded parts allow."""
    reasons = []
    if entry.model != want.model:
        reasons.append(f"model changed ({entry.model} -> {want.model})")
    if entry.provider != want.provider:
        reasons.append(f"provider changed ({entry.provider} -> {want.provider})")
    old, new = entry.inputs, want.inputs
    if old.get("rows") != new.get("rows"):
        reasons.append("row data changed" if "rows" in new else "inline items changed")
    if old.get("templates") != new.get("templates"):
        reasons.append("included templates changed")
    if old.get("manifest") != new.get("manifest") and not reasons:
        reasons.append("manifest changed")
    return ", ".join(reasons) or "rendered requests changed"


def outputs_reason(entry: LockEntry, want: Desired) -> str | None:
    """Why the outputs no longer match the record (changed requests, a file missing, edited or
    not recorded, outputs declared otherwise), or None when they do."""
    if entry.content_hash != want.content_hash:     # shards dropped: their rows are gone
        return change_reason(entry, want)
    for path, actual in want.outputs.items():
        if actual is None:
            return f"output missing: {path}"
        recorded = entry.outputs.get(path)
        if recorded is None:
            return f"output not recorded: {path}"
        if recorded != actual:
            return f"output modified: {path}"
    if entry.outputs_hash != want.outputs_hash:
        return "output declaration changed"
    return None


def needs_remote(entry: LockEntry | None, want: Desired,
                 stored: frozenset[str] = frozenset()) -> bool:
    """Whether planning this batch needs the provider's view: not when it succeeded with
    unchanged content and intact outputs, so an unchanged plan makes no call at all; nor
    when its outputs are restored from the result store, which holds every pack of it
    (`stored`: the packs the store holds): a fresh clone whose jobs the provider deleted
    restores them without a call."""
    return not (entry is not None and entry.content_hash == want.content_hash and entry.settled
                and entry.open_retry is None and (outputs_reason(entry, want) is None
                                                  or restorable(entry, stored)))


def restorable(entry: LockEntry, stored: frozenset[str]) -> bool:
    """Whether the record's outputs can be written again from the result store alone: its
    packs hold the results of every job of it (no job's came in since they were written),
    or it had no job (every request reused), and the store holds each of them and of the
    packs of the results it reused (`stored`; its own packs do not hold those: see
    runner.outputs.write_outputs). Their bytes are checked when they are read; one found
    damaged then is fetched from the provider after all (runner.apply.collect)."""
    return (bool(entry.packs) or (entry.reused > 0 and entry.reused == entry.requests)) \
        and not entry.packs_jobs and stored.issuperset((*entry.packs, *entry.reuse_packs))


def needs_tag_search(entry: LockEntry | None, want: Desired) -> bool:
    """Whether the batch may need creating or adopting, i.e. finding a job by its tag."""
    retry = entry.open_retry if entry is not None else None
    return (entry is None or entry.content_hash != want.content_hash
            or any(p.job is None or p.state == JobState.CREATING for p in entry.parts())
            or (retry is not None and retry.state == JobState.CREATING))


def superseded(entry: LockEntry, want: Desired, observed: Observed) -> tuple[str, ...]:
    """Live jobs the lockfile records for requests no longer wanted, to cancel."""
    if entry.content_hash == want.content_hash:
        return ()
    wanted = {s.content_hash for s in want.parts}
    records: list[Part | Retry] = [p for p in entry.parts() if p.content_hash not in wanted]
    if entry.open_retry is not None:
        records.append(entry.open_retry)
    live = [r.job for r in records if r.job and (j := observed.jobs.get(r.job)) is not None
            and not j.state.terminal]
    return tuple(dict.fromkeys(live))
