"""Where OpenAI's records live in the shared store; this layout is the persisted format.

Everything sits under `openai/` in the state directory, beside Gemini's tables, so that one
clock, one set of locks and one `--state-dir` serve both:
    openai/batches/<batch id>.json     BatchRecord
    openai/inputs/<batch id>.jsonl     the batch's input, linked when it was created
    openai/files/<file id>.json        FileRecord
    openai/blobs/<file id>             file bytes
    openai/uploads/<upload id>.json    UploadRecord
    openai/parts/<part id>.json        PartRecord
    openai/parts/<part id>.part        the part's bytes
A batch keeps its own link to its input because the real service reads the input when it
validates: deleting the file afterwards does not take the batch's requests away.
"""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

from runner.emulator.openai.records import BatchRecord, FileRecord, PartRecord, UploadRecord
from runner.emulator.store import Store, remove


class Disk:
    """OpenAI's tables and folders, plus the operations that span more than one of them."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.batches = store.table("openai/batches", BatchRecord.from_json)
        self._inputs = store.folder("openai/inputs")
        self.files = store.table("openai/files", FileRecord.from_json)
        self._blobs = store.folder("openai/blobs")
        self.uploads = store.table("openai/uploads", UploadRecord.from_json)
        self.parts = store.table("openai/parts", PartRecord.from_json)

    def lock(self, key: str) -> threading.Lock:
        return self._store.lock(f"openai/{key}")

    def blob(self, file_id: str) -> Path:
        return self._blobs / file_id

    def delete_file(self, file_id: str) -> None:
        self.files.delete(file_id)
        remove(self.blob(file_id))

    def batch_input(self, batch_id: str) -> Path:
        return self._inputs / f"{batch_id}.jsonl"

    def keep_input(self, batch_id: str, file_id: str) -> None:
        """Give the batch its own name for the input file's bytes (a hard link, which a later
        delete of the file leaves alone; a copy where links are not supported)."""
        target = self.batch_input(batch_id)
        remove(target)
        try:
            os.link(self.blob(file_id), target)
        except OSError:
            shutil.copyfile(self.blob(file_id), target)

    def part_bytes(self, part_id: str) -> Path:
        return self.parts.folder / f"{part_id}.part"

    def delete_parts(self, upload_id: str) -> None:
        """Remove every part of an upload (once it has been completed or cancelled)."""
        for part in self.parts.all():
            if part.upload_id == upload_id:
                self.parts.delete(part.id)
                remove(self.part_bytes(part.id))
