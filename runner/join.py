"""Results -> declared outputs, in input order, written atomically.

The provider does not promise result order, and a large batch's results do not fit in memory,
so results are joined back to the requests by key on disk, in temp files (a partitioned hash
join, then a partitioned sort back into input order):

1. each request, rendered in input order, goes to one of `n` bucket files chosen by the hash of
   its key, as (index, key, request hash); each result line goes to the bucket of the same
   number in a second set, as (key, line), the results files read in the order given;
2. bucket by bucket, the results are held in a dict, where a later line for a key replaces an
   earlier one (a follow-up batch's line wins over the job's), and each request of the bucket
   takes its line out; the pair goes to one of `m` range files chosen by the request's index.
   What is left in the dict are results no request asked for;
3. range by range, the pairs are put back in input order and the outputs written.

Memory holds one bucket's results or one range's pairs, never the batch: `n` and `m` grow with
the size of the results so that each holds about BUCKET_BYTES. For large results, steps 1 and
2 run across cores (runner.joinapart), and a range is then two files. Every request ends in exactly
one place: a success in the outputs, a failure (or a result the provider never returned) in the
errors file.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from . import joinapart
from .manifest import Manifest
from .render import Renderer
from .spill import (
    Write,
    _writers,
    spill_pieces,
    spill_requests,
    spill_results,
    spill_stored,
)

BUCKET_BYTES = 8 << 20      # results (or pairs) held in memory at once, about
MAX_FILES = 256             # temp files open at once, at most: past that, buckets grow
_READ = 1 << 20

# One request, in input order: its index, its key's JSON, its request hash, its result line
# (None when the provider sent none) and that line parsed, when the join had to parse it to
# read its key (None otherwise: it is parsed once, where it is formatted). A plain tuple, as a
# million are made per batch. Keys stay JSON, which holds neither a tab nor a newline, so that
# the temp files' records are lines of tab-separated fields, a result line always the last.
Joined = tuple[int, bytes, str, bytes | None, dict[str, Any] | None]


class OutOfOrder(Exception):
    """Results read in input order (runner.inorder) that are not: the caller joins them by
    key instead."""


class Spooled(NamedTuple):
    """A batch's requests as this run rendered them (runner.stream): the file of every
    request's key and hash, in input order (runner.held.KeysFile), and the content hash of
    the requests it was made from."""

    keys: Path
    content_hash: str


class Join:
    """Joins results files to a manifest's requests in temp files under `directory` (see the
    module docstring); iterate for the requests in input order, then read `unmatched`."""

    def __init__(self, manifest: Manifest, renderer: Renderer, results: Sequence[Path],
                 directory: Path, spooled: Spooled | None = None,
                 by_hash: bool = False):
        size = sum(path.stat().st_size for path in results)
        n = _files_for(size)
        requests = [directory / f"requests-{i}" for i in range(n)]
        # a large batch's results are spilled, and its buckets joined, by two workers
        # (runner.joinapart) while this process spills the requests
        pool = None if by_hash or size < joinapart.APART_BYTES or not joinapart.possible() \
            else joinapart.open_pool()
        try:
            sets = [[directory / f"results-{i}.{part}" for i in range(n)]
                    for part in range(joinapart.WORKERS if pool is not None else 1)]
            spilling = [] if pool is None else pool.run(spill_pieces, [
                (manifest, part, paths) for part, paths in zip(joinapart.halves(results), sets)])
            with _writers(requests) as writes:
                self.requests, self.content_hash = spill_requests(manifest, renderer, writes,
                                                                  spooled, by_hash)
            if pool is None or not joinapart.done(spilling):
                for paths in sets:
                    joinapart.remove(paths)
                sets = sets[:1]
                with _writers(sets[0]) as writes:
                    if by_hash:
                        spill_stored(results, writes)
                    else:
                        spill_results(renderer.dialect, results, writes)
            pairs = size + sum(path.stat().st_size for path in requests)
            self._per_range = max(1, -(-self.requests // _files_for(pairs)))
            count = -(-self.requests // self._per_range)
            buckets = [([paths[i] for paths in sets], [requests[i]]) for i in range(n)]
            self.unmatched = self.repeated = 0
            if pool is not None:
                shares = [[directory / f"range-{r}.{w}" for r in range(count)]
                          for w in range(joinapart.WORKERS)]
                share = -(-n // joinapart.WORKERS)
                joining = pool.run(join_buckets, [
                    (buckets[w * share:(w + 1) * share], paths, self._per_range, False, False)
                    for w, paths in enumerate(shares)])
                if joinapart.done(joining):
                    for future in joining:
                        unmatched, repeated = future.result()
                        self.unmatched += unmatched
                        self.repeated += repeated
                    for b in buckets:
                        remove_bucket(b)
                    self._ranges = [list(paths) for paths in zip(*shares)]
                    return
                for paths in shares:
                    joinapart.remove(paths)
            ranges = [directory / f"range-{r}" for r in range(count)]
            self.unmatched, self.repeated = join_buckets(buckets, ranges, self._per_range,
                                                         by_hash)
            self._ranges = [[path] for path in ranges]
        finally:
            if pool is not None:
                pool.close()

    def ranges(self) -> list[Range]:
        """The ranges, in input order: read them instead of iterating, and remove them."""
        return [Range(paths, number * self._per_range,
                      min(self._per_range, self.requests - number * self._per_range))
                for number, paths in enumerate(self._ranges)]

    def __iter__(self) -> Iterator[Joined]:
        for r in self.ranges():
            yield from r.joined()
            r.remove()


class Range(NamedTuple):
    """Requests `start` to `start + requests` with their result lines, in range files."""

    paths: list[Path]
    start: int
    requests: int

    def size(self) -> int:
        return sum(path.stat().st_size for path in self.paths)

    def joined(self) -> Iterator[Joined]:
        """The range's requests, in input order."""
        for record in in_order(self.paths, self.start, self.requests):
            index, key_json, rhash, line = record.split(b"\t", 3)
            yield int(index), key_json, rhash.decode(), None if line == b"\n" else line, None

    def remove(self) -> None:
        for path in self.paths:
            path.unlink()


