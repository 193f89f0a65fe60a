"""The join of a batch that reused results, when the store's lines come in input order.

A batch with one row edited among a million reuses every other request's result from the
store's packs (runner.reuse), and the packs its earlier outputs were written into hold those
lines in the order they were added: the batch's input order (runner.joinlines builds them
from the join's ranges, in order). So instead of extracting every line, bucketing it by
request hash and joining (runner.rejoin: about twenty seconds at a million), the requests
(the keys file this run rendered, in input order) are walked beside the packs read in the
order their lines were added, each request taking its jobs' line by key or the next line
of the pack that holds it, and the lines are written in input order into one file, cut into
chunks that the workers of runner.joinlines format as they do the in-order join's
(runner.inorder).

What it must give is what the join by hash gives, or nothing: a request takes its jobs'
line when they answered its key (they are few: RESULTS_BYTES at most, held by key), else
the store's success for its hash; anything the join by hash would decide otherwise (a
results line that does not parse or repeats a key, a line no request takes, a request with
no line, a hash two packs hold) makes `align` return None, or its walk raise OutOfOrder
where it finds it, and the caller joins by hash, which says what is wrong. Lines of a
pack skipped on the way (an edited row's old answer) wait in memory, PENDING_BYTES at
most; past that, or with more than OPEN_PACKS packs read at once, the order is not one
this join serves.
"""

from __future__ import annotations

import itertools
from array import array
from collections.abc import Callable, Iterator, Sequence
from operator import eq, gt
from pathlib import Path
from typing import NamedTuple

from . import inorder
from .errors import PackDamaged, PackMissing
from .inorder import keyed_lines
from .join import Joined, OutOfOrder
from .joinapart import lines_of
from .reuse import sixteenths
from .store import Store
from .store.pack import Head

RESULTS_BYTES = 8 << 20     # the jobs' results held by key, at most
PENDING_BYTES = 32 << 20    # store lines read ahead of the request that takes them, at most
OPEN_PACKS = 16             # packs being read at once, at most
_STARTS = 16                # successes at the start of each pack by which a request finds it
_WRITE = 1 << 20


class Reused(NamedTuple):
    """The store's lines of the requests a batch reused: `lines` extracts them into a file
    for the join by hash (runner.rejoin), named by it, and returns the file; with a `store`,
    its `packs` are walked in input order first (`align`)."""

    lines: Callable[[Path], Path]
    store: Store | None = None
    packs: tuple[str, ...] = ()


class Aligned(NamedTuple):
    """Requests `start` to `start + requests`: their lines in the keys file, and their
    result lines in the aligned file, line for line."""

    keys: Path
    lines: Path
    start: int
    requests: int
    keys_at: tuple[int, int]
    lines_at: tuple[int, int]

    def size(self) -> int:
        return self.lines_at[1] - self.lines_at[0] + self.keys_at[1] - self.keys_at[0]

    def joined(self) -> Iterator[Joined]:
        """The chunk's requests with their lines; OutOfOrder after the last when the files
        hold fewer than the walk wrote (changed since: never a request left out)."""
        records = lines_of(self.keys, *self.keys_at)
        lines = lines_of(self.lines, *self.lines_at)
        index = self.start
        for record, line in zip(records, lines):
            key_json, rhash = record[:-1].split(b"\t")
            yield index, key_json, rhash.decode(), line, None
            index += 1
        if index != self.start + self.requests:
            raise OutOfOrder

    def remove(self) -> None:
        """Nothing: the aligned file goes with the join's temp folder."""


