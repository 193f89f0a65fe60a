"""The emulator's disk: one JSON file per record, blobs beside them, all replaced atomically.

The store knows no provider's shapes. It hands out `Table`s (a folder of one JSON file per
record, e.g. `batches/<id>.json`) and plain folders for blobs, and keeps `clock.json`, the
clock's offset. Each provider lays out its own tables and folders on it: Gemini's sit at the
root of the state directory (runner.emulator.gemini.disk, whose layout must not change, so
that old state directories still load); a later provider takes a folder of its own (e.g.
`openai/batches/`) in the same directory, so that one clock, one set of locks and one
`--state-dir` serve them all.

Everything lives on disk so that a second Emulator on the same directory (the runner starts
one per command) sees all the first one did. Files are written to a temporary name and
`os.replace`d, so a reader never sees half a record. They are not fsynced: the emulator must
survive its process dying, not the machine losing power.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import secrets
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from runner.emulator.wire import JSON

if TYPE_CHECKING:
    from typing_extensions import Self

_ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"


@contextlib.contextmanager
def atomic_file(path: Path) -> Iterator[IO[bytes]]:
    """Yield a binary file that replaces `path` only if the block completes."""
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise


def write_json(path: Path, data: Any) -> None:
    with atomic_file(path) as handle:
        handle.write(json.dumps(data, indent=1, sort_keys=True).encode())


def read_json(path: Path) -> Any:
    """The JSON in `path`, or None when it does not exist (deleted by another thread)."""
    try:
        return json.loads(path.read_bytes())
    except FileNotFoundError:
        return None


def remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def new_id(length: int) -> str:
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(length))


class Record:
    """Base of stored records (frozen dataclasses): written as their fields, read back with
    unknown fields ignored, so that a record written by a newer emulator still loads."""

    def to_json(self) -> JSON:
        return dataclasses.asdict(self)  # type: ignore[call-overload, no-any-return]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        return cls(**{k: v for k, v in data.items() if k in names})


class Keyed(Protocol):
    """What a Table stores: a record that knows its id and its JSON."""

    @property
    def id(self) -> str: ...

    def to_json(self) -> JSON: ...


R = TypeVar("R", bound=Keyed)


class Table(Generic[R]):
    """One kind of record: a folder holding `<id>.json` for each, read with `load`."""

    def __init__(self, folder: Path, load: Callable[[dict[str, Any]], R]) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self._load = load

    def path(self, record_id: str) -> Path:
        return self.folder / f"{record_id}.json"

    def get(self, record_id: str) -> R | None:
        """The record, or None when there is none (or it was just deleted)."""
        data = read_json(self.path(record_id))
        return None if data is None else self._load(data)

    def all(self) -> list[R]:
        return [
            record
            for path in self.folder.glob("*.json")
            if (record := self.get(path.stem)) is not None
        ]

    def put(self, record: R) -> None:
        write_json(self.path(record.id), record.to_json())

    def delete(self, record_id: str) -> None:
        remove(self.path(record_id))

    def exists(self, record_id: str) -> bool:
        return self.path(record_id).exists()

    def new_id(self, length: int) -> str:
        """A random id of `length` characters that no record of this table has."""
        while True:
            record_id = new_id(length)
            if not self.exists(record_id):
                return record_id


class Store:
    """The state directory: tables, folders, and one lock per record for read-modify-write."""

    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    def lock(self, key: str) -> threading.Lock:
        """The lock for one record, e.g. "batches/abc": held across read, decide, write."""
        with self._locks_guard:
            return self._locks.setdefault(key, threading.Lock())

    @property
    def clock_path(self) -> Path:
        return self.root / "clock.json"

    def table(self, name: str, load: Callable[[dict[str, Any]], R]) -> Table[R]:
        """The table in folder `name` (a relative path such as "batches"), created if need be."""
        return Table(self.root / name, load)

    def folder(self, name: str) -> Path:
        """A folder for blobs and other files that are not records, created if need be."""
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True)
        return path
