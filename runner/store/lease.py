"""Leases: one run at a time acts on a content hash, whichever machine it runs on.

A lease is a folder of generations, `leases/<hash>/<generation>.json`, each written by the
backend's exclusive create (on a path a hard link, or O_EXCL; an S3 PUT with `If-None-Match:
*`; a GCS upload with `ifGenerationMatch=0`; an Azure upload with `If-None-Match: *`) and never
changed after.
The newest generation says who holds the lease: its holder, a token only that holder knows,
and the ttl within which the holder promised to renew it. It is stale once the store's clock
says it is older than that ttl; a "released" generation is free at once.

Every change is the exclusive create of the next generation: taking a free or stale lease,
renewing one's own, releasing. So two runs that both saw generation g stale, or a holder
renewing just as another run finds it stale, both try to create g+1, and the store lets
exactly one of them: the other learns it lost and looks again, finding the winner's fresh
generation. Nothing is ever replaced in place, so no compare-and-swap is needed, only the
conditional create all three object stores and every file system offer. Generation numbers
only grow (releasing writes one more), so a late delete of an old generation cannot
remove a newer holder's. Old generations are cleared away, so a run that looked long ago
can create a cleared name again; it checks after each create that no newer generation
exists, and if one does, it lost.

A caller that knows a holder's run has ended (apply holding the run lock of the directory
that holder ran in: runner.apply.claim) takes its lease as a stale one, by the same
exclusive create, without waiting for the ttl.

A create whose answer was lost (a timeout after the store wrote it; a retried PUT refused
as "exists") is settled by reading the generation back: if it holds our token, we won.

What a lease does not do: stop a holder that stalls for longer than its ttl (a suspended
laptop) from acting after another run took over. Holders renew well within the ttl, check
`Lease.expires` before acting, and the job's tag on the provider remains the last guard.
Staleness compares the store's time for the object with this machine's clock: the ttl must
dwarf the skew between them (minutes against the second or so of NTP-kept clocks).
"""

from __future__ import annotations

import contextlib
import secrets
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from ..errors import LeaseLost, StoreError
from ..hashing import canonical_bytes
from .backends import Backend, Stat
from .names import GENERATIONS, LEASES, generation_object, generation_of, lease_folder

MAX_TTL = 7 * 86400.0       # a ttl read from the store is capped at this
READ_LIMIT = 4096           # bytes of a generation read, at most
HOLDER_LIMIT = 200          # characters of a holder's name kept: a generation fits READ_LIMIT
ATTEMPTS = 8                # looks at a lease that keeps changing, before giving up

Clock = Callable[[], float]
_EXCLUSIVE: weakref.WeakSet[Backend] = weakref.WeakSet()     # found to refuse a taken name


@dataclass(frozen=True)
class Lease:
    """What a take, renew or look found: who holds the lease on `content_hash`, and until
    when (seconds since the epoch, by this machine's clock) unless they renew."""

    content_hash: str
    holder: str
    held: bool                  # the caller holds it
    generation: int
    expires: float
    token: str = field(default="", repr=False)


@dataclass(frozen=True)
class _Seen:
    holder: str
    token: str
    expires: float
    released: bool


def take(backend: Backend, content_hash: str, holder: str, ttl: float,
         clock: Clock = time.time, over: Callable[[str], bool] | None = None) -> Lease:
    """Takes the lease if it is free or stale; otherwise says who holds it (held False).
    `holder` names this run (host, process, a random part: unique per run). `over` says of
    a holder's name (as read, so as anyone who can write to the store wrote it) that its run
    is known to have ended: its lease is taken as a stale one is, by the next generation."""
    if not 0 < ttl <= MAX_TTL:
        raise ValueError(f"a lease's ttl is between 0 and {MAX_TTL:.0f} seconds, not {ttl}")
    _check_exclusive(backend)
    for _ in range(ATTEMPTS):
        listed = _generations(backend, content_hash)
        top = max(listed, default=None, key=lambda pair: pair[0])
        target = 1
        if top is not None:
            generation, stat = top
            seen = _read(backend, stat, ttl)
            if seen is None:
                continue        # renewed or released meanwhile: look again
            if not seen.released and clock() < seen.expires and \
                    not (over is not None and over(seen.holder)):
                return Lease(content_hash, seen.holder, False, generation, seen.expires)
            target = generation + 1
        lease = _create(backend, content_hash, target, holder, ttl, clock,
                        seen=_seen(listed))
        if lease is not None:
            return lease
    raise StoreError(f"could not take the lease on {content_hash}: it changed "
                     f"{ATTEMPTS} times while this run looked", path=backend.location)


