"""Status on two axes, as Argo CD shows it: sync (does the lockfile match the manifest and the
outputs match the lockfile) and health (what the remote job is doing)."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

from .actions import Kind, Plan
from .lockfile import Lock
from .providers.base import JobState, RemoteJob
from .records import LIVE, LockEntry, Part
from .states import Desired


class Sync(str, enum.Enum):
    SYNCED = "Synced"            # lockfile and outputs match the manifest
    OUT_OF_SYNC = "OutOfSync"    # apply would submit, adopt, download or record something
    ORPHANED = "Orphaned"        # in the lockfile, manifest deleted


class Health(str, enum.Enum):
    HEALTHY = "Healthy"          # succeeded, outputs written
    PROGRESSING = "Progressing"  # submitted, not finished
    DEGRADED = "Degraded"        # failed, expired or cancelled
    MISSING = "Missing"          # never submitted, or the job is gone from the provider


@dataclass(frozen=True)
class ShardStatus:
    """One job of a split batch."""

    job: str | None
    recorded: str                 # state in the lockfile
    remote: str | None            # state on the provider ("gone" if it answered 404)
    requests: int

    def to_dict(self) -> dict[str, object]:
        return {"job": self.job, "recorded": self.recorded, "remote": self.remote,
                "requests": self.requests}


@dataclass(frozen=True)
class BatchStatus:
    name: str
    sync: Sync
    health: Health
    reason: str
    recorded: str | None          # state in the lockfile
    remote: str | None            # state on the provider ("gone" if it answered 404)
    job: str | None
    requests: int
    succeeded: int | None
    failed: int | None
    shards: tuple[ShardStatus, ...] = ()    # a split batch's jobs, in input order

    def to_dict(self) -> dict[str, object]:
        """For machines: a split batch names no one job nor remote state (`job` and `remote`
        are null), its shards do; `job` and `remote` here are the table's summaries."""
        split = bool(self.shards)
        return {"name": self.name, "sync": self.sync.value, "health": self.health.value,
                "reason": self.reason, "recorded": self.recorded,
                "remote": None if split else self.remote, "job": None if split else self.job,
                "requests": self.requests, "succeeded": self.succeeded,
                "failed": self.failed, "shards": [s.to_dict() for s in self.shards]}


_OUT_OF_SYNC = {Kind.CREATE, Kind.ADOPT, Kind.REPLACE, Kind.RESUBMIT, Kind.RETRY, Kind.DOWNLOAD,
                Kind.RECORD, Kind.LOST}


def _health(part: Part, remote: Mapping[str, RemoteJob | None]) -> Health:
    """One job's health, from its record and what the provider says of it."""
    job = remote.get(part.job) if part.job else None
    state = job.state if job is not None else None
    gone = part.job is not None and part.job in remote and job is None
    if part.job is None or (gone and part.state != JobState.SUCCEEDED):
        return Health.MISSING
    if state in (JobState.PENDING, JobState.RUNNING):
        return Health.PROGRESSING
    if part.state == JobState.SUCCEEDED:
        return Health.HEALTHY
    if part.state in LIVE and state is None:
        return Health.MISSING
    if state == JobState.SUCCEEDED:
        return Health.PROGRESSING      # finished remotely, results not yet collected
    return Health.DEGRADED


# A split batch is as healthy as its least healthy shard.
_WORST = (Health.DEGRADED, Health.MISSING, Health.PROGRESSING, Health.HEALTHY)


def _remote_state(job: str | None, remote: Mapping[str, RemoteJob | None]) -> str | None:
    if not job:
        return None
    seen = remote.get(job)
    return seen.state.value if seen is not None else ("gone" if job in remote else None)


def _previous_answers(entry: LockEntry, want: Desired | None) -> bool:
    """Whether the batch's output files on disk are not the ones its record wrote: the
    answers of the requests before an edit, which its running job will replace."""
    if want is None:
        return False
    on_disk = {path: digest for path, digest in want.outputs.items() if digest is not None}
    return bool(on_disk) and on_disk != {p: entry.outputs.get(p) for p in on_disk}


def statuses(plan: Plan, lock: Lock, remote: Mapping[str, RemoteJob | None],
             desired: Mapping[str, Desired] | None = None) -> list[BatchStatus]:
    """One status per planned batch: the plan says what is out of sync and why; the recorded
    and remote job states say how healthy it is. With `desired` (the manifests as hashed
    now, outputs on disk included), a batch whose replacement job runs while its outputs
    still hold the answers from before its edit is out of sync, as it is."""
    out = []
    for action in plan.actions:
        entry = lock.batches.get(action.name)
        reason = "up to date" if action.kind == Kind.NOTHING else action.reason
        if action.kind == Kind.ORPHAN:
            sync = Sync.ORPHANED
        elif action.kind in _OUT_OF_SYNC:
            sync = Sync.OUT_OF_SYNC
        elif action.kind == Kind.WAIT and not action.retry and entry is not None and \
                _previous_answers(entry, (desired or {}).get(action.name)):
            sync = Sync.OUT_OF_SYNC
            reason += "; the outputs hold the answers from before the edit until it finishes"
        else:
            sync = Sync.SYNCED
        job_name: str | None = None
        remote_state: str | None = None
        shards: tuple[ShardStatus, ...] = ()
        if entry is None or action.kind == Kind.LOST:
            health = Health.MISSING
        elif action.kind == Kind.FAILED:
            health = Health.DEGRADED
        elif entry.open_retry is not None:
            health = Health.PROGRESSING
            job_name = entry.open_retry.job
        else:
            found = {_health(p, remote) for p in entry.parts()} or {Health.HEALTHY}
            health = next(h for h in _WORST if h in found)
        if entry is not None and entry.shards:
            shards = tuple(ShardStatus(p.job, p.state.value, _remote_state(p.job, remote),
                                       p.requests) for p in entry.shards)
        if entry is not None and entry.shards and job_name is None:
            job_name = f"{len(entry.shards)} shards"
            states = [_remote_state(p.job, remote) or "-" for p in entry.shards]
            remote_state = ", ".join(f"{s} {states.count(s)}" for s in dict.fromkeys(states))
        elif entry is not None:
            job_name = job_name or entry.job
            remote_state = _remote_state(job_name, remote)
        counts = entry.counts if entry is not None else {}
        out.append(BatchStatus(
            name=action.name, sync=sync, health=health,
            reason=reason,
            recorded=entry.state.value if entry is not None else None, remote=remote_state,
            job=job_name, requests=action.requests or (entry.requests if entry else 0),
            succeeded=counts.get("succeeded"), failed=counts.get("failed"), shards=shards))
    return out
