"""`runner store gc` collects leases and claims too (issue 11): leases expired over an hour
ago, and claims whose job no lockfile entry names once older than any job could still be in
flight; a dry run unless told. On a path and on moto's S3 server, after a real apply against
the emulator (which leaves a released lease and a claim naming its job)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import s3server
from conftest import MINIMAL, write_manifest
from providers_matrix import GEMINI, serve

from runner import lockfile
from runner.cli import main
from runner.emulator import Emulator
from runner.store import Store, open_store
from runner.store.claims import Claim
from runner.store.lease import MAX_TTL
from runner.store.names import CLAIMS, LEASES, claim_object

DAY = 86400.0
STALE = "sha256:" + "1" * 64       # a lease its holder never released
LIVE = "sha256:" + "2" * 64        # a lease held for a week
ORPHAN = "sha256:" + "3" * 64      # a claim on a job no lockfile names
INTENT = "sha256:" + "4" * 64      # an intent: a run killed before its create answered


@pytest.fixture
def emu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    with serve(GEMINI, tmp_path / "emu", monkeypatch, 0.0) as e:
        yield e


def applied(location: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project applied with `location` as its store, which then also holds a stale lease,
    a live one, a claim naming a job nobody records and an intent."""
    monkeypatch.setenv("RUNNER_STORE", location)
    d = tmp_path / "proj"
    write_manifest(d, MINIMAL)
    assert main(["apply", str(d), "--quiet"]) == 0
    store = open_store(location)
    assert store.lease(STALE, "killed-run", 60).held
    assert store.lease(LIVE, "long-run", MAX_TTL).held
    store.write_claim(Claim(ORPHAN, "gemini", "orphan-tag", "a run", 2, None, "batches/gone"))
    store.write_claim(Claim(INTENT, "gemini", "intent-tag", "a run", 2, None, None))
    return d


def objects(store: Store, top: str) -> set[str]:
    return {s.name for folder in store.backend.folders(top) for s in store.backend.list(folder)}


