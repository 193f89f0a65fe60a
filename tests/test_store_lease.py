"""Leases on a content hash, on a directory and on moto's S3 server: one holder at a time,
even when two processes take the same lease at the same moment, fresh or stale."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from runner.apply import claim
from runner.errors import LeaseLost, StoreError
from runner.store import Store, open_store
from runner.store.backends import Backend, Stat
from runner.store.names import generation_object, generation_of

H = "sha256:" + "ab" * 32


def later(location: str, seconds: float) -> Store:
    """The same store, seen by a clock `seconds` ahead."""
    return Store(open_store(location).backend, clock=lambda: time.time() + seconds)


def test_one_holder_then_renewed_then_released(location: str) -> None:
    store = open_store(location)
    mine = store.lease(H, "run-a", 30)
    assert mine.held and mine.holder == "run-a" and mine.generation == 1
    assert mine.expires > time.time() + 25
    theirs = store.lease(H, "run-b", 30)
    assert not theirs.held and theirs.holder == "run-a"
    holder = store.holder(H)
    assert holder is not None and holder.holder == "run-a"
    renewed = store.renew(mine, 30)
    assert renewed.held and renewed.generation == 2
    with pytest.raises(LeaseLost):
        store.renew(mine, 30)       # an old generation is not the lease any more
    store.release(renewed)
    assert store.holder(H) is None
    taken = store.lease(H, "run-b", 30)
    assert taken.held and taken.generation == 4     # releasing wrote one: never reused
    assert [s.name for s in store.backend.list(f"leases/{H[7:]}")] == [
        generation_object(H, 4)]   # older generations are cleared away


def test_a_stale_lease_is_taken_over_and_its_old_holder_learns_it(location: str) -> None:
    store = open_store(location)
    old = store.lease(H, "killed-run", 30)
    assert not store.lease(H, "next-run", 30).held
    taken = later(location, 31).lease(H, "next-run", 30)
    assert taken.held and taken.holder == "next-run" and taken.generation == 2
    with pytest.raises(LeaseLost):
        store.renew(old, 30)
    store.release(old)              # a lost lease is left to its new holder
    holder = store.holder(H)
    assert holder is not None and holder.holder == "next-run"


def test_a_lease_whose_holders_run_is_over_is_taken_as_a_stale_one(location: str) -> None:
    store = open_store(location)
    killed = store.lease(H, "here pid 1 [mark]", 300)
    assert not store.lease(H, "there", 30, over=lambda h: h.endswith("[elsewhere]")).held
    mine = store.lease(H, "here pid 2 [mark]", 30, over=lambda h: h.endswith("[mark]"))
    assert mine.held and mine.generation == killed.generation + 1
    with pytest.raises(LeaseLost):
        store.renew(killed, 30)


def test_a_lease_that_does_not_read_as_one_expires_by_its_age(location: str) -> None:
    store = open_store(location)
    store.backend.create(generation_object(H, 1), b"\x00garbage")
    seen = store.lease(H, "run-a", 30)
    assert not seen.held and seen.holder == "(unreadable lease)"
    taken = later(location, 31).lease(H, "run-a", 30)
    assert taken.held and taken.generation == 2


class LostAnswers:
    """A backend whose exclusive creates succeed but answer as if the name were taken,
    as a retried PUT does when the first one's answer was lost."""

    def __init__(self, inner: Backend):
        self.inner, self.location = inner, inner.location

    def write(self, name: str, data: bytes) -> None:
        self.inner.write(name, data)

    def create(self, name: str, data: bytes) -> bool:
        self.inner.create(name, data)
        return False

    def read(self, name: str, start: int = 0, end: int | None = None) -> bytes:
        return self.inner.read(name, start, end)

    def list(self, folder: str) -> list[Stat]:
        return self.inner.list(folder)

    def folders(self, folder: str) -> tuple[str, ...]:
        return self.inner.folders(folder)

    def modified(self, name: str) -> float | None:
        return self.inner.modified(name)

    def delete(self, name: str) -> None:
        self.inner.delete(name)


