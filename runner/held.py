"""What a batch's request lines are, besides their bytes, found as they render: which the
result store holds (runner.reuse), taken aside; and each line's key and request hash, for
the join of the results (runner.join reads them instead of the input files).

Both cost a sha256 of each request's bytes, and the lookup a search of the index: about 12 µs
a line in the process that writes the shards, which made it the slowest step of planning a
big batch that reuses (12 s at a million rows), and hashing every request again the slowest
step of the join in that process. The lookup is a pure function of a block of lines
(`Lookup`, which pickles with its index), so the render workers run it on the blocks they
render (runner.parallel.render_looked), and this process only cuts each block into its runs
of lines held and lines to send, and writes the keys as they come.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from io import BufferedWriter
from pathlib import Path

from .fsutil import cannot_write
from .hashing import request_hash_head
from .providers.dialect import Framing
from .reuse import Reusable


@dataclass(frozen=True)
class Looked:
    """What a block of request lines holds: its runs as (end offset, held), in order, with
    how many lines the store holds and the numbers of the packs that hold them; and each
    line's `key\\thash\\n` (its key's JSON and its request hash), when asked for."""

    runs: tuple[tuple[int, bool], ...]
    count: int
    packs: frozenset[int]
    keys: bytes = b""


@dataclass(frozen=True)
class Lookup:
    """Which request lines of a block the index holds a success for (with no index, none),
    and with `keys`, each line's key and request hash."""

    head: bytes             # request_hash's bytes before each request's
    framing: Framing
    index: Reusable | None
    keys: bool = False

    @classmethod
    def of(cls, provider: str, model: str, framing: Framing, index: Reusable | None,
           keys: bool = False) -> Lookup:
        return cls(request_hash_head(provider, model), framing, index, keys)

    def __call__(self, lines: bytes) -> Looked:
        """The lookup of a block of request lines (each with its newline)."""
        if self.index is None and not self.keys:
            return Looked(((len(lines), False),) if lines else (), 0, frozenset())
        add, done = self.rows()
        split = self.framing.split
        for line in lines.split(b"\n")[:-1]:
            key_json, request = split(line)
            add(key_json, request, len(line) + 1)
        return done()

    def rows(self, digests: bytearray | None = None
             ) -> tuple[Callable[[bytes, bytes, int], None], Callable[[], Looked]]:
        """The lookup of a block a line at a time, as it renders: `add` takes each line's
        key's JSON, request bytes and length (its newline included), `done` gives the
        block's Looked. The renderer has the two parts of a line at hand, so a block's lines
        are not split again to find them (runner.parallel). With `digests`, each request's
        hash is appended to it (runner.blockcache keeps them)."""
        head, sha256 = self.head, hashlib.sha256
        take, done = self._hashed()
        keep = None if digests is None else digests.extend

        def add(key_json: bytes, request: bytes, size: int) -> None:
            digest = sha256(head + request + b"]").digest()     # runner.hashing.request_hash
            if keep is not None:
                keep(digest)
            take(key_json, digest, size)
        return add, done

    def known(self, lines: bytes, digests: bytes) -> Looked:
        """The lookup of a block of request lines whose requests' hashes are known, 32 bytes
        each in order (kept by runner.blockcache): no request is hashed again."""
        count = lines.count(b"\n")
        if len(digests) != 32 * count:
            return self(lines)
        take, done = self._hashed()
        split, keyed = self.framing.split, self.keys
        for i, line in enumerate(lines.split(b"\n")[:-1]):
            take(split(line)[0] if keyed else b"", digests[32 * i:32 * i + 32], len(line) + 1)
        return done()

    def _hashed(self) -> tuple[Callable[[bytes, bytes, int], None], Callable[[], Looked]]:
        """rows, for lines whose request hash is at hand: `take` takes each line's key's
        JSON, request hash (its 32 bytes) and length."""
        from_bytes = int.from_bytes
        find = self.index.finder() if self.index is not None else None
        keys: list[bytes] | None = [] if self.keys else None
        runs: list[tuple[int, bool]] = []
        packs: set[int] = set()
        count = end = 0
        held: bool | None = None      # whether the run of lines ending at `end` is held

        def take(key_json: bytes, digest: bytes, size: int) -> None:
            nonlocal count, end, held
            if keys is not None:
                keys.append(b"%s\tsha256:%s\n" % (key_json, digest.hex().encode()))
            # the index holds the first 8 bytes of each hash
            pack = None if find is None else find(from_bytes(digest[:8], "big"))
            now = pack is not None
            if pack is not None:
                count += 1
                packs.add(pack)
            if held is not None and held != now:
                runs.append((end, held))
            held = now
            end += size

        def done() -> Looked:
            if held is not None:
                runs.append((end, held))
            return Looked(tuple(runs), count, frozenset(packs),
                          b"" if keys is None else b"".join(keys))
        return take, done


class Held:
    """Request lines on their way to the shards, those the store holds taken aside: they go
    into the batch's hash (`skip`) and no further, and the packs that hold them are noted;
    every line's key and hash go to `keys` when the lookup makes them. Call it with lines
    to look them up here; `take` lines looked up elsewhere."""

    def __init__(self, lookup: Lookup, send: Callable[[bytes], None],
                 skip: Callable[[bytes], None], keys: Callable[[bytes], object] | None = None):
        self.lookup = lookup
        self._send, self._skip, self._keys = send, skip, keys
        self.count = 0
        self.packs: set[int] = set()

    def __call__(self, lines: bytes) -> None:
        self.take(lines, self.lookup(lines))

    def take(self, lines: bytes, looked: Looked) -> None:
        self.count += looked.count
        self.packs |= looked.packs
        if self._keys is not None:
            self._keys(looked.keys)
        start = 0
        for end, held in looked.runs:
            (self._skip if held else self._send)(lines[start:end])
            start = end


class KeysFile:
    """Every request line's `key\\thash\\n` of a batch, in input order, written as it renders
    into the folder of its input files: what the join of its results reads (runner.join),
    for the requests reused too, whose lines no input file holds."""

    def __init__(self, directory: Path):
        self._part = directory / ".keys.part"
        try:
            directory.mkdir(parents=True, exist_ok=True)
            self._sink: BufferedWriter | None = open(self._part, "wb")
        except OSError as e:
            raise cannot_write(self._part, "creating it, for the keys of a batch", e) from None

    def write(self, keys: bytes) -> None:
        assert self._sink is not None
        try:
            self._sink.write(keys)
        except OSError as e:
            raise cannot_write(self._part, "writing the keys of a batch", e) from None

    def finish(self, content_hash: str) -> Path:
        """The file, named for the batch's content hash."""
        assert self._sink is not None
        try:
            self._sink.close()
        except OSError as e:
            raise cannot_write(self._part, "writing the keys of a batch", e) from None
        self._sink = None
        path = self._part.with_name(f"{content_hash.split(':', 1)[-1]}.keys")
        try:
            os.replace(self._part, path)
        except OSError as e:
            raise cannot_write(path, "putting the keys of a batch in place", e) from None
        return path

    def abort(self) -> None:
        """Removes what was written: a render that fails leaves no keys file behind."""
        if self._sink is not None:
            with contextlib.suppress(OSError):     # a full disk fails the flush again
                self._sink.close()
            self._sink = None
        with contextlib.suppress(OSError):
            self._part.unlink(missing_ok=True)
