"""Result lines out of packs, checked against the packs' hashes, in constant memory.

A pack's head is read first (one ranged read, two for a large head) and checked against the
pack's name; then only the blocks that hold a wanted request are read, neighbours together in
ranged reads of at most RUN_BYTES, each block checked against its digest before a line of it
is returned. So every byte returned is vouched for by the name, memory holds one run and one
pack's chosen entries, and looking up a few requests does not read a pack whole.

Reading every request of a pack reads every block and one byte past the last: a pack cut
short, or with bytes after its end, is reported as damaged. Results come out block by block as
they are checked, so a block found damaged late raises after earlier lines were returned;
a caller that must have all or nothing writes what it builds atomically (as runner.outputs
does), or calls `verify` first.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Collection, Iterable, Iterator
from typing import NamedTuple

from ..errors import PackDamaged, PackMissing
from .backends import Backend
from .names import pack_object
from .pack import OK, Damaged, Head, head_length, open_block, raw_hash, text_hash

RUN_BYTES = 8 << 20         # stored bytes fetched in one ranged read, at most (one block more)
HEAD_READ = 64 << 10        # the first read of a pack: the whole head of a small one


class Result(NamedTuple):
    request_hash: str
    ok: bool            # a successful answer; False for a per-request error
    line: bytes         # the result line as the provider returned it, without its newline


def read_head(backend: Backend, pack: str) -> Head:
    """A pack's head, checked against its name. PackMissing, PackDamaged."""
    name = pack_object(pack)
    try:
        data = backend.read(name, 0, HEAD_READ)
        length = head_length(data)
        if len(data) < length:
            data += backend.read(name, len(data), length)
        return Head(pack, data[:length])
    except FileNotFoundError:
        raise PackMissing(pack, backend.location) from None
    except Damaged as e:
        raise PackDamaged(pack, backend.location, str(e)) from None


def results(backend: Backend, packs: Iterable[str],
            wanted: Collection[str] | None = None) -> Iterator[Result]:
    """The result lines the packs hold for the `wanted` request hashes (all of them when
    None): pack by pack in the order given, block by block, and in a block by request hash
    (not the order they were added, which would cost a sort of every entry). A request held
    by several packs comes once from each: the caller keeps the one it prefers (a success
    over an error; a later pack's)."""
    want = None if wanted is None else {raw_hash(h) for h in wanted}
    for pack in packs:
        yield from _pack_results(backend, pack, want)


def added(head: Head, backend: Backend) -> Iterator[tuple[bytes, bool, bytes]]:
    """A pack's lines as (request hash's 32 bytes, success, line), in the order they were
    added (the order its writer read them: a batch's input order, for the packs of the
    outputs' join), a block at a time, neighbours fetched together as `results` fetches
    them (RUN_BYTES a read: an object store's requests, not a block's each). PackMissing,
    PackDamaged."""
    name = pack_object(head.name)
    blocks = head.blocks
    run_of = {i: run for run in _runs(head, range(len(blocks))) for i in run}
    run: list[int] = []                 # the blocks read last, and their stored bytes
    stored = _read_run(backend, name, head, [])
    current, raw = -1, b""
    try:
        for place in head.added_order():
            request, block, offset, length, status = head.entry(place)
            if block != current:
                if block >= len(blocks):
                    raise Damaged("its index points past its last block")
                if block not in run:
                    run = run_of[block]
                    stored = _read_run(backend, name, head, run)
                raw = open_block(blocks[block], stored(block), head.codec)
                current = block
            if offset + length > len(raw):
                raise Damaged("its index points outside a block")
            yield request, status == OK, raw[offset:offset + length]
    except FileNotFoundError:
        raise PackMissing(head.name, backend.location) from None
    except Damaged as e:
        raise PackDamaged(head.name, backend.location, str(e)) from None


def verify(backend: Backend, pack: str) -> None:
    """Reads a whole pack and checks every byte of it. PackMissing, PackDamaged."""
    for _ in _pack_results(backend, pack, None):
        pass


def lookup(backend: Backend, packs: Iterable[str], wanted: Collection[str]) -> dict[str, bool]:
    """Which of the `wanted` request hashes the packs hold, from their heads alone: each one
    found, with True when some pack holds a success for it."""
    want = {raw_hash(h) for h in wanted}
    found: dict[bytes, bool] = {}
    for pack in packs:
        for request, _, _, _, status in read_head(backend, pack).entries():
            if request in want:
                found[request] = found.get(request, False) or status == OK
    return {text_hash(k): v for k, v in found.items()}


def _pack_results(backend: Backend, pack: str, want: set[bytes] | None) -> Iterator[Result]:
    head = read_head(backend, pack)
    name = pack_object(pack)
    blocks = head.blocks
    # the entries each block is read for, by their place in the index: 4 bytes each, not a
    # tuple, for a pack may hold a million short results
    chosen = [array("I") for _ in blocks]
    try:
        for place, e in enumerate(head.entries()):
            if want is None or e[0] in want:
                chosen[e[1]].append(place)
    except IndexError:
        raise PackDamaged(pack, backend.location, "its index points past its last block") \
            from None
    whole = want is None
    runs = _runs(head, range(len(blocks)) if whole else
                 [i for i, entries in enumerate(chosen) if entries])
    try:
        for number, run in enumerate(runs):
            # the last run of a whole pack is read one byte more: is that the end?
            stored = _read_run(backend, name, head, run, whole and number == len(runs) - 1)
            for i in run:
                raw = open_block(blocks[i], stored(i), head.codec)
                for place in chosen[i]:
                    request, _, offset, length, status = head.entry(place)
                    if offset + length > len(raw):
                        raise Damaged("its index points outside a block")
                    yield Result("sha256:" + request.hex(), status == OK,
                                 raw[offset:offset + length])
                chosen[i] = array("I")
    except FileNotFoundError:
        raise PackMissing(pack, backend.location) from None
    except Damaged as e:
        raise PackDamaged(pack, backend.location, str(e)) from None


def _read_run(backend: Backend, name: str, head: Head, run: list[int], past: bool = False
              ) -> Callable[[int], bytes]:
    """The blocks of `run` (side by side) in one ranged read: a function giving each one's
    stored bytes. With `past`, one byte more is asked for, to tell a pack with bytes after
    its last block (Damaged)."""
    if not run:
        return lambda i: b""
    blocks = head.blocks
    start = blocks[run[0]].offset
    end = blocks[run[-1]].offset + blocks[run[-1]].stored
    data = backend.read(name, start, end + 1 if past else end)
    if past and len(data) > end - start:
        raise Damaged(f"bytes follow its last block (the object is over {head.size} bytes)")
    return lambda i: data[blocks[i].offset - start:blocks[i].offset - start + blocks[i].stored]


def _runs(head: Head, needed: Iterable[int]) -> list[list[int]]:
    """Blocks side by side, in reads of at most RUN_BYTES (a single larger block alone)."""
    runs: list[list[int]] = []
    size = 0
    for i in needed:
        stored = head.blocks[i].stored
        if runs and runs[-1][-1] == i - 1 and size + stored <= RUN_BYTES:
            runs[-1].append(i)
            size += stored
        else:
            runs.append([i])
            size = stored
    return runs
