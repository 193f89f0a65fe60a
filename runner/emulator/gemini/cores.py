"""A big Gemini job's results produced across cores, in the order one process produces them.

Answering a request is Python work of some 20 µs, so a job of a million requests took the
emulator about 23 s on one core, time every client waits for alike. Above APART_BYTES of
input, the file is cut at line ends into chunks that worker processes answer, and the lines
come back in input order, written in pieces (runner.emulator.production.Lines): the
shuffle, counts and digest made of them, and so the results file, are byte for byte one
process's. A chunk's bad line
raises in the worker what one process raises (InvalidInput, numbered in the whole file).
"""

from __future__ import annotations

import dataclasses
import io
import multiprocessing
import os
import signal
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from runner.emulator.production import Lines, written
from runner.emulator.wire import may_hold_floats

if TYPE_CHECKING:
    from runner.emulator.gemini.results import Producer

APART_BYTES = 64 << 20      # below this, starting workers costs more than it saves
CHUNK_BYTES = 4 << 20


def across_cores(producer: Producer, source: Path) -> Iterator[Lines]:
    """The results of `source`'s lines, as Producer.file_results gives them, written, in
    order."""
    plain = dataclasses.replace(producer, order=None, stop=None)    # what a worker needs
    workers = max(1, min(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                         else os.cpu_count() or 1, 4))
    pool = ProcessPoolExecutor(workers, mp_context=_context(), initializer=_start)
    pending: deque[Future[list[Lines]]] = deque()
    try:
        for chunk in _chunks(source):
            pending.append(pool.submit(_answer, plain, source, *chunk))
            if len(pending) >= 2 * workers:
                yield from pending.popleft().result()
        while pending:
            yield from pending.popleft().result()
    finally:        # stopped (the emulator closing) or failed: no chunk runs on
        pool.shutdown(wait=True, cancel_futures=True)


def _context() -> multiprocessing.context.BaseContext:
    """The fork server the runner's render uses, preloading what it preloads: a process has
    one fork server, started with the first pool's preload, and another one (the main module,
    multiprocessing's default) left the render's workers unable to start in a process that
    had run this first. The module is named, not imported: the emulator imports nothing of
    the runner's core (its workers, in their own processes, may)."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["runner.parallel"])
    return context


def _chunks(source: Path) -> Iterator[tuple[int, int, int]]:
    """(start, length, number of its first line) of chunks of whole lines."""
    start, line = 0, 1
    with source.open("rb") as f:
        while True:
            f.seek(start)
            data = f.read(CHUNK_BYTES)
            if not data:
                return
            end = data.rfind(b"\n") + 1 if len(data) == CHUNK_BYTES else len(data)
            if end == 0:        # one line longer than a chunk: it is read whole
                end = len(data) + len(f.readline())
                data = b""
            yield start, end, line
            line += data.count(b"\n", 0, end) if data else 1
            start += end


def _start() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)    # Ctrl-C is the emulator's to handle


def _answer(producer: Producer, source: Path, start: int, length: int, first: int
            ) -> list[Lines]:
    """A chunk's results, written: a few pieces to send back rather than a tuple a line."""
    with source.open("rb") as f:
        f.seek(start)
        data = f.read(length)
    return list(written(producer.file_results(io.BytesIO(data), first, may_hold_floats(data))))
