"""A batch whose outputs are restored from the result store needs nothing of the provider
(issue 11): a fresh clone sharing the store plans and applies it without one request to the
provider, whose jobs may be long deleted. Counted at the emulator, over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import MINIMAL, write_manifest
from providers_matrix import GEMINI, serve
from test_store_apply import clone

from runner import api, lockfile
from runner.cli import main
from runner.emulator import Emulator
from runner.store.names import pack_object
from runner.store.project import STORE_ENV


@pytest.fixture
def emu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    with serve(GEMINI, tmp_path / "emu", monkeypatch, 0.0) as e:
        yield e


def served(emu: Emulator) -> int:
    """The requests the emulator's APIs answered (its admin routes are not counted)."""
    answer = httpx.get(f"{emu.base_url}/_emulator/stats").json()
    assert isinstance(answer, dict)
    count = answer["requests_served"]
    assert isinstance(count, int)
    return count


def applied_and_cloned(emu: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(STORE_ENV, str(tmp_path / "shared"))
    d = tmp_path / "proj"
    write_manifest(d, MINIMAL)
    assert main(["apply", str(d), "--quiet"]) == 0
    return clone(d, tmp_path / "ci")


def test_a_batch_restored_from_the_store_is_planned_and_applied_without_the_provider(
        emu: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ci = applied_and_cloned(emu, tmp_path, monkeypatch)
    before = served(emu)
    [action] = api.plan(ci).actions
    assert "restored from the result store" in action.reason, action.reason
    assert main(["plan", str(ci)]) == 0
    assert served(emu) == before
    assert main(["apply", str(ci), "--quiet"]) == 0
    assert served(emu) == before
    assert (ci / "out/tiny.jsonl").read_bytes() == (tmp_path / "proj/out/tiny.jsonl").read_bytes()


def test_a_pack_the_store_lacks_is_asked_of_the_provider(
        emu: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The other way round: a pack missing, the batch's job is looked at (and its results
    downloaded), so the count moves."""
    ci = applied_and_cloned(emu, tmp_path, monkeypatch)
    [pack] = lockfile.load(ci / "batches.lock").batches["tiny"].packs
    (tmp_path / "shared" / pack_object(pack)).unlink()
    before = served(emu)
    [action] = api.plan(ci).actions
    assert "result store" not in action.reason and action.kind.value == "download"
    assert served(emu) > before
    assert main(["apply", str(ci), "--quiet"]) == 0
