"""`runner store DIR` (what the store holds per batch) and `runner store gc DIR` (packs no
lockfile entry names, removed only with --yes), against a project applied on the emulator."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import MINIMAL, write_manifest
from providers_matrix import GEMINI, serve

from runner import lockfile
from runner.cli import main
from runner.emulator import Emulator
from runner.runlock import RunLock
from runner.store import open_store
from runner.store.project import STORE_ENV

ORPHAN = b'{"key":"z","response":{"candidates":[]}}'


@pytest.fixture
def emu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    with serve(GEMINI, tmp_path / "emu", monkeypatch, 0.2) as e:
        yield e


@pytest.fixture
def applied(emu: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A finished project whose shared store also holds one pack no lockfile names."""
    d = tmp_path / "proj"
    monkeypatch.setenv(STORE_ENV, str(tmp_path / "shared"))
    write_manifest(d, MINIMAL)
    assert main(["apply", str(d), "--quiet"]) == 0
    with open_store(tmp_path / "shared").writer() as w:
        w.add("sha256:" + "0" * 64, ORPHAN, True)
    return d


def said(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return capsys.readouterr().out.strip().splitlines()


def test_store_shows_each_batch_with_its_packs_results_and_bytes(
        applied: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["store", str(applied)]) == 0
    lines = said(capsys)
    assert lines[0] == f"store: {tmp_path / 'shared'}"
    assert lines[1].split()[:5] == ["tiny", "1", "pack,", "2", "results,"], lines
    assert lines[2].startswith("not named by this lockfile: 1 pack, "), lines


def test_store_gc_is_a_dry_run_unless_told_and_keeps_what_the_lockfile_names(
        applied: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = open_store(tmp_path / "shared")
    [named] = lockfile.load(applied / "batches.lock").batches["tiny"].packs
    assert len(store.packs()) == 2
    capsys.readouterr()
    assert main(["store", "gc", str(applied)]) == 0     # young: left even when told
    assert "1 unnamed but younger than 7 days" in said(capsys)[-1]
    assert main(["store", "gc", str(applied), "--min-age", "0"]) == 0
    lines = said(capsys)
    assert lines[1].startswith("  would remove sha256:") and "--yes" in lines[-1], lines
    assert len(store.packs()) == 2
    assert main(["store", "gc", str(applied), "--min-age", "0", "--yes"]) == 0
    assert said(capsys)[-1].startswith("removed 1 pack")
    assert [p.pack for p in store.packs()] == [named]
    (applied / "out/tiny.jsonl").unlink()               # what is named still rebuilds
    assert main(["apply", str(applied), "--quiet"]) == 0
    assert (applied / "out/tiny.jsonl").exists()


def test_store_flags_without_gc_are_one_line_and_exit_1(
        applied: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["store", str(applied), "--yes"]) == 1
    out = capsys.readouterr()
    assert (out.out + out.err).strip().count("\n") == 0


@pytest.mark.parametrize("where", ["typo", "proj/out"])
def test_store_gc_of_a_directory_without_a_lockfile_removes_nothing(
        applied: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], where: str) -> None:
    """gc keeps what a lockfile names: with none (a path mistyped, a subfolder of the
    project), it named nothing, and every pack of a shared store older than --min-age went.
    Refused instead, in one line naming the lockfile it looked for."""
    store = open_store(tmp_path / "shared")
    assert len(store.packs()) == 2
    capsys.readouterr()
    for dry in ([], ["--yes"]):
        assert main(["store", "gc", str(tmp_path / where), "--min-age", "0", *dry]) == 1
        out = capsys.readouterr()
        assert out.out == "" and out.err.count("\n") == 1, out
        assert out.err.startswith(f"error: {tmp_path / where / 'batches.lock'}: no lockfile"), out
    assert len(store.packs()) == 2


def test_store_gc_removes_nothing_while_an_apply_runs_on_the_directory(
        applied: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An apply writes its packs before its lockfile names them: gc --yes with --min-age 0
    would remove them from under it. It holds the run lock while it removes, so beside a
    running apply it refuses in one line; the dry run reads only, and goes on."""
    store = open_store(tmp_path / "shared")
    capsys.readouterr()
    with RunLock(applied):          # an apply, running
        assert main(["store", "gc", str(applied), "--min-age", "0", "--yes"]) == 1
        out = capsys.readouterr()
        assert out.err.count("\n") == 1 and "another run holds the lock" in out.err, out
        assert len(store.packs()) == 2
        assert main(["store", "gc", str(applied), "--min-age", "0"]) == 0
        assert "would remove 1 pack" in said(capsys)[-1]
    assert main(["store", "gc", str(applied), "--min-age", "0", "--yes"]) == 0
    assert len(store.packs()) == 1
