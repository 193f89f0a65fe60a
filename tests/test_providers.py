"""Providers are packages behind one protocol: a provider that lives only in the tests
(tests/toy_provider) joins through one registry line and runs validate, plan, render and
apply end to end, beside Gemini in the same directory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import MINIMAL, write_manifest

from runner import lockfile
from runner.cli import main
from runner.emulator import Emulator
from runner.providers import registry

TOY = """\
apiVersion: batch-runner/v1
kind: Batch
metadata: {name: toys}
spec:
  provider: toy
  model: toy-1
  items:
    - {id: a, q: one}
    - {id: b, q: two}
    - {id: c, q: FAIL three}
    - {id: d, q: four}
    - {id: e, q: five}
    - {id: f, q: six}
    - {id: g, q: seven}
  key: "{{ row.id }}"
  allowed_failures: 1
  retry_failed: 1
  request:
    prompt: "say {{ row.q }}"
    max_tokens: 5
  outputs:
    - path: out/toys.jsonl
    - path: out/toys.csv
      columns: {id: "{{ row.id }}", answer: "{{ text }}", out: "{{ usage.out }}"}
"""


@pytest.fixture
def toy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The toy provider registered (its one line), keeping its jobs under tmp_path."""
    monkeypatch.setitem(registry.PROVIDERS, "toy", "toy_provider")
    monkeypatch.setenv("TOY_STATE", str(tmp_path / "toy-state"))
    return tmp_path / "toy-state"


