"""The create call's body, `{"requests":[LINE,LINE,...]}`, read from the input file as it is
sent.

A batch may hold 256 MB of requests, all of them in this one body (Anthropic takes no file),
so the body is never built in memory: the file's lines are already the request objects, one
a line, and become the array by turning each newline into a comma, chunk by chunk. Its length
is known beforehand, so it goes with a Content-Length rather than chunked. Iterating it again
reads the file again, so that a call sent twice (a 429, which the server refuses before
doing anything) sends the whole body each time.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

PREFIX = b'{"requests":['
SUFFIX = b"]}"
CHUNK = 1 << 20


class InlineBody:
    """An httpx request body (an Iterable of bytes, not an iterator: each pass reads the file
    anew) with its `length` in bytes."""

    def __init__(self, path: Path, chunk: int = CHUNK):
        self._path, self._chunk = path, chunk
        size = path.stat().st_size
        if size == 0:
            raise ValueError(f"{path} holds no requests: a Message Batch needs at least one")
        with open(path, "rb") as f:
            f.seek(-1, 2)
            newline = f.read(1) == b"\n"
        self.length = len(PREFIX) + size - newline + len(SUFFIX)

    def __iter__(self) -> Iterator[bytes]:
        yield PREFIX
        held = b""          # the last piece, whose final newline must not become a comma
        with open(self._path, "rb") as f:
            while chunk := f.read(self._chunk):
                if held:
                    yield held
                held = chunk.replace(b"\n", b",")
        yield held.removesuffix(b",") + SUFFIX
