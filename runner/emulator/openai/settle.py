"""Settling an OpenAI batch that has ended: its files produced once, its terminal state written.

The first read that finds a batch ended settles it. Small inputs (every test-sized batch) are
answered within that read; inputs above SYNC_LIMIT are produced by a background worker while
the batch keeps reading as it did (e.g. `finalizing`), as a real batch does until its files
are written. A completed, expired or cancelled batch gets an output file for its answered
requests and an error file for its failed (and, when expired, unreached) ones; either is
left out when it would be empty, as the real service leaves the id null.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from typing import IO

from runner.emulator.clock import Clock
from runner.emulator.openai import lifecycle
from runner.emulator.openai.disk import Disk
from runner.emulator.openai.errors import not_found
from runner.emulator.openai.lifecycle import Phase
from runner.emulator.openai.records import EXPIRED, FAILED, BatchRecord, FileRecord, file_id
from runner.emulator.openai.results import Producer, Usage
from runner.emulator.openai.validate import error
from runner.emulator.production import Tally, Workers
from runner.emulator.store import atomic_file, remove
from runner.emulator.wire import JSON

# Inputs up to this size are answered while the first read after the end waits; larger ones
# in a background thread.
SYNC_LIMIT = 16 * 1024 * 1024
OUTPUT_LIFETIME = 30 * 24 * 3600


def token_limit(model: str | None) -> JSON:
    """The error of the `fail` fault: the failure the real service reports asynchronously
    when a batch would exceed the organization's queue of enqueued tokens."""
    return error("token_limit_exceeded", f"Enqueued token limit reached for {model or 'the model'}"
                 " in organization org-emulator. Limit: 2,000,000 enqueued tokens. Please try"
                 " again once some in_progress batches have been completed.")


@dataclasses.dataclass(frozen=True)
class _Settlement:
    """A batch's terminal record and the result files to register with it."""

    record: BatchRecord
    files: tuple[FileRecord, ...] = ()


class Settler:
    """Settles ended batches, in the read that finds them ended or, when big, in the
    background."""

    def __init__(self, disk: Disk, clock: Clock) -> None:
        self._disk = disk
        self._clock = clock
        self._workers = Workers("openai-produce")

    def settle(self, record: BatchRecord, ended: Phase) -> BatchRecord | None:
        """The settled record of a batch found `ended`; None while its files are still
        being produced in the background."""
        if ended.status != FAILED and self._input_size(record) > SYNC_LIMIT:
            self._workers.start(record.id, lambda: self._work(record, ended),
                                f"producing the results of {record.id}")
            return None
        with self._disk.lock(f"batches/{record.id}"):
            fresh = self._disk.batches.get(record.id)
            if fresh is None:
                raise not_found("batch", record.id)
            if fresh.status is None:
                fresh = self._commit(self._finish(fresh, ended, ended.since, None))
        return fresh

    def close(self) -> None:
        """Stop background production (it resumes on a later read) and wait for it."""
        self._workers.close()

    def _input_size(self, record: BatchRecord) -> int:
        try:
            return self._disk.batch_input(record.id).stat().st_size
        except FileNotFoundError:
            return 0

    def _work(self, record: BatchRecord, ended: Phase) -> None:
        end = max(ended.since, self._clock.now())
        settlement = self._finish(record, ended, end, self._workers.stopping)
        with self._disk.lock(f"batches/{record.id}"):
            fresh = self._disk.batches.get(record.id)
            if fresh is None or fresh.status is not None:
                for produced in settlement.files:
                    remove(self._disk.blob(produced.id))
            else:
                self._commit(settlement)

    def _finish(
        self, record: BatchRecord, ended: Phase, end: float, stop: threading.Event | None
    ) -> _Settlement:
        """The terminal record of a batch that has ended, with its files written."""
        if ended.status == FAILED:
            errors = record.errors or [token_limit(record.model)]
            return _Settlement(dataclasses.replace(
                record, status=FAILED, ended_at=ended.since, errors=errors))
        times = lifecycle.timeline(record)
        producer = Producer(
            record=record,
            source=self._disk.batch_input(record.id),
            answered=lifecycle.finished_share(record, ended),
            expired=ended.status == EXPIRED,
            created=int(times.validated),
            stop=stop,
        )
        usage = Usage()
        output, written = self._file(record, "output", end,
                                     lambda out: producer.write_output(out, usage))
        error_file, failed = self._file(record, "error", end, producer.write_errors)
        settled = dataclasses.replace(
            record,
            status=ended.status,
            ended_at=end,
            completed=written.succeeded,
            failed=failed.failed,
            output_file_id=None if output is None else output.id,
            error_file_id=None if error_file is None else error_file.id,
            usage=usage.to_json(),
        )
        return _Settlement(settled, tuple(f for f in (output, error_file) if f is not None))

    def _file(
        self, record: BatchRecord, kind: str, end: float, write: Callable[[IO[bytes]], Tally]
    ) -> tuple[FileRecord | None, Tally]:
        """Write one result file as a new file's blob; None for the file if it is empty."""
        new_id = file_id(end)
        while self._disk.files.exists(new_id) or self._disk.blob(new_id).exists():
            new_id = file_id(end)
        path = self._disk.blob(new_id)
        with atomic_file(path) as out:
            tally = write(out)
        if not tally.succeeded + tally.failed:
            remove(path)
            return None, tally
        lifetime = record.output_expires_after or OUTPUT_LIFETIME
        produced = FileRecord(id=new_id, filename=f"{record.id}_{kind}.jsonl",
                              purpose="batch_output", size=tally.size, created_at=end,
                              expires_at=end + lifetime)
        return produced, tally

    def _commit(self, settlement: _Settlement) -> BatchRecord:
        """Record a settlement; the caller holds the batch's lock."""
        for produced in settlement.files:
            self._disk.files.put(produced)
        self._disk.batches.put(settlement.record)
        return settlement.record
