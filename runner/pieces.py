"""The JSONL outputs written a piece at a time, each file's bytes hashed as they are written:
a million lines go out in fewer, larger writes, and the digests the lockfile records need no
second read of a gigabyte of output."""

from __future__ import annotations

import hashlib
from typing import IO, Any

PIECE = 1 << 20     # bytes a write


class Pieces:
    """Lines for files written a piece at a time (fewer, larger writes), each file's bytes
    hashed as written."""

    def __init__(self) -> None:
        self.files: list[tuple[IO[bytes], Any]] = []    # each file, with its hash
        self._names: list[str] = []
        self._piece: list[bytes] = []
        self._size = 0

    def add(self, name: str, f: IO[bytes]) -> None:
        self._names.append(name)
        self.files.append((f, hashlib.sha256()))

    def hexdigest(self, name: str) -> str | None:
        """The sha256 of the bytes written to the file added as `name`, if any was."""
        return self.files[self._names.index(name)][1].hexdigest() \
            if name in self._names else None

    def restart(self) -> None:
        """Every file empty again, as before the first line."""
        self._piece.clear()
        self._size = 0
        for i, (f, _) in enumerate(self.files):
            f.seek(0)
            f.truncate()
            self.files[i] = (f, hashlib.sha256())

    def write(self, data: bytes) -> None:
        self._piece.append(data)
        self._size += len(data)
        if self._size >= PIECE:
            self.flush()

    def flush(self) -> None:
        data = b"".join(self._piece)
        self._piece.clear()
        self._size = 0
        for f, h in self.files:
            f.write(data)
            h.update(data)
