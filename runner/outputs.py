"""Results -> declared outputs, in input order, written atomically.

The provider does not promise result order, so results are joined back to the requests by key
through an index of byte offsets into the downloaded results file: only the offsets are held in
memory, never the responses. Every request ends in exactly one place: a success in the outputs,
a failure (or a result the provider never returned) in the errors file.
"""

from __future__ import annotations

import contextlib
import csv
import os
import sqlite3
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Iterator, Sequence

import orjson

from .errors import OutputError, ProviderError
from .fsutil import atomic_writer
from .hashing import file_digest, request_hash
from .manifest import Manifest
from .pricing import Usage
from .render import Renderer


@dataclass(frozen=True)
class Written:
    outputs: dict[str, str]     # path -> digest
    succeeded: int
    failed: int
    unmatched: int              # results whose key no request has
    usage: Usage                # the successful responses' usageMetadata, summed


class ResultIndex:
    """Finds each key's result line, holding a bounded amount in memory whatever the batch size.

    Results usually come back in (or near) input order, so a single results file is first read
    as a stream, with lines that arrive early kept (raw) in a small window. Once results prove
    too shuffled for the window, or when there are several files (a job, then follow-ups of its
    failures: a later file's line for a key wins), the lines are indexed by key in an on-disk
    SQLite table and read back by offset."""

    WINDOW = 10_000

    def __init__(self, results: Sequence[Path], workdir: Path):
        self._results = list(results)
        self._workdir = workdir
        self._files = [open(path, "rb") for path in results]
        self._early: dict[str, bytes] | None = {} if len(results) == 1 else None
        self._line = 0
        self._db: sqlite3.Connection | None = None
        self._db_path: Path | None = None
        self.size = 0       # keys indexed, once indexing was needed
        if self._early is None:
            self._index()

    def _index(self) -> None:
        self._workdir.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix="join-", suffix=".sqlite", dir=self._workdir)
        os.close(fd)
        self._db_path = Path(name)
        self._db = sqlite3.connect(name)
        self._db.executescript("PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;"
                               "CREATE TABLE r (key TEXT PRIMARY KEY, file INTEGER, off INTEGER)"
                               " WITHOUT ROWID;")
        with self._db:
            for number, path in enumerate(self._results):
                self._db.executemany("INSERT OR REPLACE INTO r VALUES (?, ?, ?)",
                                     self._scan(path, number))
        self.size = self._db.execute("SELECT count(*) FROM r").fetchone()[0]
        self._early = None

    @staticmethod
    def _key(raw: bytes, n: int) -> str | None:
        try:
            key = orjson.loads(raw).get("key")
        except (orjson.JSONDecodeError, AttributeError):
            raise ProviderError(f"results file line {n} is not a JSON object") from None
        return key if isinstance(key, str) else None

    def _scan(self, path: Path, number: int) -> Iterator[tuple[str, int, int]]:
        with open(path, "rb") as f:
            offset = 0
            for n, raw in enumerate(f, 1):
                if raw.strip():
                    key = self._key(raw, n)
                    if key is not None:
                        yield key, number, offset
                offset += len(raw)

    def lookup(self, key: str) -> dict[str, Any] | None:
        if self._early is not None:
            raw = self._early.pop(key, None)
            if raw is None:
                raw = self._stream_to(key)
            if self._early is not None:
                return None if raw is None else orjson.loads(raw)
        assert self._db is not None
        row = self._db.execute("SELECT file, off FROM r WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        f = self._files[row[0]]
        f.seek(row[1])
        value: dict[str, Any] = orjson.loads(f.readline())
        return value

    def _stream_to(self, key: str) -> bytes | None:
        """Reads on until `key`'s line, keeping the others; switches to the index when the
        window fills up."""
        assert self._early is not None
        f = self._files[0]
        for raw in f:
            self._line += 1
            if not raw.strip():
                continue
            found = self._key(raw, self._line)
            if found == key:
                return raw
            if found is not None:
                self._early[found] = raw
            if len(self._early) > self.WINDOW:
                self._index()
                return None
        return None

    def unmatched(self, matched: int) -> int:
        """Results no request asked for, once every request has been looked up."""
        if self._early is not None:
            rest = sum(1 for n, raw in enumerate(self._files[0], self._line + 1)
                       if raw.strip() and self._key(raw, n) is not None)
            return len(self._early) + rest
        return self.size - matched

    def __enter__(self) -> ResultIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for f in self._files:
            f.close()
        if self._db is not None:
            self._db.close()
        if self._db_path is not None:
            self._db_path.unlink(missing_ok=True)


def response_text(response: dict[str, Any]) -> tuple[str | None, str | None]:
    """(text, finish_reason) of the first candidate; thought parts are not part of the answer."""
    candidates = response.get("candidates") or []
    if not candidates:
        return None, None
    first = candidates[0]
    parts = (first.get("content") or {}).get("parts") or []
    text = "".join(p.get("text", "") for p in parts if not p.get("thought"))
    return text, first.get("finishReason")


def write_outputs(manifest: Manifest, results: Sequence[Path], workdir: Path) -> Written:
    """Every output of the manifest from its results files (see ResultIndex for the order)."""
    renderer = Renderer(manifest)
    matched = succeeded = failed = 0
    usage = Usage()
    with contextlib.ExitStack() as stack:
        index = stack.enter_context(ResultIndex(results, workdir))
        try:
            files = {o.rel: stack.enter_context(atomic_writer(o.path))
                     for o in manifest.declared_paths()}
        except OSError as e:
            raise OutputError(f"cannot write output: {e.strerror}: {e.filename}",
                              path=manifest.source) from None
        writers: list[tuple[IO[str], Any, list[Any]]] = []
        for out, columns in zip(manifest.outputs, renderer.columns):
            f = files[out.rel]
            if out.format == "csv":
                w = csv.writer(f, lineterminator="\n")
                w.writerow([name for name, _ in out.columns])
                writers.append((f, w, columns))
            else:
                writers.append((f, None, []))
        errors = files[manifest.errors.rel]
        for req in renderer.requests():
            result = index.lookup(req.key)
            rhash = request_hash(manifest.provider, manifest.model, req.request_bytes)
            if result is not None:
                matched += 1
            response = (result or {}).get("response")
            text, finish = response_text(response) if isinstance(response, dict) else (None, None)
            if result is None or "error" in result or text is None:
                failed += 1
                errors.write(_line({"key": req.key, "request_hash": rhash,
                                    "error": _error_of(result)}))
                continue
            succeeded += 1
            assert isinstance(response, dict)
            usage += Usage.of(response.get("usageMetadata") or {})
            record = {"key": req.key, "text": text, "finish_reason": finish,
                      "usage": response.get("usageMetadata", {}), "request_hash": rhash,
                      "response": response}
            ctx = {"key": req.key, "index": req.index, "row": req.row.data,
                   "vars": manifest.vars, "text": text, "finish_reason": finish,
                   "usage": record["usage"], "request_hash": rhash, "response": response}
            for f, w, cols in writers:
                if w is None:
                    f.write(_line(record))
                else:
                    w.writerow([renderer.render_column(c, ctx, req) for c in cols])
        unmatched = index.unmatched(matched)
    digests = {o.rel: file_digest(o.path) for o in manifest.declared_paths()}
    return Written(digests, succeeded, failed, unmatched, usage)


def _error_of(result: dict[str, Any] | None) -> dict[str, Any]:
    if result is None:
        return {"message": "the provider returned no result for this key"}
    if "error" in result:
        err = result["error"]
        return err if isinstance(err, dict) else {"message": str(err)}
    response = result.get("response") or {}
    block = (response.get("promptFeedback") or {}).get("blockReason")
    return {"message": f"response has no candidates (blockReason: {block or 'none given'})",
            "response": response}


def _line(value: dict[str, Any]) -> str:
    return orjson.dumps(value).decode() + "\n"
