"""The join's two heavy steps (runner.join) across cores, for a large batch.

Spilling the results (a parse of every line, for its key) and joining the buckets are each
independent work a line or a bucket at a time, so two worker processes share each of them:

- the results are cut in two at a line end, and each half spills into a set of bucket files
  of its own while this process spills the requests; a bucket's lines are then its first
  set's, then its second's, which is the order one process spills them in (so a later line
  for a key still wins);
- the buckets are joined half by each worker, each writing a set of range files of its own;
  a range is then its files read together (runner.join.in_order places each record by its
  index, whichever file holds it).

Should a worker fail (a results line that does not parse, a lost worker), the step is done
again in this process, which raises what one process raises: a bad line's message names its
line, which a half that starts mid-file could not count.
"""

from __future__ import annotations

import multiprocessing
import signal
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

from .parallel import _context, _cpus

WORKERS = 2
_READ = 1 << 20
APART_BYTES = 32 << 20      # results spilled and joined by the workers from this size on
T = TypeVar("T")


class Piece(NamedTuple):
    """Part of a results file: its number among the results files (a follow-up's is
    higher), its path, and the bytes from `start` to `end` (None: to the end)."""

    number: int
    path: Path
    start: int = 0
    end: int | None = None


def possible() -> bool:
    """Whether there are cores to share the join with (never from a worker)."""
    return multiprocessing.parent_process() is None and _cpus() > 1


def halves(results: Sequence[Path]) -> list[list[Piece]]:
    """The results files cut in two at the line end nearest their middle byte."""
    sizes = [path.stat().st_size for path in results]
    middle = sum(sizes) // 2
    first: list[Piece] = []
    second: list[Piece] = []
    before = 0
    for number, (path, size) in enumerate(zip(results, sizes)):
        if before + size <= middle:
            first.append(Piece(number, path))
        elif before >= middle:
            second.append(Piece(number, path))
        else:
            cut = _line_end(path, middle - before)
            first.append(Piece(number, path, 0, cut))
            second.append(Piece(number, path, cut))
        before += size
    return [first, second]


def _line_end(path: Path, at: int) -> int:
    """The offset just past the first newline at or after `at` (the file's end if none)."""
    with open(path, "rb") as f:
        f.seek(at)
        while chunk := f.read(1 << 16):
            newline = chunk.find(b"\n")
            if newline >= 0:
                return at + newline + 1
            at += len(chunk)
    return at


def lines_of(path: Path, start: int = 0, end: int | None = None) -> Iterator[bytes]:
    """The lines of `path` from byte `start` to `end` (None: the end), which start and end
    at line ends: a Piece's, or a chunk's of runner.inorder."""
    left = end - start if end is not None else None
    with open(path, "rb", buffering=_READ) as f:
        f.seek(start)
        for line in f:
            if left is not None:
                if left <= 0:
                    return
                left -= len(line)
            yield line


class Pool:
    """Two worker processes for the join's steps."""

    def __init__(self) -> None:
        self._pool = ProcessPoolExecutor(WORKERS, mp_context=_context(), initializer=_start)

    def run(self, work: Callable[..., T], calls: Sequence[tuple[object, ...]]
            ) -> list[Future[T]]:
        """`work` begun in the workers, once for each tuple of arguments (a call no worker
        could start for is a failed future: the step runs here)."""
        futures: list[Future[T]] = []
        for args in calls:
            try:
                futures.append(self._pool.submit(work, *args))
            except Exception as e:  # noqa: BLE001 - a worker not started (an OSError...)
                failed: Future[T] = Future()
                failed.set_exception(e)
                futures.append(failed)
        return futures

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def open_pool() -> Pool | None:
    """The workers, or None where they cannot start."""
    try:
        return Pool()
    except (OSError, ValueError):    # no processes to be had: the join runs in this one
        return None


def done(futures: Sequence[Future[Any]]) -> bool:
    """Whether every step succeeded (each is waited for, so none runs on)."""
    ok = True
    for future in futures:
        try:
            future.result()
        except Exception:   # noqa: BLE001 - done again in this process, to raise it there
            ok = False
    return ok


def each(pool: Pool | None, work: Callable[..., T], calls: Sequence[tuple[object, ...]]
         ) -> list[T]:
    """`work` for each tuple of arguments, by the pool's workers when there is one; a call
    whose worker failed runs again here, which raises what it raises (each call must write
    only files of its own, so that running it again writes them again)."""
    futures = pool.run(work, calls) if pool is not None else [None] * len(calls)
    done: list[T] = []
    for args, future in zip(calls, futures):
        try:
            if future is not None:
                done.append(future.result())
                continue
        except Exception:   # noqa: BLE001 - run again here, to raise it here
            pass
        done.append(work(*args))
    return done


def remove(paths: Sequence[Path]) -> None:
    for path in paths:
        path.unlink(missing_ok=True)


def _start() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)    # Ctrl-C is for the parent to handle
