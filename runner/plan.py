"""Reconciliation: what must happen to bring the outputs in line with the manifests.

`plan()` is a pure function of the desired state (manifests, hashed), the lockfile and what the
provider reports. It does no I/O, so every row of the reconcile table is a plain unit test.
"""

from __future__ import annotations

import copy
import dataclasses
import enum
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .hashing import short
from .lockfile import Lock
from .providers.base import JobState, RemoteJob
from .records import LockEntry, Part, Retry
from .shards import ShardHash


class Kind(str, enum.Enum):
    CREATE = "create"
    ADOPT = "adopt"
    REPLACE = "replace"
    RESUBMIT = "resubmit"
    RETRY = "retry"          # a follow-up batch of the requests that failed
    WAIT = "wait"
    DOWNLOAD = "download"
    RECORD = "record"        # only the lockfile changes (e.g. a comment edited in a manifest)
    FAILED = "failed"        # terminal, nothing done without being asked
    LOST = "lost"            # results received once, gone now: paid again only when asked
    ORPHAN = "orphan"
    NOTHING = "nothing"


SYMBOLS = {Kind.CREATE: "+", Kind.ADOPT: "<=", Kind.REPLACE: "-/+", Kind.RESUBMIT: "-/+",
           Kind.RETRY: "+",
           Kind.WAIT: "~", Kind.DOWNLOAD: "~", Kind.RECORD: "~", Kind.FAILED: "!",
           Kind.LOST: "!", Kind.ORPHAN: "-", Kind.NOTHING: " "}

# Kinds that `apply` acts on; `--detailed-exitcode` reports 2 when any is planned.
CHANGES = {Kind.CREATE, Kind.ADOPT, Kind.REPLACE, Kind.RESUBMIT, Kind.RETRY, Kind.WAIT,
           Kind.DOWNLOAD, Kind.RECORD}
CANCELLED_BY_USER = "cancelled with runner cancel"

SUBMITS = {Kind.CREATE, Kind.REPLACE, Kind.RESUBMIT, Kind.RETRY}


@dataclass(frozen=True)
class Desired:
    """A manifest as hashed now. `content_hash` is None when it has not been rendered."""

    name: str
    manifest: str
    spec_hash: str
    inputs: Mapping[str, Any]
    content_hash: str
    provider: str
    model: str
    requests: int
    outputs_hash: str
    outputs: Mapping[str, str | None]   # output path -> digest of the file on disk, None if missing
    retry_failed: int = 0               # follow-up batches allowed for failed requests
    allowed_failures: int = 0           # failed requests the batch may end with, healthy
    errors_output: str = ""             # where they are written
    shards: tuple[ShardHash, ...] = ()  # the jobs it takes (see runner.shards); () for one

    @property
    def parts(self) -> tuple[ShardHash, ...]:
        return self.shards or (ShardHash(self.content_hash, self.requests),)


@dataclass(frozen=True)
class Observed:
    """The provider's jobs, by job name; `complete` when every job was listed, not only the
    ones the lockfile names."""

    jobs: Mapping[str, RemoteJob]
    complete: bool = False

    def tagged(self, display_name: str) -> RemoteJob | None:
        """The most useful job carrying `display_name`."""
        return best([j for j in self.jobs.values() if j.display_name == display_name])

    def attempts(self, name: str, content_hash: str) -> list[tuple[int, RemoteJob]]:
        """Every job submitted for these requests, with its attempt number (follow-up
        batches of failures excluded)."""
        found = []
        for job in self.jobs.values():
            n = attempt_of(name, content_hash, job.display_name)
            if n is not None:
                found.append((n, job))
        return found


_RANK = {JobState.SUCCEEDED: 0, JobState.PENDING: 1, JobState.RUNNING: 1}


def best(jobs: list[RemoteJob]) -> RemoteJob | None:
    """The most useful of several jobs for the same requests: succeeded, then live, the first
    created (then by name). Every run picks the same one, so that two machines that created
    the same batch at once both keep it and cancel the other (see runner.apply.submit)."""
    return min(jobs, key=lambda j: (_RANK.get(j.state, 2), moment(j.create_time), j.name),
               default=None)


