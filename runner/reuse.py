"""Request-level reuse: a request whose successful result the result store holds is not sent.

The requests of a directory are named by their request hash (runner.hashing.request_hash:
provider, model and the request, not its key), and the store keeps every result line under
that hash, in packs the lockfile names. So when a batch is rendered, each request is looked up
among the successes of the packs any lockfile entry names: one found is reused (its result
comes from the store when the outputs are written), the rest are cut into shards and sent.
Edit one row of a million and one request is sent; remove rows or revert an edit and none is.

What is never reused: a per-request error (a follow-up batch sends it again, as
`retry_failed` says), a result of another provider or model (they are in the hash), and any
request of a manifest with `reuse: false` (a sampling temperature, where a fresh answer is
the point).

The index holds the first 8 bytes of each success's hash, sorted, with the pack it came from:
about 10 bytes a result (10 MB for a million), searched with the C bisect. Two different
requests sharing 64 bits of their sha256 are a chance of about one in 10^7 at a million
results each side; the outputs are joined on the whole hash, so such a request would be
written to the errors output as one without a result (and sent again by a follow-up), never
given another request's answer.
"""

from __future__ import annotations

import itertools
from array import array
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from itertools import repeat
from operator import and_, lshift, or_, rshift
from pathlib import Path

from . import indexcache
from .errors import PackDamaged, PackMissing
from .store import Store

_PREFIX = 8
_SHIFT = 48           # the top 16 bits of a key choose its slot
_SLOTS = 1 << 16


def prefix_of(request_hash: str) -> int:
    """The first 8 bytes of a `sha256:<hex>` request hash, as the index keeps them."""
    return int(request_hash[7:7 + 2 * _PREFIX], 16)


class Reusable:
    """The successes held by a set of packs, by request hash (see the module docstring)."""

    def __init__(self, packs: Iterable[str] = (), keys: Iterable[array[int]] = (),
                 merged: tuple[array[int], array[int]] | None = None):
        """`keys`: for each of `packs`, the sorted prefixes of its successes; or `merged`,
        those merged already (runner.indexcache), with the number of each one's pack."""
        self.packs = tuple(packs)
        sources = list(keys)
        if merged is not None:
            self._keys, self._packs = merged
        elif len(sources) == 1:
            self._keys = sources[0]
            self._packs = array("H", [0]) * len(self._keys)
        else:
            self._keys, self._packs = _merged(sources)
        # where each value of the top 16 bits starts among the keys: a search looks among the
        # few keys that share them (a million keys: about 15), not all of them
        self._starts = array("I", (bisect_left(self._keys, top << _SHIFT)
                                   for top in range(_SLOTS + 1)))

    @classmethod
    def load(cls, store: Store, packs: Iterable[str],
             report: Callable[[str], None] | None = None,
             owners: Mapping[str, Sequence[str]] | None = None, cache: Path | None = None
             ) -> Reusable:
        """The index of the packs' successes, from their heads alone (each checked against
        the pack's name). A pack missing, or whose head is damaged, is left out: its results
        are not offered, so the requests that would have reused them are sent. Each is said
        once through `report`, naming the batches whose lockfile entries name it (`owners`):
        without a word, a user would see requests sent that were answered before. With
        `cache`, the merge of several packs' prefixes is kept there (runner.indexcache)."""
        kept: list[str] = []
        keys: list[array[int]] = []
        for pack in sorted(set(packs))[:1 << 16]:
            try:
                head = store.head(pack)
            except (PackMissing, PackDamaged) as e:
                if report is not None:
                    report(_unusable(pack, e, (owners or {}).get(pack, ())))
                continue
            kept.append(pack)
            # the index is sorted by request hash, so its prefixes come sorted
            keys.append(head.success_prefixes())
        if cache is None or len(kept) < 2:
            return cls(kept, keys)
        merged = indexcache.read(cache, kept)
        # the heads say how many keys there are: a file of other keys (another version's
        # idea of a success, a hand's) is merged again
        if merged is not None and len(merged[0]) == sum(map(len, keys)):
            return cls(kept, merged=merged)
        made = cls(kept, keys)
        indexcache.write(cache, kept, made._keys, made._packs)
        return made

    def __len__(self) -> int:
        return len(self._keys)

    def pack_of(self, request_hash: str) -> int | None:
        """The number (in `packs`) of a pack holding a success for the request, or None."""
        return self.finder()(prefix_of(request_hash))

    def finder(self) -> Callable[[int], int | None]:
        """pack_of as a function of the first 8 bytes of a request hash (an integer), the
        index's arrays at hand: it runs once a request in the render workers
        (runner.held)."""
        keys, starts, packs = self._keys, self._starts, self._packs

        def find(key: int) -> int | None:
            top = key >> _SHIFT
            hi = starts[top + 1]
            i = bisect_left(keys, key, starts[top], hi)
            return packs[i] if i < hi and keys[i] == key else None
        return find


