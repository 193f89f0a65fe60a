"""End to end: `provider: anthropic` manifests through the CLI against the emulator's Message
Batches (/anthropic), over real HTTP on loopback: validate, plan and apply, keys outside
custom_id's alphabet written back unchanged, failures in the errors output, nothing sent
twice (a second apply, a lost create answer: a Message Batch carries no tag, so the core
recognises its jobs from the lockfile's intents), an expired batch's finished part kept, and
a directory that mixes providers.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import MINIMAL, write_manifest
from providers_matrix import ANTHROPIC, serve

from runner import lockfile
from runner.cli import main
from runner.emulator import Emulator
from runner.providers.base import RemoteJob

CLAUDE = """\
apiVersion: batch-runner/v1
kind: Batch
metadata: {name: claude}
spec:
  provider: anthropic
  model: claude-sonnet-4-5
  items:
    - {id: a, q: "What is 1+1?"}
    - {id: "b/2 é", q: "Name a colour"}
    - {id: "row.3", q: "Spell EMULATOR_FAIL cat"}
    - {id: "日本", q: "Say hello"}
  key: "{{ row.id }}"
  allowed_failures: 1
  request:
    system: "Answer in one word."
    messages:
      - {role: user, content: "{{ row.q }}"}
    max_tokens: 20
  outputs:
    - path: out/claude.jsonl
"""


@pytest.fixture
def emu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    """An emulator whose batches take 0.3 s, reached through Anthropic's own environment."""
    with serve(ANTHROPIC, tmp_path / "emu", monkeypatch, 0.3) as e:
        yield e


def batches(emu: Emulator) -> list[RemoteJob]:
    return ANTHROPIC.jobs(emu)


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_validate_and_plan(tmp_path: Path, emu: Emulator,
                           capsys: pytest.CaptureFixture[str]) -> None:
    d = tmp_path / "proj"
    write_manifest(d, CLAUDE, "claude.yaml")
    assert main(["validate", str(d)]) == 0
    assert "1 manifest(s) valid, 4 requests" in capsys.readouterr().out
    assert main(["plan", str(d), "--json"]) == 0
    [action] = json.loads(capsys.readouterr().out)["actions"]
    assert (action["name"], action["kind"], action["requests"]) == ("claude", "create", 4)
    assert main(["plan", str(d)]) == 0
    assert "no upper bound" not in capsys.readouterr().out      # max_tokens bounds it
    assert batches(emu) == []


