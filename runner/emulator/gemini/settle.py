"""Settling a Gemini job that is due: its results produced once, its terminal state written.

The first read that finds a job due settles it. Producing results runs at tens of thousands of
lines a second, so a gigabyte of input takes minutes: too long to hold a GET open. Inputs above
SYNC_LIMIT are therefore produced by a background worker while the job keeps reading RUNNING,
as a real job does until its output is written; smaller ones (every test-sized job) settle
within the read that finds them due.
"""

from __future__ import annotations

import dataclasses
import random
import threading

from runner.emulator import model
from runner.emulator.clock import Clock
from runner.emulator.gemini.disk import Disk
from runner.emulator.gemini.lifecycle import Phase, not_found, phase
from runner.emulator.gemini.protojson import rpc_status
from runner.emulator.gemini.records import EXPIRED, FAILED, SUCCEEDED, BatchRecord, FileRecord
from runner.emulator.gemini.results import Producer
from runner.emulator.production import InvalidInput, Tally, Workers
from runner.emulator.store import atomic_file, remove

# Inputs up to this size are answered while the first read after the latency waits; larger
# ones are produced in a background thread, the job reading RUNNING until they are ready.
SYNC_LIMIT = 16 * 1024 * 1024


@dataclasses.dataclass(frozen=True)
class _Settlement:
    """A job's terminal record and, in file mode, the results file to register with it."""

    record: BatchRecord
    output: FileRecord | None = None

    def ended_at(self, end: float) -> _Settlement:
        output = self.output and dataclasses.replace(self.output, create_time=end)
        return _Settlement(dataclasses.replace(self.record, end_time=end), output)


class Settler:
    """Settles due jobs, in the read that finds them due or, when big, in the background."""

    def __init__(self, disk: Disk, clock: Clock) -> None:
        self._disk = disk
        self._clock = clock
        self._workers = Workers("produce")

    def settle(self, record: BatchRecord, due: Phase) -> tuple[BatchRecord, Phase] | None:
        """The settled record of a job found `due`, and its phase now; None while its results
        are still being produced in the background."""
        if due.state == SUCCEEDED and self._input_size(record) > SYNC_LIMIT:
            self._workers.start(
                record.id,
                lambda: self._work(record, due),
                f"producing the results of batches/{record.id}",
            )
            return None
        with self._disk.lock(f"batches/{record.id}"):
            fresh = self._disk.batches.get(record.id)
            if fresh is None:
                raise not_found(record.id)
            if fresh.state is None:
                fresh = self._commit(self._finish(fresh, due, None))
        return fresh, phase(fresh, self._clock.now())

    def close(self) -> None:
        """Stop background production (it resumes on a later read) and wait for it."""
        self._workers.close()

    def _input_size(self, record: BatchRecord) -> int:
        if record.input_file is None:
            source = self._disk.inline_requests(record.id)
        else:
            source = self._disk.blob(record.input_file.removeprefix("files/"))
        try:
            return source.stat().st_size
        except FileNotFoundError:
            return 0

    def _work(self, record: BatchRecord, ended: Phase) -> None:
        """Produce a big job's results off the request path; it reads RUNNING meanwhile."""
        settlement = self._finish(record, ended, self._workers.stopping)
        settlement = settlement.ended_at(max(ended.since, self._clock.now()))
        with self._disk.lock(f"batches/{record.id}"):
            fresh = self._disk.batches.get(record.id)
            if fresh is None:
                self._discard(settlement)
            elif fresh.state is None:
                self._commit(settlement)

    def _finish(
        self, record: BatchRecord, ended: Phase, stop: threading.Event | None
    ) -> _Settlement:
        """The terminal record of a job that is due, with its results written to disk."""
        if ended.state == EXPIRED:
            error = rpc_status("DEADLINE_EXCEEDED", "The batch expired before it finished.")
            return _Settlement(
                dataclasses.replace(record, state=EXPIRED, end_time=ended.since, error=error)
            )
        if ended.state == FAILED:
            error = rpc_status("INTERNAL", "The batch failed (emulated fault).")
            return _Settlement(
                dataclasses.replace(record, state=FAILED, end_time=ended.since, error=error)
            )
        producer = Producer(
            model=record.model,
            policy=model.FailurePolicy(record.error_rate, record.seed),
            order=random.Random(f"{record.seed}:{record.id}") if record.shuffle else None,
            stop=stop,
        )
        end = ended.since
        output: FileRecord | None = None
        try:
            if record.input_file is None:
                with atomic_file(self._disk.inline_responses(record.id)) as out:
                    tally = producer.run_inline(self._disk.inline_requests(record.id), out)
            else:
                output, tally = self._produce_file(producer, record, end)
        except InvalidInput as invalid:
            error = rpc_status("INVALID_ARGUMENT", str(invalid))
            return _Settlement(dataclasses.replace(record, state=FAILED, end_time=end, error=error))
        settled = dataclasses.replace(
            record,
            state=SUCCEEDED,
            end_time=end,
            succeeded=tally.succeeded,
            failed=tally.failed,
            output_file=None if output is None else output.name,
        )
        return _Settlement(settled, output)

    def _produce_file(
        self, producer: Producer, record: BatchRecord, end: float
    ) -> tuple[FileRecord, Tally]:
        input_file = record.input_file or ""
        source = self._disk.blob(input_file.removeprefix("files/"))
        if not source.exists():
            raise InvalidInput(f"Input file {input_file} no longer exists.")
        output_id = f"batch-{record.id}"
        with atomic_file(self._disk.blob(output_id)) as out:
            tally = producer.run_file(source, out)
        output = FileRecord(
            id=output_id,
            display_name=output_id,
            mime_type="application/jsonl",
            size_bytes=tally.size,
            create_time=end,
            sha256=tally.sha256,
            source="GENERATED",
        )
        return output, tally

    def _commit(self, settlement: _Settlement) -> BatchRecord:
        """Record a settlement; the caller holds the job's lock."""
        if settlement.output is not None:
            self._disk.files.put(settlement.output)
        self._disk.batches.put(settlement.record)
        return settlement.record

    def _discard(self, settlement: _Settlement) -> None:
        """Drop the results of a job deleted while they were being produced."""
        if settlement.output is not None:
            remove(self._disk.blob(settlement.output.id))
        else:
            remove(self._disk.inline_responses(settlement.record.id))
