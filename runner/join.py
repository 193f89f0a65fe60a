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

import contextlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import NamedTuple
from zlib import crc32

import orjson

from . import joinapart
from .errors import ResultsError
from .hashing import ContentHasher, canonical_bytes, request_hash
from .joinapart import Piece
from .manifest import Manifest
from .parallel import render_jsonl
from .providers.dialect import Dialect
from .providers.registry import dialect_of
from .render import Renderer

BUCKET_BYTES = 8 << 20      # results (or pairs) held in memory at once, about
MAX_FILES = 256             # temp files open at once, at most: past that, buckets grow
_BUFFER = 1 << 16           # per temp file being written
_READ = 1 << 20

Write = Callable[[bytes], object]

# One request, in input order: its index, its key's JSON, its request hash and its result line
# (None when the provider sent none). A plain tuple, as a million are made per batch. Keys stay
# JSON, which holds neither a tab nor a newline, so that the temp files' records are lines of
# tab-separated fields, a result line always the last of them.
Joined = tuple[int, bytes, str, bytes | None]


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
                    (buckets[w * share:(w + 1) * share], paths, self._per_range)
                    for w, paths in enumerate(shares)])
                if joinapart.done(joining):
                    for future in joining:
                        unmatched, repeated = future.result()
                        self.unmatched += unmatched
                        self.repeated += repeated
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
            yield int(index), key_json, rhash.decode(), None if line == b"\n" else line

    def remove(self) -> None:
        for path in self.paths:
            path.unlink()


def bucket(data: bytes, n: int) -> int:
    """Which of `n` temp files a key or request hash goes to: the same in every process (the
    join runs across cores), unlike the built-in hash of bytes."""
    return crc32(data) % n


def _files_for(size: int) -> int:
    return min(MAX_FILES, max(1, -(-size // BUCKET_BYTES)))


@contextlib.contextmanager
def _writers(paths: list[Path]) -> Iterator[list[Write]]:
    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(open(path, "wb", buffering=_BUFFER)).write
               for path in paths]


def spill_requests(manifest: Manifest, renderer: Renderer, writes: list[Write],
                   spooled: Spooled | None = None, by_hash: bool = False) -> tuple[int, str]:
    """Every request, in input order, into the buckets as `index\\tkey\\thash\\n`; returns how
    many, and the content hash of the requests as the files render them now (the caller
    compares it with what was sent). `spooled`, this run's keys and hashes of the batch, are
    read instead of rendering again. `by_hash`: bucketed by request hash, not by key."""
    if spooled is not None:
        return spill_keys(spooled.keys, writes, by_hash), spooled.content_hash
    provider, model, n = manifest.provider, manifest.model, len(writes)
    split = renderer.framing.split
    hasher = ContentHasher(provider, model)
    count = 0

    def add(pairs: Iterable[tuple[bytes, bytes]]) -> None:
        nonlocal count
        index = count
        for key_json, request in pairs:
            rhash = request_hash(provider, model, request).encode()
            writes[bucket(rhash if by_hash else key_json, n)](
                b"%d\t%s\t%s\n" % (index, key_json, rhash))
            index += 1
        count = index

    def block(data: bytes) -> None:
        hasher.add(data)
        add(map(split, data.split(b"\n")[:-1]))

    rows = manifest.rows
    if rows is not None and rows.suffix.lower() == ".jsonl" and rows.is_file():
        render_jsonl(renderer, rows, block)
    else:   # other formats, inline items, and a missing rows file (said at spec.rows)
        def each() -> Iterator[tuple[bytes, bytes]]:
            for req in renderer.requests():
                line = renderer.line(req)       # the key as sent, as the results hold it
                hasher.add(line + b"\n")
                yield split(line)

        add(each())
    return count, hasher.hexdigest()


def spill_keys(keys: Path, writes: list[Write], by_hash: bool = False) -> int:
    """spill_requests from a file of `key\\thash\\n` lines (runner.held.KeysFile)."""
    n = len(writes)
    index = 0
    with open(keys, "rb", buffering=_READ) as f:
        for record in f:
            tab = record.index(b"\t")
            writes[bucket(record[tab + 1:-1] if by_hash else record[:tab], n)](
                b"%d\t" % index + record)
            index += 1
    return index


def spill_results(dialect: Dialect, results: Sequence[Path], writes: list[Write]) -> None:
    """Every result line with a string key into the buckets as `key\tfile\tline`, in file
    order (`file` numbers the results file, to tell a key repeated within one file from a
    follow-up's answer)."""
    _spill(dialect, [Piece(number, path) for number, path in enumerate(results)], writes)


def _spill(dialect: Dialect, pieces: Sequence[Piece], writes: list[Write]) -> None:
    """spill_results of parts of the results files (a bad line's number counts from the
    start of its piece)."""
    n, loads, key_of = len(writes), orjson.loads, dialect.result_key
    for number_of_file, path, start, end in pieces:
        tag = b"\t%d\t" % number_of_file
        left = end - start if end is not None else -1
        with open(path, "rb", buffering=_READ) as f:
            f.seek(start)
            for number, line in enumerate(f, 1):
                if left >= 0:
                    if left == 0:
                        break
                    left -= len(line)
                try:
                    result = loads(line)
                except orjson.JSONDecodeError:
                    result = None
                if type(result) is not dict:
                    if line.isspace():
                        continue
                    raise ResultsError("a results line is not a JSON object", path=path,
                                       where=str(number))
                key = key_of(result)
                if type(key) is not str:
                    continue
                key_json = canonical_bytes(key)
                if line[-1] != 0x0A:        # the last line of a file may have no newline
                    line += b"\n"
                writes[bucket(key_json, n)](key_json + tag + line)


def spill_pieces(manifest: Manifest, pieces: list[Piece], paths: list[Path]) -> None:
    """In a worker (runner.joinapart): parts of the results into a set of bucket files."""
    with _writers(paths) as writes:
        _spill(dialect_of(manifest), pieces, writes)


def spill_stored(results: Sequence[Path], writes: list[Write]) -> None:
    """Result lines from the store (files of `hash\\tline` records, runner.apply.keep) into
    the buckets by request hash, as spill_results puts them by key: a line is found by the
    request it answers, so two requests alike (two keys) share the one line the store keeps."""
    n = len(writes)
    for path in results:
        with open(path, "rb", buffering=_READ) as f:
            for record in f:
                rhash, line = record.split(b"\t", 1)
                writes[bucket(rhash, n)](rhash + b"\t0\t" + line)


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
                 by_hash: bool = False) -> tuple[int, int]:
    """join_bucket of each bucket into the range files, removing the bucket's files;
    returns the unmatched and repeated, summed."""
    with _writers(ranges) as writes:
        return _join_buckets(buckets, writes, per_range, by_hash)


def _join_buckets(buckets: list[Bucket], writes: list[Write], per_range: int,
                  by_hash: bool = False) -> tuple[int, int]:
    unmatched = repeated = 0
    for results, requests in buckets:
        u, r = join_bucket(results, requests, writes, per_range, by_hash)
        unmatched += u
        repeated += r
        for path in (*results, *requests):
            path.unlink(missing_ok=True)
    return unmatched, repeated


def in_order(paths: Sequence[Path], start: int, count: int) -> list[bytes]:
    """A range's records (from its files), placed by their index (from `start`)."""
    slots = [b""] * count
    for path in paths:
        with open(path, "rb", buffering=_READ) as f:
            for record in f:
                slots[int(record[:record.index(b"\t")]) - start] = record
    return slots
