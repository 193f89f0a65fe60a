"""End to end: the runner's CLI against the emulator over real HTTP on loopback."""

from __future__ import annotations

import csv
import json
import shutil
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from runner import api, lockfile
from runner.cli import main
from runner.emulator import Emulator
from runner.providers.base import JobState
from runner.providers.gemini import GeminiProvider


@pytest.fixture
def emu(tmp_path: Path) -> Iterator[Emulator]:
    with Emulator(tmp_path / "emu-state", latency=0.3) as e:
        yield e


@pytest.fixture(autouse=True)
def fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNNER_POLL_SECONDS", "0.05")
    monkeypatch.setenv("RUNNER_EMULATOR_LATENCY", "0.3")
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)


@pytest.fixture
def remote(emu: Emulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[GeminiProvider]:
    """Points the runner at the test's emulator through the documented environment."""
    monkeypatch.setenv("GEMINI_API_KEY", "test-key")
    monkeypatch.setenv("GEMINI_BASE_URL", emu.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    monkeypatch.setenv("OPENAI_BASE_URL", emu.base_url + "/openai/v1")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", emu.base_url + "/anthropic")
    provider = GeminiProvider("test-key", emu.base_url)
    yield provider
    provider.close()


# The examples' Gemini jobs: review-sentiment runs as 2 shards (max_requests: 2), and
# product-summaries, ui-translations and review-topics as one each.
GEMINI_JOBS = 5


def jobs(provider: GeminiProvider) -> list[str]:
    return sorted(j.display_name for j in provider.list_jobs())


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_apply_examples_end_to_end_then_nothing_to_do(examples: Path, remote: GeminiProvider,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["apply", str(examples)]) == 0
    assert len(jobs(remote)) == GEMINI_JOBS
    summaries = lines(examples / "results/product-summaries.jsonl")
    assert [s["key"] for s in summaries] == ["KB-101", "KB-102", "KB-103", "KB-104", "KB-105"]
    first = summaries[0]
    assert first["text"].startswith("echo: Summarise Walnut desk organiser in one sentence")
    assert first["finish_reason"] == "STOP" and first["request_hash"].startswith("sha256:")
    assert first["usage"]["totalTokenCount"] > 0 and "candidates" in first["response"]
    rows = read_csv(examples / "results/product-summaries.csv")
    assert rows[2]["sku"] == "KB-103" and rows[2]["title"] == "Brass pen"
    assert rows[2]["summary"].startswith("echo: Summarise Brass pen")
    sentiment = read_csv(examples / "results/review-sentiment.csv")
    assert [r["id"] for r in sentiment] == ["1001", "1002", "1003", "1004"]
    assert "Review (2 stars): The clips fell off" in sentiment[1]["label"]
    # the same batch written for OpenAI: the same rows and prompt, its own wire
    openai = read_csv(examples / "results/review-sentiment-openai.csv")
    assert [r["id"] for r in openai] == ["1001", "1002", "1003", "1004"]
    assert "Review (2 stars): The clips fell off" in openai[1]["label"]
    assert int(openai[1]["tokens"]) > 0
    anthropic = read_csv(examples / "results/review-sentiment-anthropic.csv")
    assert [r["id"] for r in anthropic] == ["1001", "1002", "1003", "1004"]
    # the emulator, as Claude would, stops at max_tokens (5)
    assert anthropic[1]["label"].startswith("echo: Classify")
    assert int(anthropic[1]["tokens"]) == 5
    # structured answers: the emulator's JSON documents, parsed into columns
    topics = read_csv(examples / "results/review-topics.csv")
    assert [r["id"] for r in topics] == ["1001", "1002", "1003", "1004"]
    assert all(r["topic"] in {"delivery", "quality", "design", "price", "other"} and
               r["sentiment"] in {"positive", "neutral", "negative"} for r in topics)
    assert topics[1]["summary"].startswith("echo: What is this review (2 stars) about?")
    assert (examples / "results/review-topics.errors.jsonl").read_text() == ""
    assert (examples / "results/product-summaries.errors.jsonl").read_text() == ""
    lock = lockfile.load(examples / "batches.lock")
    entry = lock.batches["product-summaries"]
    assert entry.state == "SUCCEEDED" and entry.requests == 5
    assert entry.counts == {"succeeded": 5, "failed": 0}
    assert set(entry.outputs) == {"results/product-summaries.jsonl",
                                  "results/product-summaries.csv",
                                  "results/product-summaries.errors.jsonl"}
    before = (examples / "batches.lock").read_bytes()
    capsys.readouterr()

    assert main(["plan", str(examples), "--detailed-exitcode"]) == 0
    assert "No changes" in capsys.readouterr().out
    assert main(["apply", str(examples)]) == 0
    assert len(jobs(remote)) == GEMINI_JOBS
    assert (examples / "batches.lock").read_bytes() == before


def test_changed_row_replaces_one_batch_only(examples: Path, remote: GeminiProvider,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["apply", str(examples)]) == 0
    data = examples / "data/products.jsonl"
    data.write_text(data.read_text().replace("Brass pen", "Steel pen"))
    capsys.readouterr()
    assert main(["plan", str(examples), "--detailed-exitcode"]) == 2
    out = capsys.readouterr().out
    changed = [ln for ln in out.splitlines() if ln.strip().startswith(("+", "-/+", "~", "<="))]
    assert len(changed) == 1
    assert "-/+" in changed[0] and "product-summaries" in changed[0]
    assert "row data changed" in changed[0]
    assert main(["apply", str(examples)]) == 0
    assert len(jobs(remote)) == GEMINI_JOBS + 1
    summaries = lines(examples / "results/product-summaries.jsonl")
    assert summaries[2]["text"].startswith("echo: Summarise Steel pen")


def test_deleted_output_is_restored_by_download_not_resubmission(
        examples: Path, remote: GeminiProvider, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["apply", str(examples)]) == 0
    out = examples / "results/product-summaries.csv"
    original = out.read_bytes()
    out.unlink()
    (examples / "results/ui-translations.jsonl").write_text("tampered\n")
    capsys.readouterr()
    assert main(["plan", str(examples), "--json"]) == 0
    actions = {a["name"]: a for a in json.loads(capsys.readouterr().out)["actions"]}
    assert actions["product-summaries"]["kind"] == "download"
    assert actions["product-summaries"]["reason"] == \
        "output missing: results/product-summaries.csv; restored from the result store"
    assert actions["ui-translations"]["reason"] == \
        "output modified: results/ui-translations.jsonl; restored from the result store"
    assert actions["review-sentiment"]["kind"] == "nothing"
    assert main(["apply", str(examples)]) == 0
    assert out.read_bytes() == original
    assert len(jobs(remote)) == GEMINI_JOBS


def test_no_wait_then_resume(examples: Path, remote: GeminiProvider) -> None:
    assert main(["apply", str(examples), "--no-wait"]) == 0
    lock = lockfile.load(examples / "batches.lock")
    assert {e.state for e in lock.batches.values()} <= {"PENDING", "RUNNING"}
    prefix = {"gemini": "batches/", "openai": "batch_", "anthropic": "msgbatch_"}
    assert all(p.job and p.job.startswith(prefix[e.provider])
               for e in lock.batches.values() for p in e.parts())
    assert not (examples / "results").exists()
    assert main(["apply", str(examples)]) == 0
    lock = lockfile.load(examples / "batches.lock")
    assert {e.state for e in lock.batches.values()} == {"SUCCEEDED"}
    assert len(jobs(remote)) == GEMINI_JOBS


def test_per_request_errors_land_in_errors_file(examples: Path, remote: GeminiProvider) -> None:
    data = examples / "data/products.jsonl"
    data.write_text(data.read_text().replace("Cable tidy set", "Cable EMULATOR_FAIL set"))
    assert main(["apply", str(examples)]) == 1      # one failed request, none allowed
    ok = lines(examples / "results/product-summaries.jsonl")
    errors = lines(examples / "results/product-summaries.errors.jsonl")
    assert [e["key"] for e in errors] == ["KB-104"] and errors[0]["error"]["message"]
    assert [o["key"] for o in ok] == ["KB-101", "KB-102", "KB-103", "KB-105"]
    entry = lockfile.load(examples / "batches.lock").batches["product-summaries"]
    assert entry.counts == {"succeeded": 4, "failed": 1}


def test_dropped_create_is_adopted_not_duplicated(examples: Path, remote: GeminiProvider,
                                                  emu: Emulator) -> None:
    emu.faults = replace(emu.faults, drop_after_create=1.0)
    assert main(["apply", str(examples), "--no-wait"]) == 0
    emu.faults = replace(emu.faults, drop_after_create=0.0)
    assert len(jobs(remote)) == GEMINI_JOBS
    assert main(["apply", str(examples)]) == 0
    assert len(jobs(remote)) == GEMINI_JOBS


def test_interrupted_intent_is_resolved_by_the_tag(examples: Path, remote: GeminiProvider) -> None:
    """A run killed after create but before recording the job: the next plan adopts it."""
    assert main(["apply", str(examples), "--no-wait"]) == 0
    path = examples / "batches.lock"
    lock = lockfile.load(path)
    for e in lock.batches.values():
        for part in e.parts():      # every job, a split batch's shards too
            part.job, part.state = None, JobState.CREATING
    lockfile.save(path, lock)
    assert main(["apply", str(examples)]) == 0
    assert len(jobs(remote)) == GEMINI_JOBS


def test_embedded_emulator_flag(examples: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["apply", str(examples), "--emulator"]) == 0
    assert (examples / ".runner/emulator").is_dir()
    assert main(["plan", str(examples), "--emulator", "--detailed-exitcode"]) == 0
    capsys.readouterr()
    assert main(["status", str(examples), "--emulator"]) == 0
    out = capsys.readouterr().out
    assert "product-summaries" in out and out.count("SUCCEEDED") == 12


def test_missing_key_is_one_clear_line(examples: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", str(examples)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "GEMINI_API_KEY" in err[0] and "--emulator" in err[0]


def test_a_fresh_clones_apply_creates_no_job_for_any_provider(
        examples: Path, remote: GeminiProvider, tmp_path: Path) -> None:
    """What CI does every hour: a checkout of the committed files (manifests, data, the
    lockfile), without `.runner/` or the results; its apply downloads, and pays for nothing."""
    assert main(["apply", str(examples), "--quiet"]) == 0

    def every_job() -> dict[str, int]:
        with api.connect(examples) as clients:
            return {p: len(list(clients[p].list_jobs())) for p in ("gemini", "openai",
                                                                 "anthropic")}
    before = every_job()
    assert before == {"gemini": GEMINI_JOBS, "openai": 1, "anthropic": 1}
    clone = tmp_path / "clone"
    shutil.copytree(examples, clone, ignore=shutil.ignore_patterns(".runner", "results"))
    assert main(["apply", str(clone), "--quiet"]) == 0
    assert every_job() == before
    for path in sorted((examples / "results").iterdir()):
        assert (clone / "results" / path.name).read_bytes() == path.read_bytes(), path.name
