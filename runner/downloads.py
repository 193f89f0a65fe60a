"""Results downloaded from the provider, kept under `.runner/results/` until the outputs are
written from them.

A copy is used again only while its bytes are the ones received: each is kept with its sha256
beside it (`<job>.jsonl.sha256`, written after the file), so a copy cut short by a crash, edited,
or damaged on disk is fetched again rather than joined. The digest is kept with the job's tag,
which was checked against the record it was downloaded for: a lockfile edited to name another
batch's job does not get that batch's copy. A copy whose lines do not parse is
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


def keep(downloaded: Path, path: Path, tag: str) -> None:
    """Moves a finished download of the job tagged `tag` into place, then records its digest
    and tag."""
    os.replace(downloaded, path)
    write_text(_sidecar(path), f"{file_digest(path)} {tag}\n")


def cached(path: Path) -> str | None:
    """The tag of the job whose bytes `path` holds as downloaded, or None when it does not
    hold them."""
    try:
        digest, _, tag = _sidecar(path).read_text(encoding="utf-8").strip().partition(" ")
    except (OSError, UnicodeDecodeError):
        return None
    try:
        return tag if tag and file_digest(path) == digest else None
    except OSError:
        return None


def discard(path: Path) -> None:
    """Forgets a copy: the next run downloads the results again."""
    _sidecar(path).unlink(missing_ok=True)
    path.unlink(missing_ok=True)
