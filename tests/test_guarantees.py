"""What docs/providers.md says each provider guarantees where they differ: a provider that keeps
the runner's tag on a job (Gemini's displayName, OpenAI's metadata) finds its job again without
the lockfile; Anthropic's batches keep nothing of the caller's, so the lockfile is the only
record of them, and a record naming the wrong batch is caught by the keys of its results."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import MINIMAL, write_manifest

from runner import api, lockfile
from runner.cli import main
from runner.emulator import Emulator

BODIES = {
    "gemini": MINIMAL,
    "openai": MINIMAL.replace("provider: gemini", "provider: openai").replace(
        "gemini-2.5-flash", "gpt-4o-mini").replace(
        'contents: [{role: user, parts: [{text: "{{ row.q }}"}]}]',
        'messages: [{role: user, content: "{{ row.q }}"}]'),
    "anthropic": MINIMAL.replace("provider: gemini", "provider: anthropic").replace(
        "gemini-2.5-flash", "claude-haiku-4-5").replace(
        'contents: [{role: user, parts: [{text: "{{ row.q }}"}]}]',
        'messages: [{role: user, content: "{{ row.q }}"}]\n    max_tokens: 20'),
}


@pytest.fixture
def emu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    """One emulator, every provider pointed at it through its own environment."""
    with Emulator(tmp_path / "emu", latency=0.3) as e:
        for env, suffix in (("GEMINI", ""), ("OPENAI", "/openai/v1"),
                            ("ANTHROPIC", "/anthropic")):
            monkeypatch.setenv(f"{env}_API_KEY", "test-key-0123456789")
            monkeypatch.setenv(f"{env}_BASE_URL", e.base_url + suffix)
        monkeypatch.setenv("RUNNER_POLL_SECONDS", "0.05")
        yield e


def jobs(d: Path, provider: str) -> int:
    with api.connect(d) as clients:
        return len(list(clients[provider].list_jobs()))


@pytest.mark.parametrize("provider", sorted(BODIES))
def test_a_lost_lockfile(provider: str, tmp_path: Path, emu: Emulator,
                         capsys: pytest.CaptureFixture[str]) -> None:
    """The job is running and the lockfile is gone (never committed, or lost in a merge):
    with a tag the job is adopted and nothing is paid again; Anthropic's cannot be told from
    anyone's, so the plan says it creates the batch again, as docs/providers.md warns."""
    d = tmp_path / "proj"
    write_manifest(d, BODIES[provider])
    assert main(["apply", str(d), "--no-wait", "--quiet"]) == 0
    (d / "batches.lock").unlink()
    shutil.rmtree(d / ".runner")
    [action] = api.plan(d).actions
    if provider == "anthropic":
        assert action.kind.value == "create"
        return
    assert action.kind.value == "adopt" and "tag" in action.reason
    assert main(["apply", str(d), "--quiet"]) == 0
    assert jobs(d, provider) == 1
    assert len((d / "out/tiny.jsonl").read_text().splitlines()) == 2


def test_an_anthropic_record_naming_another_batch_of_its_size_is_caught(
        tmp_path: Path, emu: Emulator, capsys: pytest.CaptureFixture[str]) -> None:
    """A bad merge points the record at another batch of the same size. No tag to check, the
    size matches; the creation time the record keeps does not, so that batch's results are
    never used. Nothing marks the record's own batch, and looking for it again would create
    it again: apply stops on that batch, nothing sent, saying how to fix the record, as
    docs/providers.md says. Restored from git, the record finds its own batch."""
    mine, other = tmp_path / "mine", tmp_path / "other"
    write_manifest(mine, BODIES["anthropic"])
    write_manifest(other, BODIES["anthropic"].replace('"{{ row.id }}"', '"x{{ row.id }}"'))
    assert main(["apply", str(mine), "--no-wait", "--quiet"]) == 0
    assert main(["apply", str(other), "--quiet"]) == 0
    good = (mine / "batches.lock").read_text()
    lock = lockfile.load(mine / "batches.lock")
    lock.batches["tiny"].job = lockfile.load(other / "batches.lock").batches["tiny"].job
    lockfile.save(mine / "batches.lock", lock)
    capsys.readouterr()
    assert main(["apply", str(mine)]) == 1
    said = capsys.readouterr().out
    assert "set submitted_at to that time" in said and "nothing is submitted" in said
    assert not (mine / "out/tiny.jsonl").exists()
    assert jobs(mine, "anthropic") == 2
    (mine / "batches.lock").write_text(good)
    assert main(["apply", str(mine)]) == 0
    keys = (mine / "out/tiny.jsonl").read_text().splitlines()
    assert len(keys) == 2 and '"key":"a"' in keys[0]
    assert jobs(mine, "anthropic") == 2
