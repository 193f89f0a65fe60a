"""Batch jobs: create, observe, settle, cancel, delete.

A job's phase is not stored: `phase()` derives it from the clock and the create time (PENDING
for the first third of the latency, RUNNING until the latency has passed, then the outcome
planned at create time; EXPIRED for anything unfinished 48 h after create). The first read
that finds a job due "settles" it: its results are produced once, and the terminal state is
written to its record, so history never changes afterwards.

Producing results runs at tens of thousands of lines a second, so a gigabyte of input takes
minutes: too long to hold a GET open. Inputs above SYNC_LIMIT are therefore produced by a
background thread while the job keeps reading RUNNING, as a real job does until its output is
written; smaller ones (every test-sized job) settle within the read that finds them due.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import random
import threading
from collections.abc import Mapping
from typing import Any

from runner.emulator import paging
from runner.emulator.clock import Clock
from runner.emulator.faults import Faults
from runner.emulator.gemini import echo
from runner.emulator.gemini.disk import Disk
from runner.emulator.gemini.protojson import pick, pick_int, pick_object, pick_str, rpc_status
from runner.emulator.gemini.records import (
    CANCELLED,
    EXPIRED,
    FAILED,
    PENDING,
    RUNNING,
    SUCCEEDED,
    BatchRecord,
    FileRecord,
)
from runner.emulator.gemini.results import Interrupted, InvalidInput, Producer, Tally
from runner.emulator.store import atomic_file, remove
from runner.emulator.wire import JSON, ApiError, dumps

logger = logging.getLogger(__name__)

EXPIRY = 48 * 3600.0
# Inputs up to this size are answered while the first read after the latency waits; larger
# ones are produced in a background thread, the job reading RUNNING until they are ready.
SYNC_LIMIT = 16 * 1024 * 1024
TERMINAL = frozenset({SUCCEEDED, FAILED, CANCELLED, EXPIRED})


@dataclasses.dataclass(frozen=True)
class Phase:
    """Where a job stands at some moment, and since when (its `updateTime`)."""

    state: str
    since: float

    @property
    def done(self) -> bool:
        return self.state in TERMINAL


def phase(record: BatchRecord, now: float) -> Phase:
    """Where `record` stands at `now`, before any settling a read may then do."""
    if record.state is not None:
        return Phase(record.state, record.end_time or record.create_time)
    start = record.create_time
    finish = start + record.latency
    if finish > start + EXPIRY and now >= start + EXPIRY:
        return Phase(EXPIRED, start + EXPIRY)
    if now >= finish:
        return Phase(record.outcome, finish)
    running_from = start + record.latency / 3
    if now >= running_from:
        return Phase(RUNNING, running_from)
    return Phase(PENDING, start)


@dataclasses.dataclass(frozen=True)
class Observation:
    """A job as one read saw it: record, phase, and inline results once it has succeeded."""

    record: BatchRecord
    phase: Phase
    inline: list[JSON] | None = None


@dataclasses.dataclass(frozen=True)
class _Settlement:
    """A job's terminal record and, in file mode, the results file to register with it."""

    record: BatchRecord
    output: FileRecord | None = None

    def ended_at(self, end: float) -> _Settlement:
        output = self.output and dataclasses.replace(self.output, create_time=end)
        return _Settlement(dataclasses.replace(self.record, end_time=end), output)


def _not_found(batch_id: str) -> ApiError:
    return ApiError("NOT_FOUND", f"Batch batches/{batch_id} not found.")


