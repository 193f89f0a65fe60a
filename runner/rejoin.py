"""The join of a batch that reused results: its jobs' results found by key, the rest by hash.

A batch whose requests were partly reused (runner.reuse) has two kinds of results: its jobs'
results files, whose lines carry the keys of the requests sent, and the store's lines for the
requests reused, which carry whatever key the request had when it was answered (another row,
another manifest) and are found by request hash. So the join of runner.join runs twice, on
the same temp files: first by key, as for any batch; then the requests left without a line
go, bucketed by request hash, to a join with the store's lines. Every request still ends in
exactly one range file, so the output order and the bounded memory are runner.join's.

A store line no request took is not counted as unmatched: the packs hold other batches'
results too.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from . import joinapart
from .join import (
    Bucket,
    Join,
    Spooled,
    _files_for,
    _join_buckets,
    join_buckets,
    remove_bucket,
)
from .manifest import Manifest
from .render import Renderer
from .spill import Write, _writers, bucket, spill_requests, spill_results, spill_stored


class ReuseJoin(Join):
    """As runner.join.Join (whose range files it writes the same way, and reads the same
    way), with `stored`: a file of the store's lines for the requests
    reused (runner.reuse.extract), found by request hash when no results file has a line
    for the request's key. For a large batch, both joins run in two workers, a share of
    the buckets each (runner.joinapart), each writing range files of its own."""

    def __init__(self, manifest: Manifest, renderer: Renderer, results: Sequence[Path],
                 stored: Path, directory: Path, spooled: Spooled | None = None):
        size = sum(path.stat().st_size for path in (*results, stored))
        n = _files_for(size)
        requests = [directory / f"requests-{i}" for i in range(n)]
        lines = [directory / f"results-{i}" for i in range(n)]
        with _writers(requests) as writes:
            self.requests, self.content_hash = spill_requests(manifest, renderer, writes,
                                                              spooled)
        with _writers(lines) as writes:
            spill_results(renderer.dialect, results, writes)
        kept = [directory / f"stored-{i}" for i in range(n)]
        with _writers(kept) as writes:
            spill_stored([stored], writes)
        pairs = size + sum(path.stat().st_size for path in requests)
        self._per_range = max(1, -(-self.requests // _files_for(pairs)))
        count = -(-self.requests // self._per_range)
        pool = joinapart.open_pool() \
            if size >= joinapart.APART_BYTES and joinapart.possible() else None
        shares = joinapart.WORKERS if pool is not None else 1
        try:
            ranges = [[directory / f"range-{r}.{step}.{w}" for r in range(count)]
                      for step in range(2) for w in range(shares)]
            left = [[directory / f"left-{i}.{w}" for i in range(n)] for w in range(shares)]
            share = -(-n // shares)
            # the buckets are removed here once both shares are in: a share that failed in
            # its worker runs again here, from them
            by_key = joinapart.each(pool, _join_routed, [
                ([([lines[i]], [requests[i]]) for i in range(w * share, (w + 1) * share)
                  if i < n], ranges[w], left[w], self._per_range) for w in range(shares)])
            for i in range(n):
                remove_bucket(([lines[i]], [requests[i]]))
            by_hash = [([kept[i]], [aside[i] for aside in left]) for i in range(n)]
            joinapart.each(pool, join_buckets, [
                (by_hash[w * share:(w + 1) * share], ranges[shares + w], self._per_range,
                 True, False) for w in range(shares)])
            for b in by_hash:
                remove_bucket(b)
        finally:
            if pool is not None:
                pool.close()
        self.unmatched = sum(u for u, _ in by_key)
        self.repeated = sum(r for _, r in by_key)
        self._ranges = [list(paths) for paths in zip(*ranges)]


def _join_routed(buckets: list[Bucket], ranges: list[Path], left: list[Path], per_range: int
                 ) -> tuple[int, int]:
    """join_buckets by key, requests without a line going aside into `left` (bucketed by
    request hash, see _route) instead of into the range files."""
    with _writers(ranges) as out, _writers(left) as aside:
        return _join_buckets(buckets, [_route(write, aside) for write in out], per_range,
                             remove=False)


def _route(out: Write, aside: list[Write]) -> Write:
    """Where the first join writes a request of one range: to that range when a results file
    answered it, else aside, bucketed by request hash as spill_stored buckets the store's
    lines, as `index\\tkey\\thash` (a result line always ends `}\\n`, so `\\t\\n` is none)."""
    n = len(aside)

    def write(record: bytes) -> None:
        if record.endswith(b"\t\n"):
            rhash = record[:-2].rsplit(b"\t", 1)[1]
            aside[bucket(rhash, n)](record[:-2] + b"\n")
        else:
            out(record)

    return write
