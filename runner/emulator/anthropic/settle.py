"""Settling a Message Batch that has ended: its results produced once, its counts written.

The first read that finds a batch ended settles it. Producing results runs at tens of
thousands of lines a second, so a batch of 256 MB takes a while: too long to hold a GET open.
Requests above SYNC_LIMIT are therefore answered by a background worker while the batch keeps
reading as it did (`in_progress` or `canceling`), as a real batch does until its results are
ready; smaller ones (every test-sized batch) settle within the read that finds them ended.
"""

from __future__ import annotations

import dataclasses
import threading

from runner.emulator.anthropic.disk import Disk
from runner.emulator.anthropic.lifecycle import end_of, not_found
from runner.emulator.anthropic.records import BatchRecord
from runner.emulator.anthropic.results import Producer
from runner.emulator.clock import Clock
from runner.emulator.production import Workers
from runner.emulator.store import atomic_file, remove

# Requests up to this size are answered while the first read after the end waits; larger
# ones in a background thread, the batch reading unfinished until they are ready. Answering
# runs at about 10,000 requests a second (100,000 short ones, 16 MB, took 7.5 to 9.6 s), so
# this keeps a read that settles a batch to about two or three seconds.
SYNC_LIMIT = 4 * 1024 * 1024


class Settler:
    """Settles ended batches, in the read that finds them ended or, when big, in the
    background."""

    def __init__(self, disk: Disk, clock: Clock) -> None:
        self._disk = disk
        self._clock = clock
        self._workers = Workers("anthropic-produce")

    def settle(self, record: BatchRecord) -> BatchRecord | None:
        """The settled record of a batch that has ended; None while its results are still
        being produced in the background."""
        if self._size(record) > SYNC_LIMIT:
            self._workers.start(
                record.id, lambda: self._work(record), f"producing the results of {record.id}"
            )
            return None
        with self._disk.lock(record.id):
            fresh = self._disk.batches.get(record.id)
            if fresh is None:
                raise not_found(record.id)
            if fresh.end_time is None:
                fresh = self._finish(fresh, None, end_of(fresh))
                self._disk.batches.put(fresh)
        return fresh

    def close(self) -> None:
        """Stop background production (it resumes on a later read) and wait for it."""
        self._workers.close()

    def _size(self, record: BatchRecord) -> int:
        try:
            return self._disk.requests(record.id).stat().st_size
        except FileNotFoundError:
            return 0

    def _work(self, record: BatchRecord) -> None:
        """Produce a big batch's results off the request path. It read unfinished meanwhile,
        so it ends when they are ready, not before."""
        settled = self._finish(record, self._workers.stopping, end_of(record))
        settled = dataclasses.replace(settled, end_time=max(end_of(record), self._clock.now()))
        with self._disk.lock(record.id):
            fresh = self._disk.batches.get(record.id)
            if fresh is None:
                remove(self._disk.results(record.id))  # deleted while being produced
            elif fresh.end_time is None:
                self._disk.batches.put(settled)

    def _finish(self, record: BatchRecord, stop: threading.Event | None,
                end: float) -> BatchRecord:
        """The settled record of an ended batch, with its results written to disk."""
        with atomic_file(self._disk.results(record.id)) as out:
            counts = Producer(record, stop).run(self._disk.requests(record.id), out)
        return dataclasses.replace(
            record, end_time=end, succeeded=counts["succeeded"], errored=counts["errored"],
            canceled=counts["canceled"], expired=counts["expired"],
        )