def twins(jobs: Iterable[RemoteJob], tag: str) -> tuple[RemoteJob | None, list[RemoteJob]]:
    """Of the jobs carrying `tag` that are running or succeeded, the one to keep (`best`) and
    the live others to cancel: two machines that applied the same change at once each
    created one, and each run that sees both makes the same choice."""
    found = [j for j in jobs if j.display_name == tag and j.state in _RANK]
    keep = best(found)
    return keep, [j for j in found if j is not keep and not j.state.terminal]


def moment(t: str | None) -> str:
    """An RFC 3339 UTC time that sorts as time does, whatever its fraction's digits (the API
    writes 0 to 9 of them); no time sorts last."""
    if not t:
        return "~"
    head, dot, rest = t.rstrip("Z").partition(".")
    return f"{head}.{rest[:9].ljust(9, '0')}" if dot else f"{head}.000000000"


def foreign(name: str, model: str, record: Part | Retry, job: RemoteJob) -> str | None:
    """Why `job`, which the lockfile names for `record`, is not that record's job, or None
    when it is. A lockfile is edited by hand and merged by git: a record naming another
    batch's job would download that job's results into this batch's outputs, or cancel it.
    The job must carry the record's tag (a follow-up's: this batch's follow-up tag), run the
    batch's model and hold as many requests as the record, where the provider says."""
    if isinstance(record, Retry):   # follow-ups kept across an edit carry an older hash
        mine = job.display_name == record.display_name and \
            re.fullmatch(re.escape(name) + r"-[0-9a-f]{12}-retry[0-9]+", job.display_name) \
            is not None
    else:
        mine = attempt_of(name, record.content_hash, job.display_name) is not None
    if not mine:
        return f"it is tagged {job.display_name!r}, not with this batch's hash"
    if job.model and model and job.model.removeprefix("models/") != model.removeprefix("models/"):
        return f"it runs {job.model}, not {model}"
    if job.total and job.total != record.requests:
        return f"it holds {job.total} requests, not {record.requests}"
    return None


def not_its_own(job: str | None, why: str) -> str:
    """How every message says that the lockfile names a job that is not the record's."""
    return f"the lockfile names job {job}, which is not this batch's ({why})"


def disown(want: Desired, entry: LockEntry, observed: Observed) -> tuple[LockEntry, str]:
    """The record with every job that is not its own (see `foreign`) taken out, as if the
    lockfile had lost it, so that the job is looked for by its tag; and what was found, for
    the reason shown. The entry is returned as it is when every job is its own. Follow-ups
    that ended are checked when their results are read (runner.apply.collect)."""
    records = _checked(entry)
    bad = [i for i, record in enumerate(records)
           if (job := observed.jobs.get(record.job or "")) is not None
           and foreign(want.name, entry.model, record, job) is not None]
    if not bad:
        return entry, ""
    notes = []
    for i in bad:
        record = records[i]
        why = foreign(want.name, entry.model, record, observed.jobs[record.job or ""])
        notes.append(not_its_own(record.job, why or ""))
    entry = copy.deepcopy(entry)
    copies = _checked(entry)
    for i in bad:
        copies[i].job, copies[i].state = None, JobState.CREATING
        if isinstance(copies[i], Retry):    # its tag, as this batch's follow-up names it
            copies[i].display_name = retry_name(want.name, entry.content_hash,
                                                len(entry.retries))
    return entry, "; ".join(notes) + "; looking for it by its tag"


def _checked(entry: LockEntry) -> list[Part | Retry]:
    """The records whose jobs a plan acts on: the batch's parts and its open follow-up."""
    retry = entry.open_retry
    return [*entry.parts(), *([retry] if retry is not None else [])]


def attempt_of(name: str, content_hash: str, tag: str) -> int | None:
    """The attempt a displayName tags for this batch's requests: 1 for `<name>-<hash>`, N for
    `<name>-<hash>-N`; None for anything else."""
    base = display_name(name, content_hash)
    if tag == base:
        return 1
    rest = tag[len(base) + 1:] if tag.startswith(base + "-") else ""
    return int(rest) if rest.isdigit() else None


