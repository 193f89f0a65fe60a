"""`runner cancel DIR NAME…`: cancel the running job of batches."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from .. import api


def cancel(directory: api.PathLike, names: Sequence[str], *, emulator: bool,
           lock_timeout: float, take_over: Path | None, out: TextIO) -> None:
    """Names each job cancelled, or says there was none: a batch that is not running is not
    an error, since cancelling twice must be safe."""
    jobs = api.cancel(directory, names, emulator=emulator, lock_timeout=lock_timeout,
                      take_over=take_over)
    for job in jobs:
        print(f"cancelled {job}", file=out, flush=True)
    if not jobs:
        print("nothing to cancel: no named batch has a running job", file=out, flush=True)
