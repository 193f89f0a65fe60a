"""The exit-code policy: what each event makes the exit code, and which event wins."""

from __future__ import annotations

import errno
import io

import pytest

from runner.errors import LockfileError, RunnerError
from runner.report import Report


def guarded(exc: BaseException, *, verbose: bool = False) -> tuple[Report, str]:
    report, err = Report(), io.StringIO()
    with report.guard(err, verbose=verbose):
        raise exc
    return report, err.getvalue()


def test_nothing_happened_is_success() -> None:
    report = Report()
    with report.guard(io.StringIO(), verbose=False):
        pass
    assert report.code == 0


def test_a_failed_batch_is_1() -> None:
    report = Report()
    report.batches_failed([])
    assert report.code == 0
    report.batches_failed(["tiny"])
    assert report.code == 1 and report.failed == ["tiny"]


@pytest.mark.parametrize("changes, failing, detailed, code", [
    (False, [], False, 0), (True, [], False, 0), (True, ["a"], False, 0),
    (False, [], True, 0), (True, [], True, 2), (False, ["a"], True, 1), (True, ["a"], True, 1),
])
def test_a_plan_sets_the_code_only_with_detailed_exitcode(
        changes: bool, failing: list[str], detailed: bool, code: int) -> None:
    report = Report()
    report.planned(changes=changes, failing=failing, detailed_exitcode=detailed)
    assert report.code == code


def test_a_user_error_is_one_line_and_1() -> None:
    report, err = guarded(LockfileError("no batch named 'x'", path="d/batches.lock"))
    assert report.code == 1 and err == "error: d/batches.lock: no batch named 'x'\n"


def test_a_refusal_of_the_system_is_a_user_error_naming_the_file() -> None:
    report, err = guarded(OSError(errno.ENOSPC, "No space left on device", "out/x.jsonl"))
    assert report.code == 1 and err == "error: No space left on device: out/x.jsonl\n"


def test_a_closed_output_is_1_and_says_nothing() -> None:
    report, err = guarded(BrokenPipeError(errno.EPIPE, "Broken pipe"))
    assert report.code == 1 and err == ""


def test_an_interruption_is_130() -> None:
    report, err = guarded(KeyboardInterrupt())
    assert report.code == 130 and "run the same command again to resume" in err


def test_a_bug_is_3_with_its_traceback_only_when_verbose() -> None:
    report, err = guarded(ZeroDivisionError("division by zero"))
    assert report.code == 3
    assert err == ("internal error (a bug in batch-runner): ZeroDivisionError: division by "
                   "zero; rerun with --verbose for the traceback\n")
    report, err = guarded(ZeroDivisionError("division by zero"), verbose=True)
    assert report.code == 3 and err.startswith("Traceback (most recent call last):")


def test_an_exit_is_not_swallowed() -> None:
    with pytest.raises(SystemExit):
        guarded(SystemExit(2))


def test_precedence_interrupted_then_bug_then_failure_then_changes() -> None:
    report = Report()
    report.planned(changes=True, failing=[], detailed_exitcode=True)
    assert report.code == 2
    report.batches_failed(["a"])
    assert report.code == 1
    with report.guard(io.StringIO(), verbose=False):
        raise RunnerError("bad")
    assert report.code == 1
    with report.guard(io.StringIO(), verbose=False):
        raise AssertionError("a bug")
    assert report.code == 3
    with report.guard(io.StringIO(), verbose=False):
        raise KeyboardInterrupt
    assert report.code == 130