def test_apply_writes_every_key_back_unchanged_once(tmp_path: Path, emu: Emulator,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    d = tmp_path / "proj"
    write_manifest(d, CLAUDE, "claude.yaml")
    assert main(["apply", str(d), "--quiet"]) == 0
    out = lines(d / "out/claude.jsonl")
    assert [o["key"] for o in out] == ["a", "b/2 é", "日本"]
    first = out[1]
    assert set(first) == {"key", "text", "finish_reason", "usage", "request_hash", "response"}
    assert first["text"] == "echo: Name a colour" and first["finish_reason"] == "end_turn"
    assert first["usage"]["input_tokens"] > 0 and first["request_hash"].startswith("sha256:")
    assert first["response"]["type"] == "message"
    [error] = lines(d / "out/claude.errors.jsonl")
    assert error["key"] == "row.3" and error["error"]["type"] == "invalid_request_error"
    entry = lockfile.load(d / "batches.lock").batches["claude"]
    assert (entry.provider, entry.state, entry.counts) == (
        "anthropic", "SUCCEEDED", {"succeeded": 3, "failed": 1})
    [job] = batches(emu)
    assert job.name == entry.job and job.total == 4

    before = (d / "batches.lock").read_bytes()
    capsys.readouterr()
    assert main(["plan", str(d), "--detailed-exitcode"]) == 0
    assert "No changes" in capsys.readouterr().out
    assert main(["apply", str(d), "--quiet"]) == 0
    assert len(batches(emu)) == 1 and (d / "batches.lock").read_bytes() == before


def test_a_batch_left_running_is_collected_by_the_next_apply(tmp_path: Path,
                                                             emu: Emulator) -> None:
    d = tmp_path / "proj"
    write_manifest(d, CLAUDE, "claude.yaml")
    assert main(["apply", str(d), "--no-wait", "--quiet"]) == 0
    assert main(["apply", str(d), "--quiet"]) == 0
    assert len(batches(emu)) == 1 and len(lines(d / "out/claude.jsonl")) == 3


def test_a_lost_create_answer_creates_exactly_one_batch(tmp_path: Path, emu: Emulator) -> None:
    d = tmp_path / "proj"
    write_manifest(d, CLAUDE, "claude.yaml")
    emu.faults = replace(emu.faults, drop_after_create=1.0)
    assert main(["apply", str(d), "--no-wait", "--quiet"]) == 0
    emu.faults = replace(emu.faults, drop_after_create=0.0)
    assert len(batches(emu)) == 1
    assert main(["apply", str(d), "--quiet"]) == 0
    assert len(batches(emu)) == 1 and len(lines(d / "out/claude.jsonl")) == 3


def test_an_expired_batch_keeps_its_finished_part_and_resends_only_the_rest(
        tmp_path: Path, emu: Emulator) -> None:
    """Requests an expired batch never ran are sent again by themselves (retry_failed 0):
    only those, and the keys encoded for custom_id come back as they were written."""
    d = tmp_path / "proj"
    write_manifest(d, CLAUDE.replace("EMULATOR_FAIL ", ""), "claude.yaml")
    emu.faults = replace(emu.faults, expire=True)
    assert main(["apply", str(d), "--no-wait", "--quiet"]) == 0
    emu.faults = replace(emu.faults, expire=False)
    httpx.post(f"{emu.base_url}/_emulator/clock", json={"advance": 25 * 3600}
               ).raise_for_status()
    assert main(["apply", str(d), "--quiet"]) == 0
    follow_up, first = batches(emu)                         # newest first
    assert 0 < first.succeeded < 4 and first.total == 4
    assert follow_up.total == 4 - first.succeeded           # only the unfinished ones
    assert [o["key"] for o in lines(d / "out/claude.jsonl")] == ["a", "b/2 é", "row.3", "日本"]
    assert (d / "out/claude.errors.jsonl").read_text() == ""
    entry = lockfile.load(d / "batches.lock").batches["claude"]
    assert len(entry.retries) == 1 and entry.retries[0].requests == follow_up.total


def test_one_directory_applies_gemini_and_anthropic_side_by_side(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNNER_EMULATOR_LATENCY", "0.3")
    monkeypatch.setenv("RUNNER_POLL_SECONDS", "0.05")
    d = tmp_path / "proj"
    write_manifest(d, MINIMAL, "tiny.yaml")
    write_manifest(d, CLAUDE, "claude.yaml")
    assert main(["apply", str(d), "--emulator", "--quiet"]) == 0
    assert "echo: What is 1+1?" in (d / "out/tiny.jsonl").read_text()
    assert len(lines(d / "out/claude.jsonl")) == 3
    lock = lockfile.load(d / "batches.lock")
    assert {n: e.provider for n, e in lock.batches.items()} == {
        "tiny": "gemini", "claude": "anthropic"}
    assert main(["plan", str(d), "--emulator", "--detailed-exitcode"]) == 0


def test_a_create_is_answered_with_the_batch_it_made(tmp_path: Path, emu: Emulator) -> None:
    """The create's answer carries the tag it was given, so that apply records the batch it
    made."""
    d = tmp_path / "proj"
    write_manifest(d, CLAUDE, "claude.yaml")
    assert main(["apply", str(d), "--no-wait", "--quiet"]) == 0
    entry = lockfile.load(d / "batches.lock").batches["claude"]
    [job] = batches(emu)
    assert entry.job == job.name and entry.requests == job.total == 4
    assert entry.provider == "anthropic" and entry.display_name.startswith("claude-")


def test_a_missing_key_is_one_clear_line(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    d = tmp_path / "proj"
    write_manifest(d, CLAUDE, "claude.yaml")
    assert main(["plan", str(d)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "ANTHROPIC_API_KEY" in err[0] and "--emulator" in err[0]


def test_outputs_with_an_expiry_follow_up_are_rebuilt_in_a_fresh_checkout(
        tmp_path: Path, emu: Emulator, capsys: pytest.CaptureFixture[str]) -> None:
    """Default settings: a batch expires part-done, its unfinished requests go in a follow-up,
    merged. A fresh checkout without outputs or .runner/ rebuilds them from both batches'
    results, and sends nothing again."""
    d = tmp_path / "proj"
    write_manifest(d, CLAUDE.replace("EMULATOR_FAIL ", ""), "claude.yaml")
    emu.faults = replace(emu.faults, expire=True)
    assert main(["apply", str(d), "--no-wait", "--quiet"]) == 0
    emu.faults = replace(emu.faults, expire=False)
    httpx.post(f"{emu.base_url}/_emulator/clock", json={"advance": 25 * 3600}
               ).raise_for_status()
    assert main(["apply", str(d), "--quiet"]) == 0
    assert len(batches(emu)) == 2 and len(lines(d / "out/claude.jsonl")) == 4
    shutil.rmtree(d / ".runner")
    shutil.rmtree(d / "out")
    capsys.readouterr()
    assert main(["apply", str(d), "--quiet"]) == 0, capsys.readouterr().err
    assert len(lines(d / "out/claude.jsonl")) == 4
    assert len(batches(emu)) == 2