def _files_for(size: int) -> int:
    return min(MAX_FILES, max(1, -(-size // BUCKET_BYTES)))


def join_bucket(results: Sequence[Path], requests: Sequence[Path], writes: list[Write],
                per_range: int, by_hash: bool = False) -> tuple[int, int]:
    """Pairs each request of a bucket with its result line (a later line for a key wins) into
    the range files as `index\\tkey\\thash\\tline`, an empty line for none (`results`: the
    bucket's files, in the order their lines came); returns how many
    results no request took, and how many repeated a key within their own results file.
    `by_hash`: the results are the store's, found by request hash (see spill_stored)."""
    lines: dict[bytes, bytes] = {}
    files: dict[bytes, bytes] = {}
    repeated = 0
    for path in results:
        with open(path, "rb", buffering=_READ) as f:
            for record in f:
                key_json, number, line = record.split(b"\t", 2)
                if files.get(key_json) == number:
                    repeated += 1
                files[key_json] = number
                lines[key_json] = line
    taken: set[bytes] = set()
    for path in requests:
        with open(path, "rb", buffering=_READ) as f:
            for record in f:
                index, key_json, rhash = record.split(b"\t", 2)
                if by_hash:
                    taken.add(rhash := rhash[:-1])
                    line = lines.get(rhash, b"\n")
                else:
                    line = lines.pop(key_json, b"\n")
                writes[int(index) // per_range](record[:-1] + b"\t" + line)
    return len(lines.keys() - taken) if by_hash else len(lines), repeated


Bucket = tuple[list[Path], list[Path]]     # a bucket's results files and requests files


def join_buckets(buckets: list[Bucket], ranges: list[Path], per_range: int,
                 by_hash: bool = False, remove: bool = True) -> tuple[int, int]:
    """join_bucket of each bucket into the range files, removing the bucket's files with
    `remove` (a worker's share leaves them: should another share fail, this process joins
    them again); returns the unmatched and repeated, summed."""
    with _writers(ranges) as writes:
        return _join_buckets(buckets, writes, per_range, by_hash, remove)


def _join_buckets(buckets: list[Bucket], writes: list[Write], per_range: int,
                  by_hash: bool = False, remove: bool = True) -> tuple[int, int]:
    unmatched = repeated = 0
    for results, requests in buckets:
        u, r = join_bucket(results, requests, writes, per_range, by_hash)
        unmatched += u
        repeated += r
        if remove:
            remove_bucket((results, requests))
    return unmatched, repeated


def remove_bucket(b: Bucket) -> None:
    joinapart.remove([*b[0], *b[1]])


def in_order(paths: Sequence[Path], start: int, count: int) -> list[bytes]:
    """A range's records (from its files), placed by their index (from `start`)."""
    slots = [b""] * count
    for path in paths:
        with open(path, "rb", buffering=_READ) as f:
            for record in f:
                slots[int(record[:record.index(b"\t")]) - start] = record
    return slots
