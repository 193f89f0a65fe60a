"""Results -> declared outputs, in input order, written atomically: each output rendered
from the joined results (runner.join), successes to the outputs and failures, with results
the provider never returned, to the errors file; every line kept also goes to the result
store (`keep`)."""

from __future__ import annotations

import contextlib
import csv
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import orjson

from . import inorder, joinapart, parquet
from .aligned import AlignedJoin, Reused, align, answered_lines
from .answers import AnswerCheck, template_context
from .errors import InputsChanged, OutputError, StoreIncomplete
from .fsutil import atomic_writer
from .hashing import ALGORITHM, file_digest
from .join import Join, Joined, OutOfOrder, Spooled
from .joinlines import Counts, across_cores, format_lines, format_ranges
from .joinlines import Keep as Keep
from .manifest import Manifest
from .outputcheck import declared_answer
from .pieces import Pieces
from .providers.dialect import UNFINISHED, Answer
from .rejoin import ReuseJoin
from .render import Renderer
from .usage import Usage

FRESH_BYTES = 8 << 20   # the jobs' results of a batch that reused, kept alone up to this size


@dataclass(frozen=True)
class Written:
    outputs: dict[str, str]     # path -> digest
    succeeded: int
    failed: int
    unmatched: int              # results whose key no request has
    repeated: int               # results whose key came again in the same results file
    usage: Usage                # the answers' usage, summed (one failing its schema too)
    unfinished: int = 0         # of the failed: requests their job expired before running