class Batches:
    def __init__(self, disk: Disk, clock: Clock, latency: float) -> None:
        self._disk = disk
        self._clock = clock
        self._latency = latency
        self._workers: dict[str, threading.Thread] = {}
        self._workers_lock = threading.Lock()
        self._closing = threading.Event()

    def create(self, model: str, body: Mapping[str, Any], faults: Faults) -> BatchRecord:
        batch = pick_object(body, "batch", "request")
        if batch is None:
            raise ApiError("INVALID_ARGUMENT", "batch is required")
        config = pick_object(batch, "inputConfig", "batch")
        if config is None:
            raise ApiError("INVALID_ARGUMENT", "batch.inputConfig is required")
        file_name = pick_str(config, "fileName", "batch.inputConfig")
        requests = pick_object(config, "requests", "batch.inputConfig")
        if (file_name is None) == (requests is None):
            raise ApiError(
                "INVALID_ARGUMENT", "batch.inputConfig needs exactly one of fileName or requests"
            )
        display_name = pick_str(batch, "displayName", "batch") or ""
        priority = pick_int(batch, "priority", "batch") or 0
        batch_id = self._disk.batches.new_id(36)
        if file_name is not None:
            count = self._count_file_requests(file_name)
        else:
            count = self._save_inline_requests(batch_id, requests or {})
        if faults.fail:
            outcome = FAILED
        elif faults.expire:
            outcome = EXPIRED
        else:
            outcome = SUCCEEDED
        record = BatchRecord(
            id=batch_id,
            model=model,
            display_name=display_name,
            create_time=self._clock.now(),
            latency=self._latency,
            outcome=outcome,
            request_count=count,
            input_file=file_name,
            priority=priority,
            error_rate=faults.request_error_rate,
            seed=faults.seed,
            shuffle=faults.shuffle_results,
        )
        self._disk.batches.put(record)
        return record

    def _count_file_requests(self, file_name: str) -> int:
        file_id = file_name.removeprefix("files/")
        if not file_name.startswith("files/") or not self._disk.files.exists(file_id):
            raise ApiError("INVALID_ARGUMENT", f"Input file {file_name} does not exist.")
        with self._disk.blob(file_id).open("rb") as lines:
            return sum(1 for line in lines if line.strip())

    def _save_inline_requests(self, batch_id: str, requests: Mapping[str, Any]) -> int:
        items = pick(requests, "requests")
        if not isinstance(items, list) or not items:
            raise ApiError("INVALID_ARGUMENT", "batch.inputConfig.requests.requests is empty")
        with atomic_file(self._disk.inline_requests(batch_id)) as out:
            for index, item in enumerate(items):
                where = f"batch.inputConfig.requests.requests[{index}]"
                if not isinstance(item, dict):
                    raise ApiError("INVALID_ARGUMENT", f"{where} must be an object")
                request = pick_object(item, "request", where)
                if request is None:
                    raise ApiError("INVALID_ARGUMENT", f"{where}.request is required")
                stored: JSON = {"request": request}
                if "metadata" in item:
                    stored["metadata"] = item["metadata"]
                out.write(dumps(stored) + b"\n")
        return len(items)

    def get(self, batch_id: str) -> Observation:
        """The job and its current phase, settling it first if it has just finished."""
        record = self._disk.batches.get(batch_id)
        if record is None:
            raise _not_found(batch_id)
        return self._observe(record)

    def page(self, size: int, token: str | None) -> tuple[list[Observation], str | None]:
        chosen, next_token = paging.paginate(
            self._disk.batches.all(), lambda r: (r.create_time, r.id), size, token
        )
        observed = []
        for record in chosen:
            try:
                observed.append(self._observe(record))
            except ApiError:
                continue  # deleted while the page was being read
        return observed, next_token

    def cancel(self, batch_id: str) -> None:
        """Cancel an unfinished job; a job that is already finishing ends as planned."""
        if self.get(batch_id).phase.done:
            return
        with self._disk.lock(f"batches/{batch_id}"):
            record = self._disk.batches.get(batch_id)
            if record is None:
                raise _not_found(batch_id)
            now = self._clock.now()
            if phase(record, now).done:
                return
            self._disk.batches.put(
                dataclasses.replace(
                    record,
                    state=CANCELLED,
                    end_time=now,
                    error=rpc_status("CANCELLED", "The batch was cancelled."),
                )
            )

    def delete(self, batch_id: str) -> None:
        with self._disk.lock(f"batches/{batch_id}"):
            if self._disk.batches.get(batch_id) is None:
                raise _not_found(batch_id)
            self._disk.delete_batch(batch_id)

    def close(self) -> None:
        """Stop background production (it resumes on a later read) and wait for it."""
        self._closing.set()
        with self._workers_lock:
            workers = list(self._workers.values())
        for worker in workers:
            worker.join()
        self._closing.clear()

    def _observe(self, record: BatchRecord) -> Observation:
        current = phase(record, self._clock.now())
        if current.done and record.state is None:
            if current.state == SUCCEEDED and self._input_size(record) > SYNC_LIMIT:
                self._start_worker(record, current)
                return Observation(record, Phase(RUNNING, record.create_time + record.latency / 3))
            with self._disk.lock(f"batches/{record.id}"):
                fresh = self._disk.batches.get(record.id)
                if fresh is None:
                    raise _not_found(record.id)
                if fresh.state is None:
                    fresh = self._commit(self._finish(fresh, current, None))
            record, current = fresh, phase(fresh, self._clock.now())
        if current.state != SUCCEEDED or record.input_file is not None:
            return Observation(record, current)
        try:
            with self._disk.inline_responses(record.id).open("rb") as lines:
                return Observation(record, current, [json.loads(line) for line in lines])
        except FileNotFoundError:
            raise _not_found(record.id) from None

    def _input_size(self, record: BatchRecord) -> int:
        if record.input_file is None:
            source = self._disk.inline_requests(record.id)
        else:
            source = self._disk.blob(record.input_file.removeprefix("files/"))
        try:
            return source.stat().st_size
        except FileNotFoundError:
            return 0

    def _start_worker(self, record: BatchRecord, ended: Phase) -> None:
        with self._workers_lock:
            if record.id in self._workers or self._closing.is_set():
                return
            worker = threading.Thread(
                target=self._work, args=(record, ended), name=f"produce-{record.id}", daemon=True
            )
            self._workers[record.id] = worker
            worker.start()

    def _work(self, record: BatchRecord, ended: Phase) -> None:
        """Produce a big job's results off the request path; it reads RUNNING meanwhile."""
        try:
            settlement = self._finish(record, ended, self._closing)
            settlement = settlement.ended_at(max(ended.since, self._clock.now()))
            with self._disk.lock(f"batches/{record.id}"):
                fresh = self._disk.batches.get(record.id)
                if fresh is None:
                    self._discard(settlement)
                elif fresh.state is None:
                    self._commit(settlement)
        except Interrupted:
            pass
        except Exception:
            logger.exception("producing the results of batches/%s failed", record.id)
        finally:
            with self._workers_lock:
                self._workers.pop(record.id, None)

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
            policy=echo.FailurePolicy(record.error_rate, record.seed),
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
