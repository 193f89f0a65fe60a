"""The body of a create with inline requests, built on disk from the input lines.

A batch sent inline is up to 20 MB of requests: as a list of Python objects, then one JSON
text, it took ten times that in memory. The body is written to a temp file a line at a time,
each `{key, request}` input line as an InlinedRequest `{request, metadata: {key}}`, and sent
from there in pieces, with its length; each attempt reads it from its start.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

_PIECE = 1 << 16


class InlineBody:
    """`{"batch": {"displayName", "inputConfig": {"requests": {"requests": [...]}}}}`; iterate
    for its bytes (again from the start each time), `size` is its length."""

    def __init__(self, display_name: str, lines: Path):
        self._file = tempfile.TemporaryFile()
        head = orjson.dumps({"batch": {"displayName": display_name,
                                       "inputConfig": {"requests": {"requests": []}}}})
        before, after = head.rsplit(b"[]", 1)      # the list is the last value written
        write = self._file.write
        write(before + b"[")
        with open(lines, "rb") as f:
            for number, line in enumerate(f):
                if number:
                    write(b",")
                write(_inlined(line))
        write(b"]" + after)
        self.size = self._file.tell()

    def __iter__(self) -> Iterator[bytes]:
        self._file.seek(0)
        while piece := self._file.read(_PIECE):
            yield piece

    def close(self) -> None:
        self._file.close()


def _inlined(line: bytes) -> bytes:
    try:
        item = orjson.loads(line)
        return orjson.dumps({"request": item["request"], "metadata": {"key": item["key"]}})
    except (orjson.JSONDecodeError, TypeError):     # past orjson (an integer past 64 bits)
        item = json.loads(line)
        inlined: dict[str, Any] = {"request": item["request"], "metadata": {"key": item["key"]}}
        return json.dumps(inlined, ensure_ascii=False, separators=(",", ":")).encode()
