"""runner.aligned: the store's lines of a batch that reused, walked beside its requests in
input order. What it gives must be what the join by hash gives, or nothing (None, and the
caller joins by hash): every case here that is not the plain one must give None."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from runner import aligned, inorder
from runner.aligned import align
from runner.join import Joined, OutOfOrder
from runner.store import Store, open_store


def rhash(i: int) -> str:
    return "sha256:" + hashlib.sha256(b"request %d" % i).hexdigest()


def stored(i: int) -> bytes:
    return json.dumps({"key": f"old-{i}", "response": {"n": i}}).encode()


def answered(key: str, n: int) -> bytes:
    return json.dumps({"key": key, "response": {"n": n, "sent": True}}).encode()


def packs_of(store: Store, groups: list[list[int]], failed: frozenset[int] = frozenset()
             ) -> list[str]:
    """One pack a group, each group's lines added in its order, in small blocks."""
    names: list[str] = []
    for group in groups:
        with store.writer(block_bytes=300) as w:
            for i in group:
                w.add(rhash(i), stored(i), i not in failed)
        names += w.packs
    return sorted(names)


def keys_file(path: Path, requests: list[tuple[str, int]]) -> Path:
    path.write_bytes(b"".join(b'"%s"\t%s\n' % (key.encode(), rhash(n).encode())
                              for key, n in requests))
    return path


def run(tmp_path: Path, store: Store, packs: list[str], requests: list[tuple[str, int]],
        results: list[bytes]) -> list[Joined] | None:
    keys = keys_file(tmp_path / "keys", requests)
    (tmp_path / "results.jsonl").write_bytes(b"".join(line + b"\n" for line in results))
    out = tmp_path / "aligned"
    join = align(store, packs, "gemini", keys, [tmp_path / "results.jsonl"], out, "sha256:c")
    if join is None:
        return None
    assert join.requests == len(requests) and join.content_hash == "sha256:c"
    settled = align(store, packs, "gemini", keys, [tmp_path / "results.jsonl"], out,
                    "sha256:c")
    assert settled is not None
    settled = settled.settled()         # walked to the end at once, for the slow path
    try:
        chunks = list(join.ranges())
    except OutOfOrder:      # found on the way
        assert settled is None
        return None
    joined = [j for chunk in chunks for j in chunk.joined()]
    assert settled is not None and list(settled) == joined
    return joined


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return open_store(tmp_path / "store")


