"""Reconciliation: what must happen to bring the outputs in line with the manifests.

`plan()` is a pure function of the desired state (manifests, hashed), the lockfile and what the
provider reports. It does no I/O, so every row of the reconcile table is a plain unit test.

This module holds the table itself: one action per batch, from its record's jobs, their shards
and their results. What it is built from lives beside it: the inputs (runner.states), what it
makes (runner.actions, which also sums a split batch's shards' actions up), job tags and
attempts (runner.tags), whether a named job is the record's own (runner.ownership), failed
requests and their follow-ups (runner.failures) and whether a record still holds, and which of
its jobs are superseded (runner.freshness).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from .actions import Action, Kind, Plan, gather
from .failures import for_retry, too_many_failures
from .freshness import change_reason, outputs_reason, restorable, superseded
from .lockfile import Lock
from .ownership import disown, misdated
from .providers import registry
from .providers.base import JobState
from .records import CANCELLED_BY_USER, LockEntry, Part, Retry
from .shards import ShardHash
from .states import Desired, Observed
from .tags import RANK, attempt_of, best, display_name, twins


def _for_part(name: str, part: Part, observed: Observed, max_attempts: int,
              resubmit_asked: bool, settled: bool, expiry: str) -> Action | None:
    """The action for a recorded job with the wanted content; None once its results are in.
    Until the batch is `settled` (every part's results in), a part whose results are in
    still needs its job: the outputs are written from every part's results."""
    attempt = max(part.attempts, 1)
    base: dict[str, Any] = dict(name=name, requests=part.requests, content_hash=part.content_hash,
                attempt=attempt)
    if part.job is None and part.error == CANCELLED_BY_USER:    # cancelled while queued
        if resubmit_asked:
            return Action(Kind.CREATE, reason=f"{CANCELLED_BY_USER} before it was submitted; "
                          "submitting as asked", display_name=display_name(
                              name, part.content_hash, attempt), **base)
        return Action(Kind.FAILED, reason=f"{CANCELLED_BY_USER} before it was submitted; "
                      f"apply --resubmit {name} submits it", **base)
    if part.state == JobState.CREATING or part.job is None:
        tag = display_name(name, part.content_hash, attempt)
        tagged = observed.tagged(tag)
        if tagged is not None:
            return Action(Kind.ADOPT, reason="an interrupted run created it", display_name=tag,
                          job=tagged, **base)
        return Action(Kind.CREATE, reason="an interrupted run did not submit it",
                      display_name=tag, **base)
    resubmit: dict[str, Any] = dict(base, attempt=attempt + 1,
                    display_name=display_name(name, part.content_hash, attempt + 1))
    if part.state == JobState.SUCCEEDED:
        if settled or part.job in observed.jobs:
            return None
        return _lost(name, "its job succeeded, then was deleted on the provider, and its "
                     "results are needed for the outputs", resubmit_asked, resubmit)
    job = observed.jobs.get(part.job)
    if job is None:
        return Action(Kind.RESUBMIT, reason="job deleted on the provider before its results "
                      "were saved", **resubmit)
    state = job.state
    if state in (JobState.PENDING, JobState.RUNNING):
        return Action(Kind.WAIT, reason=f"job {state.value.lower()}", job=job, **base)
    if state == JobState.SUCCEEDED:
        return Action(Kind.DOWNLOAD, reason="job succeeded, results not yet saved", job=job,
                      **base)
    if state == JobState.EXPIRED:
        if attempt >= max_attempts:
            return Action(Kind.FAILED, reason=f"job expired {attempt} times; giving up "
                          "(raise --max-attempts to try again)", job=job, **base)
        return Action(Kind.RESUBMIT, reason=f"job expired ({expiry} without finishing)",
                      **resubmit)
    if state == JobState.CANCELLED and part.error != CANCELLED_BY_USER:
        # two runs that created the same job at once each keep the same one and cancel the
        # other (see `twins`): the run whose job was cancelled takes the one kept
        keep, _ = twins(observed.jobs.values(), part.display_name)
        if keep is not None:
            return Action(Kind.ADOPT, name, f"{job.name} was cancelled by another run that "
                          f"created the same job, which kept {keep.name}", part.requests,
                          part.content_hash, keep.display_name, keep, attempt=attempt)
    if state == JobState.CANCELLED and part.error == CANCELLED_BY_USER:
        why = CANCELLED_BY_USER
    elif state == JobState.CANCELLED:
        why = "job was cancelled outside the runner (drift)"
    else:
        why = f"job failed: {job.error or 'no error given'}"
    if resubmit_asked:
        return Action(Kind.RESUBMIT, reason=f"{why}; resubmitting as asked", **resubmit)
    return Action(Kind.FAILED, reason=f"{why}; apply --resubmit {name} submits it again",
                  job=job, **base)


def _lost(name: str, why: str, resubmit_asked: bool, resubmit: dict[str, Any]) -> Action:
    """Results that were received once and are gone: they were paid for, so they are paid
    for again only when asked."""
    if resubmit_asked:
        return Action(Kind.RESUBMIT, reason=f"{why}; resubmitting as asked", **resubmit)
    return Action(Kind.LOST, reason=f"{why}; apply --resubmit {name} pays for it again",
                  **{k: v for k, v in resubmit.items() if k != "display_name"})


def _for_settled(want: Desired, entry: LockEntry, observed: Observed,
                 resubmit_asked: bool, max_attempts: int, stored: frozenset[str]) -> list[Action]:
    """Every job's results are in: the outputs, follow-ups of failures, or nothing to do.
    Rewriting outputs needs every part's results: from the result store when it holds every
    pack the record names (`stored`), else from the provider; results gone from both were
    paid for, so they are lost until asked for again."""
    parts = entry.parts()
    job = observed.jobs.get(parts[0].job or "") if len(parts) == 1 else None
    base: dict[str, Any] = dict(name=want.name, requests=want.requests,
                                content_hash=want.content_hash)
    why = outputs_reason(entry, want)
    same = entry.content_hash == want.content_hash
    retry = entry.open_retry
    # a follow-up not yet sent is made from the errors output: edited or lost, it is written
    # again from the results first (a download), and the follow-up planned after it
    if same and (why is None or (retry is not None and retry.job is not None)):
        follow_up = for_retry(want, entry, observed, max_attempts)
        if follow_up is not None:
            return [follow_up]
    if why is None:
        failures = too_many_failures(want, entry.counts.get("failed", 0)) \
            if entry.open_retry is None else None
        if failures is not None:
            return [Action(Kind.FAILED, reason=failures, job=job, **base)]
        if entry.spec_hash != want.spec_hash:
            return [Action(Kind.RECORD, reason="manifest edited, requests unchanged", job=job,
                           **base)]
        # a split batch's jobs are its shards': each named, for plan --json and the library
        shards = tuple(Action(Kind.NOTHING, want.name, "up to date", p.requests,
                              p.content_hash, part=i, recorded=p.job)
                       for i, p in enumerate(parts)) if entry.shards else ()
        return [Action(Kind.NOTHING, reason="up to date", job=job,
                       recorded=parts[0].job if len(parts) == 1 else None, parts=shards,
                       **base)]
    if same and restorable(entry, stored):
        return [Action(Kind.DOWNLOAD, reason=f"{why}; restored from the result store", job=job,
                       **base)]
    if entry.reused and not stored.issuperset(entry.reuse_packs):
        return [Action(Kind.LOST, reason=f"{why}, and the results of its {entry.reused} "
                       "requests reused from the result store are gone from it; point "
                       f"RUNNER_STORE at a store that holds them, or runner forget {want.name} "
                       "and apply to send them all again", **base)]
    wanted = {s.content_hash for s in want.parts}
    gone = [p for p in parts if p.content_hash in wanted and (
        (j := observed.jobs.get(p.job or "")) is None or j.state != JobState.SUCCEEDED)]
    if gone:
        return [_lost(want.name, f"{why}, and the job's results are gone from the provider",
                      resubmit_asked, dict(name=want.name, requests=p.requests,
                                           content_hash=p.content_hash,
                                           attempt=max(p.attempts, 1) + 1,
                                           display_name=display_name(
                                               want.name, p.content_hash,
                                               max(p.attempts, 1) + 1))) for p in gone]
    return [Action(Kind.DOWNLOAD, reason=why, job=job, **base)]


def _for_new_part(want: Desired, shard: ShardHash, entry: LockEntry | None, observed: Observed,
                  cancels: bool) -> Action:
    """Requests the lockfile does not record: adopt a job already submitted for them (one
    that succeeded or still runs), else submit them under the next unused attempt tag."""
    found = observed.attempts(want.name, shard.content_hash)
    usable = best([j for _, j in found if j.state in RANK])
    # the batch's action carries the jobs to cancel; its shards' reasons say so
    cancels_text = "; the old job is still running and will be cancelled" if cancels else ""
    base: dict[str, Any] = dict(name=want.name, requests=shard.requests,
                                content_hash=shard.content_hash)
    if usable is not None:
        attempt = attempt_of(want.name, shard.content_hash, usable.display_name) or 1
        return Action(Kind.ADOPT, reason=f"a job tagged {usable.display_name} already exists "
                      f"on the provider{cancels_text}", display_name=usable.display_name,
                      job=usable, attempt=attempt, **base)
    attempt = max((n for n, _ in found), default=0) + 1
    tag = display_name(want.name, shard.content_hash, attempt)
    if entry is None:
        reason = "new batch" if attempt == 1 else f"new batch (attempt {attempt}: earlier " \
            "jobs for the same requests ended without results)"
        return Action(Kind.CREATE, reason=reason, display_name=tag, attempt=attempt, **base)
    return Action(Kind.REPLACE, reason=change_reason(entry, want) + cancels_text,
                  display_name=tag, attempt=attempt, **base)


def _expiry(provider: str) -> str:
    """How long the provider lets a job run, as its dialect says it ("48 h")."""
    return registry.dialect(provider).expiry if provider in registry.PROVIDERS else \
        "its time limit"


def _for_batch(want: Desired, entry: LockEntry | None, observed: Observed, max_attempts: int,
               resubmit_asked: bool, stored: frozenset[str]) -> Action:
    """One action for the batch; for a split batch, one per shard to act on, gathered."""
    disowned = ""
    if entry is not None and not registry.dialect(want.provider).tags_jobs and \
            (why := misdated(entry, observed)) is not None:
        return Action(Kind.FAILED, want.name, why, want.requests, want.content_hash)
    if entry is not None:
        entry, disowned = disown(want, entry, observed)
    action = _for_records(want, entry, observed, max_attempts, resubmit_asked, stored)
    if disowned:
        action = dataclasses.replace(action, reason=f"{disowned}: {action.reason}")
    return action


def _for_records(want: Desired, entry: LockEntry | None, observed: Observed, max_attempts: int,
                 resubmit_asked: bool, stored: frozenset[str]) -> Action:
    action = _for_jobs(want, entry, observed, max_attempts, resubmit_asked, stored)
    if want.reused and (entry is None or entry.content_hash != want.content_hash):
        action = dataclasses.replace(action, reused=want.reused)
    return action


def _for_jobs(want: Desired, entry: LockEntry | None, observed: Observed, max_attempts: int,
              resubmit_asked: bool, stored: frozenset[str]) -> Action:
    if not want.parts and (entry is None or entry.content_hash != want.content_hash):
        # every request reused (rows removed, an edit reverted): no job, outputs rewritten
        why = "new batch" if entry is None else change_reason(entry, want)
        old_jobs = superseded(entry, want, observed) if entry is not None else ()
        return Action(Kind.DOWNLOAD, want.name, f"{why}; every result is in the result store",
                      0, want.content_hash, old_jobs=old_jobs)
    if entry is not None and entry.content_hash == want.content_hash:
        # the same requests: the recorded shards stand, even if the limits have moved since
        wanted = [ShardHash(p.content_hash, p.requests) for p in entry.parts()]
    else:
        wanted = list(want.parts)
    recorded = {p.content_hash: p for p in entry.parts()} if entry is not None else {}
    old_jobs = superseded(entry, want, observed) if entry is not None else ()
    settled = all((p := recorded.get(s.content_hash)) is not None and p.job is not None
                  and p.state == JobState.SUCCEEDED for s in wanted)
    actions: list[Action] = []
    for i, shard in enumerate(wanted):
        part = recorded.get(shard.content_hash)
        if part is None:
            action: Action | None = _for_new_part(want, shard, entry, observed,
                                                  bool(old_jobs))
        else:
            action = _for_part(want.name, part, observed, max_attempts, resubmit_asked,
                               settled, _expiry(want.provider))
        if action is not None:
            actions.append(dataclasses.replace(action, part=i))
    if not actions:
        assert entry is not None
        actions = [dataclasses.replace(a, part=None)
                   for a in _for_settled(want, entry, observed, resubmit_asked, max_attempts,
                                         stored)]
        if len(wanted) > 1 and actions[0].kind in (Kind.RESUBMIT, Kind.LOST):
            index = {s.content_hash: i for i, s in enumerate(wanted)}
            actions = [dataclasses.replace(a, part=index[a.content_hash or ""])
                       for a in actions]
    split = len(wanted) > 1 or bool(entry is not None and entry.shards)
    if not split or actions[0].part is None:
        action = dataclasses.replace(actions[0], part=None)
    else:
        action = gather(want.name, want.requests, want.content_hash, actions, len(wanted))
    # the batch's action cancels the jobs of requests no longer wanted, before anything else
    return dataclasses.replace(action, old_jobs=old_jobs) if old_jobs else action


def plan(desired: list[Desired], lock: Lock, observed: Observed, *,
         max_attempts: int = 3, resubmit: frozenset[str] = frozenset(),
         prune: bool = False, stored: frozenset[str] = frozenset()) -> Plan:
    """One action per manifest (and per orphaned lockfile entry). `resubmit` names batches
    whose failed or cancelled job the user asked to submit again; `prune`, that orphans are
    to be pruned (apply --prune), which their reason then says; `stored`, the packs the
    result store holds of those the lockfile names (runner.store.project.held)."""
    actions: list[Action] = []
    warnings: list[str] = []
    for want in desired:
        actions.append(_for_batch(want, lock.batches.get(want.name), observed, max_attempts,
                                  want.name in resubmit, stored))
    names = {d.name for d in desired}
    warnings.extend(f"--resubmit {n}: no such batch" for n in sorted(resubmit - names))
    for name in sorted(set(lock.batches) - names):
        entry = lock.batches[name]
        fate = "pruned now" if prune else "kept in the lockfile until apply --prune"
        actions.append(Action(Kind.ORPHAN, name, f"manifest removed ({entry.manifest}); {fate}",
                              entry.requests))
    return Plan(tuple(actions), tuple(warnings))


def replan(want: Desired, entry: LockEntry, observed: Observed, *, max_attempts: int = 3,
           record: Part | Retry | None = None) -> Action:
    """A batch planned again while apply runs, over its record as the run keeps it and what
    the provider just said (`observed` need hold no more than that). With `record`, the
    action for that job alone: its shard's, or the follow-up's. Nothing is resubmitted
    unasked: `--resubmit` asks for the jobs that had failed before the run."""
    action = plan([want], Lock({want.name: entry}), observed,
                  max_attempts=max_attempts).actions[0]
    if record is None:
        return action
    retry = isinstance(record, Retry)
    for each in action.parts or (action,):
        if each.retry == retry and (retry or each.content_hash == record.content_hash):
            return each
    raise ValueError(f"{want.name}: the plan has no action for job {record.job}")
