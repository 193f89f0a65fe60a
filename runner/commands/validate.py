"""`runner validate DIR`: every manifest, data file and template checked offline."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

from .. import api
from ..models import offline_warning
from ..workspace import Workspace


def validate(directory: api.PathLike, *, out: TextIO) -> None:
    """Renders every row of every batch (the only way to know a template works for each) and
    says how many requests each gives."""
    ws = Workspace.open(Path(directory))
    for path in ws.skipped:
        print(f"note: {path.name}: skipped, not a batch-runner manifest (no apiVersion: "
              "batch-runner/v1, kind: Batch)", file=out, flush=True)
    counts = api.validate_of(ws)
    for m in ws.manifests:          # a warning: the provider's own list may hold it (plan)
        warning = offline_warning(m.provider, m.model)
        if warning:
            print(f"warning: {m.source}:{m.line_of(['spec', 'model'])}: spec.model: {warning}",
                  file=sys.stderr, flush=True)
    for name, count in counts.items():
        print(f"ok  {name}  ({count} requests)", file=out, flush=True)
    print(f"{len(counts)} manifest(s) valid, {sum(counts.values())} requests.", file=out,
          flush=True)
