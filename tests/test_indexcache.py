"""runner.indexcache: the merged reuse index of a set of packs, kept between runs. What is
read back must be what a merge gives; anything else (a damaged file, a state folder that
cannot be written) only means merging again."""

from __future__ import annotations

import hashlib
import os
from array import array
from pathlib import Path

import pytest

from runner import indexcache, reuse
from runner.reuse import Reusable
from runner.store import Store, open_store


def rhash(i: int) -> str:
    return "sha256:" + hashlib.sha256(b"request %d" % i).hexdigest()


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return open_store(tmp_path / "store")


def packs(store: Store, groups: list[range], failing: int = 7) -> list[str]:
    """A pack a group of requests, every `failing`-th one (from the 4th) a failure; with
    `failing` 0, none."""
    names: list[str] = []
    for group in groups:
        with store.writer() as w:
            for i in group:
                w.add(rhash(i), b'{"n":%d}' % i, not failing or i % failing != 3)
        names += w.packs
    return names


def lookups(index: Reusable, n: int) -> list[str | None]:
    return [None if (p := index.pack_of(rhash(i))) is None else index.packs[p]
            for i in range(n)]


def test_the_index_read_back_is_the_merge(store: Store, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    names = packs(store, [range(0, 300), range(300, 500), range(450, 700)])
    cache = tmp_path / "index"
    made = Reusable.load(store, names, cache=cache)
    assert len(list(cache.iterdir())) == 1
    merges: list[int] = []
    real = reuse._merged

    def merged(sources: list[array[int]]) -> tuple[array[int], array[int]]:
        merges.append(len(sources))
        return real(sources)

    monkeypatch.setattr(reuse, "_merged", merged)
    again = Reusable.load(store, names, cache=cache)
    assert not merges, "the kept index was merged again"
    assert lookups(again, 800) == lookups(made, 800) == lookups(Reusable.load(store, names), 800)
    assert lookups(made, 800).count(None) == 100 + sum(i % 7 == 3 for i in range(700))


@pytest.mark.parametrize("harm", ["flipped", "cut", "foreign-count"])
def test_a_damaged_index_is_merged_again_and_rewritten(store: Store, tmp_path: Path,
                                                      harm: str) -> None:
    names = packs(store, [range(0, 200), range(200, 400)])
    cache = tmp_path / "index"
    want = lookups(Reusable.load(store, names, cache=cache), 400)
    [kept] = cache.iterdir()
    data = bytearray(kept.read_bytes())
    if harm == "flipped":
        data[len(indexcache.MAGIC) + 20] ^= 1
    elif harm == "cut":
        del data[-40:]
    else:       # a whole file, checksum and all, of another length than it says
        body = bytes(data[:-32]) + b"\0" * 10
        data = bytearray(body + hashlib.sha256(body).digest())
    kept.write_bytes(bytes(data))
    assert lookups(Reusable.load(store, names, cache=cache), 400) == want
    assert kept.read_bytes() != bytes(data)         # made again


def test_a_few_index_files_are_kept_and_an_unwritable_folder_is_no_error(
        store: Store, tmp_path: Path) -> None:
    names = packs(store, [range(i * 10, i * 10 + 10) for i in range(8)])
    cache = tmp_path / "index"
    for first in range(7):
        Reusable.load(store, names[first:first + 2], cache=cache)
    assert len(list(cache.glob("*.index"))) == indexcache.KEEP
    blocked = tmp_path / "a-file"       # where the folder would be (root writes anywhere)
    blocked.write_text("")
    assert len(Reusable.load(store, names[6:8], cache=blocked)) == 20 - 2


def test_an_index_whose_time_cannot_be_set_is_read_all_the_same(
        store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A read-only state folder: the kept index is used, not merged again."""
    names = packs(store, [range(0, 50), range(50, 90)])
    cache = tmp_path / "index"
    Reusable.load(store, names, cache=cache)

    def refuse(*args: object, **kwargs: object) -> None:
        raise PermissionError("read-only")

    merges: list[int] = []
    real = reuse._merged

    def merged(sources: list[array[int]]) -> tuple[array[int], array[int]]:
        merges.append(len(sources))
        return real(sources)

    monkeypatch.setattr(os, "utime", refuse)
    monkeypatch.setattr(reuse, "_merged", merged)
    assert len(Reusable.load(store, names, cache=cache)) == 90 - 13
    assert not merges
