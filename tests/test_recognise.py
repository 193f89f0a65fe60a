"""Jobs of a provider that keeps no tag (Anthropic) are recognised from the lockfile's
intents: by the record that names them, by the tag they were created with, or, after a create
whose answer was lost, by their size and creation time; a wrong guess is caught by the keys of
the results before any output is written. The untagged toy (tests/toy_provider/untagged.py)
runs these end to end through the CLI."""

from __future__ import annotations

import importlib
import json
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import write_manifest

from runner import lockfile
from runner.cli import main
from runner.providers import registry
from runner.providers.base import JobState, RemoteJob
from runner.recognise import SKEW, foreign_results, intent_time, recognise
from runner.records import Job

TOYS = """\
apiVersion: batch-runner/v1
kind: Batch
metadata: {name: toys}
spec:
  provider: toy
  model: toy-1
  items:
    - {id: a, q: one}
    - {id: b, q: two}
    - {id: c, q: three}
  key: "{{ row.id }}"
  request:
    prompt: "say {{ row.q }}"
  outputs:
    - path: out/toys.jsonl
"""


def stamp(seconds: float) -> str:
    return intent_time(seconds)


def remote(name: str, created: float, total: int = 3, tag: str = "") -> RemoteJob:
    return RemoteJob(name, tag, JobState.RUNNING, create_time=stamp(created), total=total)


def intent(tag: str, at: float | None, requests: int = 3, job: str | None = None) -> Job:
    return Job("sha256:x", requests, tag, JobState.CREATING if job is None else JobState.RUNNING,
               job=job, submitted_at=None if at is None else stamp(at))


T = 1_790_000_000.0


# -- recognise, the pure part ----------------------------------------------------------------

def test_a_recorded_job_carries_its_records_tag_and_others_none() -> None:
    jobs = [remote("b/1", T), remote("b/2", T)]
    out = recognise(jobs, [intent("mine", None, job="b/1")], {})
    assert [j.display_name for j in out] == ["mine", ""]


def test_a_job_made_this_run_carries_the_tag_it_was_made_with() -> None:
    [job] = recognise([remote("b/1", T)], [], {"b/1": "made"})
    assert job.display_name == "made"


def test_a_lost_create_is_recognised_by_size_and_time_after_the_intent() -> None:
    jobs = [remote("early", T - SKEW - 5), remote("small", T + 1, total=2),
            remote("found", T + 2), remote("later", T + 3)]
    out = recognise(jobs, [intent("mine", T)], {})
    assert {j.name: j.display_name for j in out} == {
        "early": "", "small": "", "found": "mine", "later": ""}


def test_intents_are_matched_oldest_first_each_to_the_earliest_free_job() -> None:
    jobs = [remote("second", T + 20), remote("first", T + 10), remote("taken", T + 5)]
    out = recognise(jobs, [intent("b", T + 8), intent("a", T), intent("x", None, job="taken")],
                    {})
    assert {j.name: j.display_name for j in out} == {"first": "a", "second": "b",
                                                     "taken": "x"}


def test_a_job_that_cannot_be_dated_is_never_recognised() -> None:
    job = RemoteJob("b/1", "", JobState.RUNNING, create_time="yesterday", total=3)
    assert recognise([job], [intent("mine", T)], {})[0].display_name == ""


def test_a_record_submitted_again_never_takes_its_old_job_for_the_new_one() -> None:
    old = remote("old", T)
    again = intent_time(T + 1, after=old.create_time)
    record = Job("sha256:y", 3, "mine-2", JobState.CREATING, submitted_at=again)
    assert recognise([old], [record], {})[0].display_name == ""
    new = remote("new", T + 2)
    assert recognise([old, new], [record], {})[1].display_name == "mine-2"
    # and an intent made again without finding a job keeps that bound
    assert intent_time(T + 3, last_intent=again) == again


