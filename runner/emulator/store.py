"""The emulator's disk: one JSON file per record, blobs beside them, all replaced atomically.

Layout under the state directory:
    batches/<id>.json              BatchRecord
    inline/<id>.requests.jsonl     the inline requests of a batch, one InlinedRequest a line
    inline/<id>.responses.jsonl    its inline results once produced
    files/<id>.json                FileRecord
    blobs/<id>                     file bytes
    uploads/<upload id>.json       UploadSession
    uploads/<upload id>.part       bytes received so far
    clock.json                     the emulator clock's offset

Everything lives on disk so that a second Emulator on the same directory (the runner starts
one per command) sees all the first one did. Files are written to a temporary name and
`os.replace`d, so a reader never sees half a record. They are not fsynced: the emulator must
survive its process dying, not the machine losing power.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from runner.emulator.gemini.records import BatchRecord, FileRecord, UploadSession

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


class Store:
    """Reads and writes records; hands out one lock per record for read-modify-write."""

    def __init__(self, root: Path) -> None:
        self.root = root
        for sub in ("batches", "inline", "files", "blobs", "uploads"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    def lock(self, key: str) -> threading.Lock:
        """The lock for one record, e.g. "batches/abc": held across read, decide, write."""
        with self._locks_guard:
            return self._locks.setdefault(key, threading.Lock())

    @property
    def clock_path(self) -> Path:
        return self.root / "clock.json"

    # Batches.

    def batch(self, batch_id: str) -> BatchRecord | None:
        data = read_json(self.root / "batches" / f"{batch_id}.json")
        return None if data is None else BatchRecord.from_json(data)

    def batches(self) -> list[BatchRecord]:
        return [
            record
            for path in (self.root / "batches").glob("*.json")
            if (record := self.batch(path.stem)) is not None
        ]

    def put_batch(self, record: BatchRecord) -> None:
        write_json(self.root / "batches" / f"{record.id}.json", record.to_json())

    def delete_batch(self, batch_id: str) -> None:
        remove(self.root / "batches" / f"{batch_id}.json")
        remove(self.inline_requests(batch_id))
        remove(self.inline_responses(batch_id))

    def inline_requests(self, batch_id: str) -> Path:
        return self.root / "inline" / f"{batch_id}.requests.jsonl"

    def inline_responses(self, batch_id: str) -> Path:
        return self.root / "inline" / f"{batch_id}.responses.jsonl"

    def new_batch_id(self) -> str:
        while True:
            batch_id = new_id(36)
            if not (self.root / "batches" / f"{batch_id}.json").exists():
                return batch_id

    # Files.

    def file(self, file_id: str) -> FileRecord | None:
        data = read_json(self.root / "files" / f"{file_id}.json")
        return None if data is None else FileRecord.from_json(data)

    def files(self) -> list[FileRecord]:
        return [
            record
            for path in (self.root / "files").glob("*.json")
            if (record := self.file(path.stem)) is not None
        ]

    def put_file(self, record: FileRecord) -> None:
        write_json(self.root / "files" / f"{record.id}.json", record.to_json())

    def delete_file(self, file_id: str) -> None:
        remove(self.root / "files" / f"{file_id}.json")
        remove(self.blob(file_id))

    def blob(self, file_id: str) -> Path:
        return self.root / "blobs" / file_id

    def file_exists(self, file_id: str) -> bool:
        return (self.root / "files" / f"{file_id}.json").exists()

    # Uploads.

    def upload(self, upload_id: str) -> UploadSession | None:
        if not upload_id.isalnum():
            return None
        data = read_json(self.root / "uploads" / f"{upload_id}.json")
        return None if data is None else UploadSession.from_json(data)

    def put_upload(self, session: UploadSession) -> None:
        write_json(self.root / "uploads" / f"{session.id}.json", session.to_json())

    def part(self, upload_id: str) -> Path:
        return self.root / "uploads" / f"{upload_id}.part"
