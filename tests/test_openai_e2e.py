"""End to end: `provider: openai` manifests through the CLI against the emulator's OpenAI API
(/openai/v1), over real HTTP on loopback: validate, plan and apply for chat completions and
embeddings, failures in the errors output, nothing sent twice (a second apply, a lost create
answer), an expired batch's finished part kept, and a directory that mixes providers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import MINIMAL, write_manifest
from providers_matrix import OPENAI, serve

from runner import lockfile
from runner.cli import main
from runner.emulator import Emulator
from runner.errors import ProviderError
from runner.providers.base import RemoteJob

CHAT = """\
apiVersion: batch-runner/v1
kind: Batch
metadata: {name: chat}
spec:
  provider: openai
  model: gpt-4o-mini
  items:
    - {id: a, q: "What is 1+1?"}
    - {id: b, q: "Name a colour"}
    - {id: c, q: "Spell cat"}
    - {id: d, q: "Count to three"}
    - {id: e, q: "Say hello"}
    - {id: f, q: "Say goodbye"}
  key: "{{ row.id }}"
  request:
    messages:
      - {role: system, content: "Answer in one word."}
      - {role: user, content: "{{ row.q }}"}
    max_completion_tokens: 20
  outputs:
    - path: out/chat.jsonl
"""

EMBEDDINGS = """\
apiVersion: batch-runner/v1
kind: Batch
metadata: {name: vectors}
spec:
  provider: openai
  model: text-embedding-3-small
  endpoint: /v1/embeddings
  items:
    - {id: cat, text: "a cat"}
    - {id: dog, text: "a dog"}
  key: "{{ row.id }}"
  request:
    input: "{{ row.text }}"
    dimensions: 8
  outputs:
    - path: out/vectors.jsonl
"""


@pytest.fixture
def emu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    """An emulator whose batches take 0.3 s, reached through OpenAI's own environment."""
    with serve(OPENAI, tmp_path / "emu", monkeypatch, 0.3) as e:
        yield e


