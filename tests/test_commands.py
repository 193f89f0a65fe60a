"""The commands called as functions, with values, against the emulator: what each prints,
what it records in the report, and that each reads the workspace once."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import MINIMAL, remote_jobs, write_manifest

from runner import lockfile
from runner.apply import Options
from runner.cli import main
from runner.commands.adopt import adopt
from runner.commands.apply import apply
from runner.commands.cancel import cancel
from runner.commands.emulator import emulator
from runner.commands.forget import forget
from runner.commands.plan import plan
from runner.commands.render import render
from runner.commands.status import status
from runner.commands.validate import validate
from runner.emulator import Emulator
from runner.errors import LockfileError, RunnerError
from runner.report import Report
from runner.workspace import Workspace

FAST = Options(poll_base=0.05)


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Path]]:
    """Every directory Workspace.open is called on, in order."""
    calls: list[Path] = []
    real = Workspace.open

    def counting(cls: type[Workspace], directory: Path) -> Workspace:
        calls.append(directory)
        return real(directory)

    monkeypatch.setattr(Workspace, "open", classmethod(counting))
    yield calls


def run_apply(d: Path, options: Options = FAST, *, quiet: bool = True) -> tuple[Report, str]:
    report, out = Report(), io.StringIO()
    apply(d, options, emulator=False, lock_timeout=0.0, quiet=quiet, out=out, report=report)
    return report, out.getvalue()


def run_plan(d: Path, *, format: Any = "text", detailed: bool = True,
             count_tokens: bool = False) -> tuple[Report, str]:
    report, out = Report(), io.StringIO()
    plan(d, emulator=False, max_attempts=3, resubmit=(), count_tokens=count_tokens,
         format=format, detailed_exitcode=detailed, out=out, report=report)
    return report, out.getvalue()


def test_validate_counts_each_batchs_requests(proj: Path) -> None:
    out = io.StringIO()
    validate(proj, out=out)
    assert out.getvalue() == "ok  tiny  (2 requests)\n1 manifest(s) valid, 2 requests.\n"


def test_render_prints_lines_up_to_the_limit_and_names_an_unknown_batch(proj: Path) -> None:
    out = io.StringIO()
    render(proj, "tiny", limit=None, out=out)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [line["key"] for line in lines] == ["a", "b"]
    out = io.StringIO()
    render(proj, "tiny", limit=1, out=out)
    assert len(out.getvalue().splitlines()) == 1
    with pytest.raises(RunnerError, match=rf"{proj}: no batch named 'nope' \(the batches: "
                       r"tiny\)$"):
        render(proj, "nope", limit=None, out=io.StringIO())


def test_plan_reports_changes_then_none_reading_the_workspace_once(
        proj: Path, emu: Emulator, opened: list[Path]) -> None:
    report, text = run_plan(proj)
    assert report.code == 2 and report.changes and len(opened) == 1
    assert text.startswith(f"batch-runner plan for {proj}\n") and "create" in text
    assert run_plan(proj, detailed=False)[0].code == 0      # without the flag, no findings
    assert run_apply(proj)[0].code == 0
    report, text = run_plan(proj)
    assert report.code == 0 and "No changes." in text


def test_plan_prices_with_the_same_connection_and_prints_each_format(
        proj: Path, emu: Emulator, opened: list[Path]) -> None:
    report, text = run_plan(proj, format="json", count_tokens=True)
    [action] = json.loads(text)["actions"]
    assert action["estimated_cost"]["input_counted_by"] == "provider"
    assert len(opened) == 1
    assert run_plan(proj, format="markdown")[1].startswith(
        f"### batch-runner plan for `{proj}`")


def test_a_failing_batch_is_recorded_by_apply_and_found_by_plan(proj: Path,
                                                                emu: Emulator) -> None:
    (proj / "m.yaml").write_text(MINIMAL.replace("2+2", "EMULATOR_FAIL"))
    report, out = run_apply(proj)
    assert report.failed == ["tiny"] and report.code == 1
    assert out == ("tiny: 1 of 2 requests failed, more than the 0 allowed "     # quiet: only that
                   "(spec.allowed_failures): see out/tiny.errors.jsonl\n")
    report, _ = run_plan(proj)
    assert report.failing == ["tiny"] and report.code == 1


def test_apply_shows_the_plan_then_says_it_is_complete(proj: Path, emu: Emulator,
                                                       opened: list[Path]) -> None:
    report, out = run_apply(proj, quiet=False)
    assert report.code == 0 and len(opened) == 1
    assert out.startswith(f"batch-runner plan for {proj}\n")
    assert out.endswith("Apply complete: every declared output is up to date.\n")
    report, out = run_apply(proj, Options(wait=False), quiet=False)
    assert "No changes." in out


def test_apply_without_waiting_names_what_a_later_apply_collects(proj: Path,
                                                                 slow: Emulator) -> None:
    report, out = run_apply(proj, Options(wait=False), quiet=False)
    assert report.code == 0
    assert out.endswith("1 batch(es) still running: tiny; run apply again to collect them.\n")


def test_prune_outputs_needs_prune(proj: Path, capsys: Any) -> None:
    assert main(["apply", str(proj), "--prune-outputs"]) == 1
    assert capsys.readouterr().err == "error: --prune-outputs goes with --prune\n"
    assert not (proj / ".runner").exists()


def test_status_as_json_carries_spending_from_one_reading(proj: Path, emu: Emulator,
                                                          opened: list[Path]) -> None:
    run_apply(proj)
    opened.clear()
    out = io.StringIO()
    status(proj, emulator=False, as_json=True, out=out)
    [row] = json.loads(out.getvalue())
    assert (row["sync"], row["health"]) == ("Synced", "Healthy")
    assert row["spent"]["usage"]["input_tokens"] > 0
    assert len(opened) == 1
    out = io.StringIO()
    status(proj, emulator=False, as_json=False, out=out)
    assert out.getvalue().startswith("NAME ") and "Healthy" in out.getvalue()


def test_cancel_says_what_it_cancelled_reading_the_workspace_once(
        proj: Path, slow: Emulator, opened: list[Path]) -> None:
    run_apply(proj, Options(wait=False))
    job = lockfile.load(proj / "batches.lock").batches["tiny"].job
    opened.clear()
    out = io.StringIO()
    cancel(proj, ["tiny"], emulator=False, lock_timeout=0.0, take_over=None, out=out)
    assert out.getvalue() == f"cancelled {job}\n" and len(opened) == 1
    out = io.StringIO()
    cancel(proj, ["tiny"], emulator=False, lock_timeout=0.0, take_over=None, out=out)
    assert out.getvalue() == "nothing to cancel: no named batch has a running job\n"
    with pytest.raises(LockfileError, match="no batch named 'other' in the lockfile"):
        cancel(proj, ["other"], emulator=False, lock_timeout=0.0, take_over=None, out=out)


def test_forget_then_adopt_each_read_the_workspace_once(proj: Path, emu: Emulator,
                                                        opened: list[Path]) -> None:
    run_apply(proj)
    job = lockfile.load(proj / "batches.lock").batches["tiny"].job
    opened.clear()
    out = io.StringIO()
    forget(proj, ["tiny"], lock_timeout=0.0, out=out)
    assert out.getvalue() == ("forgot tiny: removed from the lockfile; remote jobs and outputs "
                              "are untouched\n")
    assert len(opened) == 1 and "tiny" not in lockfile.load(proj / "batches.lock").batches
    out = io.StringIO()
    forget(proj, ["tiny"], lock_timeout=0.0, out=out)       # again: not an error
    assert out.getvalue() == "tiny: not in the lockfile (already forgotten)\n"
    opened.clear()
    out = io.StringIO()
    adopt(proj, "tiny", str(job), force=False, emulator=False, lock_timeout=0.0, out=out)
    assert out.getvalue() == f"tiny: bound to {job} (succeeded); apply collects it\n"
    assert len(opened) == 1 and len(remote_jobs(emu)) == 1


def test_names_are_checked_under_the_lock_against_what_another_run_saved(
        proj: Path, emu: Emulator) -> None:
    run_apply(proj)
    write_manifest(proj, MINIMAL.replace("name: tiny", "name: other")
                   .replace("out/tiny", "out/other"), "other.yaml")
    real = Workspace.reloaded

    def forgotten_meanwhile(ws: Workspace) -> Workspace:
        again = real(ws)
        del again.lock.batches["tiny"]      # as if another run forgot it before this one
        return again

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Workspace, "reloaded", forgotten_meanwhile)
        out = io.StringIO()
        forget(proj, ["tiny"], lock_timeout=0.0, out=out)
    assert out.getvalue() == "tiny: not in the lockfile (already forgotten)\n"
    assert "tiny" in lockfile.load(proj / "batches.lock").batches     # nothing written


def test_emulator_serves_until_told_and_names_its_url(tmp_path: Path) -> None:
    out = io.StringIO()
    done = threading.Event()
    done.set()
    emulator(tmp_path / "emu", host="127.0.0.1", port=0, latency=0.1, out=out, until=done.wait)
    line = out.getvalue()
    assert line.startswith("Emulator on http://127.0.0.1:") and "/openai/v1" in line
    assert "ANTHROPIC_BASE_URL=http://127.0.0.1:" in line
    assert f"(state in {tmp_path / 'emu'})" in line and line.endswith("Ctrl-C stops it\n")


@pytest.mark.parametrize("flag", ["--port=70000", "--port=-1", "--latency=-5", "--latency=nan"])
def test_emulator_refuses_meaningless_numbers_before_starting(flag: str, tmp_path: Path,
                                                              capsys: Any) -> None:
    with pytest.raises(SystemExit) as e:    # before: a port past 65535 was "a bug" (exit 3)
        main(["emulator", flag, "--state-dir", str(tmp_path / "emu")])
    assert e.value.code == 2 and flag.split("=")[0] in capsys.readouterr().err
    assert not (tmp_path / "emu").exists()


def test_plan_and_status_fail_on_bad_input_before_the_emulator_starts(proj: Path) -> None:
    (proj / "m.yaml").write_text(MINIMAL.replace("{{ row.q }}", "{{ row.missing }}"))
    with pytest.raises(RunnerError, match="missing"):
        plan(proj, emulator=True, max_attempts=3, resubmit=(), count_tokens=False,
             format="text", detailed_exitcode=False, out=io.StringIO(), report=Report())
    with pytest.raises(RunnerError, match="missing"):
        status(proj, emulator=True, as_json=False, out=io.StringIO())
    assert not (proj / ".runner").exists()


def test_validate_refuses_a_directory_without_manifests(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "empty").mkdir()
    assert main(["validate", str(tmp_path / "empty")]) == 1
    assert "no manifests here (files ending in .yaml or .yml)" in capsys.readouterr().err
    assert main(["validate", str(tmp_path / "batchs.d")]) == 1      # a typo
    assert "batchs.d: not a directory" in capsys.readouterr().err


def test_apply_prune_says_an_orphan_is_pruned_not_kept(
        proj: Path, emu: Emulator, capsys: pytest.CaptureFixture[str]) -> None:
    run_apply(proj)
    write_manifest(proj, MINIMAL.replace("name: tiny", "name: other")
                   .replace("out/tiny", "out/other"))         # tiny's manifest replaced
    capsys.readouterr()
    assert main(["plan", str(proj)]) == 0
    assert "kept in the lockfile until apply --prune" in capsys.readouterr().out
    assert main(["apply", str(proj), "--prune"]) == 0
    shown = capsys.readouterr().out
    assert "manifest removed (m.yaml); pruned now" in shown and "until apply" not in shown


def test_yaml_files_of_other_tools_are_skipped_with_a_note(
        proj: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (proj / "docker-compose.yml").write_text("services:\n  web: {image: nginx}\n")
    (proj / "deploy.yaml").write_text("apiVersion: apps/v1\nkind: Deployment\n"
                                      "metadata: {name: web}\nspec: {replicas: 1}\n")
    capsys.readouterr()
    assert main(["validate", str(proj)]) == 0
    out = capsys.readouterr().out
    assert "note: docker-compose.yml: skipped, not a batch-runner manifest" in out
    assert "note: deploy.yaml: skipped" in out and "1 manifest(s) valid" in out
    # a manifest that left out its apiVersion is still ours, and says what is wrong
    (proj / "broken.yaml").write_text(MINIMAL.replace("apiVersion: batch-runner/v1\n", "")
                                      .replace("name: tiny", "name: other"))
    assert main(["validate", str(proj)]) == 1
    assert "broken.yaml" in capsys.readouterr().err
