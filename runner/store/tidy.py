"""gc of the store's small objects: leases long expired, and claims nothing needs any more.

Packs are gc's main work (Store.gc); leases and claims are small, but one of each is left for
every content hash a run ever submitted, so a busy store gathers thousands. What is removed,
and why it is safe:

- **A lease** (runner.store.lease) whose newest generation was released, or went stale (its
  ttl passed without a renewal), at least LEASE_MARGIN ago: every generation of it. Anyone
  may take such a lease already; removing it changes only how the next taker numbers its
  generation (1 again), which runner.store.lease guards against (a taker that chose the next
  number of the old generations loses to one that started at 1, see lease._create). The
  margin covers the clocks: staleness compares the store's time with this machine's, and
  those may differ by minutes, never by an hour. The newest generation is read again
  just before anything is removed: one renewed or taken since is left, and only the
  generations seen are removed, never a newer one.
- **A claim** (runner.store.claims) whose job no lockfile entry names, written at least
  CLAIM_MIN_AGE ago (and at least as long as gc's --min-age). A claim is how another clone
  adopts a job in flight instead of creating it again, so it must outlive every job that
  could still be running or waiting to be collected: providers end a batch within their
  completion window (Gemini 48 h, OpenAI and Anthropic 24 h), and its results are then
  collected by the next apply of any clone. Three days is the longest window plus a day;
  gc sees only this directory's lockfile (other clones' may name the job on a branch not
  yet merged), and by then a clone that applies the same change finds the job by its tag
  (Gemini, OpenAI) or its own lockfile's record. A claim rewritten since it was listed
  (its job named) is young again and left.

A dry run unless told, as for packs. A killed write's temp file in those folders goes too,
once as old as a claim may be.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field

import orjson

from .backends import Backend, Stat
from .claims import READ_LIMIT
from .lease import free_since
from .names import CLAIMS, LEASES, generation_of

LEASE_MARGIN = 3600.0           # past a lease's expiry before it is removed
CLAIM_MIN_AGE = 3 * 86400.0     # the longest completion window (48 h) and a day


@dataclass(frozen=True)
class Tidied:
    """What gc removed of the leases and claims (or would, on a dry run), and what it left."""

    leases: list[str] = field(default_factory=list)     # content hashes, their leases gone
    claims: list[str] = field(default_factory=list)     # object names
    live_leases: int = 0        # held, or expired within the margin
    named_claims: int = 0       # whose job a lockfile entry names
    young_claims: int = 0       # named by none, but younger than the age
    dry_run: bool = True


def tidy(backend: Backend, jobs: Collection[str], clock: Callable[[], float], *,
         dry_run: bool = True, claim_age: float = CLAIM_MIN_AGE) -> Tidied:
    """The leases and claims to remove (see the module docstring), removed unless `dry_run`.
    `jobs`: every job the lockfile's records name. `claim_age` is raised to CLAIM_MIN_AGE:
    a claim younger than that may name a job still in flight, whatever gc was told."""
    claim_age = max(claim_age, CLAIM_MIN_AGE)
    leases, live = _leases(backend, clock, dry_run)
    claims, named, young = _claims(backend, jobs, clock, claim_age, dry_run)
    return Tidied(leases, claims, live, named, young, dry_run)


def _leases(backend: Backend, clock: Callable[[], float], dry_run: bool
            ) -> tuple[list[str], int]:
    removed: list[str] = []
    live = 0
    for folder in sorted(backend.folders(LEASES)):
        listed = backend.list(folder)
        expired = _expired(backend, listed, clock)
        if expired is None:
            live += any(generation_of(s.name) is not None for s in listed)
            continue
        removed.append("sha256:" + folder.rsplit("/", 1)[-1])
        if dry_run:
            continue
        again = backend.list(folder)     # renewed or taken since? then it is left
        if _expired(backend, again, clock) != expired:
            removed.pop()
            live += 1
            continue
        gens = sorted((g, s.name) for s in again if (g := generation_of(s.name)) is not None
                      and g <= expired)
        for _, name in gens:        # the newest last: the lease is held by nobody meanwhile
            backend.delete(name)
    for folder in backend.folders(LEASES):
        _leftovers(backend, backend.list(folder), clock() - CLAIM_MIN_AGE, dry_run)
    return removed, live


def _expired(backend: Backend, listed: list[Stat], clock: Callable[[], float]) -> int | None:
    """The newest generation, when the lease it makes has been free for the margin."""
    gens = [(g, s) for s in listed if (g := generation_of(s.name)) is not None]
    if not gens:
        return None
    generation, stat = max(gens, key=lambda pair: pair[0])
    since = free_since(backend, stat)
    if since is None:
        return None     # removed meanwhile: looked at by the next gc
    return generation if clock() - since >= LEASE_MARGIN else None


def _claims(backend: Backend, jobs: Collection[str], clock: Callable[[], float],
            age: float, dry_run: bool) -> tuple[list[str], int, int]:
    removed: list[str] = []
    named = young = 0
    for folder in sorted(backend.folders(CLAIMS)):
        listed = backend.list(folder)
        for s in sorted(listed):
            if not s.name.endswith(".json") or s.name.rsplit("/", 1)[-1].startswith("."):
                continue
            if _job(backend, s.name) in jobs:
                named += 1
            elif clock() - s.modified < age:
                young += 1
            elif dry_run:
                removed.append(s.name)
            else:
                # written again since it was listed (the job named)? Then it is young
                when = backend.modified(s.name)
                if when is None or clock() - when < age:
                    young += when is not None
                    continue
                backend.delete(s.name)
                removed.append(s.name)
        _leftovers(backend, listed, clock() - age, dry_run)
    return removed, named, young


def _job(backend: Backend, name: str) -> str | None:
    """The job a claim names; None for an intent, one gone, or one that does not read as a
    claim (which nothing adopts from, so it goes once old)."""
    try:
        doc = orjson.loads(backend.read(name, 0, READ_LIMIT))
    except (FileNotFoundError, orjson.JSONDecodeError):
        return None
    job = doc.get("job") if isinstance(doc, dict) else None
    return job if isinstance(job, str) else None


def _leftovers(backend: Backend, listed: list[Stat], before: float, dry_run: bool) -> None:
    """Temp files of creates a killed run left (runner.store.backends names them `.<name>.
    <random>.tmp`), once old."""
    if dry_run:
        return
    for s in listed:
        if s.name.rsplit("/", 1)[-1].startswith(".") and s.name.endswith(".tmp") \
                and s.modified < before:
            backend.delete(s.name)