def test_the_store_lines_in_input_order_with_an_edit_a_removal_and_an_insert(
        tmp_path: Path, store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows 0 to 59 answered once, in three packs; now row 10 is edited (request 1000,
    sent), row 30 removed, a row inserted after 45 (request 1001, sent): every other
    request takes its pack's line, the two sent take their jobs' lines, in input order,
    cut into chunks."""
    monkeypatch.setattr(inorder, "CHUNK_LINES", 8)
    packs = packs_of(store, [list(range(0, 20)), list(range(20, 40)), list(range(40, 60))])
    requests = [(f"r{i}", 1000 if i == 10 else i) for i in range(60) if i != 30]
    requests.insert(45, ("new", 1001))
    got = run(tmp_path, store, packs, requests,
              [answered("new", 1001), answered("r10", 1000)])
    assert got is not None
    want = [(index, f'"{key}"'.encode(), rhash(n),
             answered(key, n) + b"\n" if n >= 1000 else stored(n) + b"\n", None)
            for index, (key, n) in enumerate(requests)]
    assert got == want


def test_packs_read_in_any_order_of_their_names(tmp_path: Path, store: Store) -> None:
    """The packs are named by their hash, so listed in no order of the rows: a request finds
    the pack whose first lines hold it."""
    packs = packs_of(store, [list(range(i, i + 5)) for i in range(0, 40, 5)])
    requests = [(f"r{i}", i) for i in range(40)]
    got = run(tmp_path, store, packs, requests, [])
    assert got is not None and [line for *_, line, _ in got] == [stored(i) + b"\n"
                                                              for i in range(40)]


@pytest.mark.parametrize("case", [
    "shuffled", "two-packs-one-success", "only-a-failure", "no-line", "key-twice",
    "line-not-json", "line-no-request-takes", "results-too-big", "packs-not-sorted",
    "pack-missing", "pack-damaged", "too-much-pending", "too-many-packs-at-once"])
def test_what_the_join_by_hash_decides_is_left_to_it(
        tmp_path: Path, store: Store, monkeypatch: pytest.MonkeyPatch, case: str) -> None:
    groups = [list(range(0, 30)), list(range(30, 60))]
    requests = [(f"r{i}", i) for i in range(60)]
    results: list[bytes] = []
    failed: frozenset[int] = frozenset()
    if case == "shuffled":      # no request where a pack starts
        requests.reverse()
    elif case == "two-packs-one-success":   # which line wins is the join by hash's to say
        groups.append([5])
    elif case == "only-a-failure":          # a failure is never reused
        failed = frozenset({7})
    elif case == "no-line":
        requests.append(("r99", 99))
    elif case == "key-twice":
        requests[3] = ("r3", 1003)
        results = [answered("r3", 1003), answered("r3", 1003)]
    elif case == "line-not-json":
        results = [b"{not json"]
    elif case == "line-no-request-takes":
        results = [answered("nobody", 1003)]
    elif case == "results-too-big":
        monkeypatch.setattr(aligned, "RESULTS_BYTES", 10)
        requests[3] = ("r3", 1003)
        results = [answered("r3", 1003)]
    elif case == "too-much-pending":    # a row moved far from where it was
        monkeypatch.setattr(aligned, "PENDING_BYTES", 400)      # ten lines
        requests.insert(0, requests.pop(15))
    elif case == "too-many-packs-at-once":    # rows from many packs interleaved
        monkeypatch.setattr(aligned, "OPEN_PACKS", 2)
        groups = [list(range(i, 60, 3)) for i in range(3)]
    packs = packs_of(store, groups, failed)
    if case == "packs-not-sorted":
        packs.reverse()
    elif case == "pack-missing":
        store.backend.delete(f"packs/{packs[1].split(':')[1]}.pack")
    elif case == "pack-damaged":
        name = f"packs/{packs[0].split(':')[1]}.pack"
        data = bytearray(store.backend.read(name))
        data[-5] ^= 0xFF
        store.backend.write(name, bytes(data))
    assert run(tmp_path, store, packs, requests, results) is None


def test_lines_skipped_wait_for_their_request(tmp_path: Path, store: Store) -> None:
    """Two rows swapped, and a row moved a few places on: the lines read ahead wait, and
    the requests still take them."""
    packs = packs_of(store, [list(range(40))])
    order = list(range(40))
    order[3], order[4] = order[4], order[3]
    order.insert(20, order.pop(10))
    got = run(tmp_path, store, packs, [(f"r{i}", i) for i in order], [])
    assert got is not None and [line for *_, line, _ in got] == [stored(i) + b"\n"
                                                              for i in order]


def test_a_chunk_whose_lines_went_missing_since_is_out_of_order(tmp_path: Path,
                                                                store: Store) -> None:
    """The aligned file cut short after the walk wrote it (another process, a full disk):
    the chunk says so rather than leave its last requests out of the outputs."""
    packs = packs_of(store, [list(range(10))])
    keys = keys_file(tmp_path / "keys", [(f"r{i}", i) for i in range(10)])
    join = align(store, packs, "gemini", keys, [], tmp_path / "aligned", "sha256:c")
    assert join is not None
    [chunk] = list(join.ranges())
    assert len(list(chunk.joined())) == 10
    with open(tmp_path / "aligned", "r+b") as f:
        f.truncate(chunk.lines_at[1] - len(stored(9)) - 1)
    with pytest.raises(OutOfOrder):
        list(chunk.joined())
