"""A pack a lockfile entry names that the store lacks, or holds with a damaged head, is not
offered for reuse, and plan and apply say so in one line naming the batch and the pack
(issue 11): the requests that would have reused it are sent. Real, over HTTP, against the
emulator, with the project's own store."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ROWS_MANIFEST, remote_jobs, write_manifest
from providers_matrix import GEMINI, serve

from runner import lockfile
from runner.cli import main
from runner.emulator import Emulator
from runner.store.names import pack_object

ROWS = 12


@pytest.fixture
def emu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    with serve(GEMINI, tmp_path / "emu", monkeypatch, 0.0) as e:
        yield e


def project(d: Path) -> Path:
    write_manifest(d, ROWS_MANIFEST)
    (d / "data").mkdir(parents=True, exist_ok=True)
    (d / "data/rows.jsonl").write_text("".join(json.dumps({"n": n, "body": "hello"}) + "\n"
                                               for n in range(ROWS)))
    return d


def copy_of_big(d: Path) -> None:
    """Another batch asking exactly what `big` asks, under its own name and outputs: every
    request of it is answered in big's pack."""
    write_manifest(d, ROWS_MANIFEST.replace("name: big", "name: twin")
                   .replace("out/big", "out/twin"), "twin.yaml")


def break_pack(d: Path, pack: str, how: str) -> None:
    path = d / ".runner/store" / pack_object(pack)
    if how == "missing":
        path.unlink()
    else:       # a byte of its block table: the head no longer hashes to the pack's name
        data = bytearray(path.read_bytes())
        data[40] ^= 0xFF
        path.write_bytes(bytes(data))


def warnings(text: str, pack: str) -> list[str]:
    return [line for line in text.splitlines() if pack in line]


@pytest.mark.parametrize("how", ["missing", "damaged"])
def test_a_pack_that_cannot_be_read_is_said_once_and_its_requests_are_sent(
        how: str, emu: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = project(tmp_path / "p")
    assert main(["apply", str(d), "--quiet"]) == 0
    [pack] = lockfile.load(d / "batches.lock").batches["big"].packs
    copy_of_big(d)
    capsys.readouterr()
    assert main(["plan", str(d)]) == 0
    healthy = capsys.readouterr().out
    assert "0 to send, 12 reused" in healthy, healthy      # what the pack offers, whole
    break_pack(d, pack, how)
    assert main(["plan", str(d)]) == 0
    said = capsys.readouterr()
    [line] = warnings(said.err, pack)
    assert line.startswith("warning: big: ") and "not reused" in line, line
    assert ("is not in the store" if how == "missing" else "is damaged") in line, line
    assert "reused" not in [x for x in said.out.splitlines() if "twin" in x][0], said.out
    before = remote_jobs(emu)
    assert main(["apply", str(d), "--quiet"]) == 0
    [line] = warnings(capsys.readouterr().out, pack)
    assert line.startswith("warning: big: "), line
    [sent] = [j for j in remote_jobs(emu) if j.name not in {b.name for b in before}]
    assert sent.total == ROWS
    twin = lockfile.load(d / "batches.lock").batches["twin"]
    assert twin.counts == {"succeeded": ROWS, "failed": 0} and not twin.reused
