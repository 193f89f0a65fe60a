"""Failed requests: the allowance, and when there are more than it allows."""

from __future__ import annotations

from runner.failures import allowance, too_many_failures
from runner.states import Desired


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