class AlignedJoin:
    """The join's face (runner.join.Join) of the walk: its chunks are its ranges, given as
    the walk writes them, so that the workers format the first while this process walks on.
    A walk that finds the lines are not to be had this way raises OutOfOrder, from the
    chunk it was writing, for the caller to start again with the join by hash (as for
    runner.inorder). No line is left over, none repeated."""

    unmatched = repeated = 0

    def __init__(self, chunks: Iterator[Aligned], requests: int, content_hash: str):
        self._chunks = chunks
        self.requests = requests
        self.content_hash = content_hash

    def ranges(self) -> Iterator[Aligned]:
        """The chunks, once. OutOfOrder."""
        return self._chunks

    def __iter__(self) -> Iterator[Joined]:
        for chunk in self._chunks:
            yield from chunk.joined()

    def settled(self) -> AlignedJoin | None:
        """Walked to the end now, for a caller that cannot start again; None when the walk
        raised OutOfOrder."""
        try:
            chunks = list(self._chunks)
        except OutOfOrder:
            return None
        return AlignedJoin(iter(chunks), self.requests, self.content_hash)


def align(store: Store, packs: Sequence[str], provider: str, keys: Path,
          results: Sequence[Path], out: Path, content_hash: str) -> AlignedJoin | None:
    """The batch's requests walked beside the packs, their result lines written in input
    order into `out` as the chunks are read (see AlignedJoin); None when what is seen before
    the walk rules it out (see the module docstring)."""
    try:
        answered = answered_lines(provider, results)
        if answered is None or list(packs) != sorted(set(packs)):
            return None
        lines = _Packs(store, packs)
        if not lines.distinct:
            return None
        requests = _lines(keys)
    except (PackMissing, PackDamaged, OSError):     # the join by hash says what is wrong
        return None
    return AlignedJoin(_walk(lines, answered, keys, out), requests, content_hash)


def _walk(lines: _Packs, answered: dict[bytes, bytes], keys: Path, out: Path
          ) -> Iterator[Aligned]:
    start = requests = 0
    keys_from = keys_to = lines_from = lines_to = 0     # the chunk's bytes in each file
    try:
        with open(out, "wb", buffering=_WRITE) as f:
            write = f.write
            for record in lines_of(keys):
                key_json, rhash = record[:-1].split(b"\t")
                line = answered.pop(key_json, None)
                if line is None:
                    line = lines.take(bytes.fromhex(rhash[7:].decode()))
                    # a pack's line the join by hash reads otherwise: empty (no line to it),
                    # or with a newline in it (PackBuilder refuses one: here, two lines)
                    if line is None or len(line) == 1 or line.find(b"\n") != len(line) - 1:
                        raise OutOfOrder
                write(line)
                requests += 1
                keys_to += len(record)
                lines_to += len(line)
                if requests == inorder.CHUNK_LINES or \
                        lines_to - lines_from >= inorder.CHUNK_BYTES:
                    f.flush()       # a worker reads the chunk from the file
                    yield Aligned(keys, out, start, requests, (keys_from, keys_to),
                                  (lines_from, lines_to))
                    start, requests = start + requests, 0
                    keys_from, lines_from = keys_to, lines_to
            if answered:        # a line no request took: the join by hash counts it
                raise OutOfOrder
    except (PackMissing, PackDamaged, OSError):     # the join by hash says what is wrong
        raise OutOfOrder from None
    if requests:
        yield Aligned(keys, out, start, requests, (keys_from, keys_to), (lines_from, lines_to))


def _lines(path: Path) -> int:
    with open(path, "rb") as f:
        return sum(block.count(b"\n") for block in iter(lambda: f.read(_WRITE), b""))


def answered_lines(provider: str, results: Sequence[Path], most: int | None = None
                   ) -> dict[bytes, bytes] | None:
    """The jobs' result lines by their key's JSON (canonical, as the join by key reads it);
    None when they are over `most` bytes (RESULTS_BYTES), or a line does not parse or names
    no key, or a key repeats (within a file or across)."""
    if sum(path.stat().st_size for path in results) > (RESULTS_BYTES if most is None else most):
        return None
    answered: dict[bytes, bytes] = {}
    for path in results:
        lines = keyed_lines(provider, lines_of(path))
        if lines is None or not answered.keys().isdisjoint(lines):
            return None
        answered.update(lines)
    return answered


