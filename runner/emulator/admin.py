"""The `/_emulator/*` routes: steer faults and the clock, read counters.

They exist so a test can drive an emulator running in another process (the runner starts its
own). They need no API key and never suffer faults, so a test can always reach them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from runner.emulator.clock import Clock
from runner.emulator.faults import FaultDice
from runner.emulator.messages import Reply, Request
from runner.emulator.wire import ApiError, timestamp


class Stats:
    """Counters since this emulator started, for tests that check what a client did."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts = {
            "creates": 0,
            "uploads_started": 0,
            "requests_served": 0,
            "faults_429": 0,
            "faults_503": 0,
            "faults_reset": 0,
            "drops_after_create": 0,
        }

    def count(self, name: str) -> None:
        with self._lock:
            self._counts[name] += 1

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)


class Admin:
    def __init__(
        self, clock: Clock, dice: FaultDice, stats: Stats, holdings: Callable[[], dict[str, int]]
    ) -> None:
        self._holdings = holdings
        self._clock = clock
        self._dice = dice
        self._stats = stats

    def get_faults(self, request: Request, params: dict[str, str]) -> Reply:
        return Reply.json(self._dice.faults.to_json())

    def set_faults(self, request: Request, params: dict[str, str]) -> Reply:
        """Apply a partial update such as `{"rate_429": 0.5}`; answer the full settings."""
        try:
            faults = self._dice.update(request.json())
        except ValueError as error:
            raise ApiError("INVALID_ARGUMENT", str(error)) from None
        return Reply.json(faults.to_json())

    def advance_clock(self, request: Request, params: dict[str, str]) -> Reply:
        """`{"advance": seconds}` moves the clock forward; answers the new `now`."""
        seconds = request.json().get("advance")
        if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or seconds < 0:
            raise ApiError("INVALID_ARGUMENT", "advance must be a number of seconds >= 0")
        return Reply.json({"now": timestamp(self._clock.advance(float(seconds)))})

    def get_stats(self, request: Request, params: dict[str, str]) -> Reply:
        """Counters since start, plus how many records the store holds now (for Gemini,
        `batches` and `files`; for OpenAI, `openai_batches`, `openai_files`, `openai_uploads`;
        for Anthropic, `anthropic_batches`)."""
        return Reply.json({**self._stats.snapshot(), **self._holdings()})
