"""Progress while `apply` works: what each batch is doing, for a person or for a log.

Three modes, chosen by where the output goes (`Progress.for_stream`):

- live, on a terminal: one line per batch, redrawn in place with ANSI cursor movement: its
  state, requests done of total, time since its job was created (since this run first saw
  it, when the provider does not say), ticking every second, and bytes while uploading or
  downloading. Coloured unless NO_COLOR is set (https://no-color.org: present and not
  empty). A terminal that cannot move the cursor (TERM=dumb) gets the plain mode.
- plain, for CI logs and pipes: a line when a batch's state changes, never the same one
  twice; an upload or download prints when it starts and when it ends, not per chunk, so a
  24-hour wait does not bury the log.
- quiet: nothing but errors.

Other report lines (`message`) print above the live block, so they scroll away like a log
while the block stays at the bottom; once closed, the block stays where it is and what
follows (the run's summary) prints below it, once.
"""

from __future__ import annotations

import enum
import os
import shutil
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal, TextIO

from .providers.base import JobState
from .tags import epoch

Transfer = Literal["upload", "download"]

_TERMINAL = {s.value.lower() for s in JobState if s.terminal}
_COLORS = {"succeeded": "32", "failed": "31", "cancelled": "31", "expired": "31",
           "running": "33", "pending": "2", "creating": "2", "uploading": "36",
           "downloading": "36"}
_UP = "\x1b[{n}A"        # cursor up n lines, to the top of the live block
_CLEAR = "\x1b[J"        # erase from the cursor to the end of the screen
_RESET = "\x1b[0m"


class Mode(enum.Enum):
    LIVE = "live"
    PLAIN = "plain"
    QUIET = "quiet"


@dataclass
class _Batch:
    state: str
    started: float
    done: int | None = None
    total: int | None = None
    finished: float | None = None
    transfer: tuple[Transfer, int, int] | None = None    # (what, bytes sent, bytes in all)