class _Packs:
    """The packs' successes, each pack read in the order its lines were added; a request
    takes the next line of the pack it is reading, or of the pack whose first lines hold
    its hash, lines skipped on the way waiting for theirs."""

    def __init__(self, store: Store, packs: Sequence[str]):
        """Reads each pack's head (again when it is read: a head holds 45 bytes a line, so
        they are not all kept). `distinct`: whether no two successes of the packs share the
        first 8 bytes of their hash; only then does each request have one line to take,
        wherever the join by hash would find it."""
        self._store = store
        self._packs = packs
        self._starts: dict[bytes, int] = {}
        prefixes = []
        for number, pack in enumerate(packs):
            head = store.head(pack)
            prefixes.append(head.success_prefixes())
            # its first successes: a failure's hash is a request's that takes no line of
            # it (sent again, or answered by another pack's success)
            for place in head.added_order(_STARTS, successes=True):
                self._starts.setdefault(head.entry(place)[0], number)
        self.distinct = _distinct(prefixes)
        self._open: dict[int, _Reading] = {}       # being read, not to their end yet
        self._opened: set[int] = set()
        self._current: _Reading | None = None
        self._pending: dict[bytes, bytes] = {}
        self._pending_bytes = 0

    def take(self, request: bytes) -> bytes | None:
        """The success line (with its newline) of the request hash's 32 bytes, or None."""
        reading = self._current
        if reading is None or reading.next is None or reading.next[0] != request:
            line = self._pending.pop(request, None)
            if line is not None:
                self._pending_bytes -= len(line)
                return line
            reading = self._find(request)
            if reading is None:
                return None
        while reading.next is not None:
            found, line = reading.next[0] == request, reading.advance()
            if reading.next is None:    # read to its end
                del self._open[reading.number]
            if found:
                return line
            self._pending[reading.last] = line
            self._pending_bytes += len(line)
            if self._pending_bytes > PENDING_BYTES:
                return None
        return None

    def _find(self, request: bytes) -> _Reading | None:
        """The pack to read on for the request: one being read whose next line is its, else
        the one whose first lines hold it (opened now), else the one read last (of those
        not read to their end)."""
        for reading in self._open.values():
            if reading.next is not None and reading.next[0] == request:
                # the last one read goes last: the one to go back to (below)
                self._open[reading.number] = self._open.pop(reading.number)
                self._current = reading
                return reading
        number = self._starts.pop(request, None)
        if number is not None and number not in self._opened:
            if len(self._open) >= OPEN_PACKS:
                return None
            self._opened.add(number)
            self._current = _Reading(self._store, self._store.head(self._packs[number]),
                                     number)
            if self._current.next is not None:
                self._open[number] = self._current
        elif self._current is not None and self._current.next is None and self._open:
            # read to its end, a pack of a few lines in the midst of another's (an edited
            # row's answer, stored alone): back to the one read before it
            self._current = next(reversed(self._open.values()))
        return self._current


def _distinct(prefixes: list[array[int]]) -> bool:
    """Whether every source is sorted and no key is in two of them (or twice in one). The
    sixteenths are cut by bisection, which holds for sorted keys alone: a head whose index
    is out of order (a faulty writer's) could hide a repeated key from the check."""
    def repeats(keys: Sequence[int], after: Callable[[int, int], bool]) -> bool:
        return any(map(after, keys, itertools.islice(keys, 1, None)))
    return not any(repeats(p, gt) for p in prefixes) and \
        not any(repeats(sorted(itertools.chain.from_iterable(pieces)), eq)
                for pieces in sixteenths(prefixes))


class _Reading:
    """One pack's successes in the order they were added, one read ahead."""

    def __init__(self, store: Store, head: Head, number: int):
        self.number = number
        self._lines = ((request, line) for request, ok, line in store.added(head) if ok)
        self.next: tuple[bytes, bytes] | None = next(self._lines, None)
        self.last = b""

    def advance(self) -> bytes:
        """The line read ahead (with a newline), reading the one after it."""
        assert self.next is not None
        self.last, line = self.next
        self.next = next(self._lines, None)
        return line + b"\n"
