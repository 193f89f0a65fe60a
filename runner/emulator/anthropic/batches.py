"""Message Batches: create, observe, list, cancel, delete, and find their results.

Create checks what the real API checks up front (the list of requests, each `custom_id`, the
limits) and freezes the batch's fate from the faults in force then; each request's `params`
are checked only when it is answered (runner.emulator.anthropic.echo). Reads derive the status
from the clock (runner.emulator.anthropic.lifecycle) and settle a batch found ended
(runner.emulator.anthropic.settle).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from runner.emulator.anthropic import lifecycle
from runner.emulator.anthropic.disk import Disk
from runner.emulator.anthropic.lifecycle import ENDED, Observation, not_found
from runner.emulator.anthropic.records import BatchRecord, new_batch_id
from runner.emulator.anthropic.settle import Settler
from runner.emulator.clock import Clock
from runner.emulator.faults import Faults
from runner.emulator.store import atomic_file
from runner.emulator.wire import ApiError, dumps

MAX_REQUESTS = 100_000
CUSTOM_ID = re.compile(r"[a-zA-Z0-9_-]{1,64}")


class Batches:
    def __init__(self, disk: Disk, clock: Clock, latency: float) -> None:
        self._disk = disk
        self._clock = clock
        self._latency = latency
        self._settler = Settler(disk, clock)

    def create(self, body: Mapping[str, Any], version: str, faults: Faults) -> BatchRecord:
        requests = body.get("requests")
        if requests is None:
            raise ApiError("INVALID_ARGUMENT", "requests: Field required")
        if not isinstance(requests, list) or not requests:
            raise ApiError("INVALID_ARGUMENT", "requests: Input should be a non-empty list")
        if len(requests) > MAX_REQUESTS:
            raise ApiError(
                "INVALID_ARGUMENT", f"requests: List should have at most {MAX_REQUESTS} items"
            )
        now = self._clock.now()
        batch_id = new_batch_id(now)
        self._save_requests(batch_id, requests)
        record = BatchRecord(
            id=batch_id,
            create_time=now,
            # The `expire` fault: a batch so slow that only the first half of its requests
            # are answered before the 24 h are up.
            duration=2 * lifecycle.EXPIRY if faults.expire else self._latency,
            request_count=len(requests),
            version=version,
            fail=faults.fail,
            error_rate=faults.request_error_rate,
            seed=faults.seed,
            shuffle=faults.shuffle_results,
        )
        self._disk.batches.put(record)
        return record

    def _save_requests(self, batch_id: str, requests: list[Any]) -> None:
        seen: set[str] = set()
        with atomic_file(self._disk.requests(batch_id)) as out:
            for index, item in enumerate(requests):
                where = f"requests.{index}"
                if not isinstance(item, dict):
                    raise ApiError("INVALID_ARGUMENT", f"{where}: Input should be an object")
                custom_id = item.get("custom_id")
                if not isinstance(custom_id, str) or not CUSTOM_ID.fullmatch(custom_id):
                    raise ApiError(
                        "INVALID_ARGUMENT",
                        f"{where}.custom_id: String should match pattern "
                        f"'^[a-zA-Z0-9_-]{{1,64}}$'",
                    )
                if custom_id in seen:
                    raise ApiError(
                        "INVALID_ARGUMENT",
                        f"{where}.custom_id: {custom_id!r} is not unique within the batch",
                    )
                seen.add(custom_id)
                params = item.get("params")
                if not isinstance(params, dict):
                    raise ApiError("INVALID_ARGUMENT", f"{where}.params: Field required")
                out.write(dumps({"custom_id": custom_id, "params": params}) + b"\n")

    def get(self, batch_id: str) -> Observation:
        """The batch and its status now, settling it first if it has just ended."""
        record = self._disk.batches.get(batch_id)
        if record is None:
            raise not_found(batch_id)
        return self._observe(record)

    def page(
        self, limit: int, before_id: str | None, after_id: str | None
    ) -> tuple[list[Observation], bool]:
        """One page, newest first: the `limit` batches just older than `after_id`, or just
        newer than `before_id`; and whether more lie beyond, in that direction. Ids sort as
        their create times do, so the id need not exist any more."""
        newest_first = sorted(self._disk.batches.all(), key=lambda r: r.id, reverse=True)
        if before_id is not None:
            newer = [r for r in newest_first if r.id > before_id]
            chosen, more = newer[-limit:], len(newer) > limit
        else:
            older = [r for r in newest_first if after_id is None or r.id < after_id]
            chosen, more = older[:limit], len(older) > limit
        observed = []
        for record in chosen:
            try:
                observed.append(self._observe(record))
            except ApiError:
                continue  # deleted while the page was being read
        return observed, more

    def cancel(self, batch_id: str) -> Observation:
        """Start canceling an unfinished batch; one that has ended is answered as it is."""
        with self._disk.lock(batch_id):
            record = self._disk.batches.get(batch_id)
            if record is None:
                raise not_found(batch_id)
            now = self._clock.now()
            if record.cancel_time is None and lifecycle.status(record, now) != ENDED:
                self._disk.batches.put(dataclasses.replace(record, cancel_time=now))
        return self.get(batch_id)

    def delete(self, batch_id: str) -> None:
        """Delete a batch that has ended; an unfinished one must be canceled first."""
        if self.get(batch_id).status != ENDED:
            raise ApiError(
                "INVALID_ARGUMENT",
                f"Message batch {batch_id} cannot be deleted while it is processing; cancel it"
                " and wait for it to end first.",
            )
        with self._disk.lock(batch_id):
            if self._disk.batches.get(batch_id) is None:
                raise not_found(batch_id)
            self._disk.delete_batch(batch_id)

    def results(self, batch_id: str) -> Path:
        """The results file of an ended batch whose results are still kept."""
        seen = self.get(batch_id)
        if seen.status != ENDED:
            raise ApiError(
                "INVALID_ARGUMENT",
                f"Message batch {batch_id} has not finished processing; its results are"
                " available once processing_status is ended.",
            )
        if seen.archived:
            raise ApiError(
                "NOT_FOUND",
                f"The results of message batch {batch_id} are no longer available (29 days"
                " after creation).",
            )
        return self._disk.results(batch_id)

    def close(self) -> None:
        """Stop background production (it resumes on a later read) and wait for it."""
        self._settler.close()

    def _observe(self, record: BatchRecord) -> Observation:
        now = self._clock.now()
        status = lifecycle.status(record, now)
        if status == ENDED and record.end_time is None:
            settled = self._settler.settle(record)
            if settled is None:  # its results are still being produced
                unfinished = lifecycle.CANCELING if record.cancel_time else lifecycle.IN_PROGRESS
                return Observation(record, unfinished, now)
            record = settled
        return Observation(record, status, now)
