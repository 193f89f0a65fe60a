"""A lockfile edited by hand or merged badly: refused with one line when it cannot be right,
and never a batch paid for twice or another batch's answers written. Anthropic's batches keep
no tag, so a record's `submitted_at` is what ties it to its job: the cases that hang on it run
against the emulator."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from conftest import MINIMAL, write_manifest
from providers_matrix import advance
from test_anthropic_e2e import CLAUDE, batches, emu  # noqa: F401  (the fixture)

from runner import lockfile
from runner.cli import main
from runner.emulator import Emulator
from runner.errors import LockfileError

RECORDED = """\
version: 1
hashing: {algorithm: sha256, recipe: 1}
batches:
  tiny:
    manifest: m.yaml
    spec_hash: "sha256:HASH"
    content_hash: "sha256:HASH"
    provider: gemini
    model: gemini-2.5-flash
    requests: 2
    display_name: tiny-aaaaaaaaaaaa
    state: RUNNING
    job: batches/one
    submitted_at: "AT"
""".replace("HASH", "a" * 64)


def edit(path: Path, pattern: str, repl: str) -> None:
    text, n = re.subn(pattern, repl, path.read_text())
    assert n >= 1
    path.write_text(text)


@pytest.mark.parametrize(("at", "why"), [
    ("2026-13-45T00:00:00Z", "is not a real date and time"),
    ("2026-02-30T10:00:00.5Z", "is not a real date and time"),
    ("yesterday", "is not a UTC time such as"),
    ("2026-11-20T10:00:00+02:00", "is not a UTC time such as"),     # the runner writes UTC
])
def test_a_time_that_cannot_be_right_is_refused_naming_its_line(tmp_path: Path, at: str,
                                                                 why: str) -> None:
    path = tmp_path / "batches.lock"
    path.write_text(RECORDED.replace("AT", at))
    with pytest.raises(LockfileError) as e:
        lockfile.load(path)
    assert why in str(e.value) and e.value.where == "14", str(e.value)


def test_a_time_just_written_loads(tmp_path: Path) -> None:
    now = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() + 60)) + ".123456789Z"
    path = tmp_path / "batches.lock"
    path.write_text(RECORDED.replace("AT", now))
    assert lockfile.load(path).batches["tiny"].submitted_at == now


def test_one_job_named_by_two_records_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "batches.lock"
    one = RECORDED.replace("AT", "2026-11-20T10:00:00Z")
    path.write_text(one + one.split("batches:\n", 1)[1].replace("  tiny:", "  zeta:"))
    with pytest.raises(LockfileError) as e:
        lockfile.load(path)
    assert "names job batches/one for both batches.tiny and batches.zeta" in str(e.value)
    assert e.value.where == "24"


def test_garbage_in_a_running_batchs_time_is_one_line_and_nothing_sent(
        tmp_path: Path, emu: Emulator, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    d = tmp_path / "proj"
    write_manifest(d, CLAUDE, "claude.yaml")
    assert main(["apply", str(d), "--no-wait", "--quiet"]) == 0
    edit(d / "batches.lock", r"submitted_at: .*", "submitted_at: '2026-13-45 garbage'")
    capsys.readouterr()
    assert main(["apply", str(d), "--no-wait", "--quiet"]) == 1
    said = capsys.readouterr()
    assert len(said.err.strip().splitlines()) == 1 and "submitted_at" in said.err
    assert len(batches(emu)) == 1


@pytest.mark.parametrize("tidy", [
    (r"submitted_at: \"?(\S+?)\.\d+Z\"?", r"submitted_at: '\1Z'"),          # fraction dropped
    (r"submitted_at: .*", "submitted_at: '2026-11-20T10:00:00Z'"),          # another time
])
def test_a_tidied_time_stops_the_batch_and_says_how_to_fix_it(
        tmp_path: Path, emu: Emulator, tidy: tuple[str, str],  # noqa: F811
        capsys: pytest.CaptureFixture[str]) -> None:
    d = tmp_path / "proj"
    write_manifest(d, CLAUDE, "claude.yaml")
    assert main(["apply", str(d), "--no-wait", "--quiet"]) == 0
    good = (d / "batches.lock").read_text()
    edit(d / "batches.lock", *tidy)
    capsys.readouterr()
    assert main(["apply", str(d), "--no-wait"]) == 1
    assert "set submitted_at to that time" in capsys.readouterr().out
    assert len(batches(emu)) == 1
    (d / "batches.lock").write_text(good)
    advance(emu, 60)
    assert main(["apply", str(d), "--quiet"]) == 0
    assert len(batches(emu)) == 1 and (d / "out/claude.jsonl").exists()


def test_a_stray_result_in_a_created_batch_is_left_out_not_paid_for_again(
        tmp_path: Path, emu: Emulator, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    """The runner read the create's answer: the batch is certainly the record's, and one
    result for a custom_id nobody sent (the provider's slip) is left out, not taken for a
    sign that the batch is someone else's."""
    d = tmp_path / "proj"
    write_manifest(d, MINIMAL.replace("gemini-2.5-flash", "claude-sonnet-4-5").replace(
        "provider: gemini", "provider: anthropic").replace(
        "contents: [{role: user, parts: [{text: \"{{ row.q }}\"}]}]",
        "messages: [{role: user, content: \"{{ row.q }}\"}]\n    max_tokens: 100"))
    assert main(["apply", str(d), "--no-wait", "--quiet"]) == 0
    advance(emu, 60)
    [job] = batches(emu)                # read: the emulator makes its results
    results = tmp_path / "emu/anthropic/results" / f"{job.name}.jsonl"
    with open(results, "ab") as f:
        f.write(b'{"custom_id":"stray","result":{"type":"canceled"}}\n')
    capsys.readouterr()
    assert main(["apply", str(d)]) == 0
    assert "1 result(s) carried keys no request has" in capsys.readouterr().out
    assert main(["apply", str(d), "--quiet"]) == 0
    assert len(batches(emu)) == 1
    assert not lockfile.load(d / "batches.lock").batches["tiny"].inferred