class Progress:
    """Reports batches' progress to `stream`. `clock` gives seconds (monotonic); `width` is the
    terminal's, so that a live line never wraps and breaks the redraw."""

    def __init__(self, stream: TextIO, *, tty: bool, color: bool = False, quiet: bool = False,
                 clock: Callable[[], float] = time.monotonic, width: int | None = None,
                 wall: Callable[[], float] = time.time, tick: float | None = None):
        """`wall` gives the time of day (seconds since 1970), to age a job from its creation;
        `tick`, in live mode, redraws the block that often (seconds) between events, so that
        the elapsed times keep counting while a run waits on its jobs."""
        self.stream = stream
        self.mode = Mode.QUIET if quiet else Mode.LIVE if tty else Mode.PLAIN
        self.color = color and self.mode == Mode.LIVE
        self.clock = clock
        self.wall = wall
        self.width = width
        self._batches: dict[str, _Batch] = {}
        self._printed: dict[str, str] = {}     # plain mode: the last line printed per batch
        self._drawn: list[str] = []            # live mode: the block as it is on screen
        self._lock = threading.RLock()         # the ticker draws from a thread of its own
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        if tick is not None and self.mode == Mode.LIVE:
            self._ticker = threading.Thread(target=self._tick, args=(tick,), daemon=True,
                                            name="progress-ticker")
            self._ticker.start()

    @classmethod
    def for_stream(cls, stream: TextIO, *, quiet: bool = False,
                   environ: Mapping[str, str] = os.environ,
                   clock: Callable[[], float] = time.monotonic) -> Progress:
        tty = stream.isatty() and environ.get("TERM") != "dumb"
        width = shutil.get_terminal_size().columns if tty else None
        return cls(stream, tty=tty, color=tty and not environ.get("NO_COLOR"), quiet=quiet,
                   clock=clock, width=width, tick=1.0)

    # -- events ----------------------------------------------------------------------------

    def state(self, name: str, state: str, done: int | None = None,
              total: int | None = None, created: str | None = None) -> None:
        """A batch's state (a JobState value or a word such as "submitting"), and how many of
        its requests are done, when the provider says (batchStats); `created`, the job's
        creation time (RFC 3339) as the provider says, is what its age counts from."""
        with self._lock:
            self._state(name, state, done, total, created)

    def _state(self, name: str, state: str, done: int | None, total: int | None,
               created: str | None) -> None:
        batch = self._batch(name, state)
        batch.state, batch.done, batch.total, batch.transfer = state, done, total, None
        if state.lower() in _TERMINAL:
            batch.finished = batch.finished if batch.finished is not None else self.clock()
        elif batch.finished is not None:       # submitted again (e.g. after expiring): a new job
            batch.started, batch.finished = self.clock(), None
        since = epoch(created)
        if since is not None and batch.finished is None:
            batch.started = self.clock() - max(0.0, self.wall() - since)
        if self.mode == Mode.PLAIN:
            key = state.lower()
            if self._printed.get(name) != key:
                self._printed[name] = key
                self._write(f"{name}: {key}{_counts(batch)} ({_elapsed(self._age(batch))})\n")
        elif self.mode == Mode.LIVE:
            self._redraw()

    def transfer(self, name: str, what: Transfer, sent: int, total_bytes: int) -> None:
        """Bytes of a batch's input uploaded, or of its results downloaded, so far."""
        with self._lock:
            self._transfer(name, what, sent, total_bytes)

    def _transfer(self, name: str, what: Transfer, sent: int, total_bytes: int) -> None:
        batch = self._batch(name, f"{what}ing")
        started = batch.transfer is None or batch.transfer[0] != what
        batch.transfer = (what, sent, total_bytes)
        if self.mode == Mode.PLAIN:
            size = _bytes(total_bytes) if total_bytes > 0 else "unknown size"
            if started:
                self._printed[name] = f"{what}ing"
                self._write(f"{name}: {what}ing {size}\n")
            if 0 < total_bytes <= sent and self._printed.get(name) != f"{what}ed":
                self._printed[name] = f"{what}ed"
                self._write(f"{name}: {what}ed {size} ({_elapsed(self._age(batch))})\n")
        elif self.mode == Mode.LIVE:
            self._redraw()

    def message(self, line: str) -> None:
        """Any other report line; in live mode it prints above the block."""
        if self.mode != Mode.QUIET:
            with self._lock:
                self._above(line)

    def error(self, line: str) -> None:
        """A line that must be seen: printed in every mode, quiet included."""
        with self._lock:
            self._above(line)

    def close(self) -> None:
        """Leaves the last state on screen and the cursor below it: the block is not drawn
        again, so what prints next (the run's summary) comes below it, once."""
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join()
        with self._lock:
            self._drawn = []
            self.mode = Mode.PLAIN if self.mode == Mode.LIVE else self.mode
            self.stream.flush()

    def _tick(self, every: float) -> None:
        while not self._stop.wait(every):
            with self._lock:
                if self._drawn:
                    self._redraw()

    # -- drawing ---------------------------------------------------------------------------

    def _batch(self, name: str, state: str) -> _Batch:
        if name not in self._batches:
            self._batches[name] = _Batch(state, self.clock())
        return self._batches[name]

    def _age(self, batch: _Batch) -> float:
        return (batch.finished if batch.finished is not None else self.clock()) - batch.started

    def _above(self, line: str) -> None:
        if self.mode == Mode.LIVE and self._drawn:
            self._write(_UP.format(n=len(self._drawn)) + _CLEAR + line + "\n"
                        + "".join(f"{d}\n" for d in self._drawn))
        else:
            self._write(line + "\n")

    def _redraw(self) -> None:
        lines = self._lines()
        if lines == self._drawn:
            return
        up = _UP.format(n=len(self._drawn)) + _CLEAR if self._drawn else ""
        self._write(up + "".join(f"{line}\n" for line in lines))
        self._drawn = lines

    def _lines(self) -> list[str]:
        width = max(len(n) for n in self._batches)
        return [self._line(name, width, batch) for name, batch in self._batches.items()]

    def _line(self, name: str, width: int, batch: _Batch) -> str:
        state = batch.state.lower()
        if batch.transfer is not None:
            what, sent, total = batch.transfer
            state = f"{what}ing"
            detail = f"{_bytes(sent)} / {_bytes(total)}" if total > 0 else _bytes(sent)
            if total > 0:
                detail += f"  {min(100, sent * 100 // total)}%"
        else:
            detail = _counts(batch).strip()
        head, word = f"  {name:<{width}}  ", f"{state:<11}"
        rest = f"  {detail:<24}  {_elapsed(self._age(batch)):>7}".rstrip()
        if self.width is not None:
            room = self.width - 1 - len(head) - len(word)
            if room < 0:
                return (head + word)[:self.width - 1]
            rest = rest[:room]
        if self.color and state in _COLORS:
            word = f"\x1b[{_COLORS[state]}m{state}{_RESET}" + " " * (len(word) - len(state))
        return (head + word + rest).rstrip()

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()


def _counts(batch: _Batch) -> str:
    if batch.total:
        return f" {batch.done or 0}/{batch.total}"
    return ""


def _elapsed(seconds: float) -> str:
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def _bytes(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    size, unit = n / 1024, "KiB"
    for bigger in ("MiB", "GiB"):
        if size < 1024:
            break
        size, unit = size / 1024, bigger
    return f"{size:.1f} {unit}"
