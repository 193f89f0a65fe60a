"""`runner render DIR --name N`: the request lines one batch sends, as JSONL."""

from __future__ import annotations

from typing import TextIO

from .. import api


def render(directory: api.PathLike, name: str, *, limit: int | None, out: TextIO) -> None:
    """Writes the lines as they render, unflushed: a million-request batch goes to a pipe at
    the speed of rendering."""
    for i, line in enumerate(api.render(directory, name)):
        if limit is not None and i >= limit:
            break
        out.write(line + "\n")
