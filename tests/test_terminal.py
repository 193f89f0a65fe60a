"""Terminal states: expiry, failure, cancellation and deletion outside the runner."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from conftest import remote_jobs, write_manifest

from runner import api, lockfile
from runner.cli import main
from runner.emulator import Emulator, Faults
from runner.providers.gemini import GeminiProvider


def tags(emu: Emulator) -> Counter[str]:
    return Counter(j.display_name for j in remote_jobs(emu))


def plan_actions(d: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, dict[str, Any]]:
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
    assert job is not None
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
    assert job is not None
    p = GeminiProvider("k", emu.base_url)
    p.delete_job(job)
    p.close()
    action = plan_actions(proj, capsys)["tiny"]
    assert action["action"] == "resubmit" and "deleted on the provider" in action["reason"]
    assert main(["apply", str(proj)]) == 0
    assert len(tags(emu)) == 1   # the deleted job no longer lists; exactly one new one does
    assert (proj / "out/tiny.jsonl").is_file()


RETRYING = """\
apiVersion: batch-runner/v1
kind: Batch
metadata: {name: flaky}
spec:
  provider: gemini
  model: gemini-2.5-flash
  rows: data/rows.jsonl
  key: "r{{ row.n }}"
  retry_failed: 2
  request:
    contents: [{role: user, parts: [{text: "question {{ row.n }}"}]}]
  outputs:
    - path: out/flaky.jsonl
"""


def test_failed_requests_are_retried_and_merged_in_input_order(
        emu: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = tmp_path / "flaky"
    write_manifest(d, RETRYING)
    (d / "data").mkdir()
    (d / "data/rows.jsonl").write_text("".join(f'{{"n": {i}}}\n' for i in range(40)))
    emu.faults = Faults(request_error_rate=0.3, seed=5)
    assert main(["apply", str(d), "--no-wait"]) == 0
    emu.faults = Faults()   # the job keeps the fault it was created with; its retry will not
    time.sleep(0.4)
    assert plan_actions(d, capsys)["flaky"]["action"] == "download"
    assert main(["apply", str(d), "--no-wait"]) == 0     # writes outputs, submits retry 1
    errors = (d / "out/flaky.errors.jsonl").read_text().splitlines()
    entry = lockfile.load(d / "batches.lock").batches["flaky"]
    assert 0 < len(errors) == entry.counts["failed"] < 40
    assert [r.state for r in entry.retries] in (["PENDING"], ["RUNNING"])
    assert entry.retries[0].requests == len(errors)
    assert main(["apply", str(d)]) == 0
    keys = [json.loads(x)["key"] for x in (d / "out/flaky.jsonl").read_text().splitlines()]
    assert keys == [f"r{i}" for i in range(40)]
    assert (d / "out/flaky.errors.jsonl").read_text() == ""
    entry = lockfile.load(d / "batches.lock").batches["flaky"]
    assert entry.counts == {"succeeded": 40, "failed": 0}
    assert [r.state for r in entry.retries] == ["SUCCEEDED"]
    assert sorted(tags(emu).values()) == [1, 1]
    assert any(t.endswith("-retry1") for t in tags(emu))
    assert plan_actions(d, capsys)["flaky"]["action"] == "nothing"


def test_retry_stops_at_the_policy_limit(emu: Emulator, tmp_path: Path) -> None:
    d = tmp_path / "flaky"
    write_manifest(d, RETRYING.replace("retry_failed: 2", "retry_failed: 1"))
    (d / "data").mkdir()
    (d / "data/rows.jsonl").write_text("".join(f'{{"n": {i}}}\n' for i in range(30)))
    (d / "data/rows.jsonl").write_text((d / "data/rows.jsonl").read_text()
                                       + '{"n": "EMULATOR_FAIL"}\n')
    assert main(["apply", str(d)]) == 1      # one failure, and none allowed
    entry = lockfile.load(d / "batches.lock").batches["flaky"]
    assert entry.counts == {"succeeded": 30, "failed": 1}
    assert len(entry.retries) == 1 and entry.retries[0].requests == 1
    errors = [json.loads(x) for x in (d / "out/flaky.errors.jsonl").read_text().splitlines()]
    assert [e["key"] for e in errors] == ["rEMULATOR_FAIL"]
    assert main(["apply", str(d)]) == 1
    assert len(tags(emu)) == 2


@pytest.mark.parametrize("allowed, code", [(0, 1), (1, 0), ('"5%"', 0), ('"3%"', 1)])
def test_failed_requests_over_the_allowance_keep_the_batch_degraded(
        emu: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str], allowed: object,
        code: int) -> None:
    """1 of 31 requests fails for good: 5 % allows 1, 3 % allows 0."""
    d = tmp_path / "flaky"
    write_manifest(d, RETRYING.replace("retry_failed: 2", f"allowed_failures: {allowed}"))
    (d / "data").mkdir()
    (d / "data/rows.jsonl").write_text("".join(f'{{"n": {i}}}\n' for i in range(30))
                                       + '{"n": "EMULATOR_FAIL"}\n')
    assert main(["apply", str(d), "--quiet"]) == code
    said = capsys.readouterr().out
    assert ("1 of 31 requests failed, more than the 0 allowed (spec.allowed_failures): see "
            "out/flaky.errors.jsonl" in said) == bool(code)
    assert main(["plan", str(d), "--detailed-exitcode"]) == code     # as apply would exit
    [row] = api.status(d)
    assert row.health.value == ("Degraded" if code else "Healthy")
    assert main(["apply", str(d), "--quiet"]) == code
    assert len(tags(emu)) == 1
