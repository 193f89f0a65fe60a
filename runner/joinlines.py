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
import os
import signal
from collections import deque
from collections.abc import Container, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import BinaryIO, NamedTuple, Protocol

import orjson

from .join import Joined, OutOfOrder
from .manifest import Manifest
from .parallel import _context, _cpus
from .pieces import PIECE
from .providers.dialect import UNFINISHED, Answer, Dialect
from .providers.registry import dialect_of
from .spill import Write
from .store.writer import PACK_BYTES, PackBuilder
from .usage import Tally, Usage

MIN_REQUESTS = 100_000      # below this, starting workers costs more than it saves



class Adds(Protocol):
    """Where every result line joined to a request goes, with its request hash and whether
    it is a successful answer: the result store's pack writer or builder
    (runner.store.writer)."""

    def add(self, request_hash: str, line: bytes, ok: bool) -> None:
        """One line (without its newline)."""


class Part(Protocol):
    """Consecutive requests with their result lines, which a worker reads: a range of the
    join (runner.join.Range) or a chunk of results in input order (runner.inorder.Chunk)."""

    def size(self) -> int:
        """Bytes to read, about."""

    def joined(self) -> Iterable[Joined]:
        """The requests, in input order, each with its result line."""

    def remove(self) -> None:
        """Its temp files, once read."""


class Keep(Adds, Protocol):
    """An Adds that takes whole packs too, and forgets what it was given since a mark: the
    result store's pack writer."""

    def mark(self) -> int:
        """A mark to rewind to."""

    def rewind(self, mark: int) -> None:
        """What was added since `mark` left out of what is kept (it may stay in the store,
        where nothing names it)."""

    def add_pack(self, name: str, data: bytes) -> None:
        """A whole pack of lines, made by a PackBuilder, named by its hash."""


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
                 keep: Adds | None, fresh: Container[bytes] | None = None) -> Counts:
    """Each joined request's output line (a success) or errors line (a failure, or no result),
    each result line given to `keep` too, with whether it is an answer; with `fresh`, only
    the lines of the requests whose key's JSON it holds (see runner.outputs.write_outputs)."""
    loads, dumps, read_result = orjson.loads, orjson.dumps, dialect.read_result
    unwire = dialect.key_of_wire if dialect.maps_keys else None
    succeeded = failed = unfinished = missing = 0
    usage = Tally()
    for _, key_json, rhash, line, result in joined:
        if line is None:
            missing += 1
        elif result is None:
            result = loads(line)
        key = loads(key_json) if unwire is None else unwire(loads(key_json))
        read = read_result(result)
        # (the request's key: a results file's answered it, or the store's line by its hash)
        kept = fresh is None or key_json in fresh
        if not isinstance(read, Answer):
            if keep is not None and line is not None and kept:
                keep.add(rhash, line[:-1], False)
            failed += 1
            unfinished += read.get(UNFINISHED) is True
            errors(dumps({"key": key, "request_hash": rhash, "error": read}) + b"\n")
            continue
        if keep is not None and line is not None and kept:
            keep.add(rhash, line[:-1], True)
        succeeded += 1
        usage.add(read.usage)
        out(dumps({"key": key, "text": read.text, "finish_reason": read.finish_reason,
                   "usage": read.usage_raw, "request_hash": rhash, "response": read.response})
            + b"\n")
    return Counts(succeeded, failed, unfinished, missing, usage.total())


def across_cores(requests: int) -> bool:
    """Whether a join's lines are worth formatting across cores (never from a worker)."""
    return requests >= MIN_REQUESTS and multiprocessing.parent_process() is None \
        and _cpus() > 1


class _Group(NamedTuple):
    """Consecutive ranges of the join, formatted together by one worker: its lines go to
    `out` and `errors`, and with `packs`, the lines to keep into whole packs, in files
    named by it. The files are a slot's: the group after the next `workers` ones writes over
    them, once this process has copied them."""

    parts: list[Part]
    out: Path
    errors: Path
    packs: Path | None
    fresh: frozenset[bytes] | None = None


class Formatted(NamedTuple):
    counts: Counts
    packs: list[tuple[str, Path]]           # each pack's name, and the file holding it
    out: int = 0                            # bytes the group wrote to its files
    errors: int = 0


