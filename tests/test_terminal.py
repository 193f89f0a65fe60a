"""Terminal states, for each provider (tests/providers_matrix.py): expiry, failure,
cancellation and deletion outside the runner, and failed requests sent again.

Where the providers differ, each test says so and asserts that provider's documented
behaviour (docs/providers.md): an OpenAI or Anthropic job that expires keeps what it
finished, and only the rest is sent again; an Anthropic batch cannot fail as a whole (its
requests fail, one by one); OpenAI cannot delete a batch, only its files.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import MINIMAL, write_manifest
from providers_matrix import FAIL, PAST_EXPIRY, PROVIDERS, Flavour, advance, providers, serve

from runner import api, lockfile
from runner.cli import main
from runner.emulator import Emulator, Faults

# MINIMAL with one request: a job that expires finishes none of it, whatever the provider
# (OpenAI's and Anthropic's emulators finish half of a batch that expires)
ONE = MINIMAL.replace('    - {id: b, q: "What is 2+2?"}\n', "")


@pytest.fixture
def emu(flavour: Flavour, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
        ) -> Iterator[Emulator]:
    """An emulator whose jobs take 0.3 s, reached through the provider's environment."""
    with serve(flavour, tmp_path / "emu", monkeypatch, 0.3) as e:
        yield e


@pytest.fixture
def slow(flavour: Flavour, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
         ) -> Iterator[Emulator]:
    """An emulator whose jobs run for a minute of its clock (moved on by `advance`)."""
    with serve(flavour, tmp_path / "slow", monkeypatch, 60.0) as e:
        yield e


@pytest.fixture
def proj(flavour: Flavour, tmp_path: Path) -> Path:
    d = tmp_path / "proj"
    write_manifest(d, flavour.adapt(MINIMAL))
    return d


def plan_actions(d: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, dict[str, Any]]:
    capsys.readouterr()
    assert main(["plan", str(d), "--json"]) == 0
    return {a["name"]: a for a in json.loads(capsys.readouterr().out)["actions"]}


def keys(path: Path) -> list[str]:
    return [json.loads(x)["key"] for x in path.read_text().splitlines()]


