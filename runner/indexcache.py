"""The reuse index of a set of packs, kept on this machine between runs (`.runner/index/`).

Merging the prefixes of a million successes into one sorted index (runner.reuse) takes about
half a second, before any request can be looked up: in every plan and every apply of a
directory whose lockfile names the same packs. Packs are named by their content, so the
index of a set of pack names never changes: it is written once under a digest of the names
and read back (10 bytes a result) by the runs after. The heads are still read each run (so
a pack gone from the store or damaged is still found and left out): only the merge is kept.

A file that does not read back whole and with its checksum is made again; a few files are
kept, the most recently used, so that a directory whose packs change does not gather them.
Nothing else depends on it: without it (a fresh clone, a read-only state folder) the index
is merged as before.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import struct
import sys
import tempfile
from array import array
from collections.abc import Sequence
from pathlib import Path

MAGIC = b"BRIDX1\n"
_COUNT = struct.Struct("<Q")
KEEP = 4                    # index files kept, the most recently used


def _names(packs: Sequence[str]) -> bytes:
    return "\n".join(packs).encode()


def _path(directory: Path, packs: Sequence[str]) -> Path:
    digest = hashlib.sha256(_names(packs)).hexdigest()
    return directory / f"{digest[:40]}.index"


def read(directory: Path, packs: Sequence[str]) -> tuple[array[int], array[int]] | None:
    """The merged index of `packs` (each key, and the number of its pack in `packs`), if kept
    and whole. Read straight into its arrays: no copy of the file is held besides them."""
    path = _path(directory, packs)
    keys, numbers = array("Q"), array("H")
    try:
        # not blocking: a fifo in its place would wait for a writer forever
        with open(os.open(path, os.O_RDONLY | os.O_NONBLOCK), "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                return None
            head = f.read(len(MAGIC) + _COUNT.size)
            if len(head) != len(MAGIC) + _COUNT.size or not head.startswith(MAGIC):
                return None
            (count,) = _COUNT.unpack_from(head, len(MAGIC))
            if os.fstat(f.fileno()).st_size != len(head) + 10 * count + 32:
                return None
            keys.fromfile(f, count)
            numbers.fromfile(f, count)
            digest = f.read(32)
        with contextlib.suppress(OSError):     # a read-only folder: kept all the same
            os.utime(path)  # used: the last to be removed
    except (OSError, EOFError):
        return None
    # the checksum covers the pack names: a file of another set under this set's name is
    # not read (the numbers would name other packs than those that hold the keys)
    check = hashlib.sha256(_names(packs))
    check.update(head)
    check.update(keys)
    check.update(numbers)
    if check.digest() != digest:
        return None
    if sys.byteorder != "little":
        keys.byteswap()
        numbers.byteswap()
    if numbers and max(numbers) >= len(packs):
        return None
    return keys, numbers


def write(directory: Path, packs: Sequence[str], keys: array[int], numbers: array[int]
          ) -> None:
    """Keeps the index of `packs` (atomically); a state folder that cannot be written is
    no error: the next run merges again. The least recently used files past KEEP go."""
    if keys.itemsize != 8 or numbers.itemsize != 2:     # the sizes the format says
        return
    arrays = [keys, numbers]
    if sys.byteorder != "little":
        arrays = [array(a.typecode, a) for a in arrays]
        for a in arrays:
            a.byteswap()
    parts: list[bytes | array[int]] = [MAGIC + _COUNT.pack(len(keys)), *arrays]
    check = hashlib.sha256(_names(packs))
    with contextlib.suppress(OSError):
        directory.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=directory, prefix=".index-")
        try:
            with os.fdopen(fd, "wb") as f:
                for part in parts:
                    f.write(part)
                    check.update(part)
                f.write(check.digest())
            os.replace(temp, _path(directory, packs))
        except OSError:
            os.unlink(temp)
            raise
        _prune(directory)


def _prune(directory: Path) -> None:
    files = sorted(directory.glob("*.index"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in files[KEEP:]:
        old.unlink(missing_ok=True)
