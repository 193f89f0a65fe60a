"""Turning a Message Batch's requests into its results file, one line at a time.

A batch may hold 100,000 requests and 256 MB, so both directions stream: stored requests are
read and answered one by one here, and written (shuffled within windows when the batch was
created with `shuffle_results`) by the shared runner.emulator.production. Each line is
`{"custom_id", "result"}`, the result one of `succeeded` (with the Message), `errored` (with
an ErrorResponse), `canceled` or `expired`: which one is decided by when the request would
have been answered (runner.emulator.anthropic.lifecycle) and by the shared failure rule.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import random
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from runner.emulator.anthropic import echo, lifecycle
from runner.emulator.anthropic.errors import derived_request_id, error_response
from runner.emulator.anthropic.records import BatchRecord
from runner.emulator.model import FailurePolicy
from runner.emulator.production import write_results
from runner.emulator.wire import JSON

RESULT_TYPES = ("succeeded", "errored", "canceled", "expired")


@dataclasses.dataclass(frozen=True)
class Producer:
    """Answers the requests of one batch and writes its result lines."""

    record: BatchRecord
    stop: threading.Event | None = None

    def run(self, source: Path, target: IO[bytes]) -> dict[str, int]:
        """Write the results of the requests in `source`; answer how many of each type."""
        counts: collections.Counter[str] = collections.Counter()
        record = self.record
        order = random.Random(f"{record.seed}:{record.id}") if record.shuffle else None
        with source.open("rb") as lines:
            write_results(self._results(lines, counts), target, order, self.stop)
        return {kind: counts[kind] for kind in RESULT_TYPES}

    def _results(
        self, lines: IO[bytes], counts: collections.Counter[str]
    ) -> Iterator[tuple[JSON, bool]]:
        policy = FailurePolicy(self.record.error_rate, self.record.seed)
        for index, raw in enumerate(lines):
            item = json.loads(raw)
            result = self._result(index, item["custom_id"], item["params"], policy)
            counts[result["type"]] += 1
            yield {"custom_id": item["custom_id"], "result": result}, \
                result["type"] == "succeeded"

    def _result(
        self, index: int, custom_id: str, params: dict[str, Any], policy: FailurePolicy
    ) -> JSON:
        record = self.record
        if not lifecycle.answered(record, index):
            return {"type": lifecycle.unanswered(record)}
        request_id = derived_request_id(record.id, custom_id)
        problem = echo.invalid(params, record.version)
        if problem is not None:
            return _errored("INVALID_ARGUMENT", problem, request_id)
        if record.fail:
            return _errored("INTERNAL", "Emulated request failure (fail).", request_id)
        prompt = echo.prompt_of(params)
        failure = policy.failure(prompt, custom_id)
        if failure is not None:
            return _errored(failure.status, failure.message, request_id)
        return {"type": "succeeded", "message": echo.message(params, prompt)}


def _errored(status: str, message: str, request_id: str) -> JSON:
    return {"type": "errored", "error": error_response(status, message, request_id)}
