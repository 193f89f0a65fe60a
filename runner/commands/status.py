"""`runner status DIR`: each batch on two axes, sync and health, with what it used and cost."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TextIO

from .. import api
from ..display import status_text
from ..workspace import Workspace


def status(directory: api.PathLike, *, emulator: bool, as_json: bool, out: TextIO) -> None:
    """Prints a table, or with `as_json` a list of objects each with its `spent` (null until
    the batch finished), from one reading of the workspace."""
    ws = Workspace.open(Path(directory))
    desired = ws.desired()          # bad input fails before the provider is reached
    with api.connect(directory, emulator=emulator) as clients:
        rows = api.status_of(ws, desired, clients)
    spent = api.spending_of(ws.lock)
    if as_json:
        text = json.dumps([dict(r.to_dict(), spent=spent[r.name].to_dict()
                                if r.name in spent else None) for r in rows], indent=2)
    else:
        text = status_text(rows, spent)
    print(text, file=out, flush=True)
