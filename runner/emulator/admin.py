"""The `/_emulator/*` routes: steer faults and the clock, read counters.

They exist so a test can drive an emulator running in another process (the runner starts its
own). They need no API key and never suffer faults, so a test can always reach them.
"""

from __future__ import annotations

import threading

from runner.emulator.clock import Clock
from runner.emulator.faults import FaultDice
from runner.emulator.messages import Reply, Request
from runner.emulator.store import Store
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
    def __init__(self, store: Store, clock: Clock, dice: FaultDice, stats: Stats) -> None:
        self._store = store
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
        """Counters since start, plus how many batches and files the store holds now."""
        stats = self._stats.snapshot()
        stats["batches"] = len(self._store.batches())
        stats["files"] = len(self._store.files())
        return Reply.json(stats)
