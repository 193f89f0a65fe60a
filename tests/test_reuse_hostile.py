"""Request-level reuse, read as an attacker and a careful user would: each test is a way a
request could be paid for twice, or a result lost or made wrong. Real, over HTTP, against the
emulator (as tests/test_reuse.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ROWS_MANIFEST, remote_jobs, write_manifest
from providers_matrix import GEMINI, serve

from runner import api, lockfile
from runner.cli import main
from runner.emulator import Emulator
from runner.emulator.faults import Faults
from runner.providers.base import RemoteJob
from runner.records import LockEntry

ROWS = 12


@pytest.fixture
def emu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    with serve(GEMINI, tmp_path / "emu", monkeypatch, 0.0) as e:
        yield e


def rows(d: Path, body: str, change: dict[int, str] | None = None, count: int = ROWS) -> None:
    (d / "data").mkdir(parents=True, exist_ok=True)
    with open(d / "data/rows.jsonl", "w") as f:
        for n in range(count):
            f.write(json.dumps({"n": n, "body": (change or {}).get(n, body)}) + "\n")


def project(d: Path, body: str, extra: str = "") -> Path:
    write_manifest(d, ROWS_MANIFEST.replace("  rows: data/rows.jsonl\n",
                                            f"  rows: data/rows.jsonl\n{extra}"))
    rows(d, body)
    return d


def answers(d: Path, name: str = "big") -> list[dict[str, object]]:
    return [json.loads(x) for x in (d / f"out/{name}.jsonl").read_text().splitlines()]


def entry(d: Path, name: str = "big") -> LockEntry:
    return lockfile.load(d / "batches.lock").batches[name]


def new_jobs(emu: Emulator, before: list[RemoteJob]) -> list[RemoteJob]:
    seen = {j.name for j in before}
    return [j for j in remote_jobs(emu) if j.name not in seen]


# --- a success given back as a failure -------------------------------------------------------

def test_a_reused_success_is_not_replaced_by_an_older_failure_of_the_same_request(
        emu: Emulator, tmp_path: Path) -> None:
    """Run 1 fails row k (the pack P1 holds its error); run 2 (an edit, faults gone) sends row
    k again and it succeeds (the pack P2 holds the success). Revert the edit: every request is
    reused, row k from P2, the reverted row from P1, so the batch reuses from both. The
    store's lines of both packs are joined by request hash, a later line winning: when P1 is
    read after P2, row k's old error replaced its success, and a batch that had every answer
    ended with a failure (exit 1), though nothing was sent."""
    body = "hello 3"      # a body whose packs sort P2 before P1 (the order the bug needs)
    d = project(tmp_path / "p", body)
    emu.faults = Faults(request_error_rate=0.3, seed=5)
    assert api.apply(d).exit_code == 1
    failed = {json.loads(x)["key"] for x in
              (d / "out/big.errors.jsonl").read_text().splitlines()} \
        if (d / "out/big.errors.jsonl").exists() else set()
    p1 = list(entry(d).packs)
    emu.faults = Faults()
    edited = next(n for n in range(ROWS) if f"r{n}" not in failed)
    rows(d, body, {edited: "edited"})
    assert api.apply(d).exit_code == 0
    p2 = list(entry(d).packs)
    assert entry(d).reuse_packs == p1
    assert max(p1) > max(p2), "the body no longer gives the pack order this test needs"
    rows(d, body)                               # the edit reverted
    before = remote_jobs(emu)
    result = api.apply(d)
    assert new_jobs(emu, before) == []
    assert sorted(entry(d).reuse_packs) == sorted(p1 + p2)
    assert result.exit_code == 0, [str(a) for a in answers(d)]
    assert len(answers(d)) == ROWS


# --- store gc ----------------------------------------------------------------------------------

def test_store_gc_keeps_the_packs_a_running_batch_reuses(
        emu: Emulator, tmp_path: Path) -> None:
    """A batch edited and submitted (--no-wait) names the packs it reuses in reuse_packs only:
    its new record has no packs of its own yet, and no other entry names the old ones. gc
    must count them as named, or the batch's reused results are deleted under it: its job's
    answer arrives, the outputs cannot be written, and the batch is lost (sent whole again)."""
    d = project(tmp_path / "p", "hello")
    assert api.apply(d).exit_code == 0
    p1 = list(entry(d).packs)
    rows(d, "hello", {7: "edited"})
    assert main(["apply", str(d), "--no-wait", "--quiet"]) == 0
    assert entry(d).reuse_packs == p1 and entry(d).reused == ROWS - 1
    assert main(["store", "gc", str(d), "--yes", "--min-age", "0"]) == 0
    before = remote_jobs(emu)
    assert api.apply(d).exit_code == 0
    assert new_jobs(emu, before) == []
    assert len(answers(d)) == ROWS and "edited" in str(answers(d)[7]["text"])
