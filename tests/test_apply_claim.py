"""The lease and the claim around a create (runner.apply.claim), one case at a time, over
real HTTP against the emulator with a store on a path: a stale lease of a killed run taken
over, a live one waited for a bounded time and the part left to the next apply, a lease of
a killed run of the same directory taken at once, the job another clone made adopted from
its claim (and a claim naming another batch's job not), and a job made by a run killed
before its claim found from its intent."""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
import s3server
from conftest import MINIMAL, write_manifest
from providers_matrix import ANTHROPIC, GEMINI, Flavour, serve

from runner import api, lockfile
from runner.apply import claim
from runner.cli import main
from runner.emulator import Emulator
from runner.recognise import intent_time
from runner.records import LockEntry
from runner.store import Store, open_store
from runner.store.claims import Claim
from runner.store.names import claim_object
from runner.store.project import STORE_ENV

OTHER = "ci-runner-7 pid 4242 0a1b2c [0123456789ab]"     # a run of another machine


@pytest.fixture
def shared(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Store:
    monkeypatch.setenv(STORE_ENV, str(tmp_path / "shared"))
    return open_store(tmp_path / "shared")


@pytest.fixture
def gemini(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    with serve(GEMINI, tmp_path / "emu", monkeypatch, 60.0) as e:
        yield e


@pytest.fixture
def anthropic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    with serve(ANTHROPIC, tmp_path / "emu", monkeypatch, 60.0) as e:
        yield e


def project(d: Path, flavour: Flavour) -> str:
    """A project holding MINIMAL for `flavour`; the content hash its job will be made for."""
    write_manifest(d, flavour.adapt(MINIMAL))
    [action] = api.plan(d).actions
    assert action.content_hash is not None
    return action.content_hash


def entry(d: Path) -> LockEntry:
    return lockfile.load(d / "batches.lock").batches["tiny"]


def apply(d: Path) -> int:
    return main(["apply", str(d), "--no-wait", "--quiet"])


def test_a_stale_lease_of_a_killed_run_is_taken_over(
        tmp_path: Path, shared: Store, gemini: Emulator) -> None:
    d = tmp_path / "proj"
    content_hash = project(d, GEMINI)
    killed = shared.lease(content_hash, OTHER, 0.5)    # a run killed while it held it
    assert killed.held
    time.sleep(0.6)
    assert apply(d) == 0
    [job] = GEMINI.jobs(gemini)
    assert entry(d).job == job.name
    assert shared.holder(content_hash) is None                      # released
    said = shared.claim(content_hash, "gemini", job.display_name)
    assert said is not None and said.job == job.name


def test_a_live_lease_leaves_the_part_to_the_next_apply(
        tmp_path: Path, shared: Store, gemini: Emulator, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(claim, "WAIT", 0.5)
    d = tmp_path / "proj"
    content_hash = project(d, GEMINI)
    theirs = shared.lease(content_hash, OTHER, 60)
    capsys.readouterr()
    started = time.monotonic()
    assert apply(d) == 0                # not a failure: CI's apply --no-wait exits cleanly
    assert time.monotonic() - started < 10
    said = capsys.readouterr()
    lines = [x for x in (said.out + said.err).splitlines() if x.strip()]
    assert lines == [f"tiny: another run ({OTHER}) is submitting it; left to the next apply"]
    assert GEMINI.jobs(gemini) == []
    shared.release(theirs)
    assert apply(d) == 0
    [job] = GEMINI.jobs(gemini)
    assert entry(d).job == job.name


def test_a_lease_of_a_killed_run_of_the_same_directory_is_taken_at_once(
        tmp_path: Path, shared: Store, gemini: Emulator,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(claim, "WAIT", 60.0)
    d = tmp_path / "proj"
    content_hash = project(d, GEMINI)
    _, scope = claim.run_holder(d)
    assert shared.lease(content_hash, f"here pid 1 abcdef [{scope}]", 120).held
    started = time.monotonic()
    assert apply(d) == 0
    assert time.monotonic() - started < 30      # not the minute's wait: its run is over
    [job] = GEMINI.jobs(gemini)
    assert entry(d).job == job.name


def test_another_clone_adopts_the_job_its_claim_names(
        tmp_path: Path, shared: Store, anthropic: Emulator) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    content_hash = project(a, ANTHROPIC)
    shutil.copytree(a, b)
    assert apply(a) == 0
    [job] = ANTHROPIC.jobs(anthropic)           # an Anthropic batch carries no tag
    assert apply(b) == 0
    assert [j.name for j in ANTHROPIC.jobs(anthropic)] == [job.name]
    adopted = entry(b)
    assert adopted.job == job.name and adopted.inferred     # its results are checked
    assert adopted.content_hash == content_hash
    assert main(["apply", str(b), "--quiet", "--no-wait"]) == 0
    assert [j.name for j in ANTHROPIC.jobs(anthropic)] == [job.name]


def test_a_claim_naming_another_batchs_job_is_not_adopted(
        tmp_path: Path, shared: Store, anthropic: Emulator,
        capsys: pytest.CaptureFixture[str]) -> None:
    other = tmp_path / "other"
    write_manifest(other, ANTHROPIC.adapt(MINIMAL).replace(
        '    - {id: b, q: "What is 2+2?"}\n', ""))        # one request, not two
    assert apply(other) == 0
    [theirs] = ANTHROPIC.jobs(anthropic)
    d = tmp_path / "proj"
    content_hash = project(d, ANTHROPIC)
    [action] = api.plan(d).actions
    assert action.display_name is not None
    shared.write_claim(Claim(content_hash, "anthropic", action.display_name, OTHER, 2, None,
                             theirs.name))
    capsys.readouterr()
    assert main(["apply", str(d), "--no-wait"]) == 0
    jobs = {j.name for j in ANTHROPIC.jobs(anthropic)}
    assert len(jobs) == 2 and entry(d).job in jobs - {theirs.name}
    said = capsys.readouterr()
    assert f"job {theirs.name} was made for" in said.out + said.err


def test_a_job_made_by_a_run_killed_before_its_claim_is_found_by_its_intent(
        tmp_path: Path, shared: Store, anthropic: Emulator) -> None:
    """Clone a made the job; the store holds only its intent, and a lease it never
    released, as if it was killed right after the create: clone b finds the job."""
    a, b = tmp_path / "a", tmp_path / "b"
    content_hash = project(a, ANTHROPIC)
    shutil.copytree(a, b)
    assert apply(a) == 0
    [job] = ANTHROPIC.jobs(anthropic)
    made = entry(a)
    said = shared.claim(content_hash, "anthropic", made.display_name)
    assert said is not None and said.job == job.name
    shared.write_claim(dataclasses.replace(said, holder=OTHER, job=None))
    assert shared.lease(content_hash, OTHER, 0.5).held
    time.sleep(0.6)
    assert apply(b) == 0
    assert [j.name for j in ANTHROPIC.jobs(anthropic)] == [job.name]
    assert entry(b).job == job.name


def test_a_claim_is_read_back_and_anything_else_under_its_name_is_none(
        tmp_path: Path) -> None:
    store = open_store(tmp_path / "store")
    content_hash = "sha256:" + "cd" * 32
    said = Claim(content_hash, "gemini", "tiny-cdcdcdcdcdcd", OTHER, 2,
                 "2026-01-01T00:00:00.000000Z", "batches/123")
    store.write_claim(said)
    assert store.claim(content_hash, "gemini", "tiny-cdcdcdcdcdcd") == said
    assert store.claim(content_hash, "openai", "tiny-cdcdcdcdcdcd") is None
    name = claim_object(content_hash, "gemini", "tiny-cdcdcdcdcdcd")
    for body in (b"not json", b"[]", b'{"content_hash": "x"}',
                 orjson.dumps({**orjson.loads(store.backend.read(name)), "tag": "other"}),
                 orjson.dumps({**orjson.loads(store.backend.read(name)), "job": "\x1b[2J"}),
                 orjson.dumps({**orjson.loads(store.backend.read(name)), "requests": True})):
        store.backend.write(name, body)
        assert store.claim(content_hash, "gemini", "tiny-cdcdcdcdcdcd") is None, body


def test_a_store_that_ignores_exclusive_creates_stops_apply_before_the_create(
        tmp_path: Path, gemini: Emulator, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    d = tmp_path / "proj"
    project(d, GEMINI)
    with s3server.running(ignoring_conditions=True) as endpoint:
        monkeypatch.setenv(STORE_ENV, s3server.fresh_prefix(endpoint, "ignoring",
                                                            monkeypatch.setenv))
        capsys.readouterr()
        assert apply(d) == 1
        said = capsys.readouterr()
        lines = [x for x in (said.out + said.err).splitlines() if x.strip()]
        assert len(lines) == 1 and "leases cannot work on it" in lines[0], lines
    assert GEMINI.jobs(gemini) == []


def test_a_job_wrongly_recognised_from_another_clones_intent_is_let_go_for_good(
        tmp_path: Path, shared: Store, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Another clone's intent is in the store, its job never made; someone else's batch of
    the same size comes in its window and is taken for it. Its results answer other keys:
    nothing is written, the record lets it go, and the next apply makes the batch's own job
    instead of taking that one again."""
    with serve(ANTHROPIC, tmp_path / "emu", monkeypatch, 0.3) as emu:
        d, other = tmp_path / "proj", tmp_path / "other"
        content_hash = project(d, ANTHROPIC)
        [action] = api.plan(d).actions
        assert action.display_name is not None
        shared.write_claim(Claim(content_hash, "anthropic", action.display_name, OTHER, 2,
                                 intent_time(time.time()), None))
        write_manifest(other, ANTHROPIC.adapt(MINIMAL).replace("{id: ", "{id: x"))
        monkeypatch.setenv(STORE_ENV, str(tmp_path / "theirs"))
        assert main(["apply", str(other), "--quiet"]) == 0
        [theirs] = ANTHROPIC.jobs(emu)
        monkeypatch.setenv(STORE_ENV, str(tmp_path / "shared"))
        capsys.readouterr()
        assert main(["apply", str(d), "--quiet"]) == 1
        assert "answers a request it was not sent" in capsys.readouterr().err
        code = main(["apply", str(d)])
        said = capsys.readouterr()
        assert code == 0, said.out + said.err
        mine = entry(d).job
        assert mine is not None and mine != theirs.name
        assert {j.name for j in ANTHROPIC.jobs(emu)} == {theirs.name, mine}


def test_a_run_killed_holding_the_lease_does_not_hold_up_its_directorys_next_run(
        tmp_path: Path, shared: Store, anthropic: Emulator,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGKILLed right after its create reached the provider: the lease stays the killed
    run's, and the next run of the directory takes it at once and adopts the job."""
    monkeypatch.setattr(claim, "WAIT", 60.0)
    d = tmp_path / "proj"
    content_hash = project(d, ANTHROPIC)
    env = dict(os.environ, RUNNER_FAILPOINT="after-create-sent")
    killed = subprocess.run([sys.executable, "-m", "runner.cli", "apply", str(d), "--quiet",
                             "--no-wait"], env=env, capture_output=True, text=True,
                            timeout=120)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    held = shared.holder(content_hash)
    assert held is not None and held.holder.endswith(f"[{claim.run_holder(d)[1]}]")
    [job] = ANTHROPIC.jobs(anthropic)
    started = time.monotonic()
    assert apply(d) == 0
    assert time.monotonic() - started < 30
    assert [j.name for j in ANTHROPIC.jobs(anthropic)] == [job.name]
    assert entry(d).job == job.name
