"""Where Gemini's records live in the shared store; this layout is the persisted format.

Layout under the state directory (at its root, as it was before the emulator served more than
one provider, so that existing state directories still load):
    batches/<id>.json              BatchRecord
    inline/<id>.requests.jsonl     the inline requests of a batch, one InlinedRequest a line
    inline/<id>.responses.jsonl    its inline results once produced
    files/<id>.json                FileRecord
    blobs/<id>                     file bytes
    uploads/<upload id>.json       UploadSession
    uploads/<upload id>.part       bytes received so far
"""

from __future__ import annotations

import threading
from pathlib import Path

from runner.emulator.gemini.records import BatchRecord, FileRecord, UploadSession
from runner.emulator.store import Store, remove


class Disk:
    """Gemini's tables and folders, plus the deletes that span more than one of them."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.batches = store.table("batches", BatchRecord.from_json)
        self._inline = store.folder("inline")
        self.files = store.table("files", FileRecord.from_json)
        self._blobs = store.folder("blobs")
        self.uploads = store.table("uploads", UploadSession.from_json)

    def lock(self, key: str) -> threading.Lock:
        return self._store.lock(key)

    def inline_requests(self, batch_id: str) -> Path:
        return self._inline / f"{batch_id}.requests.jsonl"

    def inline_responses(self, batch_id: str) -> Path:
        return self._inline / f"{batch_id}.responses.jsonl"

    def delete_batch(self, batch_id: str) -> None:
        self.batches.delete(batch_id)
        remove(self.inline_requests(batch_id))
        remove(self.inline_responses(batch_id))

    def blob(self, file_id: str) -> Path:
        return self._blobs / file_id

    def delete_file(self, file_id: str) -> None:
        self.files.delete(file_id)
        remove(self.blob(file_id))

    def upload(self, upload_id: str) -> UploadSession | None:
        """The session an upload URL names; its id comes from a query string, so check it."""
        if not upload_id.isalnum():
            return None
        return self.uploads.get(upload_id)

    def part(self, upload_id: str) -> Path:
        return self.uploads.folder / f"{upload_id}.part"
