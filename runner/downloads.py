"""Results downloaded from the provider, kept under `.runner/results/` until the outputs are
written from them.

A copy is used again only while its bytes are the ones received: each is kept with its sha256
beside it (`<job>.jsonl.sha256`, written after the file), so a copy cut short by a crash, edited,
or damaged on disk is fetched again rather than joined. A copy whose lines do not parse is
thrown away by the caller (see `discard`), so the next run fetches it again instead of failing
on the same bytes for ever.
"""

from __future__ import annotations

import os
from pathlib import Path

from .fsutil import write_text
from .hashing import file_digest


def results_path(state_dir: Path, job: str) -> Path:
    return state_dir / "results" / f"{job.rsplit('/', 1)[-1]}.jsonl"


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def keep(downloaded: Path, path: Path) -> None:
    """Moves a finished download into place, then records its digest."""
    os.replace(downloaded, path)
    write_text(_sidecar(path), file_digest(path) + "\n")


def cached(path: Path) -> bool:
    """Whether `path` holds the bytes that were downloaded."""
    try:
        recorded = _sidecar(path).read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return False
    try:
        return file_digest(path) == recorded
    except OSError:
        return False


def discard(path: Path) -> None:
    """Forgets a copy: the next run downloads the results again."""
    _sidecar(path).unlink(missing_ok=True)
    path.unlink(missing_ok=True)
