"""Turning a batch's input into its results, one line at a time.

Input files can exceed a gigabyte, so both directions stream: lines are read, answered and
written one by one. When results are shuffled (the real API does not promise order), they are
shuffled within windows of `WINDOW` lines so memory stays bounded.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import random
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from runner.emulator.gemini import echo
from runner.emulator.gemini.protojson import rpc_status
from runner.emulator.wire import JSON, canonical, dumps

WINDOW = 1000


class InvalidInput(Exception):
    """The input cannot be read as requests; the whole batch fails with this message."""


class Interrupted(Exception):
    """Production was stopped (the emulator is shutting down); nothing was written."""


@dataclasses.dataclass(frozen=True)
class Tally:
    """Counts per outcome, plus the size and base64 SHA-256 of what was written."""

    succeeded: int
    failed: int
    size: int
    sha256: str


@dataclasses.dataclass(frozen=True)
class Producer:
    """Answers requests for one batch and writes the result lines."""

    model: str
    policy: echo.FailurePolicy
    order: random.Random | None
    stop: threading.Event | None = None

    def run_file(self, source: Path, target: IO[bytes]) -> Tally:
        """File mode: each input line `{key, request, ...}` or a bare request, to a result line."""
        with source.open("rb") as lines:
            return self._write(self._file_results(lines), target)

    def run_inline(self, source: Path, target: IO[bytes]) -> Tally:
        """Inline mode: each stored InlinedRequest `{request, metadata}` to an InlinedResponse."""
        with source.open("rb") as lines:
            return self._write(self._inline_results(lines), target)

    def _file_results(self, lines: IO[bytes]) -> Iterator[tuple[JSON, bool]]:
        for number, raw in enumerate(lines, 1):
            if not raw.strip():
                continue
            try:
                line = json.loads(raw)
            except ValueError:
                raise InvalidInput(f"Error on line {number}: invalid JSON") from None
            if not isinstance(line, dict):
                raise InvalidInput(f"Error on line {number}: expected a JSON object")
            if "request" in line:
                request = line["request"]
                echoed = {k: v for k, v in line.items() if k != "request"}
                identity = str(line["key"]) if "key" in line else canonical(request)
            else:
                request, echoed, identity = line, {}, canonical(line)
            kind, value = self._result(request, identity)
            yield {**echoed, kind: value}, kind == "response"

    def _inline_results(self, lines: IO[bytes]) -> Iterator[tuple[JSON, bool]]:
        for raw in lines:
            item = json.loads(raw)
            request = item.get("request")
            metadata = item.get("metadata")
            has_key = isinstance(metadata, dict) and "key" in metadata
            identity = str(metadata["key"]) if has_key else canonical(request)
            kind, value = self._result(request, identity)
            result: JSON = {kind: value}
            if metadata is not None:
                result["metadata"] = metadata
            yield result, kind == "response"

    def _result(self, request: Any, identity: str) -> tuple[str, JSON]:
        if not isinstance(request, dict):
            return "error", rpc_status("INVALID_ARGUMENT", "request must be a JSON object")
        prompt = echo.prompt_of(request)
        error = self.policy.error_for(prompt, identity)
        if error is not None:
            return "error", error
        return "response", echo.answer(request, prompt, self.model)

    def _write(self, results: Iterator[tuple[JSON, bool]], target: IO[bytes]) -> Tally:
        succeeded = failed = size = 0
        digest = hashlib.sha256()
        window: list[bytes] = []
        for result, ok in results:
            succeeded += ok
            failed += not ok
            window.append(dumps(result) + b"\n")
            if len(window) >= WINDOW:
                size += self._flush(window, target, digest)
        size += self._flush(window, target, digest)
        return Tally(succeeded, failed, size, base64.b64encode(digest.digest()).decode())

    def _flush(self, window: list[bytes], target: IO[bytes], digest: hashlib._Hash) -> int:
        if self.stop is not None and self.stop.is_set():
            raise Interrupted
        if self.order is not None:
            self.order.shuffle(window)
        for line in window:
            digest.update(line)
            target.write(line)
        written = sum(map(len, window))
        window.clear()
        return written