def _merged(sources: list[array[int]]) -> tuple[array[int], array[int]]:
    """Sorted prefixes merged into one sorted array, with the number of the source of each:
    a sixteenth of the key space at a time, each key with its source's number in its low 16
    bits, sorted by the C sort and split again by C maps (heapq.merge of tuples took three
    times as long)."""
    keys, numbers = array("Q"), array("H")
    for pieces in sixteenths(sources):
        part: list[int] = []
        for number, piece in enumerate(pieces):
            part.extend(map(or_, map(lshift, piece, repeat(16)), repeat(number)))
        part.sort()
        keys.extend(map(rshift, part, repeat(16)))
        numbers.extend(map(and_, part, repeat(0xFFFF)))
    return keys, numbers


def sixteenths(sources: Sequence[array[int]]) -> Iterator[list[array[int]]]:
    """Each source's keys (sorted) in each sixteenth of the key space, a sixteenth at a time:
    what is merged is then a sixteenth of all the keys at once."""
    cuts = [part << 60 for part in range(16)] + [1 << 64]
    for low, high in itertools.pairwise(cuts):
        yield [source[bisect_left(source, low):bisect_left(source, high)]
               for source in sources]


def extract(store: Store, packs: Iterable[str], path: Path, successes: bool = False,
            reused: Iterable[str] = ()) -> None:
    """The result lines of `packs` into `path` as `hash\\tline` records, the form the join reads
    the store's results in (runner.spill.spill_stored); with `successes`, those alone.
    `reused`: packs whose successes come first, the lines of the requests a batch reused
    (its own packs hold its jobs' lines alone: runner.outputs.write_outputs), which the
    lines of `packs` then override. PackMissing, PackDamaged.

    A batch's reused requests take `successes` only: the join by hash keeps the last line read
    for a hash, and one pack may hold an error for a request another pack holds a success
    for (it failed once, then succeeded), which would otherwise undo the success the index
    reused it for; and a request sent again was sent because no pack held its success, so it
    can find none here (a stale error would stand in for the job's own answer)."""
    with open(path, "wb") as f:
        for only_ok, results in ((True, store.results(reused)),
                                 (successes, store.results(packs))):
            for result in results:
                if result.ok or not only_ok:
                    f.write(result.request_hash.encode() + b"\t" + result.line + b"\n")


def _unusable(pack: str, e: PackMissing | PackDamaged, batches: Sequence[str]) -> str:
    """The warning for a pack the index leaves out: which batches name it, what is wrong."""
    named = ", ".join(batches) or "a lockfile entry"
    why = "is not in the store" if isinstance(e, PackMissing) else f"is damaged ({e.reason})"
    return (f"warning: {named}: pack {pack} {why}; its results are not reused, and requests "
            "that would have reused them are sent")


class Reuse:
    """What a directory's renders reuse: the successes of the packs its lockfile names, read
    from its store the first time a render needs them. A batch rendered again to reproduce
    its record (its input files, once more) reuses from the packs the record says it did,
    and nothing else: packs written since must not move its requests between its shards and
    the store. `packs` maps each pack to the batches whose entries name it (for warnings);
    a pack found missing or damaged is said once a run, however many renders look."""

    def __init__(self, store: Callable[[], Store], packs: Mapping[str, Sequence[str]],
                 report: Callable[[str], None] | None = None, cache: Path | None = None):
        self._store = store
        self._cache = cache
        self._owners = packs
        self._packs = tuple(sorted(packs))
        self._report = report
        self._said: set[str] = set()
        self._made: dict[tuple[str, ...], Reusable] = {}

    def index(self, packs: Iterable[str] | None = None) -> Reusable:
        """The index of `packs`, or of every pack the lockfile names when None."""
        key = self._packs if packs is None else tuple(sorted(set(packs)))
        made = self._made.get(key)
        if made is None:
            made = Reusable.load(self._store(), key, self._once, self._owners, self._cache) \
                if key else Reusable()
            self._made[key] = made
        return made

    def _once(self, line: str) -> None:
        if self._report is not None and line not in self._said:
            self._said.add(line)
            self._report(line)
