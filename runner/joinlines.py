"""The JSONL outputs' lines and the errors file's, from joined results: in this process, or, for
a large batch whose outputs are JSONL only, a group of ranges at a time across cores.

Formatting a line (parse the result, read its answer, write the record) is most of a join's
time, and the join's ranges (runner.join) are independent: each worker formats a group of
consecutive ranges into temp files, and this process copies them into the outputs in input
order, so the bytes are the ones one process writes. The lines the result store keeps are
made into packs by the worker too (a PackBuilder: indexing and compressing a line costs
about half of formatting it), which this process hands to the store's writer in input
order: the same lines, in packs cut where a group ends rather than where one process's
writer fills them. A group that fails in a worker (a lost worker, a stored line that does
not parse) is formatted again here, which raises what one process raises.
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
from .store.writer import PACK_BYTES, PackBuilder
from .usage import Tally, Usage

MIN_REQUESTS = 100_000      # below this, starting workers costs more than it saves
_PIECE = 1 << 20



class Adds(Protocol):
    """Where every result line joined to a request goes, with its request hash and whether
    it is a successful answer: the result store's pack writer or builder
    (runner.store.writer)."""

    def add(self, request_hash: str, line: bytes, ok: bool) -> None:
        """One line (without its newline)."""


class Keep(Adds, Protocol):
    """An Adds that takes whole packs too: the result store's pack writer."""

    def add_pack(self, name: str, data: bytes) -> None:
        """A whole pack of lines, made by a PackBuilder, named by its hash."""


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

    def plus(self, other: Counts) -> Counts:
        return Counts(self.succeeded + other.succeeded, self.failed + other.failed,
                      self.unfinished + other.unfinished, self.missing + other.missing,
                      self.usage + other.usage)


def format_lines(dialect: Dialect, joined: Iterable[Joined], out: Write, errors: Write,
                 keep: Adds | None) -> Counts:
    """Each joined request's output line (a success) or errors line (a failure, or no result),
    each result line given to `keep` too, with whether it is an answer."""
    loads, dumps, read_result = orjson.loads, orjson.dumps, dialect.read_result
    unwire = dialect.key_of_wire if dialect.maps_keys else None
    succeeded = failed = unfinished = missing = 0
    usage = Tally()
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
        usage.add(read.usage)
        out(dumps({"key": key, "text": read.text, "finish_reason": read.finish_reason,
                   "usage": read.usage_raw, "request_hash": rhash, "response": read.response})
            + b"\n")
    return Counts(succeeded, failed, unfinished, missing, usage.total())


def across_cores(join: Join) -> bool:
    """Whether the join's lines are worth formatting across cores (never from a worker)."""
    return join.requests >= MIN_REQUESTS and multiprocessing.parent_process() is None \
        and _cpus() > 1


class _Group(NamedTuple):
    """Consecutive ranges of the join, formatted together by one worker: its lines go to
    `out` and `errors`, and with `packs`, the lines to keep into whole packs, in files
    named by it."""

    ranges: list[tuple[list[Path], int, int]]   # as Join.ranges gives them
    out: Path
    errors: Path
    packs: Path | None


class Formatted(NamedTuple):
    counts: Counts
    packs: list[tuple[str, Path]]           # each pack's name, and the file holding it


def format_ranges(join: Join, manifest: Manifest, out: Write, errors: Write,
                  keep: Keep | None) -> Counts:
    """format_lines over the join's ranges, a group of them at a time by worker processes,
    copied into `out` and `errors` in input order. The lines to `keep` come back as whole
    packs (each group's lines in packs of their own, cut where the group ends): making them
    is most of the cost of keeping a line, and done here it left the workers waiting."""
    groups = _groups(join.ranges(), keep is not None)
    total = Counts(0, 0, 0, 0, Usage())
    dialect = dialect_of(manifest)
    workers = _cpus()
    with ProcessPoolExecutor(workers, mp_context=_context(), initializer=_start,
                             initargs=(manifest,)) as pool:
        pending: deque[tuple[_Group, Future[Formatted] | None]] = deque()
        todo = iter(groups)
        for g in todo:
            pending.append((g, _submit(pool, g)))
            if len(pending) > workers:
                break
        while pending:
            g, future = pending.popleft()
            counts, packs = _collect(dialect, g, future)
            total = total.plus(counts)
            _copy(g.out, out)
            _copy(g.errors, errors)
            for name, path in packs:
                assert keep is not None
                keep.add_pack(name, path.read_bytes())      # a pack's: a few MB
                path.unlink()
            for paths, _, _ in g.ranges:
                for path in paths:
                    path.unlink()
            for g in todo:
                pending.append((g, _submit(pool, g)))
                break
    return total


def _groups(ranges: list[tuple[list[Path], int, int]], packs: bool) -> list[_Group]:
    """The ranges in groups of at most a pack's worth of lines (range files hold the result
    lines and a little more), so that each group makes one pack about the writer's size."""
    groups: list[_Group] = []
    group: list[tuple[list[Path], int, int]] = []
    size = 0
    for r in ranges:
        length = sum(path.stat().st_size for path in r[0])
        if group and size + length > PACK_BYTES:
            groups.append(_group(group, packs))
            size, group = 0, []
        group.append(r)
        size += length
    return groups + [_group(group, packs)] if group else groups


def _group(ranges: list[tuple[list[Path], int, int]], packs: bool) -> _Group:
    first = ranges[0][0][0]
    return _Group(ranges, first.with_suffix(".out"), first.with_suffix(".err"),
                  first.with_suffix(".packs") if packs else None)


def _submit(pool: ProcessPoolExecutor, g: _Group) -> Future[Formatted] | None:
    try:
        return pool.submit(_work, g)
    except Exception:   # noqa: BLE001 - the pool broke: this group is formatted here
        return None


def _collect(dialect: Dialect, g: _Group, future: Future[Formatted] | None) -> Formatted:
    if future is not None:
        try:
            return future.result()
        except Exception:   # noqa: BLE001 - formatted again here, to raise it with its place
            pass
    return _format_group(dialect, g)


def _copy(path: Path, write: Write) -> None:
    with open(path, "rb") as f:
        while data := f.read(_PIECE):
            write(data)
    path.unlink()


def _format_group(dialect: Dialect, g: _Group) -> Formatted:
    """A group's lines into its files; its packs, when it keeps lines."""
    packs: list[tuple[str, Path]] = []
    total = Counts(0, 0, 0, 0, Usage())

    def made(name: str, data: bytes) -> None:
        assert g.packs is not None
        path = g.packs.with_name(f"{g.packs.name}-{len(packs)}")
        path.write_bytes(data)
        packs.append((name, path))

    builder = PackBuilder(made) if g.packs is not None else None
    with open(g.out, "wb", buffering=_PIECE) as out, \
            open(g.errors, "wb", buffering=_PIECE) as errors:
        for paths, start, requests in g.ranges:
            joined = (_joined(record) for record in in_order(paths, start, requests))
            total = total.plus(format_lines(dialect, joined, out.write, errors.write, builder))
    if builder is not None:
        builder.end_pack()
    return Formatted(total, packs)


def _joined(record: bytes) -> Joined:
    index, key_json, rhash, line = record.split(b"\t", 3)
    return int(index), key_json, rhash.decode(), None if line == b"\n" else line


# -- in a worker process ----------------------------------------------------------------------

_dialect: Dialect | None = None


def _start(manifest: Manifest) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)    # Ctrl-C is for the parent to handle
    global _dialect
    _dialect = dialect_of(manifest)


def _work(g: _Group) -> Formatted:
    assert _dialect is not None
    return _format_group(_dialect, g)
