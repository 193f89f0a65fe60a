"""Parsed and validated documents remembered by file stamp, so that an unchanged file is
neither parsed nor validated again.

`plan` over a thousand manifests otherwise spends most of its time in YAML parsing and schema
validation that give the same answer as last time. Like the digest cache (runner.statcache),
an entry is keyed by the file's size, mtime, ctime and inode, and a file younger than two
seconds is not remembered. The whole cache is also keyed by a `salt`: the cache format and
whatever decides what a valid document is (the schema), so a new schema starts afresh.

Only what passed every check that depends on nothing but the file's bytes is stored, as plain
JSON data; the caller still builds its objects from it and runs every check that depends on
other files. An entry is handed out as a fresh copy, so no caller can change what is stored.

The file is ASCII: one header line (format, salt and the sha256 of the rest), then one line
per entry: the JSON of `[name, stamp]`, a tab, the JSON of the value (values are kept as text,
so an unchanged entry is written back without being encoded again). A file that is missing,
damaged, or of another format or salt is ignored and written anew: a cache is an optimisation,
and a read-only checkout still works without one.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from .errors import OutputError
from .fsutil import write_text
from .statcache import settled, stamp

# Raise when what is stored, or what a hit skips, changes meaning (the YAML rules in
# runner.yamlsrc, the shape of runner.yamllines.Located, the checks before an entry is put).
FORMAT = 1


class ParseCache:
    def __init__(self, path: Path | None, salt: str):
        self._path = path
        self._salt = salt
        self._stored: dict[str, tuple[list[int], str]] = {}
        self._kept: dict[str, tuple[list[int], str]] = {}
        self._changed = False
        if path is not None:
            self._stored = _read(path, salt)

    def get(self, name: str, st: os.stat_result) -> Any | None:
        """The value stored for `name` if the file is still the one it was stored for."""
        found = self._stored.get(name)
        if found is None or found[0] != stamp(st):
            return None
        self._kept[name] = found
        return json.loads(found[1])

    def put(self, name: str, st: os.stat_result, value: Any) -> None:
        """Remembers `value` for the file `name` as it was when `st` was taken (before it was
        read, so that an edit during the read shows as a new stamp)."""
        if not settled(st):
            return
        try:
            text = json.dumps(value, separators=(",", ":"), allow_nan=False)
        except (TypeError, ValueError, RecursionError):
            return                  # not storable as JSON: it is parsed each time instead
        self._kept[name] = (stamp(st), text)
        self._changed = True

    def save(self) -> None:
        """Writes the entries used since loading (those of files now gone are dropped), if
        anything changed. Call it only once everything read was found valid."""
        if self._path is None or not (self._changed or self._kept.keys() != self._stored.keys()):
            return
        lines = [json.dumps([name, st]) + "\t" + text + "\n"
                 for name, (st, text) in sorted(self._kept.items())]
        body = "".join(lines)
        head = {"format": FORMAT, "salt": self._salt, "sha256": _sha256(body)}
        try:
            write_text(self._path, json.dumps(head) + "\n" + body)
        except (OSError, OutputError):     # a read-only checkout still plans
            return
        self._stored = dict(self._kept)
        self._changed = False


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _read(path: Path, salt: str) -> dict[str, tuple[list[int], str]]:
    """The entries of the cache file, or none if it is unreadable, damaged or not ours."""
    try:
        text = path.read_text(encoding="ascii")
        head_line, _, body = text.partition("\n")
        head = json.loads(head_line)
        if not isinstance(head, dict) or head.get("format") != FORMAT \
                or head.get("salt") != salt or head.get("sha256") != _sha256(body):
            return {}
        entries: dict[str, tuple[list[int], str]] = {}
        for line in body.split("\n")[:-1]:
            key, tab, value = line.partition("\t")
            name, st = json.loads(key)
            if not tab or not isinstance(name, str) or not isinstance(st, list):
                return {}
            entries[name] = (st, value)
        return entries
    except (OSError, ValueError, TypeError):
        return {}


def salt(*parts: Any) -> str:
    """A cache key from the format and the given parts (schemas, versions), as JSON."""
    return _sha256(json.dumps([FORMAT, *parts], sort_keys=True))


NO_CACHE = ParseCache(None, "")
