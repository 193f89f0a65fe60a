"""One request stream per manifest per run (runner/stream.py): the plan's hashes, the token
tally for prices and budgets, the shards' input files and the join all come from one
rendering of each manifest."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import ROWS_MANIFEST, write_manifest, write_rows

from runner import api, parallel
from runner.apply import apply_directory, prepare
from runner.cli import main
from runner.emulator import Emulator
from runner.manifest import load_directory
from runner.render import Renderer
from runner.stream import PREFIX, Streams, sweep_dead

BOUNDED = ROWS_MANIFEST.replace(
    '    contents: [{role: user, parts: [{text: "Item {{ row.n }}: {{ row.body }}"}]}]\n',
    '    contents: [{role: user, parts: [{text: "Item {{ row.n }}: {{ row.body }}"}]}]\n'
    "    generationConfig: {maxOutputTokens: 10}\n").replace(
    "  rows: data/rows.jsonl", "  rows: data/rows.jsonl\n  budget: 100")
SPLIT = BOUNDED.replace("metadata: {name: big}", "metadata: {name: split}").replace(
    "out/big", "out/split").replace("  budget: 100", "  budget: 100\n  max_requests: 4")
ITEMS = BOUNDED.replace("metadata: {name: big}", "metadata: {name: listed}").replace(
    "out/big", "out/listed").replace("  rows: data/rows.jsonl\n",
                                     "  items: [{n: 1, body: a}, {n: 2, body: b}]\n")


def project(root: Path) -> Path:
    d = root / "proj"
    write_manifest(d, SPLIT, "split.yaml")
    write_manifest(d, ITEMS, "listed.yaml")
    write_rows(d, 10, "lorem")
    return d


@pytest.fixture
def renders(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """How many times each manifest's requests were rendered, by any path: the JSONL fast
    path (as the desired state and the join call it) or request by request."""
    counted: Counter[str] = Counter()

    def counting(real: Callable[..., Any]) -> Callable[..., Any]:
        def spy(renderer: Renderer, *args: Any, **kwargs: Any) -> Any:
            counted[renderer.manifest.name] += 1
            return real(renderer, *args, **kwargs)
        return spy

    for importer in ("runner.desired", "runner.spill"):
        monkeypatch.setattr(f"{importer}.render_jsonl", counting(parallel.render_jsonl))
    monkeypatch.setattr("runner.desired.render_looked", counting(parallel.render_looked))
    monkeypatch.setattr(Renderer, "requests", counting(Renderer.requests))
    return counted


def test_an_apply_renders_each_manifest_once(tmp_path: Path, emu: Emulator,
                                             renders: Counter[str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Hashes, budget, three shards' input files and the join of their results: one render."""
    d = project(tmp_path)
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    assert api.apply(d).exit_code == 0
    assert renders == {"split": 1, "listed": 1}
    assert (d / "out/split.csv").read_text().count("\n") == 11
    assert (d / "out/listed.jsonl").read_text().count("\n") == 2
    assert not list((d / ".runner/inputs").rglob("*")), "input files left behind"
    assert not list((tmp_path / "tmp").iterdir()), "spool left behind"


def test_a_plan_prices_what_it_rendered(tmp_path: Path, emu: Emulator, renders: Counter[str],
                                        capsys: pytest.CaptureFixture[str]) -> None:
    d = project(tmp_path)
    assert main(["plan", str(d)]) == 0
    assert "Estimated cost" in capsys.readouterr().out
    assert renders == {"split": 1, "listed": 1}
    assert not (d / ".runner/inputs").exists()      # a plan writes no input files


def test_the_join_renders_again_when_the_rows_changed_since(tmp_path: Path) -> None:
    d = project(tmp_path)
    m = next(m for m in load_directory(d) if m.name == "split")
    streams = Streams(spool=True)
    made = streams.of(m)
    assert made.rendered.tokens is not None and made.rendered.tokens.requests == 10
    assert len(made.rendered.paths) == 3
    spooled = streams.spooled(m, made.rendered.content_hash)
    assert spooled is not None and spooled.content_hash == made.rendered.content_hash
    assert len(spooled.keys.read_bytes().splitlines()) == 10     # every request's key
    assert streams.spooled(m, "sha256:other") is None
    write_rows(d, 10, "lorem")                      # the same rows, written again
    assert streams.spooled(m, made.rendered.content_hash) is None
    spool = streams.spool
    assert spool is not None and not spool.is_relative_to(d)   # the project stays untouched
    streams.discard()
    assert not spool.exists()


def test_two_runs_never_share_or_remove_each_others_input_files(tmp_path: Path) -> None:
    d = project(tmp_path)
    m = next(m for m in load_directory(d) if m.name == "split")
    mine, theirs = Streams(spool=True), Streams(spool=True)
    kept = mine.of(m).rendered.paths
    gone = theirs.of(m).rendered.paths
    assert mine.spool != theirs.spool
    theirs.discard()
    assert all(p.is_file() for p in kept) and not any(p.exists() for p in gone)
    # a shard's file removed behind the run's back is rendered again when it is needed
    first = mine.of(m).rendered.shards[0].content_hash
    kept[0].unlink()
    assert mine.input_file(m, first) is None
    again = mine.of(m, need=first)
    assert all(p.is_file() for p in again.rendered.paths) and mine.renders == 2
    mine.discard()


def test_only_the_input_files_of_dead_runs_are_swept(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A live run holds a lock on its folder; a killed run's lock went with its process."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    d = project(tmp_path / "p")
    m = next(m for m in load_directory(d) if m.name == "split")
    live = Streams(spool=True)
    live.of(m)
    killed = subprocess.run(
        [sys.executable, "-c", "import os, sys, fcntl; d = sys.argv[1]; os.mkdir(d); "
         "fd = os.open(d + '/.held', os.O_WRONLY | os.O_CREAT); "
         "fcntl.flock(fd, fcntl.LOCK_EX); os.kill(os.getpid(), 9)",
         str(tmp_path / f"{PREFIX}killed")], check=False)
    assert killed.returncode == -9
    making = tmp_path / f"{PREFIX}making"             # no lock file yet: being made
    making.mkdir()
    victim = tmp_path / "victim"
    (victim / "keep").mkdir(parents=True)
    (tmp_path / f"{PREFIX}link").symlink_to(victim)
    assert sweep_dead(tmp_path) == 1
    assert not (tmp_path / f"{PREFIX}killed").exists()
    assert live.spool is not None and live.spool.is_dir() and making.is_dir()
    assert (victim / "keep").is_dir()              # a link is never followed
    live.discard()


def test_a_render_made_before_the_lock_is_not_used_once_the_rows_changed(
        tmp_path: Path, emu: Emulator) -> None:
    """A run renders before it takes the run lock; another run applies meanwhile, and the rows
    change again: the first run plans from the rows as they are now, not from its old render
    (found in review: it recorded the new spec beside the old requests, and every later plan
    said nothing had changed)."""
    d = tmp_path / "proj"
    write_manifest(d, ROWS_MANIFEST)
    write_rows(d, 3, "v0")
    assert api.apply(d).exit_code == 0
    write_rows(d, 3, "v1")
    prepared = prepare(d)                           # this run rendered v1 ...
    assert api.apply(d).exit_code == 0              # ... while another applied v1
    write_rows(d, 3, "v2")
    with api.connect(d) as clients:
        assert apply_directory(d, clients, prepared=prepared).exit_code == 0
    assert "v2" in (d / "out/big.jsonl").read_text()
    assert not [a for a in api.plan(d).actions if a.kind.value != "nothing"]