@dataclass(frozen=True)
class Action:
    kind: Kind
    name: str
    reason: str
    requests: int = 0
    content_hash: str | None = None
    display_name: str | None = None
    job: RemoteJob | None = None        # the remote job to adopt, wait for or download
    old_jobs: tuple[str, ...] = ()      # live jobs of superseded requests, to cancel
    attempt: int = 1
    retry: bool = False                 # the action concerns the open follow-up batch
    part: int | None = None             # the shard it concerns (0-based), in a split batch
    parts: tuple[Action, ...] = ()      # a split batch's action: one per shard to act on

    @property
    def symbol(self) -> str:
        return SYMBOLS[self.kind]


@dataclass(frozen=True)
class Plan:
    actions: tuple[Action, ...]
    warnings: tuple[str, ...] = field(default=())

    @property
    def changes(self) -> list[Action]:
        return [a for a in self.actions if a.kind in CHANGES]

    @property
    def failing(self) -> list[Action]:
        """Batches that keep `apply` at exit 1 until someone acts: a failed or cancelled job,
        lost results, more failed requests than allowed."""
        return [a for a in self.actions if a.kind in (Kind.FAILED, Kind.LOST)]

    def summary(self) -> str:
        count = {k: sum(1 for a in self.actions if a.kind == k) for k in Kind}
        submit = (count[Kind.CREATE] + count[Kind.REPLACE] + count[Kind.RESUBMIT]
                  + count[Kind.RETRY])
        return (f"Plan: {submit} to submit ({count[Kind.REPLACE] + count[Kind.RESUBMIT]} "
                f"replacing), {count[Kind.ADOPT]} to adopt, {count[Kind.WAIT]} in flight, "
                f"{count[Kind.DOWNLOAD]} to download, {count[Kind.NOTHING]} unchanged"
                + (f", {count[Kind.FAILED]} failed" if count[Kind.FAILED] else "")
                + (f", {count[Kind.LOST]} lost" if count[Kind.LOST] else "")
                + (f", {count[Kind.ORPHAN]} orphaned" if count[Kind.ORPHAN] else "") + ".")


def display_name(name: str, content_hash: str, attempt: int = 1) -> str:
    """The provider-side tag: finds the job again even when the lockfile forgot it."""
    tag = f"{name}-{short(content_hash)}"
    return tag if attempt <= 1 else f"{tag}-{attempt}"


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


def _outputs_reason(entry: LockEntry, want: Desired) -> str | None:
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


def needs_remote(entry: LockEntry | None, want: Desired) -> bool:
    """Whether planning this batch needs the provider's view: not when it succeeded with
    unchanged content and intact outputs, so an unchanged plan makes no call at all."""
    return not (entry is not None and entry.content_hash == want.content_hash and entry.settled
                and entry.open_retry is None and _outputs_reason(entry, want) is None)


def needs_tag_search(entry: LockEntry | None, want: Desired) -> bool:
    """Whether the batch may need creating or adopting, i.e. finding a job by its tag."""
    retry = entry.open_retry if entry is not None else None
    return (entry is None or entry.content_hash != want.content_hash
            or any(p.job is None or p.state == JobState.CREATING for p in entry.parts())
            or (retry is not None and retry.state == JobState.CREATING))


def retry_name(name: str, content_hash: str, number: int) -> str:
    """The tag of the Nth follow-up batch of a batch's failed requests."""
    return f"{display_name(name, content_hash)}-retry{number}"


