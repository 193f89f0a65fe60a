"""The result store and jobs whose results come in after the outputs were written (issue 11):
a follow-up of failed requests merged in a fresh clone reads the first job's results from
the packs the lockfile names, not the provider (which may have deleted the job). Real, over
HTTP, against the emulator and a store shared by path."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ROWS_MANIFEST, write_manifest
from providers_matrix import GEMINI, serve
from test_store_apply import clone

from runner import lockfile
from runner.cli import main
from runner.emulator import Emulator
from runner.emulator.faults import Faults
from runner.errors import LockfileError
from runner.records import LockEntry
from runner.store.project import STORE_ENV

ROWS = 12
OUTPUTS = ("out/big.jsonl", "out/big.csv", "out/big.errors.jsonl")


@pytest.fixture
def emu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    with serve(GEMINI, tmp_path / "emu", monkeypatch, 0.0) as e:
        yield e


def project(d: Path, extra: str = "  retry_failed: 1\n") -> Path:
    write_manifest(d, ROWS_MANIFEST.replace("  rows: data/rows.jsonl\n",
                                            f"  rows: data/rows.jsonl\n{extra}"))
    (d / "data").mkdir(parents=True, exist_ok=True)
    (d / "data/rows.jsonl").write_text("".join(json.dumps({"n": n, "body": "hello"}) + "\n"
                                               for n in range(ROWS)))
    return d


def entry(d: Path) -> LockEntry:
    return lockfile.load(d / "batches.lock").batches["big"]


def delete_job(emu: Emulator, job: str) -> None:
    client = GEMINI.client(emu)
    try:
        client.delete_job(job)
    finally:
        client.close()


def with_follow_up_sent(d: Path, emu: Emulator) -> LockEntry:
    """The batch's job ends with failed requests; its outputs are written (the packs named)
    and the follow-up of its failures is sent, not yet collected."""
    emu.faults = Faults(request_error_rate=0.5, seed=11)
    assert main(["apply", str(d), "--no-wait", "--quiet"]) == 0
    emu.faults = Faults()       # the job keeps the faults it was created with; not the retry
    assert main(["apply", str(d), "--no-wait", "--quiet"]) == 0
    sent = entry(d)
    assert sent.packs and len(sent.retries) == 1 and sent.counts["failed"] > 0, sent
    assert sent.retries[0].state.value != "SUCCEEDED"
    return sent


def test_a_follow_up_merged_in_a_fresh_clone_reads_the_first_job_from_the_store(
        emu: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The first job is deleted on the provider: reading its results from there fails. A
    fresh clone sharing the store merges the follow-up over the packs' lines, byte for byte
    what the first clone writes from its own copy of the first job's results."""
    monkeypatch.setenv(STORE_ENV, str(tmp_path / "shared"))
    d = project(tmp_path / "p")
    sent = with_follow_up_sent(d, emu)
    assert sent.job is not None
    delete_job(emu, sent.job)
    ci = clone(d, tmp_path / "ci")
    assert main(["apply", str(ci), "--quiet"]) == 0, capsys.readouterr()
    merged = entry(ci)
    assert merged.counts == {"succeeded": ROWS, "failed": 0}
    assert merged.packs and not merged.packs_jobs
    # the first clone, from its own copy (its store is an empty one: the packs are missing)
    monkeypatch.setenv(STORE_ENV, str(tmp_path / "empty"))
    capsys.readouterr()
    assert main(["apply", str(d)]) == 0
    assert "is not in the store" in capsys.readouterr().out
    for path in OUTPUTS:
        assert (ci / path).read_bytes() == (d / path).read_bytes(), path
    assert (ci / "batches.lock").read_bytes() == (d / "batches.lock").read_bytes()
    assert main(["plan", str(ci), "--detailed-exitcode"]) == 0


def test_a_follow_up_whose_packs_are_missing_reads_every_job_from_the_provider(
        emu: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The packs gone from the store, the first job's results are fetched from the provider
    (which still has them), with one line saying why."""
    monkeypatch.setenv(STORE_ENV, str(tmp_path / "shared"))
    d = project(tmp_path / "p")
    with_follow_up_sent(d, emu)
    ci = clone(d, tmp_path / "ci")
    monkeypatch.setenv(STORE_ENV, str(tmp_path / "other"))
    capsys.readouterr()
    assert main(["apply", str(ci)]) == 0
    said = [line for line in capsys.readouterr().out.splitlines() if "is not in the store" in line]
    assert len(said) == 1 and said[0].startswith("big: "), said
    assert entry(ci).counts == {"succeeded": ROWS, "failed": 0}


def test_a_lockfile_naming_an_unfinished_job_in_packs_jobs_is_refused_at_its_line(
        emu: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """packs_jobs naming the follow-up still running would write its requests from the
    packs' older lines (their failures): the lockfile is refused, one line naming it."""
    d = project(tmp_path / "p")
    sent = with_follow_up_sent(d, emu)
    retry = sent.retries[0].job
    assert retry is not None
    text = (d / "batches.lock").read_text()
    (d / "batches.lock").write_text(text.replace("    packs:\n", f"    packs_jobs:\n    - {retry}\n"
                                                 "    packs:\n", 1))
    with pytest.raises(LockfileError, match="packs_jobs names .* whose results have not come"):
        lockfile.load(d / "batches.lock")
    capsys.readouterr()
    assert main(["plan", str(d)]) == 1
    said = capsys.readouterr()
    assert len((said.out + said.err).strip().splitlines()) == 1
