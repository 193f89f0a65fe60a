"""The join of results that come back in input order, or nearly: without temp files.

Google documents a Gemini results file as "written in the same order as the input requests",
and users report it out of order at scale. So the requests (their keys file, in input order:
runner.held.KeysFile) and the result lines are cut at the same line numbers into chunks, and
the outputs are formatted straight from the two files, a chunk at a time by the workers of
runner.joinlines: each request takes the line of its key among its chunk's lines, in
whatever order they are within it. That is the bytes the join by key (runner.join) writes,
without spilling, joining and sorting every line through temp files, as long as every
chunk's lines answer exactly its requests, one line each: a chunk is checked as it is read,
and any other (a line out of its chunk, a key twice or missing, a line that does not parse,
a blank line) raises OutOfOrder, for the caller to start again with the join by key, which
says what is wrong. The work done until then is lost: little when the results are shuffled
(the first chunk is out of order), up to a pass when only the last one is.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import NamedTuple

import orjson

from .hashing import canonical_bytes
from .join import Joined, OutOfOrder
from .joinapart import lines_of
from .providers.registry import dialect

CHUNK_LINES = 20_000        # requests in a chunk, at most: its result lines are held at once
CHUNK_BYTES = 8 << 20       # result lines in a chunk, about, at most (runner.join's BUCKET_BYTES)
MIN_BYTES = 32 << 20        # results below this are joined by key: checking costs a parse
_READ = 1 << 20


class Chunk(NamedTuple):
    """Requests `start` to `start + requests` of a batch of `provider`: their lines in the
    keys file, and the result lines of the same numbers in the results file (byte ranges)."""

    provider: str
    keys: Path
    results: Path
    start: int
    requests: int
    keys_at: tuple[int, int]
    results_at: tuple[int, int]

    def size(self) -> int:
        return self.results_at[1] - self.results_at[0] + self.keys_at[1] - self.keys_at[0]

    def joined(self) -> Iterator[Joined]:
        """The chunk's requests, in input order, each with its result line; OutOfOrder, at any
        point, when its lines do not answer exactly its requests, one line each. While each
        line is its request's, it is parsed once here and handed on parsed; from the first
        that is not, the rest of the chunk's lines are taken by key."""
        lines = list(lines_of(self.results, *self.results_at))
        if len(lines) != self.requests:
            raise OutOfOrder
        key_of = dialect(self.provider).result_key
        records = lines_of(self.keys, *self.keys_at)
        index = self.start
        for record in records:
            key_json, rhash = record[:-1].split(b"\t")
            if index - self.start >= len(lines):
                raise OutOfOrder
            line = _ended(lines[index - self.start])
            try:
                result = orjson.loads(line)
            except orjson.JSONDecodeError:
                raise OutOfOrder from None
            key = key_of(result) if type(result) is dict else None
            if type(key) is not str:
                raise OutOfOrder
            if canonical_bytes(key) != key_json:
                yield from self._by_key(lines[index - self.start:], index, key_json, rhash,
                                        records)
                return
            yield index, key_json, rhash.decode(), line, result
            index += 1
        if index != self.start + self.requests:
            raise OutOfOrder

    def _by_key(self, lines: list[bytes], index: int, key_json: bytes, rhash: bytes,
                records: Iterator[bytes]) -> Iterator[Joined]:
        """The rest of the chunk, from request `index` (whose key's JSON and hash are given,
        `records` holding the ones after it): each takes the line of its key."""
        keyed = keyed_lines(self.provider, lines)
        if keyed is None:
            raise OutOfOrder
        while True:
            line = keyed.pop(key_json, None)
            if line is None:
                raise OutOfOrder
            yield index, key_json, rhash.decode(), line, None
            index += 1
            record = next(records, None)
            if record is None:
                break
            key_json, rhash = record[:-1].split(b"\t")
        if keyed or index != self.start + self.requests:
            raise OutOfOrder

    def remove(self) -> None:
        """Nothing: the chunk is read from files the join does not own."""


def keyed_lines(provider: str, results: Iterable[bytes]) -> dict[bytes, bytes] | None:
    """Result lines by their key's JSON, as the join by key reads them
    (runner.spill.spill_results), each with a newline; None for a line that does not parse,
    has no string key, or repeats a key: the join by key decides what those mean."""
    lines: dict[bytes, bytes] = {}
    key_of = dialect(provider).result_key
    for line in results:
        try:
            result = orjson.loads(line)
        except orjson.JSONDecodeError:
            return None
        key = key_of(result) if type(result) is dict else None
        if type(key) is not str:
            return None
        key_json = canonical_bytes(key)
        if key_json in lines:
            return None
        lines[key_json] = _ended(line)
    return lines


def _ended(line: bytes) -> bytes:
    return line if line[-1:] == b"\n" else line + b"\n"


class Ordered:
    """The join's face (runner.join.Join) of results in input order: its chunks are its
    ranges; no line is left over, none repeated (or reading a chunk raises OutOfOrder)."""

    unmatched = repeated = 0

    def __init__(self, chunks: list[Chunk], content_hash: str):
        self._chunks = chunks
        self.requests = sum(c.requests for c in chunks)
        self.content_hash = content_hash

    def ranges(self) -> list[Chunk]:
        return self._chunks

    def __iter__(self) -> Iterator[Joined]:
        for chunk in self._chunks:
            yield from chunk.joined()


def chunks(provider: str, keys: Path, results: Path) -> list[Chunk] | None:
    """Both files cut at the same line numbers, a chunk holding CHUNK_LINES requests or
    CHUNK_BYTES of result lines, whichever comes first; None when the files do not hold as
    many lines (or hold an empty line)."""
    result_cuts = _cuts(results)
    key_cuts = _cuts(keys, [lines for lines, _ in result_cuts]) \
        if result_cuts is not None else None
    if key_cuts is None or result_cuts is None or len(key_cuts) != len(result_cuts):
        return None
    return [Chunk(provider, keys, results, a, b - a, (ka, kb), (ra, rb))
            for (a, ka), (b, kb), (_, ra), (_, rb)
            in zip(key_cuts, key_cuts[1:], result_cuts, result_cuts[1:])]


def _cuts(path: Path, at: list[int] | None = None) -> list[tuple[int, int]] | None:
    """(line number, byte offset) where each chunk of `path` ends, from (0, 0): at the line
    numbers `at` when given (another file's cuts; None unless it holds as many lines), else
    every CHUNK_LINES lines or CHUNK_BYTES, and at the end. None for a file with an empty
    line."""
    cuts = [(0, 0)]
    wanted = iter(at[1:]) if at is not None else None
    next_cut = next(wanted, None) if wanted is not None else None
    lines = offset = 0
    with open(path, "rb", buffering=_READ) as f:
        for line in f:
            if line == b"\n":
                return None
            lines += 1
            offset += len(line)
            if wanted is not None:
                if lines == next_cut:
                    cuts.append((lines, offset))
                    next_cut = next(wanted, None)
            elif lines - cuts[-1][0] >= CHUNK_LINES or offset - cuts[-1][1] >= CHUNK_BYTES:
                cuts.append((lines, offset))
    if wanted is None and cuts[-1][0] != lines:
        cuts.append((lines, offset))
    if wanted is not None and (next_cut is not None or cuts[-1][0] != lines):
        return None
    return cuts