def renew(backend: Backend, lease: Lease, ttl: float, clock: Clock = time.time,
          token: str | None = None, since: float | None = None) -> Lease:
    """The same lease for `ttl` more seconds from now. LeaseLost when another run took it.
    `token`: the one an earlier try used, when it failed with StoreError (a timeout): that
    try may have written the next generation before its answer was lost, and then the
    generation holding this token is this run's, not another's; `since`, when that try
    began (by `clock`): the lease then runs `ttl` from there, not from now."""
    token = token or secrets.token_hex(16)
    seen = _check_own(backend, lease, token)
    renewed = _create(backend, lease.content_hash, lease.generation + 1, lease.holder, ttl,
                      clock, seen=seen, token=token, since=since)
    if renewed is None:
        raise LeaseLost(f"the lease on {lease.content_hash} was taken by another run",
                        path=backend.location)
    return renewed


def release(backend: Backend, lease: Lease, clock: Clock = time.time) -> None:
    """Frees a lease this run holds, so another may take it at once. One already lost is
    left as it is."""
    try:
        seen = _check_own(backend, lease)
    except LeaseLost:
        return
    _create(backend, lease.content_hash, lease.generation + 1, lease.holder, MAX_TTL, clock,
            released=True, seen=seen)


def look(backend: Backend, content_hash: str, clock: Clock = time.time) -> Lease | None:
    """Who holds the lease now, or None when it is free (never taken, released, stale)."""
    top = _top(backend, content_hash)
    if top is None:
        return None
    seen = _read(backend, top[1], MAX_TTL)
    if seen is None or seen.released or clock() >= seen.expires:
        return None
    return Lease(content_hash, seen.holder, False, top[0], seen.expires)


def free_since(backend: Backend, stat: Stat) -> float | None:
    """When the lease whose newest generation is `stat` became free: when it was written if
    it says "released", else when its ttl ran out (one that does not read as a lease: the
    longest ttl after it was written); None when it is gone. For gc (runner.store.tidy)."""
    seen = _read(backend, stat, MAX_TTL)
    if seen is None:
        return None
    return stat.modified if seen.released else seen.expires


def _check_exclusive(backend: Backend) -> None:
    """Refuses a store whose exclusive create is not: an S3-compatible service may ignore
    `If-None-Match` without a word (s3fs says so), and then two runs that create the same
    generation both hold the lease. Asked once a backend, with a name no lease uses."""
    if backend in _EXCLUSIVE:
        return
    name = f"{LEASES}/.probe-{secrets.token_hex(8)}"
    try:
        backend.create(name, b"first")
        again = backend.create(name, b"second")
    finally:
        backend.delete(name)
    if again:
        raise StoreError("this store does not refuse to create an object whose name is "
                         "taken (an S3-compatible service that ignores If-None-Match?): "
                         "leases cannot work on it", path=backend.location)
    _EXCLUSIVE.add(backend)


def _check_own(backend: Backend, lease: Lease, next_token: str = ""
               ) -> frozenset[tuple[int, float]]:
    """LeaseLost unless the newest generation is the lease's own, or the next one written
    with `next_token` (a renewal whose answer was lost); the generations seen."""
    listed = _generations(backend, lease.content_hash)
    top = max(listed, default=None, key=lambda pair: pair[0])
    if top is not None and next_token and top[0] == lease.generation + 1:
        written = _read(backend, top[1], MAX_TTL)
        if lease.held and written is not None and written.token == next_token:
            return _seen(listed)
    seen = None if top is None or top[0] != lease.generation \
        else _read(backend, top[1], MAX_TTL)
    if seen is None or not lease.held or seen.token != lease.token:
        raise LeaseLost(f"the lease on {lease.content_hash} was taken by another run",
                        path=backend.location)
    return _seen(listed)


