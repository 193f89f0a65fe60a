"""Whether a job the lockfile names is the record's own, and a record without the ones that
are not."""

from __future__ import annotations

from typing import Any

from runner.ownership import disown, foreign, not_its_own
from runner.providers.base import JobState, RemoteJob
from runner.records import LockEntry, Retry
from runner.states import Desired, Observed
from runner.tags import display_name, retry_name

H1 = "sha256:" + "1" * 64
H0 = "sha256:" + "0" * 64


def entry(**kw: Any) -> LockEntry:
    base: dict[str, Any] = dict(
        manifest="b.yaml", spec_hash="sha256:" + "5" * 64, content_hash=H1, provider="gemini",
        model="m", requests=3, display_name=display_name("b", H1), state=JobState.RUNNING,
        job="batches/j1", attempts=1)
    base.update(kw)
    return LockEntry(**base)


def want() -> Desired:
    return Desired(name="b", manifest="b.yaml", spec_hash="sha256:" + "5" * 64, inputs={},
                   content_hash=H1, provider="gemini", model="m", requests=3,
                   outputs_hash="sha256:" + "8" * 64, outputs={})


def job(tag: str = display_name("b", H1), name: str = "batches/j1", **kw: Any) -> RemoteJob:
    return RemoteJob(name=name, display_name=tag, state=JobState.RUNNING, **kw)


def test_a_job_is_the_records_own_by_tag_model_and_size() -> None:
    record = entry()
    assert foreign("b", "m", record, job()) is None
    assert foreign("b", "m", record, job(display_name("b", H1, 2))) is None
    assert foreign("b", "m", record, job(model="models/m", total=3)) is None
    assert foreign("b", "m", record, job(display_name("other", H1))) == \
        "it is tagged 'other-111111111111', not with this batch's hash"
    assert foreign("b", "m", record, job(model="m2")) == "it runs m2, not m"
    assert foreign("b", "m", record, job(total=4)) == "it holds 4 requests, not 3"


def test_a_follow_up_is_known_by_its_own_tag_whatever_the_hash() -> None:
    """Follow-ups kept across an edit carry the hash of the requests they came from."""
    retry = Retry(content_hash=H0, requests=2, display_name=retry_name("b", H0, 1),
                  state=JobState.RUNNING, job="batches/r")
    assert foreign("b", "m", retry, job(retry_name("b", H0, 1), "batches/r")) is None
    assert foreign("b", "m", retry, job(retry_name("b", H0, 2), "batches/r")) is not None
    assert foreign("b", "m", retry, job(display_name("b", H0), "batches/r")) is not None


def test_a_record_naming_another_batchs_job_is_disowned() -> None:
    mine = entry()
    assert disown(want(), mine, Observed({"batches/j1": job()})) == (mine, "")
    stranger = job(display_name("other", H1))
    cleared, why = disown(want(), mine, Observed({"batches/j1": stranger}))
    assert (cleared.job, cleared.state) == (None, JobState.CREATING)
    assert (mine.job, mine.state) == ("batches/j1", JobState.RUNNING)     # a copy is changed
    assert why == not_its_own("batches/j1", foreign("b", "m", mine, stranger) or "") \
        + "; looking for it by its tag"


def test_a_disowned_follow_up_is_looked_for_by_this_batchs_follow_up_tag() -> None:
    retry = Retry(content_hash=H1, requests=2, display_name="hand-edited",
                  state=JobState.RUNNING, job="batches/r")
    record = entry(state=JobState.SUCCEEDED, retries=[retry])
    cleared, why = disown(want(), record, Observed({"batches/r": job("hand-edited", "batches/r")}))
    assert cleared.retries[0].job is None and cleared.retries[0].display_name == \
        retry_name("b", H1, 1)
    assert why.startswith("the lockfile names job batches/r, which is not this batch's")
