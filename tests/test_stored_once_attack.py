"""An attacker's read of "a batch that reused keeps only its jobs' lines in packs of its own":
follow-ups, reverts, gc between steps and fresh clones rebuilding from the shared store
without the provider. Real, over HTTP, against the emulator."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import remote_jobs
from providers_matrix import GEMINI, serve
from test_reuse import edit_rows, new_jobs, project
from test_store_apply import clone
from test_store_no_calls import served

import runner.outputs
from runner import api, lockfile
from runner.cli import main
from runner.emulator import Emulator
from runner.emulator.faults import Faults
from runner.records import LockEntry
from runner.store.project import STORE_ENV

OUTPUTS = ("big.jsonl", "big.csv", "big.errors.jsonl")


@pytest.fixture
def emu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    with serve(GEMINI, tmp_path / "emu", monkeypatch, 0.0) as e:
        yield e


def entry(d: Path) -> LockEntry:
    return lockfile.load(d / "batches.lock").batches["big"]


def drop_jobs(emu: Emulator) -> None:
    client = GEMINI.client(emu)
    try:
        for job in remote_jobs(emu):
            client.delete_job(job.name)
    finally:
        client.close()


def gc(d: Path) -> None:
    assert main(["store", "gc", str(d), "--min-age", "0", "--yes"]) == 0


def rebuilt_alike(emu: Emulator, d: Path, to: Path) -> None:
    """A clone of `d` (no outputs, no state) writes `d`'s outputs byte for byte from the
    store alone: the provider's jobs are gone and nothing is asked of it."""
    drop_jobs(emu)
    ci = clone(d, to)
    before = served(emu)
    [action] = api.plan(ci).actions
    assert "restored from the result store" in action.reason, action.reason
    assert main(["apply", str(ci), "--quiet"]) == 0
    assert served(emu) == before
    for name in OUTPUTS:
        assert (ci / "out" / name).read_bytes() == (d / "out" / name).read_bytes(), name


def test_every_request_reused_then_outputs_gone_rebuilds_from_the_store(
        emu: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(STORE_ENV, str(tmp_path / "shared"))
    d = project(tmp_path / "p")
    assert api.apply(d).exit_code == 0
    edit_rows(d, {7: "edited"})
    assert api.apply(d).exit_code == 0
    edit_rows(d, {})        # reverted: every request reused, none sent
    before = remote_jobs(emu)
    assert api.apply(d).exit_code == 0
    assert new_jobs(emu, before) == []
    e = entry(d)
    assert e.reused == e.requests == 40 and e.packs == []
    gc(d)
    rebuilt_alike(emu, d, tmp_path / "ci")


def test_a_follow_up_of_a_batch_that_reused_then_a_clone_rebuilds(
        emu: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows edited; some of their requests fail and a follow-up sends them again, collected
    by another clone with the first job deleted; gc between each step."""
    monkeypatch.setenv(STORE_ENV, str(tmp_path / "shared"))
    d = project(tmp_path / "p", extra="  retry_failed: 1\n")
    assert api.apply(d).exit_code == 0
    edit_rows(d, {n: f"edited {n}" for n in range(0, 40, 3)})
    emu.faults = Faults(request_error_rate=0.5, seed=11)
    assert main(["apply", str(d), "--no-wait", "--quiet"]) == 0
    emu.faults = Faults()
    assert main(["apply", str(d), "--no-wait", "--quiet"]) == 0
    sent = entry(d)
    assert sent.reused and sent.packs and sent.counts["failed"] > 0 and len(sent.retries) == 1
    gc(d)
    client = GEMINI.client(emu)
    try:
        for part in sent.parts():
            assert part.job is not None
            client.delete_job(part.job)
    finally:
        client.close()
    ci = clone(d, tmp_path / "ci")
    assert main(["apply", str(ci), "--quiet"]) == 0
    assert entry(ci).counts == {"succeeded": 40, "failed": 0}
    gc(ci)
    rebuilt_alike(emu, ci, tmp_path / "ci2")


def test_results_over_fresh_bytes_keep_every_line_and_a_clone_rebuilds(
        emu: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(STORE_ENV, str(tmp_path / "shared"))
    monkeypatch.setattr(runner.outputs, "FRESH_BYTES", 10)
    d = project(tmp_path / "p")
    assert api.apply(d).exit_code == 0
    edit_rows(d, {7: "edited"})
    assert api.apply(d).exit_code == 0
    gc(d)
    rebuilt_alike(emu, d, tmp_path / "ci")


def test_a_rebuild_says_nothing_of_the_reused_packs_other_lines(
        emu: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv(STORE_ENV, str(tmp_path / "shared"))
    d = project(tmp_path / "p")
    assert api.apply(d).exit_code == 0
    edit_rows(d, {7: "edited"})
    assert api.apply(d).exit_code == 0
    drop_jobs(emu)
    ci = clone(d, tmp_path / "ci")
    capsys.readouterr()
    assert main(["apply", str(ci)]) == 0
    said = capsys.readouterr().out
    assert "rebuilt from the result store" in said, said
    assert "no request has" not in said and "repeated" not in said, said
