"""The lockfile's records: what it keeps of each batch and of each of its jobs.

Plain data, no I/O. Reading, checking and writing the file that holds them is runner.lockfile's
work; they are kept apart so that the planner, and everything that acts on a plan, use the
records without importing the YAML reader, the writer or the schema check.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Union

import orjson

from .providers.base import JobState


@dataclass
class Job:
    """The record of one remote job: the requests it holds, its tag, and what became of it."""

    content_hash: str
    requests: int
    display_name: str
    state: JobState
    input_file: str | None = None
    job: str | None = None
    submitted_at: str | None = None
    finished_at: str | None = None
    error: str | None = None
    # bound by inference (a provider that keeps no tag, runner.recognise), not by the answer
    # to its create: its results are checked to answer its requests (runner.apply.confirm)
    inferred: bool = False


@dataclass
class Retry(Job):
    """A follow-up batch of the requests that failed in the jobs before it."""


@dataclass
class Shard(Job):
    """One job's worth of a batch too big for one job (see runner.shards), in input order."""

    attempts: int = 0


# The record of one remote job: a batch's own (when it is not split), a shard, or a follow-up.
Part = Union["LockEntry", Shard]
LIVE = frozenset({JobState.CREATING, JobState.PENDING, JobState.RUNNING})
# The error of a record whose job `runner cancel` cancelled (runner.cancel): told apart from a
# job cancelled outside the runner, it is submitted again only when asked.
CANCELLED_BY_USER = "cancelled with runner cancel"
# A split batch's own state, from its shards': the first of these that one of them is in.
_ROLL_UP = (JobState.FAILED, JobState.CANCELLED, JobState.EXPIRED, JobState.CREATING,
            JobState.PENDING, JobState.RUNNING)


@dataclass
class LockEntry:
    manifest: str
    spec_hash: str
    content_hash: str
    provider: str
    model: str
    requests: int
    display_name: str
    state: JobState
    inputs: dict[str, Any] = field(default_factory=dict)
    outputs_hash: str | None = None
    input_file: str | None = None
    job: str | None = None
    submitted_at: str | None = None
    finished_at: str | None = None
    attempts: int = 0
    error: str | None = None
    inferred: bool = False      # as Job.inferred
    counts: dict[str, int] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)
    # the store's packs that hold the results the outputs were written from (runner.store)
    packs: list[str] = field(default_factory=list)
    # the jobs whose results `packs` hold, once another job's results came in after they were
    # written (runner.apply.collect reads those from the packs); empty: every succeeded job's
    packs_jobs: list[str] = field(default_factory=list)
    # requests no job holds: their successes were in the store (runner.reuse), in these packs
    reused: int = 0
    reuse_packs: list[str] = field(default_factory=list)
    spent: dict[str, Any] | None = None
    retries: list[Retry] = field(default_factory=list)
    shards: list[Shard] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """A deep copy as plain data, empty fields left out (orjson copies a dataclass about
        thirty times faster than dataclasses.asdict)."""
        data: dict[str, Any] = orjson.loads(orjson.dumps(self))
        out = {k: v for k, v in data.items() if v not in (None, {}, []) and v is not False}
        if self.shards:     # a split batch's jobs are its shards'
            out.pop("attempts", None)
        if not self.reused:
            out.pop("reused", None)
        for records in ("retries", "shards"):
            if records in out:
                out[records] = [{k: v for k, v in r.items() if v is not None and v is not False}
                                for r in out[records]]
        return out

    def roll_up(self) -> None:
        """A split batch's own state, from its shards': the least advanced one, a failure
        first (it needs the user), SUCCEEDED only when every shard is in."""
        if self.shards:
            states = {s.state for s in self.shards}
            self.state = next((s for s in _ROLL_UP if s in states), JobState.SUCCEEDED)

    def parts(self) -> list[LockEntry | Shard]:
        """The records of the batch's jobs: its shards, or itself when it is not split. A
        batch that reuses results always keeps its jobs as shards (none when every request
        was reused): its own hash names requests that no job holds."""
        return list(self.shards) if self.shards or self.reused else [self]

    @property
    def settled(self) -> bool:
        """Every part's job succeeded and its results were collected."""
        return all(p.job is not None and p.state == JobState.SUCCEEDED for p in self.parts())

    @property
    def open_retry(self) -> Retry | None:
        """The follow-up batch still to be collected, if any."""
        if self.retries and self.retries[-1].state in LIVE:
            return self.retries[-1]
        return None

    @property
    def current_job(self) -> str | None:
        """The job the batch is waiting on: an open follow-up's, else the main one."""
        retry = self.open_retry
        return retry.job if retry is not None else self.job
