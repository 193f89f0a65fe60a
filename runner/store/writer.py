"""Result lines into packs, each put in the store whole once it is full.

A million results make a few dozen objects, not a million: lines are gathered into blocks of
about BLOCK_BYTES (the unit a lookup decompresses) and blocks into packs of about PACK_BYTES
(the unit written). Memory holds the pack being filled, compressed, and its index: it does not
grow with the number of results.

A PackBuilder makes a pack's bytes, no I/O: the PackWriter gives it lines and writes what it
makes; the join's worker processes (runner.joinlines) run a builder of their own and hand
the PackWriter whole packs. In the writer, compressing blocks and writing a full pack go to
two worker threads (zstd, sha256 and the network let go of the GIL), so the caller goes on
reading results meanwhile. Each is bounded: at most PENDING blocks wait to be compressed (the
caller waits past that) and one pack to be written, so memory holds about two packs
compressed and a few raw blocks, however fast the caller and however slow the store.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from itertools import chain, pairwise
from types import TracebackType

from .backends import Backend
from .names import pack_object
from .pack import CODEC_ZSTD, ENTRY, FAILED, MAX_BLOCKS, MAX_RAW, OK, compress, encode_head

PACK_BYTES = 32 << 20       # raw bytes of result lines in one pack, about: ~6 MB compressed
BLOCK_BYTES = 1 << 20       # raw bytes in one block, about
PENDING = 4                 # blocks waiting to be compressed, at most
# entries in one pack, at most: short results put many in a pack, and sorting them holds an
# object each (about 90 bytes): 12 MB at this count (a reader accepts up to pack.MAX_ENTRIES)
PACK_ENTRIES = 1 << 17
# a line's sort key: request hash, rank (OK for a success, FAILED for an error), sequence, then
# its place (block, offset, length); sorted, the last key of a request hash is the line that wins
_KEY = struct.Struct(">32sBIIII")

Sealed = tuple[bytes, int, bytes]       # a block as stored, its raw length, its sha256


class PackBuilder:
    """Lines in, whole packs out: `made(name, data)` is called with each pack as it fills,
    and for the last one by `end_pack`. Blocks are compressed by `compressor` when given (a
    thread, while the caller goes on), else as they fill.

    A request hash added twice keeps one line in a pack: a success over an error, else the
    later one (a follow-up batch's answer over the job's)."""

    def __init__(self, made: Callable[[str, bytes], None], pack_bytes: int = PACK_BYTES,
                 block_bytes: int = BLOCK_BYTES, compressor: Executor | None = None):
        self._made, self._compressor = made, compressor
        self.pack_bytes, self.block_bytes = pack_bytes, min(block_bytes, MAX_RAW // 2)
        self._start_pack()

    def _start_pack(self) -> None:
        self._blocks: list[Future[Sealed]] = []
        self._keys: list[bytes] = []
        self._block = bytearray()
        self._raw = 0

    def add(self, request_hash: str, line: bytes, ok: bool) -> None:
        """One result line (its newline optional) under its request hash; `ok` when it is a
        successful answer, False for a per-request error."""
        if line[-1:] == b"\n":
            line = line[:-1]
        if b"\n" in line:
            raise ValueError("a result line holds a newline")
        if len(line) >= MAX_RAW - self.block_bytes:
            raise ValueError(f"a result line of {len(line)} bytes: a pack holds lines of "
                             f"under {MAX_RAW - self.block_bytes}")
        if len(request_hash) != 71 or not request_hash.startswith("sha256:"):
            raise ValueError(f"not a sha256 request hash: {request_hash[:80]!r}")
        block, keys = self._block, self._keys
        offset = len(block)
        block += line
        block += b"\n"
        keys.append(_KEY.pack(bytes.fromhex(request_hash[7:]), OK if ok else FAILED,
                              len(keys), len(self._blocks), offset, len(line)))
        if len(block) >= self.block_bytes:
            self._end_block()
            if self._raw >= self.pack_bytes or len(self._blocks) >= MAX_BLOCKS:
                self.end_pack()
        if len(keys) >= PACK_ENTRIES:
            self.end_pack()

    def _end_block(self) -> None:
        raw = bytes(self._block)
        self._raw += len(raw)
        self._block = bytearray()
        if self._compressor is None:
            done: Future[Sealed] = Future()
            done.set_result(_seal(raw))
            self._blocks.append(done)
            return
        self._blocks.append(self._compressor.submit(_seal, raw))
        if len(self._blocks) > PENDING:
            self._blocks[-PENDING - 1].result()     # they finish in order: one worker

    def end_pack(self) -> None:
        """The pack being filled made now (when it holds any line), the next one begun."""
        if self._block:
            self._end_block()
        if not self._keys:
            return
        keys = self._keys
        keys.sort()
        index = bytearray()
        # of the keys of one request hash, the last wins (see _KEY); status is the rank
        for key, after in pairwise(chain(keys, [b""])):
            if after[:32] != key[:32]:
                request, rank, _, block, offset, length = _KEY.unpack(key)
                index += ENTRY.pack(request, block, offset, length, rank)
        self._keys = []
        sealed = [f.result() for f in self._blocks]
        name, head = encode_head(CODEC_ZSTD, [(len(s), raw, digest) for s, raw, digest in sealed],
                                 bytes(index))
        self._start_pack()
        self._made(name, b"".join([head, *(s for s, _, _ in sealed)]))


class PackWriter:
    """Gathers result lines under their request hashes (see PackBuilder); `close` writes
    what is left and returns the hashes of the packs written, in order (also in `packs` as
    they are written). Leaving a `with` block by an exception writes nothing more: the caller
    records none of it."""

    def __init__(self, backend: Backend, pack_bytes: int = PACK_BYTES,
                 block_bytes: int = BLOCK_BYTES):
        self._backend = backend
        self._compress = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store-zstd")
        self._uploads = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store-put")
        self._upload: Future[str] | None = None
        self.packs: list[str] = []
        self._builder = PackBuilder(self._write, pack_bytes, block_bytes, self._compress)

    def add(self, request_hash: str, line: bytes, ok: bool) -> None:
        """One result line (its newline optional) under its request hash; `ok` when it is a
        successful answer, False for a per-request error."""
        self._builder.add(request_hash, line, ok)

    def add_pack(self, name: str, data: bytes) -> None:
        """A whole pack a PackBuilder made elsewhere (runner.joinlines' workers), after the
        lines added before it: their pack ends here, so the packs keep the order of the
        lines."""
        self._builder.end_pack()
        self._write(name, data)

    def mark(self) -> int:
        """The packs written so far (what is being filled is ended first)."""
        self._builder.end_pack()
        self._wait()
        return len(self.packs)

    def rewind(self, mark: int) -> None:
        """The packs written since `mark`, and lines added since, left out of `packs`: they
        stay in the store unnamed, for `runner store gc`."""
        self._builder = PackBuilder(self._write, self._builder.pack_bytes,
                                    self._builder.block_bytes, self._compress)
        self._wait()
        del self.packs[mark:]

    def _write(self, name: str, data: bytes) -> None:
        self._wait()
        self._upload = self._uploads.submit(self._put, name, data)

    def _put(self, name: str, data: bytes) -> str:
        self._backend.write(pack_object(name), data)
        return name

    def _wait(self) -> None:
        if self._upload is not None:
            upload, self._upload = self._upload, None
            self.packs.append(upload.result())

    def close(self) -> list[str]:
        """Writes the pack being filled and waits for every write; the packs' hashes."""
        try:
            self._builder.end_pack()
            self._wait()
        finally:
            self._stop()
        return self.packs

    def _stop(self) -> None:
        for pool in (self._compress, self._uploads):
            pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> PackWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 tb: TracebackType | None) -> None:
        if kind is None:
            self.close()
        else:
            self._stop()


def _seal(raw: bytes) -> Sealed:
    """A block as stored, its raw length and the sha256 of what is stored."""
    stored = compress(raw)
    return stored, len(raw), hashlib.sha256(stored).digest()
