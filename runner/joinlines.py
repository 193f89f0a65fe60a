"""The JSONL outputs' lines and the errors file's, from joined results: in this process, or, for
a large batch whose outputs are JSONL only, range by range across cores.

Formatting a line (parse the result, read its answer, write the record) is most of a join's
time, and the join's ranges (runner.join) are independent: each worker formats whole ranges
into temp files, and this process copies them into the outputs in input order, so the bytes
are the ones one process writes. The lines the result store keeps come back the same way, in
input order, so the packs are the same too. A range that fails in a worker (a lost worker, a
stored line that does not parse) is formatted again here, which raises what one process
raises.
"""

from __future__ import annotations

import multiprocessing
import signal
from collections import deque
from collections.abc import Iterable
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import IO, Any, NamedTuple, Protocol

import orjson

from .join import Join, Joined, Write, in_order
from .manifest import Manifest
from .parallel import _context, _cpus
from .providers.dialect import UNFINISHED, Answer, Dialect
from .providers.registry import dialect_of
from .store.pack import FAILED, OK
from .store.writer import RECORD
from .usage import Usage

MIN_REQUESTS = 100_000      # below this, starting workers costs more than it saves
_PIECE = 1 << 20



class Keep(Protocol):
    """Where every result line joined to a request goes, with its request hash and whether
    it is a successful answer: the result store's pack writer (runner.store.writer)."""

    def add(self, request_hash: str, line: bytes, ok: bool) -> None:
        """One line (without its newline)."""

    def add_records(self, data: bytes) -> None:
        """Many lines, each a RECORD (raw hash, status, length) then its bytes."""


class Pieces:
    """Lines for files written a piece at a time (fewer, larger writes), each file's bytes
    hashed as written."""

    def __init__(self) -> None:
        self.files: list[tuple[IO[bytes], Any]] = []    # each file, with its hash
        self._piece: list[bytes] = []
        self._size = 0

    def write(self, data: bytes) -> None:
        self._piece.append(data)
        self._size += len(data)
        if self._size >= _PIECE:
            self.flush()

    def flush(self) -> None:
        data = b"".join(self._piece)
        self._piece.clear()
        self._size = 0
        for f, h in self.files:
            f.write(data)
            h.update(data)


class Counts(NamedTuple):
    succeeded: int
    failed: int
    unfinished: int
    missing: int        # requests without a result line
    usage: Usage


def format_lines(dialect: Dialect, joined: Iterable[Joined], out: Write, errors: Write,
                 keep: Keep | None) -> Counts:
    """Each joined request's output line (a success) or errors line (a failure, or no result),
    each result line given to `keep` too, with whether it is an answer."""
    loads, dumps, read_result = orjson.loads, orjson.dumps, dialect.read_result
    unwire = dialect.key_of_wire if dialect.maps_keys else None
    succeeded = failed = unfinished = missing = 0
    usage = Usage()
    for _, key_json, rhash, line in joined:
        if line is None:
            missing += 1
            result = None
        else:
            result = loads(line)
        key = loads(key_json) if unwire is None else unwire(loads(key_json))
        read = read_result(result)
        if not isinstance(read, Answer):
            if keep is not None and line is not None:
                keep.add(rhash, line[:-1], False)
            failed += 1
            unfinished += read.get(UNFINISHED) is True
            errors(dumps({"key": key, "request_hash": rhash, "error": read}) + b"\n")
            continue
        if keep is not None and line is not None:
            keep.add(rhash, line[:-1], True)
        succeeded += 1
        usage += read.usage
        out(dumps({"key": key, "text": read.text, "finish_reason": read.finish_reason,
                   "usage": read.usage_raw, "request_hash": rhash, "response": read.response})
            + b"\n")
    return Counts(succeeded, failed, unfinished, missing, usage)


def across_cores(join: Join) -> bool:
    """Whether the join's lines are worth formatting across cores (never from a worker)."""
    return join.requests >= MIN_REQUESTS and multiprocessing.parent_process() is None \
        and _cpus() > 1