def _for_retry(want: Desired, entry: LockEntry, observed: Observed) -> Action | None:
    """The action for the batch's follow-up batches, or None when there is nothing to do."""
    base: dict[str, Any] = dict(name=want.name, content_hash=want.content_hash, retry=True)
    retry = entry.open_retry
    if retry is not None:
        n = len(entry.retries)
        if retry.state == JobState.CREATING or retry.job is None:
            tagged = observed.tagged(retry.display_name)
            if tagged is not None:
                return Action(Kind.ADOPT, reason=f"retry {n}: an interrupted run created it",
                              requests=retry.requests, job=tagged, **base)
            return Action(Kind.RETRY, reason=f"retry {n}: an interrupted run did not submit it",
                          requests=retry.requests, display_name=retry.display_name, **base)
        job = observed.jobs.get(retry.job)
        if job is None:
            return Action(Kind.RECORD, reason=f"retry {n}: job deleted on the provider; its "
                          "requests stay in the errors output", **base)
        if job.state in (JobState.PENDING, JobState.RUNNING):
            return Action(Kind.WAIT, reason=f"retry {n} of {retry.requests} failed requests "
                          f"{job.state.value.lower()}", requests=retry.requests, job=job, **base)
        if job.state == JobState.SUCCEEDED:
            return Action(Kind.DOWNLOAD, reason=f"retry {n} succeeded, results not yet merged",
                          requests=retry.requests, job=job, **base)
        return Action(Kind.RECORD, reason=f"retry {n} {job.state.value.lower()}; its requests "
                      "stay in the errors output", job=job, **base)
    failed = entry.counts.get("failed", 0)
    gave_up = bool(entry.retries) and entry.retries[-1].state != JobState.SUCCEEDED
    if failed and len(entry.retries) < want.retry_failed and not gave_up:
        n = len(entry.retries) + 1
        return Action(Kind.RETRY, reason=f"resubmit {failed} failed requests (retry {n} of "
                      f"{want.retry_failed})", requests=failed,
                      display_name=retry_name(want.name, want.content_hash, n), **base)
    return None


def _for_part(name: str, part: Part, observed: Observed, max_attempts: int,
              resubmit_asked: bool, settled: bool) -> Action | None:
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
        return Action(Kind.RESUBMIT, reason="job expired (48 h without finishing)", **resubmit)
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


def allowance(allowed: int | str, requests: int) -> int:
    """How many of `requests` may fail: a count, or a share ("0.5%", rounded down)."""
    if isinstance(allowed, str):
        return int(float(allowed.rstrip("%")) * requests / 100)
    return allowed


def too_many_failures(want: Desired, failed: int) -> str | None:
    """Why the batch is not healthy when `failed` of its requests failed for good, or None."""
    if failed <= want.allowed_failures:
        return None
    return (f"{failed} of {want.requests} requests failed, more than the "
            f"{want.allowed_failures} allowed (spec.allowed_failures): see {want.errors_output}")


def _lost(name: str, why: str, resubmit_asked: bool, resubmit: dict[str, Any]) -> Action:
    """Results that were received once and are gone: they were paid for, so they are paid
    for again only when asked."""
    if resubmit_asked:
        return Action(Kind.RESUBMIT, reason=f"{why}; resubmitting as asked", **resubmit)
    return Action(Kind.LOST, reason=f"{why}; apply --resubmit {name} pays for it again",
                  **{k: v for k, v in resubmit.items() if k != "display_name"})


def _for_settled(want: Desired, entry: LockEntry, observed: Observed,
                 resubmit_asked: bool) -> list[Action]:
    """Every job's results are in: the outputs, follow-ups of failures, or nothing to do.
    Rewriting outputs needs every part's results; a part whose results are gone from the
    provider is submitted again."""
    parts = entry.parts()
    job = observed.jobs.get(parts[0].job or "") if len(parts) == 1 else None
    base: dict[str, Any] = dict(name=want.name, requests=want.requests,
                                content_hash=want.content_hash)
    why = _outputs_reason(entry, want)
    same = entry.content_hash == want.content_hash
    if same and (why is None or entry.open_retry is not None):
        follow_up = _for_retry(want, entry, observed)
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
        return [Action(Kind.NOTHING, reason="up to date", job=job, **base)]
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


def _superseded(entry: LockEntry, want: Desired, observed: Observed) -> tuple[str, ...]:
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


def _for_new_part(want: Desired, shard: ShardHash, entry: LockEntry | None, observed: Observed,
                  cancels: bool) -> Action:
    """Requests the lockfile does not record: adopt a job already submitted for them (one
    that succeeded or still runs), else submit them under the next unused attempt tag."""
    found = observed.attempts(want.name, shard.content_hash)
    usable = best([j for _, j in found if j.state in _RANK])
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


