"""Day-2 commands and the library surface, against the emulator."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from conftest import MINIMAL, finish_all, remote_jobs, write_manifest

import runner
from runner import lockfile
from runner.cli import main
from runner.emulator import Emulator
from runner.progress import Progress
from runner.providers.base import JobState


def job_states(emu: Emulator) -> dict[str, str]:
    return {j.name: j.state.value for j in remote_jobs(emu)}


def test_public_surface_is_exactly_what_init_exports() -> None:
    assert sorted(runner.__all__) == sorted(
        ["Action", "BatchStatus", "BudgetError", "DataError", "Health", "Kind", "LockfileError",
         "ManifestError", "Options", "Outcome", "OutputError", "Plan", "ProviderError",
         "RunnerError", "Sync", "TemplateError", "__version__", "adopt", "apply", "cancel",
         "connect", "costs", "forget", "plan", "spending", "status", "validate"])
    for name in runner.__all__:
        assert getattr(runner, name) is not None


def test_library_plan_apply_status(proj: Path, emu: Emulator) -> None:
    assert runner.validate(proj) == {"tiny": 2}
    p = runner.plan(proj)
    assert [(a.name, a.kind) for a in p.actions] == [("tiny", runner.Kind.CREATE)]
    stream = io.StringIO()
    progress = Progress(stream, tty=False)
    outcome = runner.apply(proj, options=runner.Options(poll_base=0.05), progress=progress)
    assert outcome.exit_code == 0 and outcome.completed == ["tiny"]
    assert "tiny: wrote out/tiny.jsonl: 2 succeeded" in stream.getvalue()
    assert "tiny: succeeded 2/2" in stream.getvalue()
    [st] = runner.status(proj)
    assert (st.sync, st.health, st.succeeded) == (runner.Sync.SYNCED, runner.Health.HEALTHY, 2)
    with pytest.raises(runner.ManifestError):
        runner.validate(proj / "missing")


def test_status_two_axes_while_running_and_after_output_loss(
        proj: Path, slow: Emulator, capsys: pytest.CaptureFixture[str]) -> None:
    """(The job runs until the emulator's clock is moved: a job that ended on its own before
    status looked would be, rightly, out of sync: its results wait to be downloaded.)"""
    assert main(["apply", str(proj), "--no-wait"]) == 0
    capsys.readouterr()
    assert main(["status", str(proj), "--json"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert (row["sync"], row["health"]) == ("Synced", "Progressing")
    finish_all(slow)
    assert main(["apply", str(proj)]) == 0
    (proj / "out/tiny.jsonl").unlink()
    capsys.readouterr()
    assert main(["status", str(proj)]) == 0
    out = capsys.readouterr().out
    assert "OutOfSync" in out and "Healthy" in out and "output missing: out/tiny.jsonl" in out


def test_status_is_out_of_sync_while_a_replacement_runs_over_old_outputs(
        proj: Path, slow: Emulator, capsys: pytest.CaptureFixture[str]) -> None:
    """A first job running is Synced and Progressing (nothing written yet to be out of date);
    a job replacing an edited batch's is OutOfSync until it finishes: the outputs on disk
    still hold the answers to the requests before the edit."""
    assert main(["apply", str(proj), "--no-wait", "--quiet"]) == 0
    finish_all(slow)
    assert main(["apply", str(proj), "--quiet"]) == 0
    (proj / "m.yaml").write_text(MINIMAL.replace("What is 2+2?", "What is 3+3?"))
    assert main(["apply", str(proj), "--no-wait", "--quiet"]) == 0
    capsys.readouterr()
    assert main(["status", str(proj), "--json"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert (row["sync"], row["health"]) == ("OutOfSync", "Progressing")
    assert "the outputs hold the answers from before the edit" in row["reason"]
    finish_all(slow)
    assert main(["apply", str(proj), "--quiet"]) == 0
    assert main(["status", str(proj), "--json"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert (row["sync"], row["health"]) == ("Synced", "Healthy")


def test_cancel_then_resubmit(proj: Path, slow: Emulator,
                              capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["apply", str(proj), "--no-wait"]) == 0
    job = lockfile.load(proj / "batches.lock").batches["tiny"].job
    assert job is not None
    assert main(["cancel", str(proj), "tiny"]) == 0
    assert f"cancelled {job}" in capsys.readouterr().out
    assert job_states(slow)[job] == "CANCELLED"
    entry = lockfile.load(proj / "batches.lock").batches["tiny"]
    assert entry.state == "CANCELLED"
    assert main(["plan", str(proj), "--json"]) == 0
    [action] = json.loads(capsys.readouterr().out)["actions"]
    assert action["kind"] == "failed" and "runner cancel" in action["reason"]
    assert main(["apply", str(proj), "--resubmit", "tiny", "--no-wait"]) == 0
    assert len(job_states(slow)) == 2


def test_plan_json_names_the_job_of_an_up_to_date_batch(
        proj: Path, emu: Emulator, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["apply", str(proj), "--quiet"]) == 0
    job = lockfile.load(proj / "batches.lock").batches["tiny"].job
    capsys.readouterr()
    assert main(["plan", str(proj), "--json"]) == 0
    [action] = json.loads(capsys.readouterr().out)["actions"]
    assert action["kind"] == "nothing" and job is not None
    assert action["recorded"] == action["job_name"] == job     # no job looked at: recorded


def test_forget_then_adopt_rebinds_without_submitting(proj: Path, emu: Emulator,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["apply", str(proj)]) == 0
    job = lockfile.load(proj / "batches.lock").batches["tiny"].job
    assert job is not None
    assert main(["forget", str(proj), "tiny"]) == 0
    assert "tiny" not in lockfile.load(proj / "batches.lock").batches
    assert job in job_states(emu)
    assert main(["adopt", str(proj), "tiny", job]) == 0
    assert main(["apply", str(proj)]) == 0
    assert len(job_states(emu)) == 1
    assert lockfile.load(proj / "batches.lock").batches["tiny"].state == "SUCCEEDED"


def test_adopt_refuses_a_job_for_other_requests(proj: Path, emu: Emulator,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["apply", str(proj), "--no-wait"]) == 0
    job = lockfile.load(proj / "batches.lock").batches["tiny"].job
    assert job is not None
    (proj / "m.yaml").write_text(MINIMAL.replace("2+2", "2+5"))
    capsys.readouterr()
    assert main(["adopt", str(proj), "tiny", job]) == 1
    err = capsys.readouterr().err
    assert "refusing to adopt" in err and "--force" in err and len(err.splitlines()) == 1
    assert main(["adopt", str(proj), "tiny", job, "--force"]) == 0


def test_prune_cancels_and_deletes_jobs_of_removed_manifests(
        proj: Path, emu: Emulator, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["apply", str(proj), "--no-wait"]) == 0
    job = lockfile.load(proj / "batches.lock").batches["tiny"].job
    assert job is not None
    (proj / "m.yaml").unlink()
    write_manifest(proj, MINIMAL.replace("name: tiny", "name: other")
                   .replace("out/tiny", "out/other"), "other.yaml")
    assert main(["apply", str(proj)]) == 0
    assert "tiny" in lockfile.load(proj / "batches.lock").batches   # kept without --prune
    assert main(["apply", str(proj), "--prune"]) == 0
    assert "tiny" not in lockfile.load(proj / "batches.lock").batches
    assert job not in job_states(emu)


def test_prune_finds_a_job_created_just_before_a_crash(proj: Path, emu: Emulator) -> None:
    assert main(["apply", str(proj), "--no-wait"]) == 0
    path = proj / "batches.lock"
    lock = lockfile.load(path)
    job = lock.batches["tiny"].job
    lock.batches["tiny"].job, lock.batches["tiny"].state = None, JobState.CREATING  # lost
    lockfile.save(path, lock)
    (proj / "m.yaml").unlink()
    assert main(["apply", str(proj), "--prune"]) == 0
    assert job not in job_states(emu) and "tiny" not in lockfile.load(path).batches


def test_prune_outputs_deletes_only_what_the_runner_wrote(
        proj: Path, emu: Emulator, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["apply", str(proj)]) == 0
    path = proj / "batches.lock"
    lock = lockfile.load(path)
    outputs = dict(lock.batches["tiny"].outputs)
    assert (proj / "out/tiny.jsonl").is_file()
    # a lockfile edited (or merged) to name files the runner never wrote: a manifest of
    # another batch, and one of its own outputs whose bytes changed since
    (proj / "out/tiny.errors.jsonl").write_text("a note of mine\n")
    write_manifest(proj, MINIMAL.replace("name: tiny", "name: other")
                   .replace("out/tiny", "out/other"), "other.yaml")
    lock.batches["tiny"].outputs["other.yaml"] = outputs["out/tiny.jsonl"]
    lockfile.save(path, lock)
    (proj / "m.yaml").unlink()
    capsys.readouterr()
    assert main(["apply", str(proj), "--prune", "--prune-outputs"]) == 0
    out = capsys.readouterr().out
    assert not (proj / "out/tiny.jsonl").exists()
    assert (proj / "out/tiny.errors.jsonl").read_text() == "a note of mine\n"
    assert (proj / "other.yaml").is_file()
    assert "deleted 1 output(s); left other.yaml, out/tiny.errors.jsonl" in out