def batches(emu: Emulator) -> list[RemoteJob]:
    return OPENAI.jobs(emu)


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_chat_validates_plans_and_applies_once(tmp_path: Path, emu: Emulator,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    d = tmp_path / "proj"
    write_manifest(d, CHAT.replace("Spell cat", "Spell EMULATOR_FAIL cat").replace(
        "  outputs:", "  allowed_failures: 1\n  outputs:"), "chat.yaml")
    assert main(["validate", str(d)]) == 0
    assert "1 manifest(s) valid, 6 requests" in capsys.readouterr().out
    assert main(["plan", str(d), "--json"]) == 0
    [action] = json.loads(capsys.readouterr().out)["actions"]
    assert (action["name"], action["kind"], action["requests"]) == ("chat", "create", 6)
    assert main(["apply", str(d), "--quiet"]) == 0
    out = lines(d / "out/chat.jsonl")
    assert [o["key"] for o in out] == ["a", "b", "d", "e", "f"]
    first = out[0]
    assert first["text"] == "echo: What is 1+1?" and first["finish_reason"] == "stop"
    assert first["usage"]["prompt_tokens"] > 0 and first["request_hash"].startswith("sha256:")
    assert first["response"]["object"] == "chat.completion"
    [error] = lines(d / "out/chat.errors.jsonl")
    assert error["key"] == "c" and error["error"]["status_code"] == 400
    assert "EMULATOR_FAIL" in error["error"]["message"]
    entry = lockfile.load(d / "batches.lock").batches["chat"]
    assert (entry.provider, entry.state, entry.counts) == (
        "openai", "SUCCEEDED", {"succeeded": 5, "failed": 1})
    [job] = batches(emu)
    assert job.display_name == entry.display_name and job.name == entry.job

    before = (d / "batches.lock").read_bytes()
    capsys.readouterr()
    assert main(["plan", str(d), "--detailed-exitcode"]) == 0
    assert "No changes" in capsys.readouterr().out
    assert main(["apply", str(d), "--quiet"]) == 0
    assert len(batches(emu)) == 1 and (d / "batches.lock").read_bytes() == before


def test_embeddings_write_each_vector_as_json(tmp_path: Path, emu: Emulator,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    d = tmp_path / "proj"
    write_manifest(d, EMBEDDINGS, "vectors.yaml")
    assert main(["plan", str(d)]) == 0
    assert "no upper bound" not in capsys.readouterr().out     # embeddings write nothing
    assert main(["apply", str(d), "--quiet"]) == 0
    out = lines(d / "out/vectors.jsonl")
    assert [o["key"] for o in out] == ["cat", "dog"]
    vector = json.loads(out[0]["text"])
    assert len(vector) == 8 and all(isinstance(x, float) for x in vector)
    assert out[0]["finish_reason"] is None and out[0]["usage"]["prompt_tokens"] > 0
    assert out[0]["response"]["data"][0]["embedding"] == vector
    assert json.loads(out[1]["text"]) != vector


def test_a_lost_create_answer_creates_exactly_one_batch(tmp_path: Path, emu: Emulator) -> None:
    d = tmp_path / "proj"
    write_manifest(d, CHAT, "chat.yaml")
    emu.faults = replace(emu.faults, drop_after_create=1.0)
    assert main(["apply", str(d), "--no-wait", "--quiet"]) == 0
    emu.faults = replace(emu.faults, drop_after_create=0.0)
    assert len(batches(emu)) == 1
    assert main(["apply", str(d), "--quiet"]) == 0
    assert len(batches(emu)) == 1 and len(lines(d / "out/chat.jsonl")) == 6


def test_an_expired_batch_keeps_its_finished_part_and_resends_only_the_rest(
        tmp_path: Path, emu: Emulator) -> None:
    d = tmp_path / "proj"
    write_manifest(d, CHAT.replace("  outputs:", "  retry_failed: 1\n  outputs:"), "chat.yaml")
    emu.faults = replace(emu.faults, expire=True)
    assert main(["apply", str(d), "--no-wait", "--quiet"]) == 0
    emu.faults = replace(emu.faults, expire=False)
    httpx.post(f"{emu.base_url}/_emulator/clock", json={"advance": 25 * 3600}
               ).raise_for_status()
    assert main(["apply", str(d), "--quiet"]) == 0
    first, follow_up = sorted(batches(emu), key=lambda j: j.create_time or "")
    assert 0 < first.succeeded < 6 and first.total == 6
    assert follow_up.total == 6 - first.succeeded            # only the unfinished ones
    assert [o["key"] for o in lines(d / "out/chat.jsonl")] == list("abcdef")
    assert (d / "out/chat.errors.jsonl").read_text() == ""
    entry = lockfile.load(d / "batches.lock").batches["chat"]
    assert len(entry.retries) == 1 and entry.retries[0].requests == follow_up.total


def test_requests_an_expired_batch_never_ran_are_sent_again_without_retry_failed(
        tmp_path: Path, emu: Emulator, capsys: pytest.CaptureFixture[str]) -> None:
    """Expiry is no fault of the requests: with retry_failed 0 the unfinished ones are still
    sent again (as a whole job that expires would be), and no others; the lockfile counts
    them apart from the failures."""
    d = tmp_path / "proj"
    write_manifest(d, CHAT, "chat.yaml")
    emu.faults = replace(emu.faults, expire=True)
    assert main(["apply", str(d), "--no-wait", "--quiet"]) == 0
    emu.faults = replace(emu.faults, expire=False)
    httpx.post(f"{emu.base_url}/_emulator/clock", json={"advance": 25 * 3600}
               ).raise_for_status()
    assert main(["apply", str(d), "--no-wait"]) == 0
    first, _ = sorted(batches(emu), key=lambda j: j.create_time or "")
    entry = lockfile.load(d / "batches.lock").batches["chat"]
    assert entry.counts == {"succeeded": first.succeeded, "failed": 6 - first.succeeded,
                            "unfinished": 6 - first.succeeded}
    assert f"resubmitted {6 - first.succeeded} failed requests" in capsys.readouterr().out
    unfinished = [json.loads(x) for x in (d / "out/chat.errors.jsonl").read_text().splitlines()]
    assert all(u["error"]["unfinished"] is True for u in unfinished)
    assert main(["apply", str(d), "--quiet"]) == 0
    assert [o["key"] for o in lines(d / "out/chat.jsonl")] == list("abcdef")
    assert main(["plan", str(d), "--detailed-exitcode"]) == 0


def test_one_directory_applies_gemini_and_openai_side_by_side(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNNER_EMULATOR_LATENCY", "0.3")
    monkeypatch.setenv("RUNNER_POLL_SECONDS", "0.05")
    d = tmp_path / "proj"
    write_manifest(d, MINIMAL, "tiny.yaml")
    write_manifest(d, CHAT, "chat.yaml")
    write_manifest(d, EMBEDDINGS, "vectors.yaml")
    assert main(["apply", str(d), "--emulator", "--quiet"]) == 0
    assert "echo: What is 1+1?" in (d / "out/tiny.jsonl").read_text()
    assert len(lines(d / "out/chat.jsonl")) == 6 and len(lines(d / "out/vectors.jsonl")) == 2
    lock = lockfile.load(d / "batches.lock")
    assert {n: e.provider for n, e in lock.batches.items()} == {
        "tiny": "gemini", "chat": "openai", "vectors": "openai"}
    assert main(["plan", str(d), "--emulator", "--detailed-exitcode"]) == 0


def test_endless_pages_end_with_an_error(emu: Emulator) -> None:
    emu.faults = replace(emu.faults, endless_pages=True)
    with pytest.raises(ProviderError, match="paging"):
        batches(emu)


def test_a_missing_key_is_one_clear_line(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    d = tmp_path / "proj"
    write_manifest(d, CHAT, "chat.yaml")
    assert main(["plan", str(d)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "OPENAI_API_KEY" in err[0] and "--emulator" in err[0]
