"""`runner adopt DIR NAME JOB`: bind an existing remote job to a batch."""

from __future__ import annotations

from typing import TextIO

from .. import api


def adopt(directory: api.PathLike, name: str, job: str, *, force: bool, emulator: bool,
          lock_timeout: float, out: TextIO) -> None:
    """Says what the batch is bound to and in which state, since apply picks it up from
    there."""
    entry = api.adopt(directory, name, job, force=force, emulator=emulator,
                      lock_timeout=lock_timeout)
    print(f"{name}: bound to {entry.job} ({entry.state.lower()}); apply collects it", file=out,
          flush=True)
