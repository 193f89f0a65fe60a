"""What a killed run leaves behind, removed by the next run while it holds the run lock.

A SIGKILL (an OOM kill, a cancelled CI job) skips every cleanup: rendered input files, partial
downloads, the join's temp files and half-written temp files beside the outputs pile up. None
of them is ever read again: input files are rendered anew by the run that submits them, a
download starts over, and a temp file is only renamed by the run that wrote it.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from pathlib import Path

from .lockfile import Lock


def sweep(state_dir: Path, lock: Lock, written: Iterable[Path]) -> int:
    """Removes the leftovers under `state_dir` and the temp files beside each path of
    `written` (the outputs and the lockfile); returns how many were removed. Results that a
    lockfile record still names stay: the outputs may still need them."""
    removed = 0
    inputs = state_dir / "inputs"
    if inputs.is_dir():
        for path in inputs.iterdir():
            removed += _remove(path)
    named = {r.job.rsplit("/", 1)[-1] for e in lock.batches.values()
             for r in [*e.parts(), *e.retries] if r.job}
    results = state_dir / "results"
    if results.is_dir():
        for path in results.iterdir():
            stem = path.name.split(".", 1)[0]
            if path.is_dir() or path.suffix == ".part" or stem not in named:
                removed += _remove(path)
    for path in written:
        if path.parent.is_dir():
            for temp in path.parent.glob(f".{path.name}.*.tmp"):
                removed += _remove(temp)
    return removed


def _remove(path: Path) -> int:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
    return 1
