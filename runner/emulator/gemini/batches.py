"""Gemini batch jobs: create, observe, cancel, delete.

Create checks the request and freezes the job's fate (the outcome and the shape of its results
are chosen from the faults in force then); reads derive the phase from the clock
(runner.emulator.gemini.lifecycle) and settle a job found due (runner.emulator.gemini.settle).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any, Literal

import orjson

from runner.emulator import paging
from runner.emulator.clock import Clock
from runner.emulator.faults import Faults
from runner.emulator.gemini.disk import Disk
from runner.emulator.gemini.lifecycle import Observation, Phase, RawArray, not_found, phase
from runner.emulator.gemini.protojson import pick, pick_int, pick_object, pick_str, rpc_status
from runner.emulator.gemini.records import (
    CANCELLED,
    EXPIRED,
    FAILED,
    RUNNING,
    SUCCEEDED,
    BatchRecord,
)
from runner.emulator.gemini.settle import Settler
from runner.emulator.store import atomic_file
from runner.emulator.wire import JSON, ApiError, dumps

Inline = Literal["parsed", "raw"] | None
"""How a read wants a batch's inline answers (see Batches.get)."""


class Batches:
    def __init__(self, disk: Disk, clock: Clock, latency: float) -> None:
        self._disk = disk
        self._clock = clock
        self._latency = latency
        self._settler = Settler(disk, clock)

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

    def get(self, batch_id: str, inline: Inline = "parsed") -> Observation:
        """The job and its current phase, settling it first if it has just finished; its
        inline answers parsed, as their text ("raw"), or not at all (None: a partial
        response may leave them out)."""
        record = self._disk.batches.get(batch_id)
        if record is None:
            raise not_found(batch_id)
        return self._observe(record, inline)

    def page(self, size: int, token: str | None, inline: Inline = "parsed"
             ) -> tuple[list[Observation], str | None]:
        chosen, next_token = paging.paginate(
            self._disk.batches.all(), lambda r: (r.create_time, r.id), size, token
        )
        observed = []
        for record in chosen:
            try:
                observed.append(self._observe(record, inline))
            except ApiError:
                continue  # deleted while the page was being read
        return observed, next_token

    def cancel(self, batch_id: str) -> None:
        """Cancel an unfinished job; a job that is already finishing ends as planned."""
        if self.get(batch_id, inline=None).phase.done:
            return
        with self._disk.lock(f"batches/{batch_id}"):
            record = self._disk.batches.get(batch_id)
            if record is None:
                raise not_found(batch_id)
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
                raise not_found(batch_id)
            self._disk.delete_batch(batch_id)

    def close(self) -> None:
        """Stop background production (it resumes on a later read) and wait for it."""
        self._settler.close()

    def _observe(self, record: BatchRecord, inline: Inline = "parsed") -> Observation:
        current = phase(record, self._clock.now())
        if current.done and record.state is None:
            settled = self._settler.settle(record, current)
            if settled is None:  # its results are still being produced
                return Observation(record, Phase(RUNNING, record.create_time + record.latency / 3))
            record, current = settled
        if current.state != SUCCEEDED or record.input_file is not None:
            return Observation(record, current)
        try:
            with self._disk.inline_responses(record.id).open("rb") as lines:
                if inline == "raw":
                    text = b",".join(line.rstrip(b"\n") for line in lines if line.strip())
                    return Observation(record, current, RawArray(b"[" + text + b"]"))
                return Observation(record, current,
                                   [_loads(line) for line in lines] if inline else [])
        except FileNotFoundError:
            raise not_found(record.id) from None


def _loads(line: bytes) -> Any:
    """A stored line: by orjson, or by the json module where orjson refuses it (NaN)."""
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError:
        return json.loads(line)