def write_outputs(manifest: Manifest, results: Sequence[Path], workdir: Path,
                  sent: str | None = None, spooled: Spooled | None = None,
                  keep: Keep | None = None, stored: int | None = None,
                  reused: Reused | None = None) -> Written:
    """Every output of the manifest from its results files, in input order; a later results
    file's line for a key wins over an earlier one's (see Join). `sent` is the content hash of
    the requests that were submitted: outputs are built from those only, so when the files
    render other requests now (edited while apply waited) nothing is written. `spooled`:
    the requests' keys and hashes as this run rendered them, read instead of rendering.
    `keep` is given every result line joined to a request (for the result store), but the
    store's lines of `reused` when it names their packs (see `_fresh`). With
    `stored`, the results are the store's lines (see spill_stored), found by request hash,
    and at most `stored` requests may have none (those that failed when the outputs were
    first written): more is StoreIncomplete, and nothing is written. `reused`: the store's
    lines for the requests the batch reused, found by request hash where the results files
    have no line for a request's key: walked beside the requests when they come in input
    order (runner.aligned), else joined by hash (runner.rejoin)."""
    renderer = Renderer(manifest)
    succeeded = failed = unfinished = 0
    usage = Usage()
    with contextlib.ExitStack() as stack:
        try:
            files: dict[str, IO[Any]] = {o.rel: stack.enter_context(atomic_writer(
                o.path, "w" if o.format == "csv" else "wb"))
                for o in manifest.declared_paths()}
        except OSError as e:
            raise OutputError(f"cannot write output: {e.strerror}: {e.filename}",
                              path=manifest.source) from None
        workdir.mkdir(parents=True, exist_ok=True)
        temp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="join-",
                                                                    dir=workdir)))
        pieces = Pieces()       # the JSONL outputs, hashed as written
        tables: list[tuple[Any, list[Any]]] = []
        for out, columns in zip(manifest.outputs, renderer.columns):
            names = [name for name, _ in out.columns]
            if out.format == "csv":
                w = csv.writer(files[out.rel], lineterminator="\n")
                w.writerow(names)
                tables.append((w, columns))
            elif out.format == "parquet":   # written when the block ends: see runner.parquet
                tables.append((stack.enter_context(parquet.table(files[out.rel], out.path,
                                                                 names, temp)), columns))
            elif pieces.hexdigest(out.rel) is None:
                pieces.add(out.rel, files[out.rel])
        errors = files[manifest.errors.rel]
        rows_stamp = _stamp(manifest.rows)
        answers = AnswerCheck(manifest, declared_answer(renderer))
        fast = not tables and answers.declared is None      # JSONL only: runner.joinlines
        # a large batch's results in input order need no join by key (runner.inorder)
        chunks = inorder.chunks(manifest.provider, spooled.keys, results[0]) \
            if fast and spooled is not None and reused is None and stored is None \
            and len(results) == 1 and results[0].stat().st_size >= inorder.MIN_BYTES \
            and joinapart.possible() else None

        def by_key() -> Join:
            if reused is not None:
                return ReuseJoin(manifest, renderer, results, reused.lines(temp / "reused"),
                                 temp, spooled)
            return Join(manifest, renderer, results, temp, spooled, stored is not None)

        join: Join | inorder.Ordered | AlignedJoin | None = None
        if chunks is not None and spooled is not None:
            join = inorder.Ordered(chunks, spooled.content_hash)
        elif reused is not None and reused.store is not None and spooled is not None:
            join = align(reused.store, reused.packs, manifest.provider, spooled.keys, results,
                         temp / "aligned", spooled.content_hash)
            if join is not None and not fast:   # only the fast path can start again
                join = join.settled()
        if join is None:
            join = by_key()
        gaps = stored if stored is not None else -1
        fresh = _fresh(manifest, results, reused) if keep is not None else None
        if sent is not None and join.content_hash != sent:
            raise InputsChanged(manifest.name, manifest.source)
        rows = manifest.iter_rows() if tables else None
        dialect = renderer.dialect

        def formatted(join: Join | inorder.Ordered | AlignedJoin) -> Counts:
            # (a ReuseJoin's ranges are a Join's: the same files, read the same way)
            return (format_ranges(join.ranges(), manifest, pieces.write, errors.write, keep,
                                  temp, fresh)
                    if across_cores(join.requests) else
                    format_lines(dialect, join, pieces.write, errors.write, keep, fresh))

        if fast:
            mark = keep.mark() if keep is not None else 0
            try:
                counts = formatted(join)
            except OutOfOrder:      # written again, from the join by key
                pieces.restart()
                errors.seek(0)
                errors.truncate()
                if keep is not None:
                    keep.rewind(mark)
                join = by_key()
                counts = formatted(join)
            if stored is not None and counts.missing > stored:
                raise _incomplete(manifest)
            succeeded, failed, unfinished, _, usage = counts
        loads, dumps, read_result = orjson.loads, orjson.dumps, dialect.read_result
        unwire = dialect.key_of_wire if dialect.maps_keys else None
        joined: Iterable[Joined] = () if fast else join
        for index, key_json, rhash, line, parsed in joined:
            row = next(rows) if rows is not None else None
            if line is None and gaps >= 0:
                gaps -= 1
                if gaps < 0:
                    raise _incomplete(manifest)
            result = loads(line) if parsed is None and line is not None else parsed
            key = loads(key_json) if unwire is None else unwire(loads(key_json))
            read = read_result(result)
            if isinstance(read, Answer) and (tables or answers.declared is not None):
                value, problem = answers.read(read.text)
                if problem is not None:     # paid for all the same
                    usage, read = usage + read.usage, {"message": problem,
                                                       "response": read.response}
            if keep is not None and line is not None and (fresh is None or key_json in fresh):
                # kept as a failure when its answer is not the one its request declares (the
                # check reads the request alone, so it fails alike wherever it is reused):
                # runner.reuse reuses successes only, and this request must be sent again
                keep.add(rhash, line[:-1], isinstance(read, Answer))
            if not isinstance(read, Answer):
                failed += 1
                unfinished += read.get(UNFINISHED) is True
                errors.write(orjson.dumps({"key": key, "request_hash": rhash,
                                           "error": read}) + b"\n")
                continue
            succeeded += 1
            usage += read.usage
            if pieces.files:
                pieces.write(dumps({"key": key, "text": read.text,
                                    "finish_reason": read.finish_reason, "usage": read.usage_raw,
                                    "request_hash": rhash, "response": read.response}) + b"\n")
            if row is not None:
                ctx = template_context(manifest, key, index, row.data, read, rhash, value)
                for w, columns in tables:
                    w.writerow([renderer.render_column(c, ctx, row) for c in columns])
        pieces.flush()
        if rows is not None and _stamp(manifest.rows) != rows_stamp:
            # the columns read the rows a second time: they must be the rows just joined
            raise InputsChanged(manifest.name, manifest.source)
    digests = {o.rel: f"{ALGORITHM}:{digest}" if (digest := pieces.hexdigest(o.rel))
               else file_digest(o.path) for o in manifest.declared_paths()}
    return Written(digests, succeeded, failed, join.unmatched, join.repeated, usage,
                   unfinished)


def _fresh(manifest: Manifest, results: Sequence[Path], reused: Reused | None
           ) -> frozenset[bytes] | None:
    """The keys (their JSON) of the requests whose lines the store is to keep, when not all:
    those the jobs' results answered, for a batch that reused from the packs its record
    names (`reused.packs`). The store holds the reused lines in those packs already, and
    writing them again cost a pack of every line for each edit (a million lines, about
    140 MB, to upload to a shared store, for one row edited). None (keep every line) when the
    results are many (over FRESH_BYTES: a set of their keys would grow with the batch, and
    the lines sent are then the most of what is kept anyway), or do not parse cleanly (the
    join by key says what they mean)."""
    if reused is None or reused.store is None or not reused.packs:
        return None
    answered = answered_lines(manifest.provider, results, FRESH_BYTES)
    return frozenset(answered) if answered is not None else None


def _incomplete(manifest: Manifest) -> StoreIncomplete:
    return StoreIncomplete(f"{manifest.name}: the packs its lockfile entry names lack some of "
                           "its results", path=manifest.source)


def _stamp(path: Path | None) -> tuple[int, int, int] | None:
    """What changes when a file is written to: its size, mtime and inode."""
    if path is None:
        return None
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns, st.st_ino