class _Range(NamedTuple):
    path: Path
    start: int
    requests: int
    out: Path
    errors: Path
    kept: Path | None


def format_ranges(join: Join, manifest: Manifest, out: Write, errors: Write,
                  keep: Keep | None) -> Counts:
    """format_lines over the join's ranges, by worker processes, copied into `out` and
    `errors` (and `keep`) in input order."""
    ranges = [_Range(path, start, requests, path.with_suffix(".out"), path.with_suffix(".err"),
                     path.with_suffix(".kept") if keep is not None else None)
              for path, start, requests in join.ranges()]
    total = Counts(0, 0, 0, 0, Usage())
    dialect = dialect_of(manifest)
    workers = _cpus()
    with ProcessPoolExecutor(workers, mp_context=_context(), initializer=_start,
                             initargs=(manifest,)) as pool:
        pending: deque[tuple[_Range, Future[Counts] | None]] = deque()
        todo = iter(ranges)
        for r in todo:
            pending.append((r, _submit(pool, r)))
            if len(pending) > workers:
                break
        while pending:
            r, future = pending.popleft()
            counts = _collect(dialect, r, future)
            total = Counts(total.succeeded + counts.succeeded, total.failed + counts.failed,
                           total.unfinished + counts.unfinished,
                           total.missing + counts.missing, total.usage + counts.usage)
            _copy(r.out, out)
            _copy(r.errors, errors)
            if r.kept is not None and keep is not None:
                keep.add_records(r.kept.read_bytes())     # a range's: a few MB
                r.kept.unlink()
            r.path.unlink()
            for r in todo:
                pending.append((r, _submit(pool, r)))
                break
    return total


def _submit(pool: ProcessPoolExecutor, r: _Range) -> Future[Counts] | None:
    try:
        return pool.submit(_work, r)
    except Exception:   # noqa: BLE001 - the pool broke: this range is formatted here
        return None


def _collect(dialect: Dialect, r: _Range, future: Future[Counts] | None) -> Counts:
    if future is not None:
        try:
            return future.result()
        except Exception:   # noqa: BLE001 - formatted again here, to raise it with its place
            pass
    return _format_range(dialect, r)


def _copy(path: Path, write: Write) -> None:
    with open(path, "rb") as f:
        while data := f.read(_PIECE):
            write(data)
    path.unlink()


def _format_range(dialect: Dialect, r: _Range) -> Counts:
    joined = (_joined(record) for record in in_order(r.path, r.start, r.requests))
    with open(r.out, "wb", buffering=_PIECE) as out, \
            open(r.errors, "wb", buffering=_PIECE) as errors:
        if r.kept is None:
            return format_lines(dialect, joined, out.write, errors.write, None)
        with open(r.kept, "wb", buffering=_PIECE) as kept:
            return format_lines(dialect, joined, out.write, errors.write, _Records(kept.write))


class _Records:
    """A Keep writing the lines as Keep.add_records takes them, for this process's parent."""

    def __init__(self, write: Write):
        self._write = write

    def add(self, request_hash: str, line: bytes, ok: bool) -> None:
        self._write(RECORD.pack(bytes.fromhex(request_hash[7:]), OK if ok else FAILED,
                                len(line)) + line)

    def add_records(self, data: bytes) -> None:
        self._write(data)


def _joined(record: bytes) -> Joined:
    index, key_json, rhash, line = record.split(b"\t", 3)
    return int(index), key_json, rhash.decode(), None if line == b"\n" else line


# -- in a worker process ----------------------------------------------------------------------

_dialect: Dialect | None = None


def _start(manifest: Manifest) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)    # Ctrl-C is for the parent to handle
    global _dialect
    _dialect = dialect_of(manifest)


def _work(r: _Range) -> Counts:
    assert _dialect is not None
    return _format_range(_dialect, r)
