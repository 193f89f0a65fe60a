"""Progress while waiting: a live block on a terminal, plain lines in a log, nothing if quiet."""

from __future__ import annotations

import io
import re
import time

from runner.progress import Mode, Progress

MiB = 1024 * 1024
COLOR = re.compile(r"\x1b\[[0-9;]*m")
UP = re.compile(r"\x1b\[(\d+)A\x1b\[J")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_plain_mode_prints_one_line_per_change_of_state() -> None:
    out, clock = io.StringIO(), Clock()
    p = Progress(out, tty=False, color=True, clock=clock)
    p.state("a", "PENDING", 0, 5)
    clock.now += 3
    p.state("a", "PENDING", 0, 5)          # the same state again: nothing
    p.state("b", "PENDING")
    clock.now += 2
    p.state("a", "RUNNING", 2, 5)
    p.state("a", "RUNNING", 3, 5)          # progress within a state: nothing
    p.transfer("b", "upload", 0, 2 * MiB)
    p.transfer("b", "upload", MiB, 2 * MiB)
    clock.now += 61
    p.transfer("b", "upload", 2 * MiB, 2 * MiB)
    p.transfer("b", "upload", 2 * MiB, 2 * MiB)    # told twice that it finished: once
    p.message("b: submitted as batches/123")
    clock.now += 3600
    p.state("a", "SUCCEEDED", 5, 5)
    clock.now += 10
    p.state("a", "SUCCEEDED", 5, 5)
    p.close()
    assert out.getvalue() == (
        "a: pending 0/5 (0s)\n"
        "b: pending (0s)\n"        # its clock starts when it is first seen
        "a: running 2/5 (5s)\n"
        "b: uploading 2.0 MiB\n"
        "b: uploaded 2.0 MiB (1m03s)\n"
        "b: submitted as batches/123\n"
        "a: succeeded 5/5 (1h01m)\n"
    )


def test_plain_mode_never_colours_even_when_asked() -> None:
    out = io.StringIO()
    p = Progress(out, tty=False, color=True, clock=Clock())
    p.state("a", "FAILED")
    assert out.getvalue() == "a: failed (0s)\n" and p.mode == Mode.PLAIN


def test_quiet_mode_prints_only_errors() -> None:
    out = io.StringIO()
    p = Progress(out, tty=True, color=True, quiet=True, clock=Clock())
    p.state("a", "RUNNING", 1, 2)
    p.transfer("a", "download", 10, 20)
    p.message("a: collected")
    p.error("a: job failed: quota")
    p.close()
    assert out.getvalue() == "a: job failed: quota\n"


def test_live_mode_redraws_the_block_in_place() -> None:
    out, clock = io.StringIO(), Clock()
    p = Progress(out, tty=True, color=False, clock=clock)
    p.state("short", "PENDING", 0, 4)
    first = out.getvalue()
    assert first == "  short  pending      0/4                            0s\n"
    p.state("longer-name", "RUNNING", 1, 2)
    second = out.getvalue()[len(first):]
    # cursor up over the one line drawn, erase down, then the whole block, names aligned
    assert second == ("\x1b[1A\x1b[J"
                      "  short        pending      0/4                            0s\n"
                      "  longer-name  running      1/2                            0s\n")
    p.state("short", "PENDING", 0, 4)        # nothing on screen would change: no redraw
    assert out.getvalue() == first + second
    clock.now += 75
    p.transfer("short", "upload", 3 * MiB, 8 * MiB)
    third = out.getvalue()[len(first + second):]
    assert third.startswith("\x1b[2A\x1b[J")
    assert "  short        uploading    3.0 MiB / 8.0 MiB  37%      1m15s\n" in third


def test_live_mode_prints_messages_above_the_block() -> None:
    out = io.StringIO()
    p = Progress(out, tty=True, color=False, clock=Clock())
    p.message("before any batch")
    p.state("a", "RUNNING", 1, 3)
    start = len(out.getvalue())
    p.error("a: something to see")
    assert out.getvalue()[start:] == ("\x1b[1A\x1b[J" "a: something to see\n"
                                      "  a  running      1/3                            0s\n")
    assert out.getvalue().startswith("before any batch\n")


