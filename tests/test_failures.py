"""Failed requests: the allowance, and when there are more than it allows."""

from __future__ import annotations

from runner.actions import Kind
from runner.failures import allowance, for_retry, only_unfinished, too_many_failures
from runner.providers.base import JobState
from runner.records import LockEntry, Retry
from runner.states import Desired, Observed


def test_the_allowance_is_a_count_or_a_share_rounded_down() -> None:
    assert allowance(3, 1000) == 3
    assert allowance("0.5%", 1000) == 5
    assert allowance("0.5%", 999) == 4
    assert allowance("0%", 1000) == 0


def test_more_failures_than_allowed_say_where_they_are() -> None:
    want = Desired(name="b", manifest="b.yaml", spec_hash="", inputs={}, content_hash="",
                   provider="gemini", model="m", requests=100, outputs_hash="", outputs={},
                   allowed_failures=2, errors_output="out/errors.jsonl")
    assert too_many_failures(want, 2) is None
    assert too_many_failures(want, 3) == ("3 of 100 requests failed, more than the 2 allowed "
                                          "(spec.allowed_failures): see out/errors.jsonl")


def test_unfinished_requests_are_sent_again_after_retry_failed_is_spent() -> None:
    """Requests an expired job never ran get follow-ups of their own, as many as a whole job
    that expires is submitted again (max_attempts); other failures wait for retry_failed."""
    want = Desired(name="b", manifest="b.yaml", spec_hash="", inputs={}, content_hash="sha256:h",
                   provider="openai", model="m", requests=10, outputs_hash="", outputs={},
                   retry_failed=1)
    entry = LockEntry("b.yaml", "", "sha256:h", "openai", "m", 10, "b-h", JobState.SUCCEEDED,
                      counts={"succeeded": 5, "failed": 5, "unfinished": 3})
    first = for_retry(want, entry, Observed({}), max_attempts=3)
    assert first is not None and first.kind == Kind.RETRY and first.requests == 5
    assert only_unfinished(want.retry_failed, 0) is False
    entry.retries.append(Retry("sha256:r", 5, "b-h-retry1", JobState.SUCCEEDED))
    second = for_retry(want, entry, Observed({}), max_attempts=3)
    assert second is not None and second.requests == 3
    assert second.reason == "resubmit 3 requests the job expired before running (retry 2)"
    assert only_unfinished(want.retry_failed, 1) is True
    entry.retries += [Retry("sha256:s", 3, "b-h-retry2", JobState.SUCCEEDED),
                      Retry("sha256:t", 3, "b-h-retry3", JobState.SUCCEEDED)]
    assert for_retry(want, entry, Observed({}), max_attempts=3) is None
    entry.counts = {"succeeded": 9, "failed": 1}
    entry.retries = entry.retries[:1]
    assert for_retry(want, entry, Observed({}), max_attempts=3) is None
