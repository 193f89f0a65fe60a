"""`runner validate DIR`: every manifest, data file and template checked offline."""

from __future__ import annotations

from pathlib import Path
from typing import TextIO

from .. import api
from ..workspace import Workspace


def validate(directory: api.PathLike, *, out: TextIO) -> None:
    """Renders every row of every batch (the only way to know a template works for each) and
    says how many requests each gives."""
    ws = Workspace.open(Path(directory))
    for path in ws.skipped:
        print(f"note: {path.name}: skipped, not a batch-runner manifest (no apiVersion: "
              "batch-runner/v1, kind: Batch)", file=out, flush=True)
    counts = api.validate_of(ws)
    for name, count in counts.items():
        print(f"ok  {name}  ({count} requests)", file=out, flush=True)
    print(f"{len(counts)} manifest(s) valid, {sum(counts.values())} requests.", file=out,
          flush=True)