def _create(backend: Backend, content_hash: str, generation: int, holder: str, ttl: float,
            clock: Clock, released: bool = False,
            seen: frozenset[tuple[int, float]] = frozenset(), token: str | None = None,
            since: float | None = None) -> Lease | None:
    """Generation `generation`, if this run is the one to create it; None if another is.
    `seen`: the generations listed when this run chose `generation`, with their times. One
    below it that was not among them (or is, written since) was created by a run that found
    the folder empty: gc removed an expired lease whole (runner.store.tidy), so numbering
    started again at 1, and that run may hold generation 1 while this one creates the next
    of the old. Both cannot hold it: this run lost (and the other, seeing this run's newer
    generation, lost too if it had not checked yet; the lease is then free once this run's
    generation goes stale). gc removes only leases free for an hour, so a generation
    written again never has the time of the one removed."""
    if generation >= GENERATIONS:
        raise StoreError(f"the lease on {content_hash} is at its last generation",
                         path=backend.location)
    holder = holder[:HOLDER_LIMIT]
    token = token or secrets.token_hex(16)
    body: dict[str, Any] = {"content_hash": content_hash, "holder": holder, "token": token,
                            "ttl": ttl, "written_at": clock()}
    if released:
        body["released"] = True
    name = generation_object(content_hash, generation)
    start = clock() if since is None else min(since, clock())
    if not backend.create(name, canonical_bytes(body)):
        written = _read(backend, Stat(name, 0, start), ttl)
        if written is None or written.token != token:
            return None
    # Older generations are cleared away below, so a run that looked long ago can create a
    # cleared name again: it won only if no newer generation exists after its create.
    listed = [(g, s) for s in backend.list(lease_folder(content_hash))
              if (g := generation_of(s.name)) is not None]
    if any(g > generation or (g < generation and (g, s.modified) not in seen)
           for g, s in listed):
        return None
    for old, stat in listed:
        if old < generation:
            _clear(backend, stat.name)
    return Lease(content_hash, holder, not released, generation, start + ttl, token)


def _clear(backend: Backend, name: str) -> None:
    """Removes an older generation: only the newest counts, the rest is clutter, so one the
    store will not remove (a shared folder with the sticky bit where another user wrote it,
    a bucket that grants no delete) is left for the next create, or gc, to clear. Raised,
    it would lose the lease just won: the caller learns nothing of its new generation, a
    take-over fails while keeping others off for its ttl, and a renewer left holding the
    generation before calls its next renewal lost."""
    with contextlib.suppress(StoreError):
        backend.delete(name)


def _top(backend: Backend, content_hash: str) -> tuple[int, Stat] | None:
    """The newest generation and its listing entry."""
    return max(_generations(backend, content_hash), default=None, key=lambda pair: pair[0])


def _seen(listed: list[tuple[int, Stat]]) -> frozenset[tuple[int, float]]:
    return frozenset((g, s.modified) for g, s in listed)


def _generations(backend: Backend, content_hash: str) -> list[tuple[int, Stat]]:
    """Every generation of the lease, with its listing entry."""
    return [(g, s) for s in backend.list(lease_folder(content_hash))
            if (g := generation_of(s.name)) is not None]


def _read(backend: Backend, stat: Stat, ttl: float) -> _Seen | None:
    """A generation as written, None if it is gone. One that does not read as a lease (cut
    short by a crash on a file system, or put there by someone else) is held by nobody
    known and goes stale `ttl` after it was written: it never frees a lease early."""
    try:
        data = backend.read(stat.name, 0, READ_LIMIT)
    except FileNotFoundError:
        return None
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError:
        doc = None
    if not isinstance(doc, dict):
        return _Seen("(unreadable lease)", "", stat.modified + ttl, False)
    holder, token, stated = doc.get("holder"), doc.get("token"), doc.get("ttl")
    if not isinstance(stated, (int, float)) or isinstance(stated, bool) \
            or not 0 < stated <= MAX_TTL:
        stated = ttl
    return _Seen(_shown(holder) if isinstance(holder, str) else "(unnamed)",
                 token if isinstance(token, str) else "", stat.modified + float(stated),
                 doc.get("released") is True)


def _shown(holder: str) -> str:
    """A holder's name as read from the store, fit to print: anyone who can write to the
    store wrote it, so a terminal's control sequences are replaced."""
    return "".join(c if c.isprintable() else "?" for c in holder[:HOLDER_LIMIT])
