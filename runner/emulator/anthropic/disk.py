"""Where Anthropic's records live in the shared store; this layout is the persisted format.

Under the state directory, in a folder of its own beside Gemini's:
    anthropic/batches/<id>.json      BatchRecord
    anthropic/requests/<id>.jsonl    the batch's requests as sent, one {custom_id, params} a line
    anthropic/results/<id>.jsonl     its results once produced, exactly as the results route
                                     serves them
"""

from __future__ import annotations

import threading
from pathlib import Path

from runner.emulator.anthropic.records import BatchRecord
from runner.emulator.store import Store, remove


class Disk:
    """Anthropic's table and folders, plus the delete that spans them."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.batches = store.table("anthropic/batches", BatchRecord.from_json)
        self._requests = store.folder("anthropic/requests")
        self._results = store.folder("anthropic/results")

    def lock(self, batch_id: str) -> threading.Lock:
        return self._store.lock(f"anthropic/batches/{batch_id}")

    def requests(self, batch_id: str) -> Path:
        return self._requests / f"{batch_id}.jsonl"

    def results(self, batch_id: str) -> Path:
        return self._results / f"{batch_id}.jsonl"

    def delete_batch(self, batch_id: str) -> None:
        self.batches.delete(batch_id)
        remove(self.requests(batch_id))
        remove(self.results(batch_id))
