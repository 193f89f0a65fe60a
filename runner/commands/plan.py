"""`runner plan DIR`: what apply would do and why, with what the submissions may cost."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Literal, TextIO

from .. import api
from ..display import plan_json, plan_markdown, plan_text
from ..report import Report
from ..stream import Streams
from ..workspace import Workspace

Format = Literal["text", "json", "markdown"]


def plan(directory: api.PathLike, *, emulator: bool, max_attempts: int,
         resubmit: Iterable[str], count_tokens: bool, format: Format,
         detailed_exitcode: bool, out: TextIO, report: Report) -> None:
    """Plans and prices in one workspace and one connection (the provider counts the tokens
    when asked to), then prints the plan in `format`. What the plan found goes to `report`,
    which decides the exit code from it with `detailed_exitcode`."""
    ws = Workspace.open(Path(directory))
    for path in ws.skipped:
        print(f"note: {path.name}: skipped, not a batch-runner manifest", file=sys.stderr,
              flush=True)
    streams = Streams()             # each manifest rendered once: for its hashes and its price
    desired = ws.desired(streams, _warn)    # bad input fails before the provider is reached
    with api.connect(directory, emulator=emulator) as clients:
        found = api.plan_of(ws, desired, clients, max_attempts=max_attempts,
                            resubmit=resubmit)
        costs = api.costs_of(ws, found, counter=clients if count_tokens else None,
                             streams=streams)
    if format == "json":
        text = plan_json(found, costs)
    elif format == "markdown":
        text = plan_markdown(found, os.fspath(directory), costs)
    else:
        text = plan_text(found, os.fspath(directory), costs)
    print(text, file=out, flush=True)
    report.planned(changes=bool(found.changes), failing=[a.name for a in found.failing],
                   detailed_exitcode=detailed_exitcode)



def _warn(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
