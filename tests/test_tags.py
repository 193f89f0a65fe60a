"""Job tags and attempts, and which of several jobs for the same requests is kept."""

from __future__ import annotations

from runner.providers.base import JobState, RemoteJob
from runner.tags import attempt_of, best, display_name, moment, retry_name, twins

H1 = "sha256:" + "1" * 64
H2 = "sha256:" + "2" * 64
TAG = "b-" + "1" * 12


def test_a_tag_names_the_batch_its_requests_and_the_attempt() -> None:
    assert display_name("b", H1) == display_name("b", H1, 1) == TAG
    assert display_name("b", H1, 3) == TAG + "-3"
    assert [attempt_of("b", H1, display_name("b", H1, n)) for n in (1, 2, 3)] == [1, 2, 3]


def test_other_tags_are_no_attempt_of_these_requests() -> None:
    assert retry_name("b", H1, 2) == TAG + "-retry2"
    for tag in (retry_name("b", H1, 1), display_name("b", H2), display_name("bb", H1),
                TAG + "-", TAG + "-x", TAG + "2"):
        assert attempt_of("b", H1, tag) is None, tag


def test_times_sort_as_time_whatever_their_digits() -> None:
    times = ["2024-05-01T10:00:00Z", "2024-05-01T10:00:00.05Z",
             "2024-05-01T10:00:00.123456789Z", "2024-05-01T10:00:01.1Z", None]
    assert sorted(times, key=moment) == times
    assert moment("2024-05-01T10:00:00.5Z") == moment("2024-05-01T10:00:00.500000Z")


def job(name: str, state: JobState, created: str | None = None, tag: str = TAG) -> RemoteJob:
    return RemoteJob(name=name, display_name=tag, state=state, create_time=created)


def test_the_best_job_has_succeeded_or_is_live_and_came_first() -> None:
    early, late = "2024-05-01T10:00:00Z", "2024-05-01T11:00:00Z"
    assert best([]) is None
    failed = job("batches/f", JobState.FAILED, early)
    running = job("batches/r", JobState.RUNNING, early)
    done = job("batches/s", JobState.SUCCEEDED, late)
    assert best([failed, running, done]) is done
    assert best([failed, running]) is running
    assert best([job("batches/b", JobState.PENDING, late), running]) is running
    tie = job("batches/b", JobState.RUNNING, early)
    assert best([running, tie]) is tie     # same state and time: the first name


def test_twins_keep_the_same_job_and_cancel_the_live_others() -> None:
    first = job("batches/1", JobState.RUNNING, "2024-05-01T10:00:00Z")
    second = job("batches/2", JobState.PENDING, "2024-05-01T10:00:01Z")
    ended = job("batches/3", JobState.CANCELLED, "2024-05-01T09:00:00Z")
    other = job("batches/4", JobState.RUNNING, "2024-05-01T09:00:00Z", tag=TAG + "-2")
    for jobs in ([first, second, ended, other], [other, ended, second, first]):
        assert twins(jobs, TAG) == (first, [second])
    assert twins([ended], TAG) == (None, [])
