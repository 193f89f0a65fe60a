"""Requests and results into the join's bucket files (runner.join, step 1).

Each record is a line of tab-separated fields: a request as `index\tkey\thash`, a result as
`key\tfile\tline` (or, from the store, `hash\tfile\tline`), bucketed by the hash of its key
(or request hash) so that a request and its result land in buckets of the same number.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING
from zlib import crc32

import orjson

from .errors import ResultsError
from .hashing import ContentHasher, canonical_bytes, request_hash
from .joinapart import Piece, lines_of
from .manifest import Manifest
from .parallel import render_jsonl
from .providers.dialect import Dialect
from .providers.registry import dialect_of
from .render import Renderer

if TYPE_CHECKING:
    from .join import Spooled

_BUFFER = 1 << 16           # per temp file being written
_READ = 1 << 20

Write = Callable[[bytes], object]


def bucket(data: bytes, n: int) -> int:
    """Which of `n` temp files a key or request hash goes to: the same in every process (the
    join runs across cores), unlike the built-in hash of bytes."""
    return crc32(data) % n


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
        for number, line in enumerate(lines_of(path, start, end), 1):
            try:
                result = loads(line)
            except orjson.JSONDecodeError as e:
                if line.isspace():
                    continue
                # what the parser found (a lone surrogate, a number past a double's range):
                # "not a JSON object" said of `{"a": "\ud800"}` sent the reader astray
                raise ResultsError(f"a results line is not valid JSON ({e.msg} at column "
                                   f"{e.colno})", path=path, where=str(number)) from None
            if type(result) is not dict:
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
