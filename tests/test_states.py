"""The plan's inputs: what Observed finds among the provider's jobs."""

from __future__ import annotations

from runner.providers.base import JobState, RemoteJob
from runner.states import Observed
from runner.tags import display_name

H1 = "sha256:" + "1" * 64


def job(state: JobState, name: str, attempt: int = 1) -> RemoteJob:
    return RemoteJob(name=name, display_name=display_name("b", H1, attempt), state=state)


def test_tagged_lookup_prefers_succeeded_job() -> None:
    jobs = [job(JobState.FAILED, name="batches/x"), job(JobState.SUCCEEDED, name="batches/y")]
    obs = Observed({j.name: j for j in jobs})
    found = obs.tagged(display_name("b", H1))
    assert found is not None and found.name == "batches/y"


def test_attempts_are_the_jobs_for_these_requests_with_their_numbers() -> None:
    follow_up = RemoteJob(name="batches/r", display_name=display_name("b", H1) + "-retry1",
                          state=JobState.SUCCEEDED)
    jobs = [job(JobState.EXPIRED, "batches/a1"), job(JobState.RUNNING, "batches/a2", 2),
            follow_up]
    found = Observed({j.name: j for j in jobs}).attempts("b", H1)
    assert sorted((n, j.name) for n, j in found) == [(1, "batches/a1"), (2, "batches/a2")]
