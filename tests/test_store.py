"""The result store's packs, on a directory and on a real S3 API server (moto's, in its own
process): what goes in comes out, lookups read little, and a pack that is not what its name
says (damaged, cut short, replaced, gone) is reported as such, never read as results."""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

import pytest
import s3server

from runner.errors import PackDamaged, PackMissing, StoreError
from runner.store import Store, open_store
from runner.store.backends import Backend, Stat
from runner.store.names import pack_object
from runner.store.pack import MAGIC
from runner.store.reader import HEAD_READ

BUCKET = "store-tests"


@pytest.fixture
def store(location: str) -> Store:
    """An empty store: a directory, or a fresh prefix of a bucket on the S3 server."""
    return open_store(location)


def rhash(i: int) -> str:
    return "sha256:" + hashlib.sha256(b"request %d" % i).hexdigest()


def line(i: int) -> bytes:
    """A result line shaped like Gemini's, with text that compresses as prose does."""
    text = hashlib.sha256(b"%d" % i).hexdigest()
    return (b'{"key":"k%d","response":{"candidates":[{"content":{"parts":[{"text":"%s"}]}'
            b',"finishReason":"STOP"}],"usageMetadata":{"totalTokenCount":%d}}}'
            % (i, text.encode(), i % 97))


def fill(store: Store, n: int, *, start: int = 0, pack_bytes: int = 256 << 10,
         block_bytes: int = 16 << 10) -> list[str]:
    """n results, one in ten a per-request error, in packs small enough that there are
    several."""
    with store.writer(pack_bytes=pack_bytes, block_bytes=block_bytes) as w:
        for i in range(start, start + n):
            w.add(rhash(i), line(i) + b"\n", i % 10 != 3)
    return w.packs


class Counting:
    """A backend that counts the bytes read through it."""

    def __init__(self, inner: Backend):
        self.inner, self.location, self.read_bytes = inner, inner.location, 0

    def write(self, name: str, data: bytes) -> None:
        self.inner.write(name, data)

    def create(self, name: str, data: bytes) -> bool:
        return self.inner.create(name, data)

    def read(self, name: str, start: int = 0, end: int | None = None) -> bytes:
        data = self.inner.read(name, start, end)
        self.read_bytes += len(data)
        return data

    def list(self, folder: str) -> list[Stat]:
        return self.inner.list(folder)

    def folders(self, folder: str) -> tuple[str, ...]:
        return self.inner.folders(folder)

    def modified(self, name: str) -> float | None:
        return self.inner.modified(name)

    def delete(self, name: str) -> None:
        self.inner.delete(name)


def test_100k_results_round_trip_through_packs(store: Store) -> None:
    packs = fill(store, 100_000, pack_bytes=1 << 20, block_bytes=64 << 10)
    assert 10 < len(packs) < 40         # packs, not an object per result
    assert {p.pack for p in store.packs()} == set(packs)
    got = {r.request_hash: (r.ok, r.line) for r in store.results(packs)}
    assert len(got) == 100_000
    assert all(got[rhash(i)] == (i % 10 != 3, line(i)) for i in range(100_000))
    for pack in packs:
        store.verify(pack)


def test_a_lookup_reads_the_heads_and_the_blocks_it_needs_not_the_packs(store: Store) -> None:
    packs = fill(store, 20_000)
    heads = [store.head(p) for p in packs]
    first_reads = sum(max(h.blocks[0].offset, HEAD_READ) for h in heads)
    biggest = max(b.stored for h in heads for b in h.blocks)
    wanted = [rhash(i) for i in (3, 4, 7_777, 19_999)] + [rhash(10**9)]

    counting = Counting(store.backend)
    got = {r.request_hash: (r.ok, r.line) for r in Store(counting).results(packs, wanted)}
    assert got == {rhash(i): (i != 3, line(i)) for i in (3, 4, 7_777, 19_999)}
    # the heads, and a block for each request found: not the other blocks
    assert counting.read_bytes <= first_reads + 4 * biggest
    assert sum(h.size - h.blocks[0].offset for h in heads) > 20 * biggest

    counting = Counting(store.backend)
    found = Store(counting).lookup(packs, wanted)
    assert found == {rhash(3): False, rhash(4): True, rhash(7_777): True, rhash(19_999): True}
    assert counting.read_bytes <= first_reads        # the heads alone
    assert heads[0].find(bytes.fromhex(rhash(10**9)[7:])) is None


