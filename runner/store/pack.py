"""The bytes of one pack: its head, which names and indexes it, and its blocks. No I/O here.

The layout is in the package docstring (runner.store). What this module guarantees: a head
is accepted only when its sha256 is the pack's name and its sizes are consistent (blocks laid
end to end after it, none over MAX_RAW), and a block only when its sha256 is the one the head
gives. Since the head holds every block's digest, the name vouches for every byte of the pack,
and any part can be checked without reading the rest.

The entries are not checked one by one when a head is read (half a second for a large pack,
and a lookup reads every head): an entry pointing past the last block or outside its block
is found when its line is read (runner.store.reader), and an index out of order only makes
`find` miss. Only a faulty or hostile writer makes either, and such a writer can as well name
any result it likes: the name vouches for the bytes, the lockfile for the pack.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import struct
import sys
import zlib
from array import array
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Sequence
from typing import NamedTuple

import zstandard

MAGIC = b"\x89BRPACK\n"     # a high byte and a newline, as PNG: a copy mangled as text shows
VERSION = 1
CODEC_ZLIB = 1               # packs written before zstd: read, never written
CODEC_ZSTD = 2
CODECS = (CODEC_ZLIB, CODEC_ZSTD)
OK, FAILED = 1, 0           # an entry's status: a successful result, or a per-request error
_ONLY_OK = bytes(int(status == OK) for status in range(256))   # a status byte as 1 if OK

FIXED = struct.Struct("<8sHBBIII")  # magic, version, codec, flags, head length, blocks, entries
BLOCK = struct.Struct("<QII32s")    # offset in the pack, stored length, raw length, sha256
ENTRY = struct.Struct("<32sIIIB")   # request hash, block, offset, length (in the raw block), status
# what a pack may hold, at most: the writer ends a pack there, and a reader refuses a head
# that claims more, so a hostile head cannot make it read more than about 50 MB
MAX_BLOCKS = 1 << 16
MAX_ENTRIES = 1 << 20
# a block's bytes once decompressed, at most: what a hostile head cannot make a reader hold
# (a block holds about 1 MB, more only for one long line: the writer refuses a longer one)
MAX_RAW = 1 << 28
LEVEL = 1                   # zstd's fastest but one (see runner.store's docstring)


class Damaged(Exception):
    """What is wrong with a pack's bytes (runner.store.reader makes it a PackDamaged)."""


class Block(NamedTuple):
    offset: int
    stored: int
    raw: int
    digest: bytes


class Entry(NamedTuple):
    request: bytes      # the request hash's 32 bytes
    block: int
    offset: int
    length: int
    status: int


def raw_hash(request_hash: str) -> bytes:
    """The 32 bytes of a `sha256:<hex>` request hash."""
    algorithm, _, hexdigest = request_hash.partition(":")
    if algorithm != "sha256" or len(hexdigest) != 64:
        raise ValueError(f"not a sha256 hash: {request_hash[:80]!r}")
    return bytes.fromhex(hexdigest)


def text_hash(raw: bytes) -> str:
    return "sha256:" + raw.hex()


def compress(raw: bytes) -> bytes:
    """A block's stored bytes (CODEC_ZSTD). A compressor is not safe to share between
    threads, and one made per block of a megabyte costs nothing against the block."""
    return zstandard.ZstdCompressor(level=LEVEL).compress(raw)


def encode_head(codec: int, blocks: Sequence[tuple[int, int, bytes]],
                index: bytes) -> tuple[str, bytes]:
    """The head of a pack whose `blocks` (stored length, raw length, sha256) follow it in
    order, with its `index` of entries packed by ENTRY, sorted; returns (name, head)."""
    count = len(index) // ENTRY.size
    length = FIXED.size + BLOCK.size * len(blocks) + len(index)
    table = []
    offset = length
    for stored, raw, digest in blocks:
        table.append(BLOCK.pack(offset, stored, raw, digest))
        offset += stored
    head = b"".join([FIXED.pack(MAGIC, VERSION, codec, 0, length, len(blocks), count),
                     *table, index])
    return "sha256:" + hashlib.sha256(head).hexdigest(), head


def head_length(prefix: bytes) -> int:
    """The length of the head that starts with `prefix` (at least FIXED.size bytes)."""
    if len(prefix) < FIXED.size:
        raise Damaged(f"{len(prefix)} bytes, shorter than a pack's head")
    magic, version, codec, _, length, blocks, entries = FIXED.unpack_from(prefix)
    if magic != MAGIC:
        raise Damaged("not a pack (its first bytes are not the pack's magic)")
    if version != VERSION or codec not in CODECS:
        raise Damaged(f"pack format {version} (codec {codec}) is not one this batch-runner "
                      f"reads ({VERSION}); a newer batch-runner may have written it")
    if blocks > MAX_BLOCKS or entries > MAX_ENTRIES \
            or length != FIXED.size + BLOCK.size * blocks + ENTRY.size * entries:
        raise Damaged("its head's sizes do not add up")
    return int(length)


