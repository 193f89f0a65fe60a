"""Turning a Gemini batch's input into its results, one line at a time.

Input files can exceed a gigabyte, so both directions stream: lines are read and answered one
by one here, and written (shuffled within windows, counted, hashed) by the shared
runner.emulator.production. File mode reads `{key, request, ...}` lines (or bare requests)
and writes `{key, response | error}`; inline mode turns stored InlinedRequests into
InlinedResponses.
"""

from __future__ import annotations

import dataclasses
import json
import random
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import orjson

from runner.emulator.gemini import cores, echo
from runner.emulator.gemini.protojson import rpc_status
from runner.emulator.model import FailurePolicy
from runner.emulator.production import InvalidInput, Tally, write_lines, write_results
from runner.emulator.wire import JSON, canonical, fast_dumps, may_hold_floats


@dataclasses.dataclass(frozen=True)
class Producer:
    """Answers requests for one batch and writes the result lines."""

    model: str
    policy: FailurePolicy
    order: random.Random | None
    stop: threading.Event | None = None

    def run_file(self, source: Path, target: IO[bytes]) -> Tally:
        """File mode: each input line `{key, request, ...}` or a bare request, to a result line;
        a big file's across cores (runner.emulator.gemini.cores), to the same bytes."""
        if source.stat().st_size >= cores.APART_BYTES:
            return write_lines(cores.across_cores(self, source), target, self.order, self.stop)
        with source.open("rb") as lines:
            return write_results(self.file_results(lines), target, self.order, self.stop)

    def run_inline(self, source: Path, target: IO[bytes]) -> Tally:
        """Inline mode: each stored InlinedRequest `{request, metadata}` to an InlinedResponse."""
        with source.open("rb") as lines:
            return write_results(self._inline_results(lines), target, self.order, self.stop)

    def file_results(self, lines: IO[bytes], first: int = 1, floats: bool = True
                     ) -> Iterator[tuple[JSON | bytes, bool]]:
        """Each line's result, and whether it succeeded; `first`: the number of the first
        line, for InvalidInput's message; `floats=False`: no line holds a float (so none is
        searched for one)."""
        any_floats = floats
        for number, raw in enumerate(lines, first):
            if not raw or raw.isspace():    # (not strip(), which copies every line)
                continue
            fast = True     # parsed by orjson, so written by it too (wire.fast_dumps)
            try:
                line = orjson.loads(raw)
            except orjson.JSONDecodeError:  # what orjson refuses, the json module decides
                fast = False
                try:
                    line = json.loads(raw)
                except ValueError:
                    raise InvalidInput(f"Error on line {number}: invalid JSON") from None
            if not isinstance(line, dict):
                raise InvalidInput(f"Error on line {number}: expected a JSON object")
            if "request" in line:
                request = line.pop("request")
                result = line       # the line's other fields, echoed
                identity = str(line["key"]) if "key" in line else canonical(request)
            else:
                request, result, identity = line, {}, canonical(line)
            floats = fast and any_floats and may_hold_floats(raw)
            kind, value = self._result(request, identity, fast, floats)
            result[kind] = value
            yield fast_dumps(result, floats=floats) if fast else result, kind == "response"

    def _inline_results(self, lines: IO[bytes]) -> Iterator[tuple[JSON | bytes, bool]]:
        for raw in lines:
            fast = True     # as in file_results
            try:
                item = orjson.loads(raw)
            except orjson.JSONDecodeError:
                item, fast = json.loads(raw), False
            request = item.get("request")
            metadata = item.get("metadata")
            has_key = isinstance(metadata, dict) and "key" in metadata
            identity = str(metadata["key"]) if has_key else canonical(request)
            floats = fast and may_hold_floats(raw)
            kind, value = self._result(request, identity, fast, floats)
            result: JSON = {kind: value}
            if metadata is not None:
                result["metadata"] = metadata
            yield fast_dumps(result, floats=floats) if fast else result, kind == "response"

    def _result(self, request: Any, identity: str, fast: bool = False, floats: bool = True
                ) -> tuple[str, JSON]:
        """The kind of result ("response" or "error") and its value; `fast`: the request was
        parsed by orjson (holding floats only if `floats`), so it may be written by it."""
        if not isinstance(request, dict):
            return "error", rpc_status("INVALID_ARGUMENT", "request must be a JSON object")
        prompt = echo.prompt_of(request)
        error = echo.error_for(self.policy, prompt, identity)
        if error is not None:
            return "error", error
        return "response", echo.answer(request, prompt, self.model,
                                       fast_dumps(request, True, floats) if fast else None)
