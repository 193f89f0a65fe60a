"""A JSONL rows file cut into blocks of whole lines, for render workers to take one at a time.

A block knows the byte range it covers and the row index and line number it starts at, so
that a worker renders it on its own (runner.parallel). Where a block ends is decided by the
bytes around the cut, not by its distance from the start of the file: past half the block
size, a block ends after the first line whose bytes hash to a mark (as rsync and
backup tools cut files into chunks). So an edit that makes one row longer or shorter moves
the cuts of its own block and perhaps the next, and every later block holds the same bytes
as before: what lets a block rendered by an earlier run be read back instead of rendered
again (runner.blockcache).
"""

from __future__ import annotations

import zlib
from collections.abc import Generator
from pathlib import Path
from typing import NamedTuple

from .sources import blank, open_jsonl

_MARK = 63          # one line end in 64 may end a block, on average


class Block(NamedTuple):
    """A run of whole lines of a JSONL file, with what a worker needs to render it on its own:
    where it starts, and the row index and line number it starts at."""

    start: int          # byte offset of its first line
    size: int           # its bytes
    lines: int          # lines in it, blank ones included
    rows: int           # lines that are rows (not blank)
    first_row: int      # row index of its first row
    first_line: int     # 1-based line number of its first line


def jsonl_blocks(path: Path, size: int) -> Generator[Block, None, None]:
    """Cuts a JSONL file into blocks of half to a whole `size` bytes at line ends chosen by
    content (see the module docstring), counting lines and rows as it goes (in C: a block
    where every line starts with `{` has no blank line). From a line longer than `size` on,
    blocks are as big as needed to hold it."""
    buf = bytearray(size)
    start = index = have = 0   # `have`: the bytes from `start` on already in buf
    line = 1
    with open_jsonl(path) as f:
        while True:
            with memoryview(buf) as view:
                got = have + f.readinto(view[have:])
            if not got:
                return
            end = _cut(buf) if got == len(buf) else got
            if end == 0:        # no line end in a full buffer: one long line, read it whole
                buf.extend(bytes(len(buf)))
                have = got
                continue
            lines = buf.count(b"\n", 0, end) + (buf[end - 1] != 0x0A)
            rows = lines
            if (buf[0] == 0x7B) + buf.count(b"\n{", 0, end) != lines:
                pieces = bytes(buf[:end]).split(b"\n")[:lines]
                rows = sum(not blank(raw, n) for n, raw in enumerate(pieces, line))
            yield Block(start, end, lines, rows, index, line)
            start += end
            index += rows
            line += lines
            buf[:got - end] = buf[end:got]      # what was read past the cut starts the next
            have = got - end


def _cut(buf: bytearray) -> int:
    """Where a full buffer's block ends: after the first line of its second half whose bytes
    hash to the mark, or when none does, the one whose hash is least; when no line starts
    in its second half, after its last line end (0 when it has none)."""
    half = len(buf) // 2
    start = buf.rfind(b"\n", 0, half) + 1
    end = buf.find(b"\n", start)
    least, cut = 1 << 32, 0
    with memoryview(buf) as view:
        while end != -1:
            if start >= half:
                h = zlib.crc32(view[start:end])
                if h & _MARK == 0:
                    return end + 1
                if h < least:
                    least, cut = h, end + 1
            start, end = end + 1, buf.find(b"\n", end + 1)
    return cut or buf.rfind(b"\n") + 1