class Head:
    """A verified head: the pack's blocks and its index, sorted by request hash. The
    name vouches for the head; the head for each block (see `open_block`)."""

    def __init__(self, name: str, data: bytes):
        length = head_length(data)
        if len(data) != length:
            raise Damaged(f"its head is {len(data)} bytes, not {length}")
        if "sha256:" + hashlib.sha256(data).hexdigest() != name:
            raise Damaged("its head does not hash to its name")
        self.name = name
        _, _, self.codec, _, _, count, entries = FIXED.unpack_from(data)
        self.blocks = [Block(*b) for b in BLOCK.iter_unpack(
            data[FIXED.size:FIXED.size + BLOCK.size * count])]
        self._index = memoryview(data)[FIXED.size + BLOCK.size * count:]
        self.count = entries
        # what the hash does not rule out: a head written by a faulty runner
        offset = length
        for b in self.blocks:
            if b.offset != offset:
                raise Damaged("its blocks are not laid end to end")
            if b.raw > MAX_RAW:
                raise Damaged(f"a block of {b.raw} bytes, over the {MAX_RAW} a pack holds")
            offset += b.stored
        self.size = offset      # of the whole pack, in bytes

    def entries(self) -> Iterator[tuple[bytes, int, int, int, int]]:
        """(request hash, block, offset, length, status) in request hash order, as plain
        tuples: a million are read to rebuild a large batch's outputs."""
        return ENTRY.iter_unpack(self._index)

    def success_prefixes(self) -> array[int]:
        """The first 8 bytes of each success's request hash, as big-endian integers, in index
        order: what the reuse index keeps (runner.reuse)."""
        prefixes = self._column(range(8))
        successes = self._successes()
        if successes.count(1) != self.count:
            prefixes = array("Q", itertools.compress(prefixes, successes))
        return prefixes

    def added_order(self, first: int | None = None, successes: bool = False) -> array[int]:
        """The places of the entries in the order their lines were added: by block, then by
        offset in the block (runner.aligned reads a pack this way); the `first` of them
        alone when given (without sorting them all); with `successes`, those alone."""
        where = self._column((35, 34, 33, 32, 39, 38, 37, 36))  # block << 32 | offset
        places: Iterable[int] = range(self.count)
        if successes:
            places = itertools.compress(places, self._successes())
        if first is not None:
            return array("I", heapq.nsmallest(first, places, key=where.__getitem__))
        return array("I", sorted(places, key=where.__getitem__))

    def _successes(self) -> bytes:
        """A byte an entry, in index order: 1 for a success, 0 for an error."""
        return bytes(self._index[ENTRY.size - 1::ENTRY.size]).translate(_ONLY_OK)

    def _column(self, at: Iterable[int]) -> array[int]:
        """An 8-byte integer of each entry, made of its bytes at `at` (most significant
        first), in index order. Gathered a byte column at a time by slicing, in C:
        unpacking a million entries one by one took a second."""
        index = bytes(self._index)
        column = bytearray(8 * self.count)
        for byte, place in enumerate(at):
            column[byte::8] = index[place::ENTRY.size]
        values = array("Q")
        values.frombytes(column)
        if sys.byteorder == "little":
            values.byteswap()
        return values

    def entry(self, i: int) -> tuple[bytes, int, int, int, int]:
        """The i-th entry of the index, as a plain tuple."""
        return ENTRY.unpack_from(self._index, i * ENTRY.size)

    def find(self, request: bytes) -> Entry | None:
        """The entry of a request hash (its 32 bytes), by binary search."""
        i = bisect_left(_Keys(self._index, self.count), request)
        if i < self.count:
            entry = Entry(*ENTRY.unpack_from(self._index, i * ENTRY.size))
            if entry.request == request:
                return entry
        return None


class _Keys(Sequence[bytes]):
    """The request hashes of a packed index, as a sequence for bisect."""

    def __init__(self, index: memoryview, count: int):
        self._index, self._count = index, count

    def __len__(self) -> int:
        return self._count

    def __getitem__(self, i: int) -> bytes:  # type: ignore[override]
        start = i * ENTRY.size
        return bytes(self._index[start:start + 32])


def open_block(block: Block, stored: bytes, codec: int = CODEC_ZSTD) -> bytes:
    """A block's raw bytes from its stored ones, checked against the head's digest."""
    if len(stored) != block.stored:
        raise Damaged(f"a block is {len(stored)} bytes, not {block.stored} (truncated?)")
    if hashlib.sha256(stored).digest() != block.digest:
        raise Damaged("a block does not hash to the digest its head gives")
    # never more than the head says, plus one byte to tell a longer block: a small block
    # that decompresses to gigabytes (a zip bomb) is refused, not held
    try:
        raw, ended = (_unzlib if codec == CODEC_ZLIB else _unzstd)(stored, block.raw + 1)
    except (zlib.error, zstandard.ZstdError) as e:  # only a faulty writer: the digest matched
        raise Damaged(f"a block does not decompress: {e}") from None
    if len(raw) != block.raw or not ended:
        raise Damaged("a block does not decompress to its stated length")
    return raw


def _unzlib(stored: bytes, most: int) -> tuple[bytes, bool]:
    stream = zlib.decompressobj()
    raw = stream.decompress(stored, most)
    return raw, stream.eof


def _unzstd(stored: bytes, most: int) -> tuple[bytes, bool]:
    """At most `most` bytes, read from a stream: zstd's one-shot call allocates whatever
    size the frame's header claims, which is the writer's to choose."""
    reader = zstandard.ZstdDecompressor().stream_reader(stored)
    parts: list[bytes] = []
    got = 0
    while got < most and (part := reader.read(most - got)):
        parts.append(part)
        got += len(part)
    return b"".join(parts), got < most