@PROVIDERS
def test_a_job_expired_with_nothing_finished_is_resubmitted_up_to_the_limit(
        flavour: Flavour, emu: Emulator, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The whole job again, up to --max-attempts, then reported; a later apply, told by the
    plan, submits it once more. Each apply leaves its job running (--no-wait) and the clock
    is moved past every provider's expiry."""
    d = tmp_path / "one"
    write_manifest(d, flavour.adapt(ONE))
    emu.faults = Faults(expire=True)
    for _ in range(2):
        assert main(["apply", str(d), "--max-attempts", "2", "--no-wait"]) == 0
        advance(emu, PAST_EXPIRY)
    capsys.readouterr()
    assert main(["apply", str(d), "--max-attempts", "2"]) == 1
    assert "expired" in capsys.readouterr().out
    jobs = flavour.jobs(emu)
    assert len(jobs) == 2 and {j.succeeded for j in jobs} == {0}
    if flavour.tags_jobs:
        assert any(j.display_name.endswith("-2") for j in jobs)
    entry = lockfile.load(d / "batches.lock").batches["tiny"]
    assert (entry.state, entry.attempts) == ("EXPIRED", 2)
    emu.faults = Faults()
    action = plan_actions(d, capsys)["tiny"]
    assert action["kind"] == "resubmit" and "expired" in action["reason"]
    assert main(["apply", str(d)]) == 0
    assert len(flavour.jobs(emu)) == 3
    assert lockfile.load(d / "batches.lock").batches["tiny"].state == "SUCCEEDED"


@providers(gemini=pytest.mark.skip(
    reason="a Gemini job that expires keeps no answers: it is sent again whole (the test above)"))
def test_an_expired_job_keeps_what_it_finished_and_resends_only_the_rest(
        flavour: Flavour, emu: Emulator, proj: Path) -> None:
    """OpenAI and Anthropic: the answers an expired job holds are written, and a follow-up
    sends only the requests it never ran (with retry_failed 0)."""
    emu.faults = Faults(expire=True)
    assert main(["apply", str(proj), "--no-wait", "--quiet"]) == 0
    emu.faults = Faults()
    advance(emu, PAST_EXPIRY)
    assert main(["apply", str(proj), "--quiet"]) == 0
    first, follow_up = sorted(flavour.jobs(emu), key=lambda j: j.create_time or "")
    assert (first.total, first.succeeded) == (2, 1)        # half done when it expired
    assert (follow_up.total, follow_up.succeeded) == (1, 1)
    assert keys(proj / "out/tiny.jsonl") == ["a", "b"]
    assert (proj / "out/tiny.errors.jsonl").read_text() == ""
    entry = lockfile.load(proj / "batches.lock").batches["tiny"]
    assert [(r.requests, r.state) for r in entry.retries] == [(1, "SUCCEEDED")]


@PROVIDERS
def test_a_failed_job_is_reported_and_resubmitted_only_when_asked(
        flavour: Flavour, emu: Emulator, proj: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Gemini and OpenAI: the job fails as a whole, the lockfile keeps the provider's
    reason, and only --resubmit sends it again. An Anthropic batch has no failed state: the
    emulator's failure fails each request (errored), which land in the errors output; the
    batch is over its allowance of failures, and spec.retry_failed sends them again."""
    emu.faults = Faults(fail=True)
    assert main(["apply", str(proj)]) == 1
    entry = lockfile.load(proj / "batches.lock").batches["tiny"]
    emu.faults = Faults()
    action = plan_actions(proj, capsys)["tiny"]
    assert action["kind"] == "failed"
    assert main(["apply", str(proj)]) == 1
    assert len(flavour.jobs(emu)) == 1
    if flavour.name == "anthropic":
        assert entry.state == "SUCCEEDED" and entry.counts == {"succeeded": 0, "failed": 2}
        assert keys(proj / "out/tiny.errors.jsonl") == ["a", "b"]
        assert "2 of 2 requests failed" in action["reason"]
        (proj / "m.yaml").write_text(flavour.adapt(MINIMAL).replace(
            "  outputs:", "  retry_failed: 1\n  outputs:"))
        assert main(["apply", str(proj)]) == 0
        assert [r.requests for r in lockfile.load(proj / "batches.lock").batches[
            "tiny"].retries] == [2]
    else:
        assert entry.state == "FAILED" and entry.error
        assert "--resubmit tiny" in action["reason"]
        assert main(["apply", str(proj), "--resubmit", "tiny"]) == 0
    assert len(flavour.jobs(emu)) == 2
    assert keys(proj / "out/tiny.jsonl") == ["a", "b"]


@PROVIDERS
def test_a_job_cancelled_outside_is_drift(flavour: Flavour, slow: Emulator, proj: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    """Cancelled before it ran any request (OpenAI's and Anthropic's take a while to stop:
    the clock is moved past it); sent again with --resubmit."""
    assert main(["apply", str(proj), "--no-wait"]) == 0
    job = lockfile.load(proj / "batches.lock").batches["tiny"].job
    assert job is not None
    client = flavour.client(slow)
    client.cancel_job(job)
    client.close()
    advance(slow, 120)
    action = plan_actions(proj, capsys)["tiny"]
    assert action["kind"] == "failed" and "drift" in action["reason"]
    assert main(["apply", str(proj), "--resubmit", "tiny", "--no-wait"]) == 0
    advance(slow, 120)
    assert main(["apply", str(proj)]) == 0
    assert len(flavour.jobs(slow)) == 2
    assert keys(proj / "out/tiny.jsonl") == ["a", "b"]


@PROVIDERS
def test_a_job_deleted_before_its_results_were_saved_is_recreated(
        flavour: Flavour, emu: Emulator, proj: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The job ended, then was deleted before an apply saved its results. OpenAI cannot
    delete a batch: deleting it deletes its files (input, output and error), which is what
    `apply --prune` does, so its results are just as gone."""
    assert main(["apply", str(proj), "--no-wait"]) == 0
    advance(emu, 120)
    job = lockfile.load(proj / "batches.lock").batches["tiny"].job
    assert job is not None
    client = flavour.client(emu)
    client.delete_job(job)
    client.close()
    action = plan_actions(proj, capsys)["tiny"]
    assert action["kind"] == "resubmit" and "deleted on the provider" in action["reason"]
    assert main(["apply", str(proj)]) == 0
    # the deleted job no longer lists (OpenAI's does: its batches stay); one new one does
    assert len(flavour.jobs(emu)) == (2 if flavour.name == "openai" else 1)
    assert keys(proj / "out/tiny.jsonl") == ["a", "b"]


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


def flaky(flavour: Flavour, root: Path, rows: int, *, failing: bool = False,
          policy: str = "retry_failed: 2") -> Path:
    """RETRYING with `rows` rows, and one that always fails after them when `failing`."""
    d = root / "flaky"
    write_manifest(d, flavour.adapt(RETRYING.replace("retry_failed: 2", policy)))
    (d / "data").mkdir()
    (d / "data/rows.jsonl").write_text("".join(f'{{"n": {i}}}\n' for i in range(rows))
                                       + (f'{{"n": "{FAIL}"}}\n' if failing else ""))
    return d


@PROVIDERS
def test_failed_requests_are_retried_and_merged_in_input_order(
        flavour: Flavour, emu: Emulator, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    d = flaky(flavour, tmp_path, 40)
    emu.faults = Faults(request_error_rate=0.3, seed=5)
    assert main(["apply", str(d), "--no-wait"]) == 0
    emu.faults = Faults()   # the job keeps the fault it was created with; its retry will not
    time.sleep(0.4)
    assert plan_actions(d, capsys)["flaky"]["kind"] == "download"
    assert main(["apply", str(d), "--no-wait"]) == 0     # writes outputs, submits retry 1
    errors = (d / "out/flaky.errors.jsonl").read_text().splitlines()
    entry = lockfile.load(d / "batches.lock").batches["flaky"]
    assert 0 < len(errors) == entry.counts["failed"] < 40
    assert [r.state for r in entry.retries] in (["PENDING"], ["RUNNING"])
    assert entry.retries[0].requests == len(errors)
    assert main(["apply", str(d)]) == 0
    assert keys(d / "out/flaky.jsonl") == [f"r{i}" for i in range(40)]
    assert (d / "out/flaky.errors.jsonl").read_text() == ""
    entry = lockfile.load(d / "batches.lock").batches["flaky"]
    assert entry.counts == {"succeeded": 40, "failed": 0}
    assert [r.state for r in entry.retries] == ["SUCCEEDED"]
    jobs = flavour.jobs(emu)
    assert sorted(j.total for j in jobs) == [len(errors), 40]
    if flavour.tags_jobs:
        assert any(j.display_name.endswith("-retry1") for j in jobs)
    assert sorted(flavour.tags(emu, d).values()) == [1, 1]
    assert plan_actions(d, capsys)["flaky"]["kind"] == "nothing"


@PROVIDERS
def test_retry_stops_at_the_policy_limit(flavour: Flavour, emu: Emulator,
                                         tmp_path: Path) -> None:
    d = flaky(flavour, tmp_path, 30, failing=True, policy="retry_failed: 1")
    assert main(["apply", str(d)]) == 1      # one failure, and none allowed
    entry = lockfile.load(d / "batches.lock").batches["flaky"]
    assert entry.counts == {"succeeded": 30, "failed": 1}
    assert len(entry.retries) == 1 and entry.retries[0].requests == 1
    errors = [json.loads(x) for x in (d / "out/flaky.errors.jsonl").read_text().splitlines()]
    assert [e["key"] for e in errors] == [f"r{FAIL}"]
    assert main(["apply", str(d)]) == 1
    assert len(flavour.jobs(emu)) == 2


@pytest.mark.parametrize("allowed, code", [(0, 1), (1, 0), ('"5%"', 0), ('"3%"', 1)])
@PROVIDERS
def test_failed_requests_over_the_allowance_keep_the_batch_degraded(
        flavour: Flavour, emu: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        allowed: object, code: int) -> None:
    """1 of 31 requests fails for good: 5 % allows 1, 3 % allows 0."""
    d = flaky(flavour, tmp_path, 30, failing=True, policy=f"allowed_failures: {allowed}")
    assert main(["apply", str(d), "--quiet"]) == code
    said = capsys.readouterr().out
    assert ("1 of 31 requests failed, more than the 0 allowed (spec.allowed_failures): see "
            "out/flaky.errors.jsonl" in said) == bool(code)
    assert main(["plan", str(d), "--detailed-exitcode"]) == code     # as apply would exit
    [row] = api.status(d)
    assert row.health.value == ("Degraded" if code else "Healthy")
    assert main(["apply", str(d), "--quiet"]) == code
    assert len(flavour.jobs(emu)) == 1