def _for_batch(want: Desired, entry: LockEntry | None, observed: Observed, max_attempts: int,
               resubmit_asked: bool) -> Action:
    """One action for the batch; for a split batch, one per shard to act on, gathered."""
    disowned = ""
    if entry is not None:
        entry, disowned = disown(want, entry, observed)
    action = _for_records(want, entry, observed, max_attempts, resubmit_asked)
    if disowned:
        action = dataclasses.replace(action, reason=f"{disowned}: {action.reason}")
    return action


def _for_records(want: Desired, entry: LockEntry | None, observed: Observed, max_attempts: int,
                 resubmit_asked: bool) -> Action:
    if entry is not None and entry.content_hash == want.content_hash:
        # the same requests: the recorded shards stand, even if the limits have moved since
        wanted = [ShardHash(p.content_hash, p.requests) for p in entry.parts()]
    else:
        wanted = list(want.parts)
    recorded = {p.content_hash: p for p in entry.parts()} if entry is not None else {}
    old_jobs = _superseded(entry, want, observed) if entry is not None else ()
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
                               settled)
        if action is not None:
            actions.append(dataclasses.replace(action, part=i))
    if not actions:
        assert entry is not None
        actions = [dataclasses.replace(a, part=None)
                   for a in _for_settled(want, entry, observed, resubmit_asked)]
        if len(wanted) > 1 and actions[0].kind in (Kind.RESUBMIT, Kind.LOST):
            index = {s.content_hash: i for i, s in enumerate(wanted)}
            actions = [dataclasses.replace(a, part=index[a.content_hash or ""])
                       for a in actions]
    split = len(wanted) > 1 or bool(entry is not None and entry.shards)
    if not split or actions[0].part is None:
        action = dataclasses.replace(actions[0], part=None)
    else:
        action = _gather(want, actions, len(wanted))
    # the batch's action cancels the jobs of requests no longer wanted, before anything else
    return dataclasses.replace(action, old_jobs=old_jobs) if old_jobs else action


# The kind a split batch shows, from its shards': submissions first (they cost money).
_PRECEDENCE = (Kind.REPLACE, Kind.RESUBMIT, Kind.CREATE, Kind.FAILED, Kind.LOST, Kind.ADOPT,
               Kind.DOWNLOAD, Kind.WAIT)


def _gather(want: Desired, parts: list[Action], total: int) -> Action:
    """A split batch's action: the shards' actions, summed up for the reader."""
    kinds = {a.kind for a in parts}
    kind = next(k for k in _PRECEDENCE if k in kinds)
    submits = [a for a in parts if a.kind in SUBMITS]
    requests = sum(a.requests for a in submits) if kind in SUBMITS else want.requests
    groups: dict[tuple[Kind, str], list[int]] = {}
    for a in parts:
        groups.setdefault((a.kind, a.reason), []).append((a.part or 0) + 1)
    reason = "; ".join(f"{_shards(numbers, total)}: {why}" for (_, why), numbers in groups.items())
    return Action(kind, want.name, reason, requests, want.content_hash, parts=tuple(parts))


def _shards(numbers: list[int], total: int) -> str:
    """`shard 3 of 8`, `shards 2, 5 of 8`, `all 8 shards`."""
    if len(numbers) == total and total > 1:
        return f"all {total} shards"
    if len(numbers) == 1:
        return f"shard {numbers[0]} of {total}"
    if len(numbers) > 6:
        return f"{len(numbers)} of {total} shards"
    return f"shards {', '.join(map(str, numbers))} of {total}"


def plan(desired: list[Desired], lock: Lock, observed: Observed, *,
         max_attempts: int = 3, resubmit: frozenset[str] = frozenset()) -> Plan:
    """One action per manifest (and per orphaned lockfile entry). `resubmit` names batches
    whose failed or cancelled job the user asked to submit again."""
    actions: list[Action] = []
    warnings: list[str] = []
    for want in desired:
        actions.append(_for_batch(want, lock.batches.get(want.name), observed, max_attempts,
                                  want.name in resubmit))
    names = {d.name for d in desired}
    warnings.extend(f"--resubmit {n}: no such batch" for n in sorted(resubmit - names))
    for name in sorted(set(lock.batches) - names):
        entry = lock.batches[name]
        actions.append(Action(Kind.ORPHAN, name, f"manifest removed ({entry.manifest}); kept in "
                              "the lockfile until apply --prune", entry.requests))
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
