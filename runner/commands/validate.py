"""`runner validate DIR`: every manifest, data file and template checked offline."""

from __future__ import annotations

from typing import TextIO

from .. import api


def validate(directory: api.PathLike, *, out: TextIO) -> None:
    """Renders every row of every batch (the only way to know a template works for each) and
    says how many requests each gives."""
    counts = api.validate(directory)
    for name, count in counts.items():
        print(f"ok  {name}  ({count} requests)", file=out, flush=True)
    print(f"{len(counts)} manifest(s) valid, {sum(counts.values())} requests.", file=out,
          flush=True)
