"""The store as the rest of the runner sees it: one object over a backend, and where it is.

`open_store` takes what a project declares or `RUNNER_STORE` says (a path, or an s3://,
gs://, az:// URL); `local_store` is the default, under the project's `.runner/`. Everything
else is a method of `Store`, each a thin call into the module that owns the work (writer,
reader, lease), so that a test or a benchmark reaches the same code the runner does.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from ..errors import StoreError
from ..layout import STATE_DIR
from . import claims, reader
from . import lease as leases
from .backends import Backend, PathBackend, Stat
from .claims import Claim
from .lease import Clock, Lease
from .names import PACKS, pack_object, pack_of
from .pack import Head
from .reader import Result
from .remote import FsspecBackend, scheme_of
from .tidy import CLAIM_MIN_AGE, Tidied, tidy
from .writer import BLOCK_BYTES, PACK_BYTES, PackWriter

LOCAL = "store"             # the default store: DIR/.runner/store
GC_MIN_AGE = 7 * 86400.0    # gc leaves packs younger than this (see Store.gc)
# a scheme and a colon before any slash: a URL missing its "//" (a drive letter is one letter)
_LOOKS_LIKE_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]+:")


class PackStat(NamedTuple):
    pack: str           # its hash
    size: int
    modified: float


class Collected(NamedTuple):
    """What gc removed (or, on a dry run, would remove), and what it left."""

    removed: list[PackStat]
    kept: int           # packs referenced
    young: int          # packs referenced by nothing, left because they are recent
    dry_run: bool

    @property
    def freed(self) -> int:
        return sum(p.size for p in self.removed)


class Store:
    """A content-addressed store of result lines (see the package docstring)."""

    def __init__(self, backend: Backend, clock: Clock = time.time):
        self.backend = backend
        self._clock = clock

    @property
    def location(self) -> str:
        return self.backend.location

    def writer(self, pack_bytes: int = PACK_BYTES, block_bytes: int = BLOCK_BYTES
               ) -> PackWriter:
        """Gathers result lines into packs; `close` (or the end of a `with`) writes them and
        gives their hashes, for the lockfile to record."""
        return PackWriter(self.backend, pack_bytes, block_bytes)

    def results(self, packs: Iterable[str], wanted: Collection[str] | None = None
                ) -> Iterator[Result]:
        """The lines the packs hold for `wanted` request hashes (all when None), checked
        against the packs' hashes. PackMissing, PackDamaged (runner.store.reader)."""
        return reader.results(self.backend, packs, wanted)

    def lookup(self, packs: Iterable[str], wanted: Collection[str]) -> dict[str, bool]:
        """The `wanted` request hashes the packs hold, True for those with a success; from
        the packs' heads only."""
        return reader.lookup(self.backend, packs, wanted)

    def head(self, pack: str) -> Head:
        return reader.read_head(self.backend, pack)

    def added(self, head: Head) -> Iterator[tuple[bytes, bool, bytes]]:
        """The lines of the pack of `head` in the order they were added (reader.added)."""
        return reader.added(head, self.backend)

    def verify(self, pack: str) -> None:
        """Reads a whole pack and checks it. PackMissing, PackDamaged."""
        reader.verify(self.backend, pack)

    def packs(self) -> list[PackStat]:
        """Every pack in the store, as listed (sizes and times are the store's word)."""
        return sorted(PackStat(pack, s.size, s.modified) for s in self.backend.list(PACKS)
                      if (pack := pack_of(s.name)) is not None)

    def gc(self, keep: Collection[str], *, dry_run: bool = True,
           min_age: float = GC_MIN_AGE) -> Collected:
        """Removes the packs not in `keep` (the packs every lockfile entry names), only when
        not a dry run. A pack younger than `min_age` seconds is left even so: another
        machine may have written it for a lockfile not yet committed or merged, and gc sees
        only the lockfiles it is given. Each pack's time is read again just before it is
        removed, so one written again since the listing (the same bytes) is left; what
        remains is the moment between that look and the delete. Temp files a killed run
        left in a directory store are removed once as old."""
        now = self._clock()
        removed, kept, young = [], 0, 0
        listed = self.backend.list(PACKS)
        for s in listed:
            pack = pack_of(s.name)
            if pack is None:
                continue
            if pack in keep:
                kept += 1
            elif now - s.modified < min_age:
                young += 1
            else:
                removed.append(PackStat(pack, s.size, s.modified))
        if not dry_run:
            for p in list(removed):
                # written again since it was listed (the same bytes, by a run that will
                # record it)? Then it is young: look again just before removing it
                when = self.backend.modified(pack_object(p.pack))
                if when is None or self._clock() - when < min_age:
                    removed.remove(p)
                    young += when is not None
                    continue
                self.backend.delete(pack_object(p.pack))
            for s in _leftovers(listed, now - min_age):
                self.backend.delete(s.name)
        return Collected(sorted(removed), kept, young, dry_run)

    def tidy(self, jobs: Collection[str], *, dry_run: bool = True,
             claim_age: float = CLAIM_MIN_AGE) -> Tidied:
        """Removes the leases long expired and the claims whose job none of `jobs` (those
        the lockfile names) is, older than `claim_age` (never under CLAIM_MIN_AGE: a claim
        may name a job in flight), only when not a dry run. See runner.store.tidy."""
        return tidy(self.backend, jobs, self._clock, dry_run=dry_run, claim_age=claim_age)

    def lease(self, content_hash: str, holder: str, ttl: float,
              over: Callable[[str], bool] | None = None) -> Lease:
        """Takes the lease on a content hash if it is free or stale (or its holder's run is
        `over`), else says who holds it (`held` False). See runner.store.lease for why two
        takers never both win."""
        return leases.take(self.backend, content_hash, holder, ttl, self._clock, over)

    def renew(self, lease: Lease, ttl: float, token: str | None = None,
              since: float | None = None) -> Lease:
        """LeaseLost when another run took it meanwhile; `token` and `since`, see
        lease.renew."""
        return leases.renew(self.backend, lease, ttl, self._clock, token, since)

    def now(self) -> float:
        """The time by the clock this store's leases are reckoned with."""
        return self._clock()

    def release(self, lease: Lease) -> None:
        leases.release(self.backend, lease, self._clock)

    def holder(self, content_hash: str) -> Lease | None:
        """Who holds the lease on a content hash now, if anyone."""
        return leases.look(self.backend, content_hash, self._clock)

    def claim(self, content_hash: str, provider: str, tag: str) -> Claim | None:
        """Which job a run made (or meant to make) for a content hash and tag, if one said."""
        return claims.read(self.backend, content_hash, provider, tag)

    def write_claim(self, claim: Claim) -> None:
        """Written by the lease's holder only (runner.store.claims)."""
        claims.write(self.backend, claim)


