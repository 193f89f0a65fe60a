"""Which directory a project's local state belongs to, so that a copy is not taken for the
original.

`cp -r` of a project copies its lockfile, and with it the jobs the original is still waiting
on: `apply --prune` or a replacement in the copy would cancel and delete them, and the original
would then pay again. `.runner/workspace.json` records the directory it was made in (path,
device, inode); a directory whose record names another directory that still holds the same
record is a copy of it. The jobs its lockfile holds at that moment are the original's: the copy
leaves them alone (it may still wait on them and read their results, which costs nothing)
until asked to take them over by naming the original (`--take-over ORIGINAL`).

A fresh checkout has no `.runner/`: its lockfile is the committed record, and its jobs are its
own. A directory moved (same inode) stays the same project.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from .errors import RunnerError
from .fsutil import write_text
from .layout import STATE_DIR
from .lockfile import Lock

NAME = "workspace.json"


@dataclass(frozen=True)
class Identity:
    """This directory's record, and what it took over from the directory it was copied from."""

    original: str | None = None                 # the directory this one was copied from
    inherited: frozenset[str] = field(default=frozenset())     # that directory's jobs

    def guards(self, job: str | None) -> bool:
        """Whether `job` is the original's running work, to be left alone."""
        return job is not None and job in self.inherited

    def refusal(self, job: str) -> str:
        return (f"job {job} was recorded by {self.original}, of which this directory is a "
                f"copy; it is left alone (pass --take-over {self.original} to act on it)")


def _stamp(directory: Path) -> tuple[int, int]:
    st = os.stat(directory)
    return st.st_dev, st.st_ino


def _read(path: Path) -> dict[str, object] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _jobs(lock: Lock) -> set[str]:
    return {r.job for e in lock.batches.values() for r in [*e.parts(), *e.retries] if r.job}


def establish(directory: Path, lock: Lock, take_over: Path | None = None) -> Identity:
    """This directory's identity, recorded anew when it was copied or moved; called under
    the run lock. `take_over` names the original whose jobs this copy may now act on."""
    path = directory / STATE_DIR / NAME
    here = str(directory.resolve())
    dev, ino = _stamp(directory)
    saved = _read(path) or {}
    recorded = saved.get("original")
    original = recorded if isinstance(recorded, str) else None
    listed = saved.get("inherited")
    inherited = [j for j in listed if isinstance(j, str)] if isinstance(listed, list) else []
    if (saved.get("device"), saved.get("inode")) != (dev, ino) and saved:
        there = saved.get("path")
        if isinstance(there, str) and there != here and _same_record(Path(there), saved):
            original, inherited = there, sorted(_jobs(lock))      # a copy: found just now
        else:
            original, inherited = None, []      # moved, or the original is gone
    if take_over is not None:
        if original is None or take_over.resolve() != Path(original):
            raise RunnerError(f"--take-over {take_over}: this directory is not a copy of it"
                              + (f" (it is a copy of {original})" if original else ""),
                              path=directory)
        original, inherited = None, []
    record: dict[str, object] = {"path": here, "device": dev, "inode": ino}
    if original is not None:
        record.update(original=original, inherited=inherited)
    if record != saved:
        write_text(path, json.dumps(record, indent=1, sort_keys=True) + "\n")
    return Identity(original, frozenset(inherited if original is not None else ()))


def _same_record(directory: Path, saved: dict[str, object]) -> bool:
    """Whether `directory` is still the one that wrote `saved`: then whoever holds a copy of
    the record is a copy of that directory."""
    there = _read(directory / STATE_DIR / NAME)
    try:
        return there is not None and _stamp(directory) == (saved.get("device"),
                                                           saved.get("inode")) \
            and (there.get("device"), there.get("inode")) == _stamp(directory)
    except OSError:
        return False