def test_a_request_added_twice_keeps_a_success_over_an_error_else_the_later(
        tmp_path: Path) -> None:
    store = open_store(tmp_path)
    with store.writer() as w:
        w.add(rhash(1), b'{"first":1}', True)
        w.add(rhash(1), b'{"error":"later, failed"}', False)
        w.add(rhash(2), b'{"error":"failed"}', False)
        w.add(rhash(2), b'{"second":2}', True)
        w.add(rhash(3), b'{"a":1}', True)
        w.add(rhash(3), b'{"a":2}', True)
    got = {r.request_hash: (r.ok, r.line) for r in store.results(w.packs)}
    assert got == {rhash(1): (True, b'{"first":1}'), rhash(2): (True, b'{"second":2}'),
                   rhash(3): (True, b'{"a":2}')}
    with store.writer() as w, pytest.raises(ValueError):
        w.add(rhash(4), b'{"a":\n1}', True)
    with store.writer() as w, pytest.raises(ValueError):
        w.add("md5:abc", b"{}", True)


def test_a_pack_written_again_is_the_same_object(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    assert fill(store, 500) == fill(store, 500)
    assert len(store.packs()) == 1


def test_a_missing_pack_is_reported_by_its_hash(store: Store) -> None:
    packs = fill(store, 2_000)
    store.backend.delete(pack_object(packs[1]))
    with pytest.raises(PackMissing) as e:
        list(store.results(packs))
    assert e.value.pack == packs[1] and "fetched from the provider again" in str(e.value)
    with pytest.raises(PackMissing):
        store.lookup([packs[1]], [rhash(0)])


def _damage(store: Store, pack: str, at: int) -> None:
    name = pack_object(pack)
    data = bytearray(store.backend.read(name))
    data[at] ^= 0x01
    store.backend.write(name, bytes(data))


def test_a_damaged_block_or_head_is_detected(store: Store) -> None:
    [pack] = fill(store, 1_000, pack_bytes=1 << 20)
    _damage(store, pack, -10)       # in the last block
    with pytest.raises(PackDamaged, match="a block does not hash"):
        store.verify(pack)
    with pytest.raises(PackDamaged):
        list(store.results([pack], [rhash(999)]))
    assert [r.line for r in store.results([pack], [rhash(0)])] == [line(0)]    # its own block
    _damage(store, pack, 40)        # in the head's block table
    with pytest.raises(PackDamaged, match="does not hash to its name") as e:
        list(store.results([pack], [rhash(0)]))
    assert e.value.pack == pack


def test_objects_that_are_not_what_their_name_says(store: Store) -> None:
    """Each case on a pack of its own (one store: a client to the S3 server costs a second)."""
    for number, how in enumerate(["truncated", "empty", "longer", "not a pack", "newer"]):
        [pack] = fill(store, 200, start=1_000 * number, pack_bytes=1 << 20)
        name = pack_object(pack)
        data = store.backend.read(name)
        hostile = {"truncated": data[:-100], "empty": b"", "longer": data + b"\n",
                   "not a pack": b'{"hello": "world"}\n' * 100,
                   "newer": MAGIC + b"\x02\x00" + data[10:]}[how]
        store.backend.write(name, hostile)
        with pytest.raises(PackDamaged) as e:
            store.verify(pack)
        assert e.value.pack == pack, how
        if how == "newer":
            assert "newer batch-runner" in str(e.value)


def test_an_object_replaced_by_another_pack_is_detected_by_its_hash(store: Store) -> None:
    [first] = fill(store, 1_000, pack_bytes=1 << 20)
    [second] = fill(store, 1_000, start=5_000, pack_bytes=1 << 20)
    store.backend.write(pack_object(first), store.backend.read(pack_object(second)))
    with pytest.raises(PackDamaged, match="does not hash to its name"):
        list(store.results([first]))
    with pytest.raises(PackDamaged):
        store.lookup([first], [rhash(0)])


def test_gc_dry_run_then_real(store: Store) -> None:
    keep = fill(store, 3_000)
    drop = fill(store, 3_000, start=10_000)
    assert set(keep).isdisjoint(drop)
    young = store.gc(set(keep))
    assert young.removed == [] and young.young == len(drop) and young.dry_run
    dry = store.gc(set(keep), min_age=0)
    assert {p.pack for p in dry.removed} == set(drop) and dry.kept == len(keep)
    assert dry.freed > 0
    assert {p.pack for p in store.packs()} == set(keep) | set(drop)    # nothing removed
    real = store.gc(set(keep), dry_run=False, min_age=0)
    assert {p.pack for p in real.removed} == set(drop)
    assert {p.pack for p in store.packs()} == set(keep)
    assert sum(1 for _ in store.results(keep)) == 3_000


def test_gc_removes_old_temp_files_of_killed_writes(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    keep = fill(store, 100)
    leftover = tmp_path / "packs" / ".abc.pack.1234.tmp"
    leftover.write_bytes(b"half a pack")
    store.gc(set(keep), dry_run=False)
    assert leftover.exists()        # recent: a write may be under way
    os.utime(leftover, (0, 0))
    store.gc(set(keep), dry_run=False)
    assert not leftover.exists() and {p.pack for p in store.packs()} == set(keep)


def test_store_urls_name_their_extra_and_carry_no_credentials(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "gcsfs", None)     # as when the extra is not installed
    with pytest.raises(StoreError, match=r"pip install 'batch-runner\[gcs\]'"):
        open_store("gs://bucket/results")
    with pytest.raises(StoreError, match="must not carry credentials") as e:
        open_store("s3://AKIAEXAMPLE:s3cr3t@bucket/results")
    assert "s3cr3t" not in str(e.value) and "AKIAEXAMPLE" not in str(e.value)
    with pytest.raises(StoreError, match="s3://, gs:// or az://"):
        open_store("ftp://example/results")


def test_a_store_that_cannot_be_reached_is_a_store_error(
        monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in s3server.environment("http://127.0.0.1:9").items():
        monkeypatch.setenv(name, value)
    store = open_store(f"s3://{BUCKET}/x", {"config_kwargs": {
        "retries": {"max_attempts": 1}, "connect_timeout": 2}})
    with pytest.raises(StoreError, match="listing it"):
        store.packs()


def test_a_pack_ends_at_its_most_entries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("runner.store.writer.PACK_ENTRIES", 1_000)
    store = open_store(tmp_path)
    packs = fill(store, 2_500, pack_bytes=1 << 30)
    assert [store.head(p).count for p in packs] == [1_000, 1_000, 500]


def test_packs_built_elsewhere_are_the_ones_the_writer_builds(tmp_path: Path) -> None:
    """The join's workers build packs of their own (PackBuilder) and hand them over whole
    (PackWriter.add_pack): the same bytes as the writer makes of the same lines, written in
    the order of the lines, the writer's own pack ended before one handed over."""
    from runner.store.writer import PackBuilder
    lines = [("sha256:" + hashlib.sha256(b"%d" % (i % 900)).hexdigest(),
              b'{"key":"k%d","n":%d}' % (i, i), i % 7 != 0) for i in range(2_000)]
    one, many = open_store(tmp_path / "one"), open_store(tmp_path / "many")
    with one.writer(pack_bytes=20_000, block_bytes=4_000) as by_line:
        for line in lines:
            by_line.add(*line)
    built: list[tuple[str, bytes]] = []
    builder = PackBuilder(lambda name, data: built.append((name, data)), 20_000, 4_000)
    for line in lines[:1_500]:
        builder.add(*line)
    builder.end_pack()
    with many.writer(pack_bytes=20_000, block_bytes=4_000) as mixed:
        for name, data in built:
            mixed.add_pack(name, data)
        for line in lines[1_500:]:
            mixed.add(*line)
    full = len(built) - 1       # the last one built is cut where its lines end
    assert full >= 1 and [name for name, _ in built[:full]] == by_line.packs[:full]
    assert mixed.packs[:len(built)] == [name for name, _ in built]
    assert sorted(many.results(mixed.packs)) == sorted(one.results(by_line.packs))
    with many.writer() as out_of_turn:      # lines added before a pack is handed over
        out_of_turn.add(*lines[0])
        out_of_turn.add_pack(*built[0])
    assert out_of_turn.packs[1] == built[0][0] and \
        [r.line for r in many.results(out_of_turn.packs[:1])] == [lines[0][1]]
