"""A follow-up batch is made from the errors output. A run killed after recording a
follow-up's intent leaves it to the next apply; if the errors output was deleted (as an error
message may advise) or edited meanwhile, the next apply writes it again from the results
first: never a dead end, and never a success sent again."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import MINIMAL, write_manifest
from providers_matrix import FAIL, PROVIDERS, Flavour, serve
from test_crash import kill

from runner import lockfile
from runner.cli import main
from runner.emulator import Emulator

FAILING = MINIMAL.replace('    - {id: b, q: "What is 2+2?"}\n',
                          f'    - {{id: b, q: "What is 2+2?"}}\n    - {{id: c, q: "{FAIL}"}}\n'
                          )


@pytest.fixture
def emu(flavour: Flavour, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
        ) -> Iterator[Emulator]:
    with serve(flavour, tmp_path / "emu", monkeypatch, 0.2) as e:
        yield e


def killed_after_follow_up_intent(flavour: Flavour, emu: Emulator, root: Path) -> Path:
    """A batch whose request c always fails, applied without follow-ups; then allowed one,
    and the run that would send it killed once its intent is recorded."""
    d = root / "proj"
    write_manifest(d, flavour.adapt(FAILING))
    assert main(["apply", str(d), "--quiet"]) == 1      # c failed, none allowed
    assert keys(d / "out/tiny.errors.jsonl") == ["c"]
    write_manifest(d, flavour.adapt(FAILING.replace("  outputs:", "  retry_failed: 1\n  outputs:")))
    assert kill(d, emu, flavour, "after-intent").returncode == -9
    [retry] = lockfile.load(d / "batches.lock").batches["tiny"].retries
    assert (retry.state.value, retry.job, retry.requests) == ("CREATING", None, 1)
    return d


def keys(path: Path) -> list[str]:
    return [json.loads(x)["key"] for x in path.read_text().splitlines()]


def follow_ups(flavour: Flavour, emu: Emulator) -> list[int]:
    """The sizes of the jobs after the batch's own (its follow-ups)."""
    return sorted(j.total for j in flavour.jobs(emu) if j.total != 3)


@PROVIDERS
def test_an_errors_output_deleted_before_the_follow_up_is_written_again_first(
        flavour: Flavour, emu: Emulator, tmp_path: Path) -> None:
    d = killed_after_follow_up_intent(flavour, emu, tmp_path)
    (d / "out/tiny.errors.jsonl").unlink()
    assert main(["apply", str(d), "--quiet"]) == 1      # c fails again
    assert follow_ups(flavour, emu) == [1]
    assert keys(d / "out/tiny.jsonl") == ["a", "b"]
    assert keys(d / "out/tiny.errors.jsonl") == ["c"]


@PROVIDERS
def test_an_errors_output_edited_before_the_follow_up_sends_no_success_again(
        flavour: Flavour, emu: Emulator, tmp_path: Path) -> None:
    d = killed_after_follow_up_intent(flavour, emu, tmp_path)
    errors = d / "out/tiny.errors.jsonl"
    errors.write_text(errors.read_text() + '{"key": "a", "error": {"message": "x"}}\n')
    assert main(["apply", str(d), "--quiet"]) == 1      # c fails again
    assert follow_ups(flavour, emu) == [1]
    assert keys(d / "out/tiny.jsonl") == ["a", "b"]
    assert keys(errors) == ["c"]