def test_a_create_whose_answer_was_lost_is_settled_by_reading_it_back(tmp_path: Path) -> None:
    store = Store(LostAnswers(open_store(tmp_path).backend))
    mine = store.lease(H, "run-a", 30)
    assert mine.held and mine.generation == 1
    assert store.renew(mine, 30).held


def test_ttls_are_bounded(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    for ttl in (0, -1, 10**9):
        with pytest.raises(ValueError):
            store.lease(H, "run-a", ttl)
    with pytest.raises(ValueError):
        store.lease("sha256:../../etc", "run-a", 30)


RACER = textwrap.dedent("""
    import json, sys
    from runner.store import open_store
    store = open_store(sys.argv[1])
    for command in sys.stdin:
        content_hash, ttl = command.split()
        lease = store.lease(content_hash, sys.argv[2], float(ttl))
        print(json.dumps({"held": lease.held, "holder": lease.holder,
                          "generation": lease.generation}), flush=True)
""")
ROUNDS = 20


def test_two_processes_take_one_lease_at_once_and_one_wins(location: str) -> None:
    """Each round both processes are told at once to take a lease: a fresh one on even
    rounds, on odd rounds one whose holder died (stale before they are told)."""
    racers = [subprocess.Popen([sys.executable, "-c", RACER, location, name],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
              for name in ("racer-1", "racer-2")]
    store = open_store(location)
    try:
        for n in range(-1, ROUNDS):
            content_hash = "sha256:" + hashlib.sha256(f"{location} {n}".encode()).hexdigest()
            stale = n % 2 == 1
            if stale:
                assert store.lease(content_hash, "dead-run", 0.01).held
                time.sleep(0.05)
            for racer in racers:
                assert racer.stdin is not None
                racer.stdin.write(f"{content_hash} 60\n")
                racer.stdin.flush()
            answers = [json.loads(_answer(racer)) for racer in racers]
            if n < 0:
                continue        # the first round warms both up (imports, connections)
            assert sum(a["held"] for a in answers) == 1, (n, answers)
            winner = next(a for a in answers if a["held"])
            assert {a["holder"] for a in answers} == {winner["holder"]}
            assert {a["generation"] for a in answers} == {2 if stale else 1}
            holder = store.holder(content_hash)
            assert holder is not None and holder.holder == winner["holder"]
    finally:
        for racer in racers:
            assert racer.stdin is not None and racer.stdout is not None
            racer.stdin.close()
            racer.wait(30)
            racer.stdout.close()


def _answer(racer: subprocess.Popen[str]) -> str:
    assert racer.stdout is not None
    line = racer.stdout.readline()
    assert line, f"a racer ended early (exit {racer.poll()})"
    return line


def test_without_hard_links_a_directory_store_creates_with_o_excl(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_links(src: object, dst: object) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    store = open_store(tmp_path)
    mine = store.lease(H, "run-a", 30)
    assert mine.held and not store.lease(H, "run-b", 30).held
    assert store.renew(mine, 30).generation == 2
    assert [p.name for p in (tmp_path / "leases" / H[7:]).iterdir()] == [
        "00000000000000000002.json"]      # no temp file left behind


class NoDeletes(LostAnswers):
    """A store that refuses to remove an old generation: a shared folder with the sticky bit
    where another user wrote it, a bucket whose policy grants no delete to this role."""

    def delete(self, name: str) -> None:
        if generation_of(name) is not None:
            raise StoreError(f"{name}: removing it: Permission denied", path=self.location)
        self.inner.delete(name)

    def create(self, name: str, data: bytes) -> bool:
        return self.inner.create(name, data)


def test_a_generation_left_behind_does_not_cost_the_lease_just_won(location: str) -> None:
    """Clearing the older generations away is tidying: the new one is created and this run
    holds the lease whether or not they go. Refused, it raised, so a take-over failed with
    the lease won (every other run then kept off for its ttl) and a renewal left its
    renewer with the generation before, which the next renewal called lost."""
    plain = open_store(location)
    assert plain.lease(H, "killed-run", 0.01).held
    time.sleep(0.05)
    store = Store(NoDeletes(plain.backend))
    taken = store.lease(H, "run-a", 30)
    assert taken.held and taken.generation == 2
    renewed = store.renew(taken, 30)
    assert renewed.held and store.renew(renewed, 30).generation == 4
    holder = plain.holder(H)
    assert holder is not None and holder.holder == "run-a" and holder.generation == 4


class TimesOutOnce(LostAnswers):
    """A store that writes the next create, then does not answer it (a timeout after the
    write): StoreError, as the backends raise for a request that got no answer."""

    def __init__(self, inner: Backend):
        super().__init__(inner)
        self.armed = False

    def create(self, name: str, data: bytes) -> bool:
        if self.armed:
            self.armed = False
            self.inner.create(name, data)
            raise StoreError("the store did not answer", path=self.location)
        return self.inner.create(name, data)


def test_a_renewal_whose_answer_was_lost_is_the_runs_own_when_tried_again(
        tmp_path: Path) -> None:
    """The renewal wrote generation 2 and its answer was lost. Tried again with the token of
    that try (as the renewer does), generation 2 is known for this run's; with a new token,
    it reads as another run's, and the lease as lost, though no other run took it."""
    backend = TimesOutOnce(open_store(tmp_path).backend)
    store = Store(backend)
    mine = store.lease(H, "run-a", 30)
    backend.armed = True
    tried = time.time() - 20        # the failed try, 20 s before the one that settles it
    with pytest.raises(StoreError):
        store.renew(mine, 30, "t" * 32, tried)
    renewed = store.renew(mine, 30, "t" * 32, tried)
    assert renewed.held and renewed.generation == 2
    assert renewed.expires == pytest.approx(tried + 30)     # from when it was written
    assert store.renew(renewed, 30).generation == 3       # and it goes on from there
    other = tmp_path / "other"
    backend = TimesOutOnce(open_store(other).backend)
    store = Store(backend)
    mine = store.lease(H, "run-a", 30)
    backend.armed = True
    with pytest.raises(StoreError):
        store.renew(mine, 30, "t" * 32)
    with pytest.raises(LeaseLost):
        store.renew(mine, 30, "u" * 32)


def test_the_renewer_tries_again_with_the_same_token(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """apply's renewer, whose renewal timed out after the store wrote it, does not report the
    lease lost at its next try (which it did: "the lease ... lapsed while this run created
    its job")."""
    backend, store, renewer = _renewing(tmp_path, monkeypatch, 0.05)
    deadline = time.monotonic() + 10
    while renewer.lease.generation < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    renewer.stop()
    assert not renewer.lost and renewer.lease.generation >= 3 and not backend.armed


def test_a_renewal_lost_just_before_stop_does_not_keep_the_lease_after_release(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The renewer's last try wrote the next generation and its answer was lost; apply then
    stops it and releases the lease it knows (the generation before). That generation is no
    longer the newest, so the release found the lease 'lost' and left it: the lease stayed
    held by this finished run for its whole ttl, keeping every other run off."""
    backend, store, renewer = _renewing(tmp_path, monkeypatch, 0.3)
    deadline = time.monotonic() + 10
    while backend.armed and time.monotonic() < deadline:
        time.sleep(0.01)
    renewer.stop()              # before its next try
    assert not renewer.lost
    store.release(renewer.lease)
    assert store.holder(H) is None


def _renewing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, every: float
              ) -> tuple[TimesOutOnce, Store, claim._Renewer]:
    """apply's renewer of a lease, renewing `every` seconds, started with its first
    renewal's answer to be lost (the store writes it, then times out)."""
    monkeypatch.setattr(claim, "RENEW", every)
    backend = TimesOutOnce(open_store(tmp_path).backend)
    store = Store(backend)
    renewer = claim._Renewer(store, store.lease(H, "run-a", 30), 30)
    backend.armed = True
    renewer.start()
    return backend, store, renewer
