"""Producing a batch's results, whichever provider's: streamed, shuffled, off the request path.

Inputs can exceed a gigabyte, so results are written line by line as they are answered, never
held whole. When results are shuffled (no provider promises their order), they are shuffled
within windows of `WINDOW` lines so memory stays bounded. Producing runs at tens of thousands
of lines a second, so a big job's results take minutes: `Workers` runs that production in
background threads that the emulator can stop (`Interrupted`) when it shuts down, to resume
on a later read. What a line says is the provider's business; this module only writes them.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import logging
import random
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import IO

from runner.emulator.wire import JSON, dumps

logger = logging.getLogger(__name__)

WINDOW = 1000


class InvalidInput(Exception):
    """The input cannot be read as requests; the whole batch fails with this message."""


class Interrupted(Exception):
    """Production was stopped (the emulator is shutting down); nothing was written."""


@dataclasses.dataclass(frozen=True)
class Tally:
    """Counts per outcome, plus the size and base64 SHA-256 of what was written."""

    succeeded: int
    failed: int
    size: int
    sha256: str


@dataclasses.dataclass(frozen=True)
class Lines:
    """Result lines written as JSON already, each with its newline, and how many of them
    succeeded and failed: what a worker process hands back for a chunk of a big job
    (runner.emulator.gemini.cores), a few objects to pass instead of one a line."""

    data: bytes
    succeeded: int
    failed: int


def written(results: Iterable[tuple[JSON | bytes, bool]], size: int = WINDOW
            ) -> Iterator[Lines]:
    """Each (result, succeeded), a result given as bytes being its JSON already (without the
    newline), written in groups of `size` lines."""
    group: list[bytes] = []
    succeeded = failed = 0
    for result, ok in results:
        succeeded += ok
        failed += not ok
        group.append((result if type(result) is bytes else dumps(result)) + b"\n")
        if len(group) >= size:
            yield Lines(b"".join(group), succeeded, failed)
            group.clear()
            succeeded = failed = 0
    if group:
        yield Lines(b"".join(group), succeeded, failed)


def write_results(
    results: Iterable[tuple[JSON | bytes, bool]],
    target: IO[bytes],
    order: random.Random | None = None,
    stop: threading.Event | None = None,
) -> Tally:
    """Write each (result, succeeded) as a JSON line (see write_lines)."""
    return write_lines(written(results), target, order, stop)


def write_lines(
    pieces: Iterable[Lines],
    target: IO[bytes],
    order: random.Random | None = None,
    stop: threading.Event | None = None,
) -> Tally:
    """Write the lines, shuffled by `order` within windows of WINDOW lines; raise
    Interrupted, at a piece's or a window's end, once `stop` is set. Unshuffled, a piece is
    written as it comes: one write and one hash a piece, not a line."""
    succeeded = failed = size = 0
    digest = hashlib.sha256()
    window: list[bytes] = []

    def write(data: bytes) -> None:
        nonlocal size
        if stop is not None and stop.is_set():
            raise Interrupted
        digest.update(data)
        target.write(data)
        size += len(data)

    def flush(lines: list[bytes]) -> None:
        assert order is not None
        order.shuffle(lines)
        write(b"".join(lines))

    for piece in pieces:
        succeeded += piece.succeeded
        failed += piece.failed
        if order is None:
            write(piece.data)
            continue
        window += piece.data.split(b"\n")[:-1]
        while len(window) >= WINDOW:
            flush([line + b"\n" for line in window[:WINDOW]])
            del window[:WINDOW]
    if order is not None:
        flush([line + b"\n" for line in window])
    elif stop is not None and stop.is_set():
        raise Interrupted
    return Tally(succeeded, failed, size, base64.b64encode(digest.digest()).decode())


class Workers:
    """Background threads, at most one per key (a job), that `close` can stop and wait for."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._threads: dict[str, threading.Thread] = {}
        self._lock = threading.Lock()
        self.stopping = threading.Event()

    def start(self, key: str, work: Callable[[], None], what: str) -> None:
        """Run `work` in a thread unless one runs for `key` already, or we are closing. An
        Interrupted `work` ends quietly; any other failure is logged as `what` failing."""
        with self._lock:
            if key in self._threads or self.stopping.is_set():
                return
            thread = threading.Thread(
                target=self._run, args=(key, work, what), name=f"{self._name}-{key}", daemon=True
            )
            self._threads[key] = thread
            thread.start()

    def _run(self, key: str, work: Callable[[], None], what: str) -> None:
        try:
            work()
        except Interrupted:
            pass
        except Exception:
            logger.exception("%s failed", what)
        finally:
            with self._lock:
                self._threads.pop(key, None)

    def close(self) -> None:
        """Stop the work under way (it resumes on a later read) and wait for it."""
        self.stopping.set()
        with self._lock:
            threads = list(self._threads.values())
        for thread in threads:
            thread.join()
        self.stopping.clear()
