"""Rendered blocks of a big rows file, kept on this machine between runs (`.runner/render/`).

After one row of a million is edited, `plan` and `apply` render the whole file again to find
what changed: about 17 µs a row of the render workers' time, the slowest step of both. A
block's request lines are a function of its bytes, of what the manifest says (templates,
vars, key, provider, model), of the code that renders and, when a template reads it, of the
index of the block's first row, and of whether it starts on line 1 (the one line a BOM may
start). So each block's lines and keys are kept under a digest of all of those, and a later
run reads them back instead of rendering the block. Blocks are cut by content
(runner.blocks): after an edit, the blocks around it are new, the others are found.

What makes a block's lines is in its name, so a kept block is never taken for another: a
template edited, the runner or Jinja upgraded, all give new names. A manifest whose templates
include other files (`{% include %}`, `import`, `extends`) keeps nothing, as the files a
render includes are known only as it renders. Each file carries its name, and its contents
their checksum; one that does not read back whole is rendered again, and rewritten. Nothing else
depends on it: a fresh clone, or a state folder that cannot be written, renders every block.
A manifest's folder keeps the blocks of its last whole render (`prune`), so it holds about
the rendered requests of its rows file, compressed.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import struct
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import jinja2
import orjson
import zstandard
from jinja2 import meta

from .bounds import MAX_REQUEST
from .hashing import canonical_bytes
from .render import Renderer

MAGIC = b"BRBLK2\n"
_HEAD = struct.Struct("<7s40sQQQQ")  # MAGIC, the name, rows, bytes of lines, keys, hashes
_SUFFIX = ".block"


class Kept(NamedTuple):
    """A block read back: its request lines, keys, and requests' hashes (32 bytes each, in
    order; none when the run that kept it did not hash them)."""

    data: bytes
    keys: list[str]
    digests: bytes


@dataclass(frozen=True)
class BlockCache:
    """The kept blocks of one manifest's rows file: where, and what their names digest
    besides each block's bytes."""

    directory: Path
    salt: bytes             # what the render reads besides a block's bytes
    by_index: bool          # whether a template reads `index`: the first row's is in the name

    @classmethod
    def of(cls, renderer: Renderer, folder: Path) -> BlockCache | None:
        """The manifest's kept blocks in `folder` (a folder a manifest), or None when its
        templates include other files."""
        trees = renderer.trees[:renderer.line_trees]
        if any(any(True for _ in meta.find_referenced_templates(t)) for t in trees):
            return None         # an include, import or extends
        reads_index = any("index" in meta.find_undeclared_variables(t) for t in trees)
        m = renderer.manifest
        said = canonical_bytes([m.document_hash, m.provider, m.model, m.endpoint, m.key,
                                m.request, m.vars])
        salt = b"\n".join([MAGIC, _code(), jinja2.__version__.encode(),
                           orjson.__version__.encode(), sys.version.encode(), said])
        return cls(folder / m.name, hashlib.sha256(salt).digest(), reads_index)

    def name(self, raw: bytes, first_row: int, first_line: int) -> str:
        """The name of the block of rows file bytes `raw` whose first row is `first_row` and
        first line `first_line`: line 1 alone may start with a BOM, so it is in the name."""
        h = hashlib.sha256(self.salt)
        if self.by_index:
            h.update(b"%d\n" % first_row)
        if first_line == 1:
            h.update(b"line 1\n")
        h.update(raw)
        return h.hexdigest()[:40]

    def get(self, name: str, rows: int) -> Kept | None:
        """Block `name`, if kept, whole, and of `rows` rows."""
        try:
            # not blocking: a fifo in its place would wait for a writer forever
            with open(os.open(self._path(name), os.O_RDONLY | os.O_NONBLOCK), "rb") as f:
                if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                    return None
                head = f.read(_HEAD.size)
                if len(head) != _HEAD.size:
                    return None
                magic, named, kept, size, keys_size, hashes = _HEAD.unpack(head)
                total = size + keys_size + hashes
                # a file of another block under this one's name is not read; a request is
                # at most MAX_REQUEST bytes, so a header saying more is damaged
                if magic != MAGIC or named != name.encode() or kept != rows or \
                        hashes not in (0, 32 * rows) or \
                        total > rows * 2 * MAX_REQUEST + (1 << 20):
                    return None
                packed = f.read()
            # a zstd block, of 3 bytes at least, makes 128 KiB at most: a frame saying more
            # than its bytes could make is damaged, and is not given the memory it asks for
            if zstandard.frame_content_size(packed) != total or \
                    total > len(packed) // 3 * (128 << 10):
                return None
            # the frame's checksum is checked as it is decompressed
            payload = zstandard.ZstdDecompressor().decompress(packed, max_output_size=total)
            keys = orjson.loads(payload[size:size + keys_size])
        except (OSError, zstandard.ZstdError, orjson.JSONDecodeError, MemoryError):
            return None
        data = payload[:size]
        if len(payload) != total or not isinstance(keys, list) or len(keys) != rows or \
                data.count(b"\n") != rows:
            return None
        return Kept(data, keys, payload[size + keys_size:])

    def put(self, name: str, data: bytes, keys: list[str], digests: bytes) -> None:
        """Keeps a block's request lines, keys and requests' hashes (atomically); a state
        folder that cannot be written is no error: the next run renders the block again."""
        keys_json = orjson.dumps(keys)
        head = _HEAD.pack(MAGIC, name.encode(), len(keys), len(data), len(keys_json),
                          len(digests))
        packed = zstandard.ZstdCompressor(level=1, write_checksum=True).compress(
            data + keys_json + digests)
        with contextlib.suppress(OSError):
            self.directory.mkdir(parents=True, exist_ok=True)
            fd, temp = tempfile.mkstemp(dir=self.directory, prefix=".block-")
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(head)
                    f.write(packed)
                os.replace(temp, self._path(name))
            except OSError:
                os.unlink(temp)
                raise

    def prune(self, names: set[str]) -> None:
        """Removes the kept blocks but `names` (a whole render's): a file edited over and
        over does not gather the blocks of its every version. One that cannot be removed
        (a folder in its place) does not keep the others."""
        try:
            paths = list(self.directory.iterdir())
        except OSError:
            return
        for path in paths:
            if path.suffix == _SUFFIX and path.stem not in names or \
                    path.name.startswith(".block-"):
                with contextlib.suppress(OSError):
                    path.unlink(missing_ok=True)

    def _path(self, name: str) -> Path:
        return self.directory / f"{name}{_SUFFIX}"


def _code() -> bytes:
    """A digest of the runner's own source: another version may render other bytes."""
    root = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        h.update(str(path.relative_to(root)).encode() + b"\0")
        h.update(path.read_bytes())
    return h.digest()
