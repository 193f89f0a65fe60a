"""File digests remembered by (size, mtime, ctime, inode), as git's index and DVC's state do.

An unchanged plan over a million-row data file and its outputs would otherwise read gigabytes
to learn that nothing changed. The cache lives under `.runner/` (local, never committed); a
fresh clone simply hashes once. A file rewritten within the same mtime tick with the same size
would be missed, so entries younger than two seconds are not trusted.
"""

from __future__ import annotations

import json
import os
import stat as stat_mode
import time
from pathlib import Path

from .errors import OutputError
from .fsutil import write_text
from .hashing import file_digest

_TRUST_AFTER_NS = 2_000_000_000


def stamp(st: os.stat_result) -> list[int]:
    """What identifies a version of a file without reading it. The ctime and inode catch an
    edit that kept the size and had its mtime put back (touch -r, some editors and tools)."""
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def settled(st: os.stat_result) -> bool:
    """Whether a file is old enough for its stamp to be trusted: one rewritten within the
    same timestamp tick with the same size would otherwise keep its stamp."""
    return time.time_ns() - max(st.st_mtime_ns, st.st_ctime_ns) > _TRUST_AFTER_NS


class DigestCache:
    def __init__(self, path: Path | None):
        self._path = path
        self._entries: dict[str, list[object]] = {}
        self._dirty = False
        if path is not None:
            try:
                loaded = json.loads(path.read_text(encoding="utf-8"))
                if isinstance(loaded, dict):
                    self._entries = loaded
            except (OSError, ValueError):
                pass

    def digest(self, path: Path, st: os.stat_result | None = None) -> str:
        """The file's sha256; `st` is its stat if the caller has it. Keyed by the absolute
        path as given: the stamp says which file it leads to, so resolving symlinks (a system
        call per part of the path, for every output of every batch) would add nothing."""
        if st is None:
            st = path.stat()
        key = os.path.abspath(path)
        now = stamp(st)
        cached = self._entries.get(key)
        if isinstance(cached, list) and len(cached) == 5 and cached[:4] == now \
                and isinstance(cached[4], str):
            return cached[4]
        value = file_digest(path)
        if settled(st):
            self._entries[key] = [*now, value]
            self._dirty = True
        return value

    def save(self) -> None:
        if self._path is not None and self._dirty:
            try:
                write_text(self._path, json.dumps(self._entries))
            except (OSError, OutputError):
                return  # a cache is an optimisation: a read-only checkout still plans
            self._dirty = False


def cache_for(state_dir: Path) -> DigestCache:
    return DigestCache(state_dir / "digests.json")


NO_CACHE = DigestCache(None)


def digest_or_none(cache: DigestCache, path: Path) -> str | None:
    """The digest of a regular file (followed through symlinks), None for anything else."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):      # as os.path.isfile
        return None
    return cache.digest(path, st) if stat_mode.S_ISREG(st.st_mode) else None
