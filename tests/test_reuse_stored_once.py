"""A batch that reused keeps only its jobs' lines in packs of its own: the reused lines stay in
the packs it reused from, which its record names (`reuse_packs`), and outputs are rebuilt
from both. Editing one row of a million then adds one line to the store, not a million
(about 140 MB to upload to a shared store), and the next edit still walks the packs in
input order (runner.aligned) through the small pack the first one added."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest
from conftest import ROWS_MANIFEST, remote_jobs, write_manifest
from providers_matrix import GEMINI, serve
from test_reuse import edit_rows, new_jobs, project, same_as_fresh
from test_store_apply import clone
from test_store_no_calls import served

import runner.outputs
from runner import api, lockfile
from runner.cli import main
from runner.emulator import Emulator
from runner.records import LockEntry
from runner.store import local_store, open_store
from runner.store.project import STORE_ENV

JSONL_ONLY = ROWS_MANIFEST.replace(
    '    - path: out/big.csv\n      columns: {n: "{{ row.n }}", answer: "{{ text }}"}\n', "")


@pytest.fixture
def emu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    with serve(GEMINI, tmp_path / "emu", monkeypatch, 0.0) as e:
        yield e


def entry(d: Path) -> LockEntry:
    return lockfile.load(d / "batches.lock").batches["big"]


def drop_jobs(emu: Emulator, jobs: Iterable[str | None] | None = None) -> None:
    """The `jobs` deleted on the provider (every job when None)."""
    client = GEMINI.client(emu)
    try:
        for job in [j.name for j in remote_jobs(emu)] if jobs is None else jobs:
            assert job is not None
            client.delete_job(job)
    finally:
        client.close()
    if jobs is None:
        assert remote_jobs(emu) == []


def edited_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """A project applied with a shared store, row 7 edited and applied: the project and the
    store's folder."""
    shared = tmp_path / "shared"
    monkeypatch.setenv(STORE_ENV, str(shared))
    d = project(tmp_path / "p")
    assert api.apply(d).exit_code == 0
    edit_rows(d, {7: "edited"})
    assert api.apply(d).exit_code == 0
    return d, shared


def kept(store_path: Path, packs: list[str]) -> list[str]:
    return [r.request_hash for r in open_store(store_path).results(packs)]


def written_hashes(d: Path) -> set[str]:
    return {json.loads(line)["request_hash"]
            for line in (d / "out/big.jsonl").read_text().splitlines()}


def test_an_edit_keeps_its_one_line_and_a_clone_rebuilds_every_output_without_the_provider(
        emu: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    d, shared = edited_once(tmp_path, monkeypatch)
    e = entry(d)
    [first] = e.reuse_packs         # the first apply's pack, of its forty lines
    assert e.reused == 39 and len(kept(shared, [first])) == 40
    [line] = kept(shared, e.packs)              # the edited row's answer, and no other
    assert {line} == written_hashes(d) - {r.request_hash for r in
                                          open_store(shared).results([first])}
    capsys.readouterr()
    assert main(["store", str(d)]) == 0
    [big] = [x for x in capsys.readouterr().out.splitlines() if x.startswith("  big ")]
    assert "1 pack, 1 result," in big and "; 39 reused from 1 pack" in big, big
    # gc keeps the packs it reused; a CI checkout has the lockfile and the shared store, and
    # the provider's jobs are gone
    assert main(["store", "gc", str(d), "--min-age", "0", "--yes"]) == 0
    drop_jobs(emu)
    ci = clone(d, tmp_path / "ci")
    before = served(emu)
    [action] = api.plan(ci).actions
    assert "restored from the result store" in action.reason, action.reason
    assert main(["apply", str(ci), "--quiet"]) == 0
    assert served(emu) == before
    for name in ("big.jsonl", "big.csv", "big.errors.jsonl"):
        assert (ci / "out" / name).read_bytes() == (d / "out" / name).read_bytes(), name


def test_a_clone_missing_the_reused_packs_says_lost_even_with_its_own(
        emu: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Its own pack holds one line of forty: restoring needs the packs it reused too, and
    without them nothing is sent again unasked."""
    d, shared = edited_once(tmp_path, monkeypatch)
    for pack in entry(d).reuse_packs:
        (shared / "packs" / f"{pack.split(':')[1]}.pack").unlink()
    ci = clone(d, tmp_path / "ci")
    before = remote_jobs(emu)
    capsys.readouterr()
    assert main(["apply", str(ci), "--quiet"]) == 1
    assert "reused from the result store are gone from it" in "".join(capsys.readouterr())
    assert new_jobs(emu, before) == []


def test_edits_one_after_another_walk_the_packs_without_the_join_by_hash(
        emu: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Row 7 edited, then row 21, then both reverted: each apply walks the packs in input
    order (the first edit's pack of one line read in the midst of the first apply's), the
    store grows by the lines sent alone, and the outputs are a fresh project's."""
    d = project(tmp_path / "p")
    write_manifest(d, JSONL_ONLY)
    assert api.apply(d).exit_code == 0

    def by_hash(*args: object, **kwargs: object) -> None:
        raise AssertionError("joined by hash: the walk gave up")

    monkeypatch.setattr(runner.outputs, "ReuseJoin", by_hash)
    store = local_store(d)
    sizes = [len(store.packs())]
    for step, change in enumerate(({7: "edited"}, {7: "edited", 21: "edited too"}, {})):
        edit_rows(d, change)
        before = remote_jobs(emu)
        assert api.apply(d).exit_code == 0
        assert [j.total for j in new_jobs(emu, before)] == ([1] if change else [])
        sizes.append(len(store.packs()))
        e = entry(d)
        assert len(kept(d / ".runner/store", e.packs)) == (1 if change else 0)
        assert e.reused == 40 - (1 if change else 0)
        same_as_fresh(tmp_path, d, f"step-{step}")     # (a project that reuses nothing)
    assert sizes[1:] == [sizes[0] + 1, sizes[0] + 2, sizes[0] + 2], sizes
