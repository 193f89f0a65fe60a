"""`runner forget DIR NAME…`: drop batches from the lockfile."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TextIO

from .. import api


def forget(directory: api.PathLike, names: Sequence[str], *, lock_timeout: float,
           out: TextIO) -> None:
    """Says what stays (the remote jobs and the outputs), so that forgetting is not mistaken
    for deleting."""
    api.forget(directory, names, lock_timeout=lock_timeout)
    print(f"forgot {', '.join(names)}: removed from the lockfile; remote jobs and outputs "
          "are untouched", file=out, flush=True)