def format_ranges(parts: Iterable[Part], manifest: Manifest, out: Write, errors: Write,
                  keep: Keep | None, directory: Path, fresh: frozenset[bytes] | None = None
                  ) -> Counts:
    """format_lines over the join's ranges, a group of them at a time by worker processes,
    copied into `out` and `errors` in input order. The lines to `keep` come back as whole
    packs (each group's lines in packs of their own, cut where the group ends): making them
    is most of the cost of keeping a line, and done here it left the workers waiting. `fresh`:
    as for format_lines."""
    total = Counts(0, 0, 0, 0, Usage())
    dialect = dialect_of(manifest)
    workers = _cpus()
    # at most workers + 1 groups are out at once, each in a slot of its own (see _Group)
    groups = _groups(parts, keep is not None, directory, fresh, workers + 1)
    with ProcessPoolExecutor(workers, mp_context=_context(), initializer=_start,
                             initargs=(manifest,)) as pool:
        pending: deque[tuple[_Group, Future[Formatted] | None]] = deque()
        todo = groups
        for g in todo:
            pending.append((g, _submit(pool, g)))
            if len(pending) > workers:
                break
        while pending:
            g, future = pending.popleft()
            counts, packs, out_bytes, errors_bytes = _collect(dialect, g, future)
            total = total.plus(counts)
            _copy(g.out, out, out_bytes)
            _copy(g.errors, errors, errors_bytes)
            for name, path in packs:
                assert keep is not None
                keep.add_pack(name, path.read_bytes())      # a pack's: a few MB
                path.unlink()
            for part in g.parts:
                part.remove()
            for g in todo:
                pending.append((g, _submit(pool, g)))
                break
    return total


def _groups(parts: Iterable[Part], packs: bool, directory: Path,
            fresh: frozenset[bytes] | None, slots: int) -> Iterator[_Group]:
    """The parts in groups of at most a pack's worth of lines (the parts' files hold the
    result lines and a little more), so that each group makes one pack about the writer's
    size; as the parts come (runner.aligned's as it walks). Group n writes into slot
    n % `slots`."""
    number = size = 0
    group: list[Part] = []
    for part in parts:
        length = part.size()
        if group and size + length > PACK_BYTES:
            yield _group(directory / f"slot-{number % slots}", group, packs, fresh)
            number, size, group = number + 1, 0, []
        group.append(part)
        size += length
    if group:
        yield _group(directory / f"slot-{number % slots}", group, packs, fresh)


def _group(name: Path, parts: list[Part], packs: bool, fresh: frozenset[bytes] | None
           ) -> _Group:
    return _Group(parts, name.with_suffix(".out"), name.with_suffix(".err"),
                  name.with_suffix(".packs") if packs else None, fresh if packs else None)


def _submit(pool: ProcessPoolExecutor, g: _Group) -> Future[Formatted] | None:
    try:
        return pool.submit(_work, g)
    except Exception:   # noqa: BLE001 - the pool broke: this group is formatted here
        return None


def _collect(dialect: Dialect, g: _Group, future: Future[Formatted] | None) -> Formatted:
    if future is not None:
        try:
            return future.result()
        except OutOfOrder:
            raise
        except Exception:   # noqa: BLE001 - formatted again here, to raise it with its place
            pass
    return _format_group(dialect, g)


def _copy(path: Path, write: Write, length: int) -> None:
    """The first `length` bytes of a slot's file (what its last group wrote)."""
    with open(path, "rb") as f:
        while length > 0 and (data := f.read(min(PIECE, length))):
            write(data)
            length -= len(data)


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
    with _overwrite(g.out) as out, _overwrite(g.errors) as errors:
        for part in g.parts:
            total = total.plus(format_lines(dialect, part.joined(), out.write, errors.write,
                                            builder, g.fresh))
        written = out.tell(), errors.tell()
    if builder is not None:
        builder.end_pack()
    return Formatted(total, packs, *written)


def _overwrite(path: Path) -> BinaryIO:
    """`path` written from its start, not truncated: a slot's file is written over by each
    of its groups, so that the join writes its lines into pages the file has already. Fresh
    pages cost: on the 2-core benchmark machine, writing a gigabyte into a new file took
    3 to 4 s, and over an existing one's bytes 0.2 s."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        return open(fd, "wb", buffering=PIECE)
    except BaseException:
        os.close(fd)
        raise


# -- in a worker process ----------------------------------------------------------------------

_dialect: Dialect | None = None


def _start(manifest: Manifest) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)    # Ctrl-C is for the parent to handle
    global _dialect
    _dialect = dialect_of(manifest)


def _work(g: _Group) -> Formatted:
    assert _dialect is not None
    return _format_group(_dialect, g)
