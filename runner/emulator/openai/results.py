"""Turning an OpenAI batch's input into the lines of its output and error files.

Inputs can reach 200 MB, so lines are read and answered one by one and written (shuffled
within windows, counted) by the shared runner.emulator.production; each file is one pass over
the input. A line is `{"id", "custom_id", "response": {"status_code", "request_id", "body"},
"error"}`: answered requests go to the output file, requests answered with an HTTP error to
the error file (with the error in `response.body.error`, as the real service files them),
and, when a batch expires, every request it did not reach to the error file with `response`
null and `error` {"code": "batch_expired", ...}. Line and request ids are hashes of the batch
and the custom_id, so a batch's files read the same however often they are produced.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from runner.emulator import model
from runner.emulator.openai import echo
from runner.emulator.openai.records import BatchRecord
from runner.emulator.production import Tally, write_results
from runner.emulator.wire import JSON

EXPIRED_ERROR = {
    "code": "batch_expired",
    "message": "This request could not be executed before the completion window expired.",
}


@dataclasses.dataclass
class Usage:
    """Tokens of the answered requests, summed for the batch's `usage`."""

    input_tokens: int = 0
    output_tokens: int = 0

    def to_json(self) -> JSON:
        return {
            "input_tokens": self.input_tokens,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": self.output_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": self.input_tokens + self.output_tokens,
        }


@dataclasses.dataclass(frozen=True)
class Producer:
    """Writes the result files of one batch that answered its first `answered` requests."""

    record: BatchRecord
    source: Path
    answered: int
    expired: bool
    created: int  # the answers' creation time
    stop: threading.Event | None = None

    def write_output(self, target: IO[bytes], usage: Usage) -> Tally:
        """The answered requests that succeeded; their tokens are added to `usage`."""
        return write_results(self._output(usage), target, self._order("output"), self.stop)

    def write_errors(self, target: IO[bytes]) -> Tally:
        """The answered requests that failed, then (if expired) those never reached."""
        return write_results(self._errors(), target, self._order("error"), self.stop)

    def _order(self, which: str) -> random.Random | None:
        if not self.record.shuffle:
            return None
        return random.Random(f"{self.record.seed}:{self.record.id}:{which}")

    def _output(self, usage: Usage) -> Iterator[tuple[JSON, bool]]:
        endpoint = self.record.endpoint
        for custom_id, status, body in self._answers(succeeded=True):
            tokens_in, tokens_out = echo.usage_of(endpoint, body)
            usage.input_tokens += tokens_in
            usage.output_tokens += tokens_out
            yield self._line(custom_id, status, body), True

    def _errors(self) -> Iterator[tuple[JSON, bool]]:
        for custom_id, status, body in self._answers(succeeded=False):
            yield self._line(custom_id, status, body), False
        if self.expired:
            for index, request in enumerate(self._requests()):
                if index >= self.answered:
                    line = self._line(request["custom_id"], None, None)
                    yield {**line, "error": EXPIRED_ERROR}, False

    def _answers(self, succeeded: bool) -> Iterator[tuple[str, int, JSON]]:
        """(custom_id, HTTP status, body) of each request the batch answered, in order: those
        that `succeeded`, or those that failed (each pass builds only the bodies it keeps)."""
        if not self.answered:  # a batch cancelled while validating may have no input left
            return
        endpoint = self.record.endpoint
        policy = model.FailurePolicy(self.record.error_rate, self.record.seed)
        for index, request in enumerate(self._requests()):
            if index >= self.answered:
                return
            body, custom_id = request["body"], request["custom_id"]
            prompt = echo.prompt_of(endpoint, body)
            failed = echo.failure(endpoint, body, prompt, policy, custom_id)
            if failed is None and succeeded:
                yield custom_id, 200, echo.answer(endpoint, body, prompt, self.created)
            elif failed is not None and not succeeded:
                yield custom_id, failed[0], failed[1]

    def _requests(self) -> Iterator[JSON]:
        """The input's requests (validated when the batch was created), in order."""
        with self.source.open("rb") as lines:
            for raw in lines:
                if raw.strip():
                    yield json.loads(raw)

    def _line(self, custom_id: str, status: int | None, body: JSON | None) -> JSON:
        digest = hashlib.sha256(f"{self.record.id}\0{custom_id}".encode()).hexdigest()
        response = None
        if status is not None:
            response = {"status_code": status, "request_id": f"req_{digest[32:]}", "body": body}
        return {"id": f"batch_req_{digest[:32]}", "custom_id": custom_id,
                "response": response, "error": None}
