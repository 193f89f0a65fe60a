"""runner.aligned against inputs chosen to make it differ from the join by hash: what it
gives must be the line the join by hash takes (the last success the packs hold for the
hash, read in the order given: runner.reuse.extract), or None."""

from __future__ import annotations

import hashlib
import itertools
from pathlib import Path

import pytest

from runner.aligned import align
from runner.reuse import extract
from runner.store import Store, open_store
from runner.store.pack import CODEC_ZSTD, ENTRY, OK, encode_head
from runner.store.writer import _seal


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return open_store(tmp_path / "store")


def by_hash(store: Store, packs: list[str], tmp_path: Path) -> dict[str, bytes]:
    """The line the join by hash takes for each hash: the last success extracted."""
    path = tmp_path / "extracted"
    extract(store, packs, path, successes=True)
    lines: dict[str, bytes] = {}
    with open(path, "rb") as f:
        for record in f:
            rhash, line = record.split(b"\t", 1)
            lines[rhash.decode()] = line
    return lines


def hash_with_top_nibble(nibble: int) -> str:
    for i in itertools.count():
        digest = hashlib.sha256(b"nibble %d" % i).hexdigest()
        if int(digest[0], 16) == nibble:
            return "sha256:" + digest
    raise AssertionError


def unsorted_pack(store: Store, lines: list[tuple[str, bytes]]) -> str:
    """A pack whose index lists its entries in the order given, not by request hash (a
    faulty writer's: PackBuilder sorts them). Its name still vouches for every byte."""
    raw = bytearray()
    index = bytearray()
    for rhash, line in lines:
        index += ENTRY.pack(bytes.fromhex(rhash[7:]), 0, len(raw), len(line), OK)
        raw += line + b"\n"
    sealed, length, digest = _seal(bytes(raw))
    name, head = encode_head(CODEC_ZSTD, [(len(sealed), length, digest)], bytes(index))
    store.backend.write(f"packs/{name.split(':')[1]}.pack", head + sealed)
    return name


def test_a_pack_whose_index_is_out_of_order_hides_no_success_another_pack_holds(
        tmp_path: Path, store: Store) -> None:
    """Pack A lists H (top nibble 5) before Y (top nibble 1); pack B holds H too, with
    another line. Sliced a sixteenth at a time by bisection, A's H lands among the first
    sixteenth's keys and B's among the sixth's: the check that no two packs hold a success
    for one hash missed it, and the walk took the line of the pack whose first lines hold H,
    where the join by hash takes the last pack's."""
    h, y = hash_with_top_nibble(5), hash_with_top_nibble(1)
    a = unsorted_pack(store, [(h, b'{"key": "a", "n": 1}'), (y, b'{"key": "y", "n": 2}')])
    with store.writer() as w:
        w.add(h, b'{"key": "b", "n": 3}', True)
    packs = sorted([a, *w.packs])
    want = by_hash(store, packs, tmp_path)
    keys = tmp_path / "keys"
    keys.write_bytes(b'"r0"\t' + h.encode() + b'\n"r1"\t' + y.encode() + b"\n")

    join = align(store, packs, "gemini", keys, [], tmp_path / "aligned", "sha256:c")
    got = None if join is None else {rhash: line for _, _, rhash, line in join}
    assert got is None or got == {h: want[h], y: want[y]}