def test_live_mode_stops_the_clock_of_a_finished_batch() -> None:
    out, clock = io.StringIO(), Clock()
    p = Progress(out, tty=True, color=False, clock=clock)
    p.state("a", "RUNNING", 1, 2)
    clock.now += 5
    p.state("a", "SUCCEEDED", 2, 2)
    clock.now += 100
    p.state("b", "PENDING")
    last_block = out.getvalue().rsplit("\x1b[J", 1)[1]
    assert "  a  succeeded    2/2" in last_block and last_block.split("\n")[0].endswith(" 5s")


def test_a_batch_submitted_again_restarts_its_clock() -> None:
    out, clock = io.StringIO(), Clock()
    p = Progress(out, tty=False, clock=clock)
    p.state("a", "RUNNING")
    clock.now += 50
    p.state("a", "EXPIRED")
    clock.now += 30
    p.state("a", "PENDING")
    clock.now += 4
    p.state("a", "RUNNING")
    assert out.getvalue() == ("a: running (0s)\na: expired (50s)\na: pending (0s)\n"
                              "a: running (4s)\n")


def test_live_lines_fit_the_terminal_width() -> None:
    out = io.StringIO()
    p = Progress(out, tty=True, color=True, clock=Clock(), width=30)
    p.state("a-rather-long-batch-name", "RUNNING", 10, 20)
    line = COLOR.sub("", out.getvalue().rstrip("\n"))
    assert len(line) <= 29 and line.startswith("  a-rather-long-batch-name")


def test_colour_marks_the_state_and_no_color_removes_it() -> None:
    coloured = Terminal()
    p = Progress.for_stream(coloured, environ={"TERM": "xterm"}, clock=Clock())
    p.state("a", "SUCCEEDED", 2, 2)
    p.state("b", "FAILED")
    assert p.mode == Mode.LIVE
    assert "\x1b[32msucceeded\x1b[0m" in coloured.getvalue()
    assert "\x1b[31mfailed\x1b[0m" in coloured.getvalue()

    plain = Terminal()
    q = Progress.for_stream(plain, environ={"TERM": "xterm", "NO_COLOR": "1"}, clock=Clock())
    q.state("a", "SUCCEEDED", 2, 2)
    q.state("b", "FAILED")
    assert q.mode == Mode.LIVE and UP.search(plain.getvalue())     # still redrawn in place
    assert not COLOR.search(plain.getvalue())
    assert COLOR.sub("", coloured.getvalue()) == plain.getvalue()


def test_a_jobs_age_counts_from_its_creation() -> None:
    """A job created ten minutes before this apply looked at it is ten minutes old."""
    out, clock = io.StringIO(), Clock()
    p = Progress(out, tty=True, color=False, clock=clock, wall=lambda: 1_767_225_600.0)
    p.state("a", "RUNNING", 1, 2, created="2025-12-31T23:50:00.123Z")
    assert out.getvalue().rstrip().endswith(" 9m59s")
    p.state("b", "RUNNING", created="not a time")           # the provider's word is not
    assert out.getvalue().rstrip().endswith(" 0s")          # trusted: from now on


def test_the_live_block_ticks_between_events_and_stays_put_when_closed() -> None:
    out, clock = Terminal(), Clock()
    p = Progress(out, tty=True, color=False, clock=clock, tick=0.01)
    p.state("a", "RUNNING", 1, 2)
    clock.now += 3
    deadline = time.monotonic() + 10
    while not out.getvalue().rstrip().endswith(" 3s"):     # drawn again by the ticker alone
        assert time.monotonic() < deadline, out.getvalue()
        time.sleep(0.01)
    p.close()
    p.message("Apply complete: every declared output is up to date.")
    clock.now += 5
    time.sleep(0.05)
    assert out.getvalue().endswith(" 3s\nApply complete: every declared output is up to "
                                   "date.\n")                # the block not drawn again


def test_mode_follows_the_stream() -> None:
    assert Progress.for_stream(io.StringIO(), environ={}).mode == Mode.PLAIN
    assert Progress.for_stream(Terminal(), environ={"TERM": "dumb"}).mode == Mode.PLAIN
    assert Progress.for_stream(Terminal(), environ={}, quiet=True).mode == Mode.QUIET
    empty = Progress.for_stream(Terminal(), environ={"NO_COLOR": ""})
    assert empty.mode == Mode.LIVE and empty.color        # no-color.org: an empty value is unset