def test_results_answering_other_requests_are_told_apart(tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"
    path.write_text('{"id": "b"}\n{"id": "a"}\n{"id": "a"}\n\n')
    key = lambda r: r.get("id")                                 # noqa: E731
    assert foreign_results(path, ["a", "b", "c"], key) is None  # any order, repeats, missing
    assert foreign_results(path, ["a"], key) == \
        "line 1 of its results answers a request it was not sent"
    path.write_text('{"id": 1}\n')
    assert foreign_results(path, ["1"], key) is not None
    path.write_text("not json\n")
    assert foreign_results(path, ["a"], key) == "line 1 of its results is not JSON"


# -- end to end, through the CLI, with the untagged toy -----------------------------------------

@pytest.fixture
def untagged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setitem(registry.PROVIDERS, "toy", "toy_provider.untagged")
    state = tmp_path / "toy-state"
    monkeypatch.setenv("TOY_STATE", str(state))
    (state / "jobs").mkdir(parents=True)
    return state


def toy_jobs(state: Path) -> list[dict[str, object]]:
    return [json.loads(p.read_text()) for p in sorted((state / "jobs").iterdir())]


def answers(d: Path) -> list[str]:
    return [json.loads(x)["text"] for x in (d / "out/toys.jsonl").read_text().splitlines()]


def test_a_create_whose_answer_was_lost_is_found_in_the_same_run(
        tmp_path: Path, untagged: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = tmp_path / "proj"
    write_manifest(d, TOYS, "toys.yaml")
    (untagged / "lose-create").touch()
    assert main(["apply", str(d)]) == 0
    assert "the answer to create was lost" in capsys.readouterr().out
    assert len(toy_jobs(untagged)) == 1
    assert answers(d) == ["toy: say one", "toy: say two", "toy: say three"]
    assert main(["apply", str(d)]) == 0
    assert len(toy_jobs(untagged)) == 1


def test_a_run_killed_after_the_create_adopts_its_job_next_time(
        tmp_path: Path, untagged: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = tmp_path / "proj"
    write_manifest(d, TOYS, "toys.yaml")
    (untagged / "die-after-create").touch()
    assert main(["apply", str(d)]) != 0          # interrupted
    [record] = lockfile.load(d / "batches.lock").batches.values()
    assert record.state == JobState.CREATING and record.job is None
    assert main(["plan", str(d)]) == 0
    assert "adopt" in capsys.readouterr().out
    assert main(["apply", str(d)]) == 0
    assert len(toy_jobs(untagged)) == 1
    assert answers(d)[0] == "toy: say one"


def test_a_lost_create_after_an_edit_does_not_take_the_old_job(
        tmp_path: Path, untagged: Path) -> None:
    """Same keys, same size, the old job seconds old: only the time bound tells them apart."""
    d = tmp_path / "proj"
    write_manifest(d, TOYS, "toys.yaml")
    assert main(["apply", str(d)]) == 0
    write_manifest(d, TOYS.replace("say {{", "tell {{"), "toys.yaml")
    (untagged / "lose-create").touch()
    assert main(["apply", str(d)]) == 0
    assert len(toy_jobs(untagged)) == 2
    assert answers(d) == ["toy: tell one", "toy: tell two", "toy: tell three"]


def test_a_wrong_guess_is_caught_by_the_results_keys_before_any_output(
        tmp_path: Path, untagged: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Someone else's batch of the same size, created after a lost create's intent, is taken
    for it; its results answer other keys, so nothing is written from them, the record lets
    it go, and the next apply submits the batch."""
    d = tmp_path / "proj"
    write_manifest(d, TOYS, "toys.yaml")
    (untagged / "die-after-create").touch()
    assert main(["apply", str(d)]) != 0          # interrupted
    # the job that create made is gone (say, deleted); another team's job of 3 takes its place
    for path in (untagged / "jobs").iterdir():
        path.unlink()
    other = d.parent / "other"
    write_manifest(other, TOYS.replace("{{ row.id }}", "x{{ row.id }}"), "toys.yaml")
    time.sleep(0.01)
    assert main(["apply", str(other)]) == 0
    capsys.readouterr()
    assert main(["apply", str(d)]) == 1
    err = capsys.readouterr().err
    assert "was taken for this batch's by its size and creation time" in err
    assert "answers a request it was not sent" in err
    assert not (d / "out/toys.jsonl").exists()
    assert main(["apply", str(d)]) == 0
    assert answers(d)[0] == "toy: say one"
    assert len(toy_jobs(untagged)) == 2


# -- what a hostile review found (each failed before its fix) ----------------------------------

def _crash_after_intent(monkeypatch: pytest.MonkeyPatch) -> None:
    """The run dies right after saving the intent: nothing was sent (a power cut)."""
    submit = importlib.import_module("runner.apply.submit")
    real_hit = submit.hit

    def hit(name: str) -> None:
        if name == "after-intent":
            monkeypatch.setattr(submit, "hit", real_hit)    # once
            raise KeyboardInterrupt
        real_hit(name)

    monkeypatch.setattr(submit, "hit", hit)


def test_a_stale_intent_does_not_adopt_a_batch_made_long_after(
        tmp_path: Path, untagged: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run killed after its intent sent nothing; an hour later a copy of the project with
    other prompts over the same rows applies on the same account: same size, same keys. The
    intent's window is long closed, so this batch is sent, not taken from the copy."""
    d, other = tmp_path / "proj", tmp_path / "other"
    write_manifest(d, TOYS, "toys.yaml")
    write_manifest(other, TOYS.replace("say {{", "tell {{"), "toys.yaml")
    _crash_after_intent(monkeypatch)
    assert main(["apply", str(d)]) != 0
    lock = lockfile.load(d / "batches.lock")
    lock.batches["toys"].submitted_at = intent_time(time.time() - 3600)
    lockfile.save(d / "batches.lock", lock)
    assert main(["apply", str(other), "--quiet"]) == 0
    assert main(["apply", str(d), "--quiet"]) == 0
    assert answers(d)[0] == "toy: say one"
    assert len(toy_jobs(untagged)) == 2


@pytest.mark.parametrize("how", ["cancel", "prune"])
def test_a_job_known_only_by_inference_is_never_cancelled_or_deleted(
        how: str, tmp_path: Path, untagged: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An intent that sent nothing, and another project's batch of the same size in its
    window: `cancel` and `apply --prune` of this batch leave that batch alone."""
    d, other = tmp_path / "proj", tmp_path / "other"
    write_manifest(d, TOYS, "toys.yaml")
    write_manifest(other, TOYS.replace("{{ row.id }}", "x{{ row.id }}"), "toys.yaml")
    _crash_after_intent(monkeypatch)
    assert main(["apply", str(d)]) != 0
    assert toy_jobs(untagged) == []                     # nothing was created
    assert main(["apply", str(other), "--no-wait", "--quiet"]) == 0
    if how == "cancel":
        assert main(["cancel", str(d), "toys"]) == 0
    else:
        (d / "toys.yaml").unlink()
        assert main(["apply", str(d), "--prune", "--quiet"]) == 0
    [theirs] = toy_jobs(untagged)
    assert theirs["state"] != "CANCELLED"
    assert main(["apply", str(other), "--quiet"]) == 0


FLAKY = TOYS.replace("  outputs:", "  retry_failed: 1\n  outputs:")


@pytest.fixture
def flaky(untagged: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The untagged toy, where request `b` fails the first time it is sent only."""
    from toy_provider.untagged import UntaggedToyClient
    create = UntaggedToyClient.create_job

    def create_job(self: UntaggedToyClient, model: str, display_name: str,
                   **kw: Any) -> RemoteJob:
        job = create(self, model, display_name, **kw)
        stored = self._load(job.name)
        assert stored is not None
        seen = self.state / "b-seen"
        results = []
        for line in stored["results"].splitlines():
            r = json.loads(line)
            if r["id"] == "toy-b" and not seen.exists():
                seen.touch()
                r = {"id": "toy-b", "failure": "flaky"}
            results.append(json.dumps(r) + "\n")
        stored["results"] = "".join(results)
        self._save(stored)
        return job

    monkeypatch.setattr(UntaggedToyClient, "create_job", create_job)
    return untagged


@pytest.mark.parametrize("gone", ["outputs", "out/"])
def test_outputs_with_a_follow_up_are_rebuilt_in_a_fresh_checkout(
        gone: str, tmp_path: Path, flaky: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A follow-up's results are checked against the batch's requests, not against the errors
    output it was made from (which its merge emptied, or which a fresh checkout lacks): the
    outputs are rebuilt, and nothing is sent again."""
    d = tmp_path / "proj"
    write_manifest(d, FLAKY, "toys.yaml")
    assert main(["apply", str(d), "--quiet"]) == 0
    assert len(toy_jobs(flaky)) == 2                # the job and its follow-up of b
    shutil.rmtree(d / ".runner")
    if gone == "out/":
        shutil.rmtree(d / "out")
    else:
        (d / "out/toys.jsonl").unlink()
    capsys.readouterr()
    assert main(["apply", str(d), "--quiet"]) == 0, capsys.readouterr().err
    assert answers(d) == ["toy: say one", "toy: say two", "toy: say three"]
    assert len(toy_jobs(flaky)) == 2
