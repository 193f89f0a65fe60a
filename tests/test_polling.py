"""The pauses between polls of jobs in flight (runner.apply.polling.Pace)."""

from __future__ import annotations

import random

import pytest

from runner.apply.polling import Pace


def polls(pace: Pace, until: float) -> list[float]:
    """The times of the polls a wait makes, from 0 until past `until`."""
    times, waited = [], 0.0
    while waited <= until:
        waited += pace.next_delay(waited)
        times.append(waited)
    return times


@pytest.mark.parametrize("ends", [1.0, 7.5, 33.0, 140.0, 900.0, 20_000.0])
def test_a_job_that_ends_is_seen_within_a_tenth_of_its_wait(ends: float) -> None:
    """Doubling from 2 s saw a job that ended at 33 s only at about 63 s."""
    seen = polls(Pace(base=2.0, cap=60.0, rng=random.Random(3)), ends)[-1]
    assert seen <= max(ends * 1.1, ends + 2.0) + 1e-9
    assert seen <= ends + 60.0


def test_pauses_start_at_base_and_never_pass_the_cap() -> None:
    pace = Pace(base=2.0, cap=60.0, rng=random.Random(4))
    times = polls(pace, 86_400.0)
    gaps = [b - a for a, b in zip([0.0, *times], times)]
    assert all(1.6 <= g <= 2.0 for g in gaps[:8])
    assert max(gaps) <= 60.0
    assert min(gaps[-100:]) >= 48.0          # at the cap, jittered within its last fifth
    assert len(times) < 1_700               # a day's polls: about one a minute


def test_runs_started_together_drift_apart() -> None:
    a = polls(Pace(2.0, 60.0, rng=random.Random(1)), 600.0)
    b = polls(Pace(2.0, 60.0, rng=random.Random(2)), 600.0)
    assert a != b
