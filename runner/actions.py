"""What a plan says: one Action per batch, of a Kind, gathered in a Plan.

Plain data, shared by the planner that makes them (runner.plan) and everything that reads them:
apply's scheduler, the display, status, costs and the library surface. `Action.to_dict` is the
action as `plan --json` prints it, under the same names.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, fields
from typing import Any

from .providers.base import RemoteJob


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

SUBMITS = {Kind.CREATE, Kind.REPLACE, Kind.RESUBMIT, Kind.RETRY}


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
    recorded: str | None = None         # the job the lockfile names, when none was looked at
    reused: int = 0                     # requests not sent: their results are in the store

    @property
    def job_name(self) -> str | None:
        """The job the action concerns: the one looked at, else the one recorded."""
        return self.job.name if self.job is not None else self.recorded

    @property
    def symbol(self) -> str:
        return SYMBOLS[self.kind]

    @property
    def change(self) -> bool:
        """Whether `apply` acts on it (`--detailed-exitcode` reports 2 when one does)."""
        return self.kind in CHANGES

    def to_dict(self) -> dict[str, Any]:
        """The action as JSON data, as `plan --json` prints it: every field under its own
        name (`kind` as its value, `job` as the job's name and state, `parts` each turned
        the same way), then the properties `symbol`, `job_name` and `change`."""
        out = {f.name: _plain(getattr(self, f.name)) for f in fields(self)}
        return {**out, "symbol": self.symbol, "job_name": self.job_name, "change": self.change}


def _plain(value: object) -> Any:
    """A field's value as JSON data."""
    if isinstance(value, Action):
        return value.to_dict()
    if isinstance(value, RemoteJob):
        return {"name": value.name, "state": value.state.value}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, str | int | float):
        return value
    raise TypeError(f"no JSON form for an action's {type(value).__name__}")


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


# The kind a split batch shows, from its shards': submissions first (they cost money).
_PRECEDENCE = (Kind.REPLACE, Kind.RESUBMIT, Kind.CREATE, Kind.FAILED, Kind.LOST, Kind.ADOPT,
               Kind.DOWNLOAD, Kind.WAIT)


def gather(name: str, requests: int, content_hash: str, parts: list[Action], total: int
           ) -> Action:
    """A split batch's action (the batch's `requests` and `content_hash`): its `total`
    shards' actions, summed up for the reader."""
    kinds = {a.kind for a in parts}
    kind = next(k for k in _PRECEDENCE if k in kinds)
    submits = [a for a in parts if a.kind in SUBMITS]
    sent = sum(a.requests for a in submits) if kind in SUBMITS else requests
    groups: dict[tuple[Kind, str], list[int]] = {}
    for a in parts:
        groups.setdefault((a.kind, a.reason), []).append((a.part or 0) + 1)
    reason = "; ".join(f"{_shards(numbers, total)}: {why}" for (_, why), numbers in groups.items())
    return Action(kind, name, reason, sent, content_hash, parts=tuple(parts))


def _shards(numbers: list[int], total: int) -> str:
    """`shard 3 of 8`, `shards 2, 5 of 8`, `all 8 shards`."""
    if len(numbers) == total and total > 1:
        return f"all {total} shards"
    if len(numbers) == 1:
        return f"shard {numbers[0]} of {total}"
    if len(numbers) > 6:
        return f"{len(numbers)} of {total} shards"
    return f"shards {', '.join(map(str, numbers))} of {total}"
