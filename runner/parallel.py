"""A JSONL rows file rendered in blocks: in this process, or across cores when it is large.

This is render_into's hot path. A large file is cut into blocks of whole lines, each knowing the
row index and line number it starts at (jsonl_blocks), so that a worker process renders
it on its own. Blocks come back in order and this process writes and hashes them: the bytes and
the content hash are the ones a single process gives. Workers send their keys back, and the
check for a repeated key runs here, over the whole file.

A worker never reports an error itself. When a block fails in a worker (a bad row, a template
error, a lost worker), this process renders on from that block, and so raises exactly what a
single process raises, with the file and line; a repeated key is named the same way.

Workers come from a fork server, which imports the main module in each of them as
multiprocessing does: a script that renders through runner.api must guard its entry point with
`if __name__ == "__main__":`, as any script using multiprocessing must.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
from collections import deque
from collections.abc import Callable, Generator
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import closing
from io import BufferedReader, BytesIO
from itertools import islice
from pathlib import Path
from typing import Any, NamedTuple, Protocol, TypeVar

from .blockcache import BlockCache
from .blocks import Block, jsonl_blocks
from .keyset import KeySet
from .manifest import Manifest
from .render import Renderer
from .sources import open_jsonl

Emit = Callable[[bytes], None]
T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


class Look(Protocol[T_co]):
    """Work a block's lines need besides their bytes (runner.held's lookups), done where the
    block is rendered, a line at a time: `rows` gives a function taking each line's key's
    JSON, request bytes and length (appending each request's hash to `digests` when given),
    and one giving what it made of them; `known`, the same of a block's lines whose hashes
    are known (a block kept by runner.blockcache), or if none are, hashed again."""

    def rows(self, digests: bytearray | None = None
             ) -> tuple[Callable[[bytes, bytes, int], None], Callable[[], T_co]]: ...

    def known(self, lines: bytes, digests: bytes) -> T_co: ...


class Parallel(NamedTuple):
    """When to render across cores, and in what pieces."""

    min_bytes: int = 32 << 20   # below this, starting workers (~0.5 s) costs more than it saves
    block_bytes: int = 1 << 20  # a block in flight costs about three times this in memory
    workers: int = 0            # 0: one per available CPU; 1: never across cores
    kept: Path | None = None    # where rendered blocks are kept between runs (blockcache)


PARALLEL = Parallel()
_CHUNK_LINES = 4096    # in this process: lines rendered between two writes


def render_jsonl(renderer: Renderer, path: Path, emit: Emit, parallel: Parallel = PARALLEL
                 ) -> int:
    """Renders the rows file `path` (JSONL) and passes its input lines to `emit` in order, many
    at a time. Returns the number of input lines."""
    return _render_file(renderer, path, lambda data, _: emit(data), None, parallel)


def render_looked(renderer: Renderer, path: Path, emit: Callable[[bytes, T], None],
                  look: Look[T], parallel: Parallel = PARALLEL) -> int:
    """render_jsonl, with each run of input lines given to `look` as it is rendered (in a
    worker, across cores: `look` must pickle) and what it made of them passed to `emit` with
    the lines: work a line needs besides its bytes (runner.held's lookups) done across
    cores."""
    return _render_file(renderer, path, emit, look, parallel)


def _render_file(renderer: Renderer, path: Path, emit: Callable[[bytes, Any], None],
                 look: Look[Any] | None, parallel: Parallel) -> int:
    # in a worker process (ours or a caller's), no pool inside the pool
    workers = 1 if multiprocessing.parent_process() else parallel.workers or _cpus()
    keys = KeySet()
    if workers > 1 and path.stat().st_size > parallel.min_bytes:
        kept = None if parallel.kept is None else BlockCache.of(renderer, parallel.kept)
        rows = _across_cores(renderer, path, emit, look, keys, parallel.block_bytes, workers,
                             kept)
    else:
        rows = _in_process(renderer, path, emit, look, keys)
    if rows == 0:   # the row reader reports an empty file, at spec.rows
        for _ in renderer.requests():
            pass
    renderer.check_keys(keys)
    return rows


def _in_process(renderer: Renderer, path: Path, emit: Callable[[bytes, Any], None],
                look: Look[Any] | None, keys: KeySet, start: int = 0, index: int = 0,
                line: int = 1) -> int:
    """Renders from byte `start` (line `line`, row `index`) to the end of the file. Returns the
    rows, each an input line."""
    rows = 0
    with open_jsonl(path) as f:
        f.seek(start)
        while True:
            out: list[bytes] = []
            chunk_keys: list[str] = []
            add, done = look.rows() if look is not None else (None, None)
            r, n = renderer.render_jsonl(islice(f, _CHUNK_LINES), index, line, out.append,
                                         chunk_keys.append, add)
            if n == 0:
                return rows
            if out:
                emit(b"".join(out), None if done is None else done())
            keys.update(chunk_keys)
            index, line, rows = index + r, line + n, rows + r


class _Done(NamedTuple):
    """A block, rendered."""

    data: bytes                 # its input lines, one a row
    rows: int
    keys: list[str]             # every row's key
    templates: frozenset[str]   # included templates seen so far by the one that rendered it
    looked: Any = None          # what the run's `look` made of the data, if it has one
    kept: str | None = None     # its name among the kept blocks, when they are kept


def _render_block(renderer: Renderer, f: BufferedReader, block: Block,
                  look: Look[Any] | None, kept: BlockCache | None = None) -> _Done:
    """A block rendered, or with `kept`, read back if an earlier run kept it, and kept."""
    f.seek(block.start)
    lines: Any = islice(f, block.lines)
    name = digests = None
    if kept is not None:
        raw = f.read(block.size)
        name = kept.name(raw, block.first_row, block.first_line)
        found = kept.get(name, block.rows)
        if found is not None:
            return _Done(found.data, block.rows, found.keys, renderer.used_templates,
                         None if look is None else look.known(found.data, found.digests), name)
        lines, digests = BytesIO(raw), bytearray()
    out: list[bytes] = []
    keys: list[str] = []
    add, done = look.rows(digests) if look is not None else (None, None)
    rows, _ = renderer.render_jsonl(lines, block.first_row, block.first_line, out.append,
                                    keys.append, add)
    data = b"".join(out)
    if kept is not None and name is not None and rows == block.rows:
        kept.put(name, data, keys, bytes(digests or b""))
    return _Done(data, rows, keys, renderer.used_templates, None if done is None else done(),
                 name)


def _across_cores(renderer: Renderer, path: Path, emit: Callable[[bytes, Any], None],
                  look: Look[Any] | None, keys: KeySet, block_bytes: int, workers: int,
                  kept: BlockCache | None) -> int:
    """Renders the file block by block with `workers` processes, writing blocks in order as
    they come back, or reading back those `kept` holds. Returns the rows, each an input
    line."""
    rows = 0
    failed: Block | None = None
    names: set[str] = set()
    pool = ProcessPoolExecutor(workers, _context(), initializer=_start,
                               initargs=(renderer.manifest, look, kept))
    started = threading.Event()
    threading.Thread(target=_warm_up, args=(pool, workers, started), daemon=True).start()
    with pool, open_jsonl(path) as f:
        def render_here(block: Block) -> _Done:
            return _render_block(renderer, f, block, look, kept)

        blocks = jsonl_blocks(path, block_bytes)
        with closing(_rendered(pool, blocks, render_here, started, 2 * workers)) as done:
            for block, result in done:
                # a worker failed, or read other rows than were counted (the file changed)
                if result is None or result.rows != block.rows:
                    failed = block
                    pool.shutdown(wait=False, cancel_futures=True)
                    break
                emit(result.data, result.looked)
                keys.update(result.keys)
                renderer.add_used_templates(result.templates)
                rows += result.rows
                if result.kept is not None:
                    names.add(result.kept)
    if kept is not None and failed is None:
        kept.prune(names)
    if failed is not None:
        rows += _in_process(renderer, path, emit, look, keys, failed.start,
                            failed.first_row, failed.first_line)
    return rows


def _warm_up(pool: ProcessPoolExecutor, workers: int, started: threading.Event) -> None:
    """Starts the workers. The first one waits for the fork server to import the renderer
    (about half a second), and this process renders blocks itself in the meantime."""
    if hasattr(signal, "pthread_sigmask"):  # started from here, the fork server inherits this
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})   # Ctrl-C is the parent's
    try:
        for future in [pool.submit(os.getpid) for _ in range(workers)]:
            future.result()
    except Exception:   # noqa: BLE001 - no workers, then: every block is rendered here
        return
    started.set()


def _rendered(pool: ProcessPoolExecutor, blocks: Generator[Block, None, None],
              render_here: Callable[[Block], _Done], started: threading.Event, window: int
              ) -> Generator[tuple[Block, _Done | None], None, None]:
    """Each block, rendered, in file order: here until the workers have started, then by them;
    None where a worker failed. At most `window` blocks are in flight, so that memory stays
    bounded whatever the size of the file."""
    pending: deque[tuple[Block, Future[_Done] | None]] = deque()
    with closing(blocks):
        for block in blocks:
            if not pending and not started.is_set():
                yield block, render_here(block)
                continue
            try:
                pending.append((block, pool.submit(_work, block)))
            except Exception:   # noqa: BLE001 - the pool broke: this block is rendered here
                pending.append((block, None))
            if len(pending) >= window:
                yield _result(*pending.popleft())
    while pending:
        yield _result(*pending.popleft())


def _result(block: Block, future: Future[_Done] | None) -> tuple[Block, _Done | None]:
    if future is None:
        return block, None
    try:
        return block, future.result()
    except Exception:   # noqa: BLE001 - rendered again here, to raise it with its place
        return block, None


def _context() -> multiprocessing.context.BaseContext:
    """forkserver, not fork: the caller may have threads (the emulator serves from one), and a
    forked copy of a process with threads can hang on a lock one of them held."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])   # workers start with the renderer imported
    return context


def _cpus() -> int:
    """CPUs this process may use, up to 8: each worker costs ~50 MB, and this process, which
    writes and hashes every line, would not keep up with many more."""
    if hasattr(os, "sched_getaffinity"):
        return min(len(os.sched_getaffinity(0)), 8)
    return min(os.cpu_count() or 1, 8)


# -- in a worker process ----------------------------------------------------------------------

_worker: tuple[Renderer, BufferedReader, Look[Any] | None, BlockCache | None] | None = None


def _start(manifest: Manifest, look: Look[Any] | None, kept: BlockCache | None) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)    # Ctrl-C is for the parent to handle
    global _worker
    assert manifest.rows is not None
    _worker = (Renderer(manifest), open_jsonl(manifest.rows), look, kept)


def _work(block: Block) -> _Done:
    assert _worker is not None
    renderer, f, look, kept = _worker
    return _render_block(renderer, f, block, look, kept)
