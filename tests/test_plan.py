"""The reconcile table, row by row, on the pure plan() function."""

from __future__ import annotations

from typing import Any

from runner.actions import Kind
from runner.lockfile import Lock
from runner.plan import plan, replan
from runner.providers.base import JobState, RemoteJob
from runner.records import CANCELLED_BY_USER, LockEntry
from runner.states import Desired, Observed
from runner.tags import display_name

H1 = "sha256:" + "1" * 64
H2 = "sha256:" + "2" * 64
D = "sha256:" + "d" * 64


def want(content: str = H1, outputs: dict[str, str | None] | None = None, **kw: Any) -> Desired:
    base: dict[str, Any] = dict(
        name="b", manifest="b.yaml", spec_hash="sha256:" + "5" * 64,
        inputs={"manifest": "sha256:" + "6" * 64, "rows": "sha256:" + "7" * 64},
        content_hash=content, provider="gemini", model="m", requests=3,
        outputs_hash="sha256:" + "8" * 64, outputs={"out.jsonl": D} if outputs is None else outputs)
    base.update(kw)
    return Desired(**base)


def entry(state: str = "SUCCEEDED", content: str = H1, job: str | None = "batches/j1",
          **kw: Any) -> LockEntry:
    w = want(content)
    base: dict[str, Any] = dict(
        manifest="b.yaml", spec_hash=w.spec_hash, inputs=dict(w.inputs), content_hash=content,
        provider="gemini", model="m", requests=3, display_name=display_name("b", content),
        state=state, job=job, attempts=1, outputs={"out.jsonl": D}, outputs_hash=w.outputs_hash)
    base.update(kw)
    return LockEntry(**base)


def job(state: JobState, name: str = "batches/j1", content: str = H1, attempt: int = 1,
        **kw: Any) -> RemoteJob:
    return RemoteJob(name=name, display_name=display_name("b", content, attempt), state=state, **kw)


def one(desired: list[Desired], lock: Lock, jobs: list[RemoteJob], **kw: Any) -> Any:
    p = plan(desired, lock, Observed({j.name: j for j in jobs}), **kw)
    assert len(p.actions) == 1
    return p.actions[0]


def test_new_batch_is_created() -> None:
    a = one([want()], Lock(), [])
    assert (a.kind, a.reason, a.symbol) == (Kind.CREATE, "new batch", "+")
    assert a.display_name == f"b-{'1' * 12}"


def test_tagged_job_without_entry_is_adopted_not_created_again() -> None:
    a = one([want()], Lock(), [job(JobState.RUNNING)])
    assert a.kind == Kind.ADOPT and a.job.name == "batches/j1"


def test_creating_entry_adopts_tagged_job() -> None:
    lock = Lock({"b": entry("CREATING", job=None)})
    assert one([want()], lock, [job(JobState.PENDING)]).kind == Kind.ADOPT
    assert one([want()], lock, []).kind == Kind.CREATE


def test_changed_rows_replace_with_reason_and_cancel_running_old_job() -> None:
    lock = Lock({"b": entry("RUNNING")})
    changed = want(H2, inputs={"manifest": "sha256:" + "6" * 64, "rows": "sha256:" + "9" * 64})
    a = one([changed], lock, [job(JobState.RUNNING)])
    assert a.kind == Kind.REPLACE and a.symbol == "-/+"
    assert a.reason.startswith("row data changed") and a.old_jobs == ("batches/j1",)


def test_changed_model_is_named() -> None:
    lock = Lock({"b": entry()})
    a = one([want(H2, model="m2")], lock, [job(JobState.SUCCEEDED)])
    assert a.kind == Kind.REPLACE and "model changed (m -> m2)" in a.reason and a.old_jobs == ()


def test_running_job_is_waited_for() -> None:
    a = one([want()], Lock({"b": entry("RUNNING")}), [job(JobState.RUNNING)])
    assert a.kind == Kind.WAIT


def test_finished_job_is_downloaded() -> None:
    a = one([want()], Lock({"b": entry("RUNNING")}), [job(JobState.SUCCEEDED)])
    assert a.kind == Kind.DOWNLOAD


def test_up_to_date_is_nothing() -> None:
    assert one([want()], Lock({"b": entry()}), [job(JobState.SUCCEEDED)]).kind == Kind.NOTHING


def test_missing_or_edited_output_is_downloaded_not_resubmitted() -> None:
    lock = Lock({"b": entry()})
    a = one([want(outputs={"out.jsonl": None})], lock, [job(JobState.SUCCEEDED)])
    assert (a.kind, a.reason) == (Kind.DOWNLOAD, "output missing: out.jsonl")
    a = one([want(outputs={"out.jsonl": H2})], lock, [job(JobState.SUCCEEDED)])
    assert (a.kind, a.reason) == (Kind.DOWNLOAD, "output modified: out.jsonl")


