"""Status on two axes, as Argo CD shows it: sync (does the lockfile match the manifest and the
outputs match the lockfile) and health (what the remote job is doing)."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Mapping

from .lockfile import Lock
from .plan import Kind, Plan
from .providers.base import JobState, RemoteJob


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

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "sync": self.sync.value, "health": self.health.value,
                "reason": self.reason, "recorded": self.recorded, "remote": self.remote,
                "job": self.job, "requests": self.requests, "succeeded": self.succeeded,
                "failed": self.failed}


_OUT_OF_SYNC = {Kind.CREATE, Kind.ADOPT, Kind.REPLACE, Kind.RESUBMIT, Kind.RETRY, Kind.DOWNLOAD,
                Kind.RECORD}


def statuses(plan: Plan, lock: Lock, remote: Mapping[str, RemoteJob | None]) -> list[BatchStatus]:
    """One status per planned batch: the plan says what is out of sync and why; the recorded
    and remote job states say how healthy it is."""
    out = []
    for action in plan.actions:
        entry = lock.batches.get(action.name)
        job_name = entry.current_job if entry is not None else None
        job = remote.get(job_name) if job_name else None
        if action.kind == Kind.ORPHAN:
            sync = Sync.ORPHANED
        elif action.kind in _OUT_OF_SYNC:
            sync = Sync.OUT_OF_SYNC
        else:
            sync = Sync.SYNCED
        state = job.state if job is not None else None
        if entry is None or entry.job is None or (job_name and job_name in remote and job is None
                                                  and entry.state != JobState.SUCCEEDED.value):
            health = Health.MISSING
        elif state in (JobState.PENDING, JobState.RUNNING) or entry.open_retry is not None:
            health = Health.PROGRESSING
        elif entry.state == JobState.SUCCEEDED.value:
            health = Health.HEALTHY
        elif entry.state in (JobState.PENDING.value, JobState.RUNNING.value,
                             JobState.CREATING.value) and state is None:
            health = Health.MISSING
        elif state == JobState.SUCCEEDED:
            health = Health.PROGRESSING      # finished remotely, results not yet collected
        else:
            health = Health.DEGRADED
        counts = entry.counts if entry is not None else {}
        out.append(BatchStatus(
            name=action.name, sync=sync, health=health,
            reason="up to date" if action.kind == Kind.NOTHING else action.reason,
            recorded=entry.state if entry is not None else None,
            remote=(state.value if state is not None else ("gone" if job_name in remote else None)
                    ) if job_name else None,
            job=job_name, requests=action.requests or (entry.requests if entry else 0),
            succeeded=counts.get("succeeded"), failed=counts.get("failed")))
    return out
