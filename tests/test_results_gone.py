"""Results a provider no longer keeps, for each provider: a job deleted (OpenAI keeps its
batches for good; deleting one deletes its files), or past its retention (Anthropic keeps
results 29 days after a batch's creation). Never received, they are sent again; received
once, they are lost: a fresh clone's apply pays for nothing until asked (`--resubmit`)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import MINIMAL, write_manifest
from providers_matrix import ANTHROPIC, FLAVOURS, OPENAI, Flavour, advance, serve

from runner import api, lockfile
from runner.cli import main
from runner.emulator import Emulator

PAST_RETENTION = 30 * 24 * 3600.0


@pytest.fixture
def emu(flavour: Flavour, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
        ) -> Iterator[Emulator]:
    with serve(flavour, tmp_path / "emu", monkeypatch, 0.3) as e:
        yield e


def remove(flavour: Flavour, emu: Emulator, job: str, how: str) -> None:
    """Makes the job's results gone from the provider, `how` a user or time would."""
    if how == "retention":
        advance(emu, PAST_RETENTION)
        return
    client = flavour.client(emu)
    try:
        client.delete_job(job)
    finally:
        client.close()


def applied(flavour: Flavour, emu: Emulator, root: Path, *, wait: bool) -> tuple[Path, str]:
    """MINIMAL applied for `flavour` in `root/proj`, and its job: its outputs written
    (`wait`), or its job ended with its results not yet received."""
    d = root / "proj"
    write_manifest(d, flavour.adapt(MINIMAL))
    assert main(["apply", str(d), "--quiet", *([] if wait else ["--no-wait"])]) == 0
    if not wait:
        advance(emu, 120)
    job = lockfile.load(d / "batches.lock").batches["tiny"].job
    assert job is not None
    return d, job


GONE = [pytest.param(f, "deleted", id=f"{f.name}-deleted") for f in FLAVOURS] + [
    pytest.param(ANTHROPIC, "retention", id="anthropic-retention")]


@pytest.mark.parametrize(("flavour", "how"), GONE)
def test_results_received_once_and_gone_are_not_paid_for_again(
        flavour: Flavour, how: str, emu: Emulator, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    d, job = applied(flavour, emu, tmp_path, wait=True)
    remove(flavour, emu, job, how)
    before = flavour.jobs(emu)
    clone = tmp_path / "clone"          # what a CI checkout holds: no .runner/, no outputs
    shutil.copytree(d, clone, ignore=shutil.ignore_patterns(".runner", "out"))
    [action] = api.plan(clone).actions
    assert action.kind.value == "lost", action.reason
    capsys.readouterr()
    assert main(["apply", str(clone), "--quiet"]) == 1
    said = capsys.readouterr()
    lines = (said.out + said.err).strip().splitlines()
    assert len(lines) == 1 and "apply --resubmit tiny" in lines[0], lines
    assert flavour.jobs(emu) == before                 # nothing submitted
    assert main(["apply", str(clone), "--resubmit", "tiny", "--quiet"]) == 0
    assert len(flavour.jobs(emu)) == len(before) + 1
    assert flavour.steady((clone / "out/tiny.jsonl").read_bytes()) == \
        flavour.steady((d / "out/tiny.jsonl").read_bytes())


@pytest.mark.parametrize(("flavour", "how"), GONE)
def test_results_gone_before_they_were_received_are_sent_again(
        flavour: Flavour, how: str, emu: Emulator, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    d, job = applied(flavour, emu, tmp_path, wait=False)
    remove(flavour, emu, job, how)
    [action] = api.plan(d).actions
    assert action.kind.value == "resubmit", action.reason
    assert main(["apply", str(d), "--quiet"]) == 0
    entry = lockfile.load(d / "batches.lock").batches["tiny"]
    assert entry.job != job and entry.state == "SUCCEEDED"
    assert (d / "out/tiny.jsonl").read_text().count('"key"') == 2


@pytest.mark.parametrize("flavour", [OPENAI], ids=str)
def test_files_found_gone_at_download_send_the_batch_again(
        flavour: Flavour, emu: Emulator, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """OpenAI's list shows a batch whose files were deleted as completed (telling would take
    a call a batch): the plan says download, and the download, finding the files gone, sends
    the batch again in the same apply. A second batch makes the plan list every job."""
    d, job = applied(flavour, emu, tmp_path, wait=False)
    remove(flavour, emu, job, "deleted")
    (d / "other.yaml").write_text(flavour.adapt(MINIMAL).replace(
        "name: tiny", "name: other").replace("out/tiny", "out/other"))
    actions = {a.name: a.kind.value for a in api.plan(d).actions}
    assert actions == {"tiny": "download", "other": "create"}
    capsys.readouterr()
    assert main(["apply", str(d)]) == 0
    said = capsys.readouterr().out
    assert f"the results of {job} are no longer on the provider" in said
    entry = lockfile.load(d / "batches.lock").batches["tiny"]
    assert entry.job != job and entry.attempts == 2
    assert (d / "out/tiny.jsonl").read_text().count('"key"') == 2
    assert len(flavour.jobs(emu)) == 3
