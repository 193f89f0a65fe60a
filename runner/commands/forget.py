"""`runner forget DIR NAME…`: drop batches from the lockfile."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TextIO

from .. import api


def forget(directory: api.PathLike, names: Sequence[str], *, lock_timeout: float,
           out: TextIO) -> None:
    """Says what stays (the remote jobs and the outputs), so that forgetting is not mistaken
    for deleting."""
    dropped = api.forget(directory, names, lock_timeout=lock_timeout)
    if dropped:
        print(f"forgot {', '.join(dropped)}: removed from the lockfile; remote jobs and "
              "outputs are untouched", file=out, flush=True)
    gone = [name for name in dict.fromkeys(names) if name not in dropped]
    if gone:
        print(f"{', '.join(gone)}: not in the lockfile (already forgotten)", file=out,
              flush=True)
