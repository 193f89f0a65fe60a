"""`runner apply DIR`: carry out the plan, showing it first and the progress while it runs."""

from __future__ import annotations

import os
from typing import TextIO

from .. import api
from ..actions import Plan
from ..apply import Options
from ..display import plan_text
from ..progress import Progress
from ..report import Report


def apply(directory: api.PathLike, options: Options, *, emulator: bool, lock_timeout: float,
          quiet: bool, out: TextIO, report: Report) -> None:
    """Applies with the plan printed before anything is done and progress on `out` (both
    silenced by `quiet`, errors aside); the batches left failed go to `report`. The last line
    says whether everything is up to date or which batches a later apply must collect."""
    progress = Progress.for_stream(out, quiet=quiet)

    def show(plan: Plan) -> None:
        print(plan_text(plan, os.fspath(directory)) + "\n", file=out, flush=True)

    try:
        outcome = api.apply(directory, emulator=emulator, options=options, progress=progress,
                            lock_timeout=lock_timeout, show_plan=None if quiet else show)
    finally:
        progress.close()
    report.batches_failed(outcome.failed)
    if outcome.pending:
        progress.message(f"{len(outcome.pending)} batch(es) still running: "
                         f"{', '.join(outcome.pending)}; run apply again to collect them.")
    elif not outcome.failed:
        progress.message("Apply complete: every declared output is up to date.")