def _leftovers(listed: Iterable[Stat], before: float) -> list[Stat]:
    """Temp files of writes that never finished (runner.fsutil names them `.<name>.tmp`)."""
    return [s for s in listed if s.name.rsplit("/", 1)[-1].startswith(".")
            and s.name.endswith(".tmp") and s.modified < before]


def open_store(location: str | os.PathLike[str],
               options: Mapping[str, Any] | None = None) -> Store:
    """The store at a path or URL. `options` go to the fsspec filesystem (an endpoint, a
    region: never a credential, which each library finds in its own environment)."""
    if isinstance(location, os.PathLike):
        return Store(PathBackend(Path(location)))
    scheme = scheme_of(location)
    if scheme is None:
        if _LOOKS_LIKE_URL.match(location):     # s3:bucket is not a folder named "s3:"
            raise StoreError("a store URL is scheme://bucket/prefix; for a local folder "
                             "whose name has a colon, start it with ./",
                             path=location.split(":", 1)[0] + ":...")
        return Store(PathBackend(Path(location)))
    if scheme == "file":
        parts = urlsplit(location)
        if parts.netloc not in ("", "localhost") or parts.query or parts.fragment:
            raise StoreError("a file:// store is a path on this machine (file:///path)",
                             path="file://...")
        return Store(PathBackend(Path(parts.path)))
    return Store(FsspecBackend(location, options))


def local_store(directory: Path) -> Store:
    """The project's own store, under `DIR/.runner/store`: one machine reuses its results at
    once, with nothing to set up."""
    return Store(PathBackend(directory / STATE_DIR / LOCAL))