def test_output_missing_and_results_gone_is_lost_until_asked() -> None:
    a = one([want(outputs={"out.jsonl": None})], Lock({"b": entry()}), [])
    assert a.kind == Kind.LOST and "gone" in a.reason and "--resubmit b" in a.reason
    a = one([want(outputs={"out.jsonl": None})], Lock({"b": entry()}), [],
            resubmit=frozenset({"b"}))
    assert a.kind == Kind.RESUBMIT and "as asked" in a.reason


def test_expired_job_is_resubmitted_until_the_limit() -> None:
    a = one([want()], Lock({"b": entry("RUNNING")}), [job(JobState.EXPIRED)])
    assert (a.kind, a.attempt) == (Kind.RESUBMIT, 2)
    assert a.reason == "job expired (48 h without finishing)"      # Gemini's own limit
    assert a.display_name == display_name("b", H1, 2)
    a = one([want()], Lock({"b": entry("EXPIRED", attempts=3)}), [job(JobState.EXPIRED)])
    assert a.kind == Kind.FAILED


def test_failed_job_is_reported_not_resubmitted() -> None:
    a = one([want()], Lock({"b": entry("RUNNING")}),
            [job(JobState.FAILED, error="bad input (code 3)")])
    assert a.kind == Kind.FAILED and "bad input" in a.reason


def test_cancelled_outside_is_drift() -> None:
    a = one([want()], Lock({"b": entry("RUNNING")}), [job(JobState.CANCELLED)])
    assert a.kind == Kind.FAILED and "drift" in a.reason


def test_a_job_cancelled_by_the_run_that_kept_its_twin_adopts_that_one() -> None:
    """Two runs created the same job at once; the other kept its own and cancelled this one."""
    kept = job(JobState.RUNNING, name="batches/j2")
    a = one([want()], Lock({"b": entry("RUNNING")}), [job(JobState.CANCELLED), kept])
    assert (a.kind, a.job) == (Kind.ADOPT, kept) and "another run" in a.reason
    mine = entry("CANCELLED", error=CANCELLED_BY_USER)
    assert one([want()], Lock({"b": mine}), [job(JobState.CANCELLED), kept]).kind == Kind.FAILED


def test_a_job_that_ends_while_apply_waits_is_planned_again() -> None:
    record = entry("RUNNING")
    expired = Observed({"batches/j1": job(JobState.EXPIRED)})
    a = replan(want(), record, expired, max_attempts=2, record=record)
    assert (a.kind, a.attempt) == (Kind.RESUBMIT, 2)
    record.attempts = 2
    assert replan(want(), record, expired, max_attempts=2, record=record).kind == Kind.FAILED


def test_job_deleted_before_results_saved_is_recreated() -> None:
    a = one([want()], Lock({"b": entry("RUNNING")}), [])
    assert a.kind == Kind.RESUBMIT and "deleted" in a.reason


def test_removed_manifest_is_an_orphan_not_a_change() -> None:
    p = plan([], Lock({"b": entry()}), Observed({}))
    assert [a.kind for a in p.actions] == [Kind.ORPHAN] and not p.changes


def test_comment_only_edit_records_without_submitting() -> None:
    a = one([want(spec_hash="sha256:" + "a" * 64)], Lock({"b": entry()}), [job(JobState.SUCCEEDED)])
    assert a.kind == Kind.RECORD


def test_lost_lockfile_adopts_the_attempt_that_succeeded() -> None:
    jobs = [job(JobState.EXPIRED, name="batches/a1"),
            job(JobState.SUCCEEDED, name="batches/a2", attempt=2)]
    a = one([want()], Lock(), jobs)
    assert (a.kind, a.job.name, a.attempt) == (Kind.ADOPT, "batches/a2", 2)


def test_jobs_that_ended_without_results_are_not_adopted() -> None:
    """Reverting to requests whose job was cancelled submits them under the next tag."""
    jobs = [job(JobState.CANCELLED, name="batches/a1"), job(JobState.RUNNING, name="batches/b",
                                                            content=H2)]
    lock = Lock({"b": entry("RUNNING", content=H2, job="batches/b")})
    a = one([want()], lock, jobs)
    assert (a.kind, a.attempt, a.display_name) == (Kind.REPLACE, 2, display_name("b", H1, 2))
    assert a.old_jobs == ("batches/b",)


def test_follow_up_tags_are_not_main_jobs() -> None:
    retry = RemoteJob(name="batches/r", display_name=display_name("b", H1) + "-retry1",
                      state=JobState.SUCCEEDED)
    assert one([want()], Lock(), [retry]).kind == Kind.CREATE