def test_a_provider_of_the_tests_runs_beside_gemini(tmp_path: Path, toy: Path, emu: Emulator,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    d = tmp_path / "proj"
    write_manifest(d, TOY, "toys.yaml")
    write_manifest(d, MINIMAL, "tiny.yaml")
    assert main(["validate", str(d)]) == 0
    assert main(["render", str(d), "--name", "toys"]) == 0
    first = json.loads(capsys.readouterr().out.splitlines()[-7])
    assert first == {"id": "toy-a", "params": {"model": "toy-1", "prompt": "say one",
                                               "max_tokens": 5}}      # the key as sent

    assert main(["plan", str(d)]) == 0
    shown = capsys.readouterr().out
    assert "toys" in shown and "tiny" in shown

    assert main(["apply", str(d), "--quiet"]) == 0
    lines = [json.loads(x) for x in (d / "out/toys.jsonl").read_text().splitlines()]
    assert [x["key"] for x in lines] == ["a", "b", "d", "e", "f", "g"]     # in input order
    assert lines[0]["text"] == "toy: say one" and lines[0]["finish_reason"] == "done"
    assert lines[0]["usage"] == {"in": 7, "out": 2}
    assert (d / "out/toys.csv").read_text().splitlines()[:2] == ["id,answer,out",
                                                                 "a,toy: say one,2"]
    [error] = [json.loads(x) for x in (d / "out/toys.errors.jsonl").read_text().splitlines()]
    assert error["key"] == "c" and error["error"] == {"message": "the toy refuses"}
    assert "echo: What is 1+1?" in (d / "out/tiny.jsonl").read_text()

    lock = lockfile.load(d / "batches.lock")
    toys, tiny = lock.batches["toys"], lock.batches["tiny"]
    assert toys.provider == "toy" and tiny.provider == "gemini"
    assert len(toys.shards) == 2                     # 7 requests, 5 a job at most
    assert all(s.job is not None and s.job.startswith("toyjobs/") for s in toys.shards)
    assert toys.spent and toys.spent["usage"]["output_tokens"] == 12
    # two shards, and a follow-up of the failed request, found by its key as sent ("toy-c")
    jobs = [json.loads(p.read_text()) for p in sorted((toy / "jobs").iterdir())]
    assert len(jobs) == 3 and jobs[2]["results"].count("\n") == 1
    assert '"id": "toy-c"' in jobs[2]["results"]

    assert main(["plan", str(d), "--detailed-exitcode"]) == 0     # nothing left to do
    assert main(["apply", str(d), "--quiet"]) == 0
    assert len(list((toy / "jobs").iterdir())) == 3                # nothing sent twice


def test_a_request_is_checked_against_its_own_providers_schema(
        tmp_path: Path, toy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = tmp_path / "proj"
    write_manifest(d, TOY.replace("    prompt:", "    promt:"), "toys.yaml")
    assert main(["validate", str(d)]) == 1
    err = capsys.readouterr().err
    assert "toys.yaml:19" in err and "spec.request: unknown key 'promt' (did you mean " \
        "'prompt'?)" in err
    # a Gemini request in a toy manifest is refused the same way
    write_manifest(d, TOY.replace('    prompt: "say {{ row.q }}"\n',
                                  '    contents: [{parts: [{text: x}]}]\n'), "toys.yaml")
    assert main(["validate", str(d)]) == 1
    assert "spec.request: unknown key 'contents'" in capsys.readouterr().err


def test_an_unknown_provider_lists_the_registered_ones(tmp_path: Path, toy: Path,
                                                       capsys: pytest.CaptureFixture[str]
                                                       ) -> None:
    d = tmp_path / "proj"
    write_manifest(d, TOY.replace("provider: toy", "provider: toys"), "toys.yaml")
    assert main(["validate", str(d)]) == 1
    assert "spec.provider: 'toys' is not supported; use one of: anthropic, gemini, openai, toy" in \
        capsys.readouterr().err


def test_a_budget_names_the_providers_own_output_setting(
        tmp_path: Path, toy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = tmp_path / "proj"
    write_manifest(d, TOY.replace("    max_tokens: 5\n", "").replace(
        "  allowed_failures: 1\n", "  allowed_failures: 1\n  budget: 1\n"), "toys.yaml")
    (d / "prices.json").write_text(json.dumps({"models": {"toy-1": {
        "input_per_million": 1, "output_per_million": 2}}}))
    assert main(["apply", str(d), "--quiet"]) == 1
    assert "no upper bound; set max_tokens" in capsys.readouterr().err
    assert not (toy / "jobs").exists() or not any((toy / "jobs").iterdir())


@pytest.mark.parametrize("provider", ["gemini", "toy"])
def test_input_lines_split_back_by_each_dialects_framing(provider: str, toy: Path) -> None:
    framing = registry.dialect(provider).framing(None)
    key, request = b'"k,\\"params\\":1"', b'{"a":",\\"request\\":"}'
    assert framing.split(framing.line(key, request)) == (key, request)


def test_a_key_the_provider_cannot_take_is_refused_naming_the_row(
        tmp_path: Path, toy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = tmp_path / "proj"
    write_manifest(d, TOY.replace("- {id: g, q: seven}", "- {id: a-very-long-key-indeed, q: x}"),
                   "toys.yaml")
    assert main(["validate", str(d)]) == 1
    err = capsys.readouterr().err
    assert "spec.items item 7: key 'a-very-long-key-indeed' cannot be sent to toy: a toy key " \
        "is at most 20 characters" in err


def test_an_expired_job_is_said_in_its_providers_words(toy: Path) -> None:
    from runner.actions import Kind
    from runner.lockfile import Lock
    from runner.plan import plan
    from runner.providers.base import JobState, RemoteJob
    from runner.records import LockEntry
    from runner.states import Desired, Observed
    from runner.tags import display_name

    h = "sha256:" + "1" * 64
    tag = display_name("b", h)
    want = Desired(name="b", manifest="b.yaml", spec_hash=h, inputs={}, content_hash=h,
                   provider="toy", model="toy-1", requests=3, outputs_hash=h, outputs={})
    record = LockEntry(manifest="b.yaml", spec_hash=h, inputs={}, content_hash=h,
                       provider="toy", model="toy-1", requests=3, outputs_hash=h,
                       display_name=tag, state=JobState.RUNNING, job="toyjobs/1", attempts=1)
    expired = RemoteJob("toyjobs/1", tag, JobState.EXPIRED, model="toy-1", total=3)
    [action] = plan([want], Lock({"b": record}), Observed({"toyjobs/1": expired})).actions
    assert action.kind == Kind.RESUBMIT and action.reason == "job expired (1 h without finishing)"


def test_an_endpoint_is_refused_where_the_provider_has_one(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = tmp_path / "proj"
    write_manifest(d, MINIMAL.replace("  model: gemini-2.5-flash\n",
                                      "  model: gemini-2.5-flash\n  endpoint: /v1/embeddings\n"))
    assert main(["validate", str(d)]) == 1
    assert "m.yaml:7: spec.endpoint: '/v1/embeddings' does not apply to gemini, whose " \
        "requests all go to one place" in capsys.readouterr().err


def test_a_batch_moved_to_another_provider_ends_its_jobs_where_they_run(
        tmp_path: Path, toy: Path, emu: Emulator) -> None:
    """Found in review: the old jobs were looked for on the new provider, never found, and
    left running (and billed) when the record moved on."""
    d = tmp_path / "proj"
    write_manifest(d, TOY, "toys.yaml")
    assert main(["apply", str(d), "--no-wait", "--quiet"]) == 0
    states = {json.loads(p.read_text())["state"] for p in (toy / "jobs").iterdir()}
    assert states == {"PENDING"}
    write_manifest(d, TOY.replace("provider: toy", "provider: gemini").replace(
        "model: toy-1", "model: gemini-2.5-flash").replace(
        '    prompt: "say {{ row.q }}"\n    max_tokens: 5\n',
        '    contents: [{parts: [{text: "say {{ row.q }}"}]}]\n').replace(
        "{{ usage.out }}", "{{ usage.candidatesTokenCount }}"), "toys.yaml")
    assert main(["apply", str(d), "--quiet"]) == 0     # the plan: replace, ending both
    states = {json.loads(p.read_text())["state"] for p in (toy / "jobs").iterdir()}
    assert states == {"CANCELLED"}
    assert lockfile.load(d / "batches.lock").batches["toys"].provider == "gemini"


def test_a_record_of_a_provider_this_runner_does_not_know_is_left_alone(
        tmp_path: Path, emu: Emulator, capsys: pytest.CaptureFixture[str]) -> None:
    """A newer teammate's runner may record a provider an older one lacks."""
    d = tmp_path / "proj"
    write_manifest(d, MINIMAL)
    assert main(["apply", str(d), "--quiet"]) == 0
    lock = lockfile.load(d / "batches.lock")
    lock.batches["theirs"] = lockfile.entry_from({**lock.batches["tiny"].to_dict(),
                                                  "provider": "nope", "job": "nope/1"})
    lockfile.save(d / "batches.lock", lock)
    assert main(["status", str(d)]) == 0
    capsys.readouterr()
    assert main(["apply", str(d), "--prune"]) == 0
    shown = capsys.readouterr()
    assert "theirs: its record names provider 'nope', which this runner does not know; " \
        "left alone" in shown.out + shown.err
    assert "theirs" in lockfile.load(d / "batches.lock").batches
