"""Cutting a batch's request lines into shards that each fit one job.

A cut depends only on the lines before it (a shard closes when the next line would pass the
request cap or the file size limit), so the same requests always give the same shards, and an
edited row changes the hash of its own shard alone. Inserting or deleting rows moves every cut
after it: those shards are submitted again. A batch within the limits is one shard whose hash
is the batch's content hash, so splitting changes nothing for it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import IO, NamedTuple

from .errors import DataError
from .fsutil import cannot_write
from .hashing import ContentHasher
from .limits import Limits


class ShardHash(NamedTuple):
    """One shard as desired: the hash naming its job, and how many requests it holds."""

    content_hash: str
    requests: int


class Splitter:
    """Takes request lines (one or many at a time, each ending in a newline), hashes the whole
    stream and each shard, and with a `directory` writes each shard to `<hash>.jsonl` in it."""

    def __init__(self, provider: str, model: str, limits: Limits,
                 directory: Path | None = None, source: Path | None = None,
                 cuts: Sequence[int] = (), skips: bool = False):
        self._provider, self._model = provider, model
        self._source = source       # the manifest, named in errors
        self._limits = limits
        self._cuts = cuts           # requests per shard, to cut as an earlier render did
        self._skips = skips         # some lines may be skipped: no shard is the whole stream
        self._dir = directory
        self._whole = ContentHasher(provider, model)
        self._hasher: ContentHasher | None = None
        self._sink: IO[bytes] | None = None
        self._part = Path()             # the file _sink writes, until it is put in place
        self._count = self._size = 0
        self.shards: list[ShardHash] = []
        self.paths: list[Path] = []

    @property
    def content_hash(self) -> str:
        return self._whole.hexdigest()

    def add(self, lines: bytes) -> None:
        while lines:
            if self._hasher is None:
                self._open()
            cap = self._cuts[len(self.shards)] if len(self.shards) < len(self._cuts) \
                else self._limits.requests
            n = lines.count(b"\n")
            room = n if cap is None else cap - self._count
            space = self._limits.file_bytes - self._size
            if n <= room and len(lines) <= space:
                self._take(lines, n)
                return
            cut = self._cut(lines, room, space)
            if cut == 0:
                if self._count == 0:
                    size = lines.find(b"\n") + 1
                    raise DataError(f"a request renders to {size:,} bytes, more than one "
                                    f"job's input file may hold ({self._limits.file_bytes:,} "
                                    "bytes)", path=self._source)
            else:
                self._take(lines[:cut], lines.count(b"\n", 0, cut))
                lines = lines[cut:]
            self._close()

    def skip(self, lines: bytes) -> None:
        """Lines of the batch that no shard holds (requests reused, runner.reuse): in the
        batch's hash, in their place, and nowhere else."""
        assert self._skips
        self._whole.add(lines)

    @staticmethod
    def _cut(lines: bytes, room: int, space: int) -> int:
        """Bytes of the leading whole lines that fit both `room` lines and `space` bytes."""
        by_size = lines.rfind(b"\n", 0, space) + 1
        end = 0
        for _ in range(room):
            end = lines.find(b"\n", end) + 1
            if end == 0 or end >= by_size:
                return by_size
        return min(end, by_size)

    def _open(self) -> None:
        # the first shard is the batch's stream up to its cut: it is hashed once, by the
        # whole's hasher, which is copied at the cut (a batch that fits one job, the usual
        # case, is hashed once, not twice)
        self._hasher = self._whole if not self.shards and not self._skips else \
            ContentHasher(self._provider, self._model)
        self._count = self._size = 0
        if self._dir is not None:
            self._part = self._dir / f".shard-{len(self.shards)}.part"
            try:
                self._dir.mkdir(parents=True, exist_ok=True)
                self._sink = open(self._part, "wb")
            except OSError as e:
                raise cannot_write(self._part, "creating it, for the requests of a job",
                                   e) from None

    def _take(self, lines: bytes, n: int) -> None:
        assert self._hasher is not None
        self._whole.add(lines)
        if self._hasher is not self._whole:
            self._hasher.add(lines)
        self._count += n
        self._size += len(lines)
        if self._sink is not None:
            try:
                self._sink.write(lines)
            except OSError as e:
                raise cannot_write(self._part, "writing the requests of a job", e) from None

    def _close(self) -> None:
        assert self._hasher is not None
        hasher = self._hasher.copy() if self._hasher is self._whole else self._hasher
        shard = ShardHash(hasher.hexdigest(), self._count)
        self.shards.append(shard)
        if self._sink is not None and self._dir is not None:
            path = self._dir / f"{shard.content_hash.split(':', 1)[1]}.jsonl"
            try:
                self._sink.close()
            except OSError as e:
                raise cannot_write(self._part, "writing the requests of a job", e) from None
            try:
                os.replace(self._part, path)
            except OSError as e:
                raise cannot_write(path, "putting the requests of a job in place", e) from None
            self.paths.append(path)
            self._sink = None
        self._hasher = None

    def finish(self) -> list[ShardHash]:
        """The shards, the last one closed; a batch without requests is one empty shard."""
        if self._hasher is not None or not self.shards:
            if self._hasher is None:
                self._open()
            self._close()
        return self.shards

    def abort(self) -> None:
        """Removes whatever was written: a render that fails leaves no shard files behind."""
        if self._sink is not None:
            with contextlib.suppress(OSError):     # a full disk fails the flush again
                self._sink.close()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._part)
        for path in self.paths:
            path.unlink(missing_ok=True)
