"""`runner store DIR`: what the result store holds for each batch; `runner store gc DIR`:
removes the packs no lockfile entry names, as its `packs` or its `reuse_packs`, the leases
long expired and the old claims whose job no entry names (a dry run unless `--yes`).

Both read the lockfile, not the manifests: what the store holds is what the lockfile says it
does, and neither renders anything. gc sees only this directory's lockfile, so it leaves
packs younger than `--min-age` days (another clone may have written them for a lockfile not
yet committed or merged): see Store.gc.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TextIO

from .. import api, lockfile
from ..errors import LockfileError, StoreError
from ..runlock import RunLock
from ..store import Store
from ..store.project import project_store
from ..store.store import GC_MIN_AGE
from ..store.tidy import CLAIM_MIN_AGE, LEASE_MARGIN

DAY = 86400.0


def show(directory: api.PathLike, *, out: TextIO) -> None:
    """One line per batch: its packs, the results they hold and their bytes as stored; then
    what the store holds that no batch names."""
    project = Path(directory).absolute()
    lock = lockfile.load(lockfile.lock_path(project))
    store = project_store(project)
    listed = {p.pack: p.size for p in store.packs()}
    print(f"store: {store.location}", file=out)
    named: set[str] = set()
    width = max((len(n) for n in lock.batches), default=0)
    for name in sorted(lock.batches):
        entry = lock.batches[name]
        packs = entry.packs
        named.update(packs, entry.reuse_packs)
        held = [p for p in packs if p in listed]
        results = sum(_results(store, p) for p in held)
        size = sum(listed[p] for p in held)
        line = f"  {name:<{width}}  {_count(len(packs), 'pack')}, " \
               f"{_count(results, 'result')}, {_bytes(size)}"
        if len(held) < len(packs):
            line += f"; {len(packs) - len(held)} missing (apply fetches them again from the " \
                    "provider while it keeps them)"
        elif not packs and not entry.reused:
            line = f"  {name:<{width}}  nothing stored (no outputs written since the store " \
                   "was wired in)"
        if entry.reused:
            # its own packs hold its jobs' lines alone: the rest are in the packs it reused
            gone = sum(1 for p in entry.reuse_packs if p not in listed)
            line += f"; {entry.reused:,} reused from {_count(len(entry.reuse_packs), 'pack')}"
            if gone:
                line += f" ({gone} missing: plan shows the batch as lost when its outputs " \
                        "must be written again)"
        print(line, file=out)
    others = [p for p in listed if p not in named]
    print(f"not named by this lockfile: {_count(len(others), 'pack')}, "
          f"{_bytes(sum(listed[p] for p in others))}", file=out, flush=True)


def gc(directory: api.PathLike, *, delete: bool, min_age_days: float | None,
       out: TextIO, lock_timeout: float = 0.0) -> None:
    """Removes (with `delete`; else says what it would remove) the packs no entry of the
    directory's lockfile names, older than `min_age_days`; the leases expired over an hour
    ago; the claims whose job no record names, older than `min_age_days` and never younger
    than three days (runner.store.tidy says why). Removing, it holds the directory's run
    lock: an apply writes its packs before its lockfile names them, and with --min-age 0
    gc would remove them from under it (another machine's apply, on a shared store, is
    what --min-age is for)."""
    project = Path(directory).absolute()
    path = _lockfile_of(project)
    with RunLock(project, lock_timeout) if delete else contextlib.nullcontext():
        _gc(project, lockfile.load(path), delete=delete, min_age_days=min_age_days, out=out)


def _gc(project: Path, lock: lockfile.Lock, *, delete: bool, min_age_days: float | None,
        out: TextIO) -> None:
    store = project_store(project)
    # a batch that reused results reads its reuse_packs when its outputs are written: they
    # may be named nowhere else (its own packs come then; the entry they came from is gone)
    keep = {p for entry in lock.batches.values() for p in (*entry.packs, *entry.reuse_packs)}
    min_age = GC_MIN_AGE if min_age_days is None else min_age_days * DAY
    done = store.gc(keep, dry_run=not delete, min_age=min_age)
    # the claims whose jobs a record names stay: another clone adopts those jobs from them
    jobs = {job for entry in lock.batches.values()
            for job in (entry.job, *(s.job for s in entry.shards),
                        *(r.job for r in entry.retries)) if job}
    tidied = store.tidy(jobs, dry_run=not delete, claim_age=min_age)
    verb = "removed" if delete else "would remove"
    print(f"store: {store.location}", file=out)
    for p in done.removed:
        print(f"  {verb} {p.pack} ({_bytes(p.size)})", file=out)
    print(f"leases: {verb} {len(tidied.leases):,} expired over {LEASE_MARGIN / 3600:g} h "
          f"ago, left {tidied.live_leases:,}", file=out)
    print(f"claims: {verb} {len(tidied.claims):,} whose job no lockfile entry names, older "
          f"than {max(min_age, CLAIM_MIN_AGE) / DAY:g} days; left {tidied.named_claims:,} "
          f"named and {tidied.young_claims:,} younger", file=out)
    young = f"; {done.young} unnamed but younger than {min_age / DAY:g} days, left" \
        if done.young else ""
    tail = "" if delete or not (done.removed or tidied.leases or tidied.claims) else \
        "; run again with --yes to remove them"
    print(f"{verb} {_count(len(done.removed), 'pack')} ({_bytes(done.freed)}), kept "
          f"{done.kept} named by the lockfile{young}{tail}", file=out, flush=True)


def _lockfile_of(project: Path) -> Path:
    """The lockfile gc keeps the packs of. Loading one that is not there reads as a lockfile
    that names nothing, and every pack of the store (a shared one: the team's) older than
    --min-age would go: a mistyped path, or a subfolder of the project, is refused instead."""
    path = lockfile.lock_path(project)
    if not path.is_file():
        raise LockfileError("no lockfile here: gc removes every pack no lockfile entry names, "
                            "so with none it would remove them all; run it on the manifest "
                            "directory whose lockfile names the packs to keep", path=path)
    return path


def _results(store: Store, pack: str) -> int:
    """The results a pack holds, from its head; none for one damaged (apply says so)."""
    try:
        return int(store.head(pack).count)
    except StoreError:
        return 0


def _count(n: int, what: str) -> str:
    return f"{n:,} {what}{'' if n == 1 else 's'}"


def _bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} GB"