def test_gc_removes_expired_leases_and_old_unnamed_claims(
        location: str, emu: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    d = applied(location, tmp_path, monkeypatch)
    entry = lockfile.load(d / "batches.lock").batches["tiny"]
    named = claim_object(entry.content_hash, "gemini", entry.display_name)
    assert entry.job is not None
    jobs = {entry.job}
    store = open_store(location)
    leases, claims = objects(store, LEASES), objects(store, CLAIMS)
    assert len(leases) == 3 and len(claims) == 3 and named in claims, (leases, claims)

    now = store.tidy(jobs, claim_age=0)     # today: everything is in use or too young
    assert (now.leases, now.claims, now.named_claims, now.young_claims) == ([], [], 1, 2)
    later = Store(store.backend, clock=lambda: time.time() + 4 * DAY)
    seen = later.tidy(jobs)
    assert sorted(seen.leases) == sorted([STALE, entry.content_hash]) and seen.live_leases == 1
    assert sorted(seen.claims) == sorted([claim_object(ORPHAN, "gemini", "orphan-tag"),
                                          claim_object(INTENT, "gemini", "intent-tag")])
    assert objects(store, LEASES) == leases and objects(store, CLAIMS) == claims   # dry run
    done = later.tidy(jobs, dry_run=False)
    assert (done.leases, done.claims) == (seen.leases, seen.claims)
    assert objects(store, CLAIMS) == {named}
    [left] = objects(store, LEASES)
    assert left.startswith(f"{LEASES}/{LIVE[7:]}/")
    assert later.tidy(jobs).leases == [] and later.tidy(jobs).claims == []
    # a lease removed whole is taken afresh, and the project still applies and rebuilds
    assert store.lease(STALE, "next-run", 60).held
    (d / "out/tiny.jsonl").unlink()
    assert main(["apply", str(d), "--quiet"]) == 0 and (d / "out/tiny.jsonl").exists()


def test_a_claim_younger_than_three_days_stays_whatever_min_age_says(
        emu: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Its job may still be running (Gemini's window is 48 h): --min-age 0 does not reach
    it; at four days it goes."""
    location = str(tmp_path / "store")
    applied(location, tmp_path, monkeypatch)
    store = open_store(location)
    two_days = Store(store.backend, clock=lambda: time.time() + 2 * DAY)
    assert two_days.tidy(set(), claim_age=0).claims == []
    four_days = Store(store.backend, clock=lambda: time.time() + 4 * DAY)
    assert len(four_days.tidy(set(), claim_age=0).claims) == 3


def test_store_gc_says_what_it_would_remove_and_removes_it_with_yes(
        emu: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    location = tmp_path / "store"
    d = applied(str(location), tmp_path, monkeypatch)
    old = time.time() - 4 * DAY       # the week-long lease still held
    for top in (LEASES, CLAIMS):
        for path in (location / top).rglob("*.json"):
            os.utime(path, (old, old))
    capsys.readouterr()
    assert main(["store", "gc", str(d), "--min-age", "3.5"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1] == "leases: would remove 2 expired over 1 h ago, left 1", lines
    assert lines[2].startswith("claims: would remove 2 whose job no lockfile entry names, "
                               "older than 3.5 days; left 1 named"), lines
    assert lines[-1].endswith("run again with --yes to remove them"), lines
    assert len(list((location / CLAIMS).rglob("*.json"))) == 3
    assert main(["store", "gc", str(d), "--min-age", "3.5", "--yes"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].startswith("leases: removed 2 ") and lines[2].startswith("claims: removed 2 ")
    assert len(list((location / CLAIMS).rglob("*.json"))) == 1
    assert len(list((location / LEASES).rglob("*.json"))) == 1


def test_a_run_that_saw_a_lease_gc_then_removed_does_not_hold_it_beside_a_new_taker(
        location: str) -> None:
    """gc removes a stale lease whole, so numbering starts again at 1: run X takes generation
    1 afresh. Run Y had read the stale generation just before gc removed it, and creates
    the one after it, 2: without a check, both hold the lease (2 is newer than anything Y
    sees, and X looked before 2 existed)."""
    from test_store_hostile import Between

    plain = open_store(location).backend
    assert Store(plain).lease(STALE, "killed-run", 0.01).held
    time.sleep(1.1)     # S3 gives times to the second (gc leaves a lease free for an hour)
    taken = []

    def gc_then_x() -> None:      # gc looks two hours on; run X now
        gc = Store(plain, clock=lambda: time.time() + 2 * 3600)
        assert gc.tidy(set(), dry_run=False).leases == [STALE]
        taken.append(Store(plain).lease(STALE, "run-x", 60))

    # right after Y read the stale generation, before it creates the next one
    y = Store(Between(plain, lambda call, name: call == "read" and name.startswith(LEASES),
                      gc_then_x)).lease(STALE, "run-y", 60)
    [x] = taken
    assert x.held and not y.held


def test_gc_passes_over_bucket_keys_no_store_object_can_have(
        s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A bucket takes any key, `..` and empty parts included (anyone who can write to the
    store, or a tool that joined paths badly, may leave one): a listing shows them as
    folders `leases/..` or `claims/.`, which are not names of the store's objects. gc passes
    over them (it acted on nothing outside the shapes it builds) instead of failing with a
    ValueError's traceback, and still collects the rest."""
    url = s3server.fresh_prefix(s3_endpoint, "store-tests", monkeypatch.setenv)
    store = open_store(url)
    assert store.lease(STALE, "killed-run", 60).held
    fs, root = store.backend.fs, store.backend.root  # type: ignore[attr-defined]
    for key in ("leases/../evil.json", "leases//empty.json", "claims/./a.json",
                "claims/x/../y/z.json", "packs/../p.pack"):
        fs.pipe_file(f"{root}/{key}", b"{}")        # s3fs sends the key as it is
    later = Store(store.backend, clock=lambda: time.time() + 4 * DAY)
    assert later.gc(set()).removed == []
    done = later.tidy(set(), dry_run=False)
    assert done.leases == [STALE] and done.claims == []
    assert fs.exists(f"{root}/leases/../evil.json")     # left as it was: not the store's
