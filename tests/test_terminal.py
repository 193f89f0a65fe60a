"""Terminal states: expiry, failure, cancellation and deletion outside the runner."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Iterator

import pytest

from conftest import MINIMAL, write_manifest
from runner import lockfile
from runner.cli import main
from runner.emulator import Emulator, Faults
from runner.providers.gemini import GeminiProvider


@pytest.fixture
def emu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    with Emulator(tmp_path / "emu", latency=0.2) as e:
        monkeypatch.setenv("GEMINI_API_KEY", "k")
        monkeypatch.setenv("GEMINI_BASE_URL", e.base_url)
        monkeypatch.setenv("RUNNER_POLL_SECONDS", "0.05")
        yield e


@pytest.fixture
def proj(tmp_path: Path) -> Path:
    d = tmp_path / "proj"
    write_manifest(d, MINIMAL)
    return d


def tags(emu: Emulator) -> Counter[str]:
    p = GeminiProvider("k", emu.base_url)
    try:
        return Counter(j.display_name for j in p.list_jobs())
    finally:
        p.close()


def plan_actions(d: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, dict]:
    capsys.readouterr()
    assert main(["plan", str(d), "--json"]) == 0
    return {a["name"]: a for a in json.loads(capsys.readouterr().out)["actions"]}


def test_expired_job_is_resubmitted_up_to_the_limit(emu: Emulator, proj: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    emu.faults = Faults(expire=True)
    assert main(["apply", str(proj), "--max-attempts", "2"]) == 1
    assert "expired" in capsys.readouterr().out
    t = tags(emu)
    assert len(t) == 2 and set(t.values()) == {1}
    assert any(name.endswith("-2") for name in t)
    entry = lockfile.load(proj / "batches.lock").batches["tiny"]
    assert (entry.state, entry.attempts) == ("EXPIRED", 2)
    emu.faults = Faults()
    action = plan_actions(proj, capsys)["tiny"]
    assert action["action"] == "resubmit" and "expired" in action["reason"]
    assert main(["apply", str(proj)]) == 0
    assert len(tags(emu)) == 3
    assert lockfile.load(proj / "batches.lock").batches["tiny"].state == "SUCCEEDED"


def test_failed_job_is_reported_and_resubmitted_only_when_asked(
        emu: Emulator, proj: Path, capsys: pytest.CaptureFixture[str]) -> None:
    emu.faults = Faults(fail=True)
    assert main(["apply", str(proj)]) == 1
    entry = lockfile.load(proj / "batches.lock").batches["tiny"]
    assert entry.state == "FAILED" and entry.error
    emu.faults = Faults()
    action = plan_actions(proj, capsys)["tiny"]
    assert action["action"] == "failed" and "--resubmit tiny" in action["reason"]
    assert main(["apply", str(proj)]) == 1
    assert len(tags(emu)) == 1
    assert main(["apply", str(proj), "--resubmit", "tiny"]) == 0
    assert len(tags(emu)) == 2
    assert (proj / "out/tiny.jsonl").is_file()


def test_cancelled_outside_is_drift(emu: Emulator, proj: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["apply", str(proj), "--no-wait"]) == 0
    job = lockfile.load(proj / "batches.lock").batches["tiny"].job
    p = GeminiProvider("k", emu.base_url)
    p.cancel_job(job)
    p.close()
    action = plan_actions(proj, capsys)["tiny"]
    assert action["action"] == "failed" and "drift" in action["reason"]
    assert main(["apply", str(proj), "--resubmit", "tiny"]) == 0
    assert len(tags(emu)) == 2


def test_job_deleted_before_results_saved_is_recreated(
        emu: Emulator, proj: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["apply", str(proj), "--no-wait"]) == 0
    job = lockfile.load(proj / "batches.lock").batches["tiny"].job
    p = GeminiProvider("k", emu.base_url)
    p.delete_job(job)
    p.close()
    action = plan_actions(proj, capsys)["tiny"]
    assert action["action"] == "resubmit" and "deleted on the provider" in action["reason"]
    assert main(["apply", str(proj)]) == 0
    assert len(tags(emu)) == 1   # the deleted job no longer lists; exactly one new one does
    assert (proj / "out/tiny.jsonl").is_file()
