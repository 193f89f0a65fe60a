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

from .join import (
    Join,
    Spooled,
    Write,
    _files_for,
    _writers,
    bucket,
    join_bucket,
    spill_requests,
    spill_results,
    spill_stored,
)
from .manifest import Manifest
from .render import Renderer


class ReuseJoin(Join):
    """As runner.join.Join (whose range files it writes the same way, and reads the same
    way), with `stored`: a file of the store's lines for the requests
    reused (runner.reuse.extract), found by request hash when no results file has a line
    for the request's key."""

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
        pairs = size + sum(path.stat().st_size for path in requests)
        self._per_range = max(1, -(-self.requests // _files_for(pairs)))
        ranges = [directory / f"range-{i}" for i in range(-(-self.requests // self._per_range))]
        left = [directory / f"left-{i}" for i in range(n)]
        kept = [directory / f"stored-{i}" for i in range(n)]
        self.unmatched = self.repeated = 0
        with _writers(ranges) as out:
            with _writers(left) as aside:
                routes = [_route(write, aside) for write in out]
                for req, res in zip(requests, lines):
                    unmatched, repeated = join_bucket([res], req, routes, self._per_range)
                    self.unmatched += unmatched
                    self.repeated += repeated
                    req.unlink()
                    res.unlink()
            with _writers(kept) as writes:
                spill_stored([stored], writes)
            for req, res in zip(left, kept):
                join_bucket([res], req, out, self._per_range, by_hash=True)
                req.unlink()
                res.unlink()
        self._ranges = [[path] for path in ranges]


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
