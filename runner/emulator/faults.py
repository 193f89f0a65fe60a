"""Fault settings and the seeded dice that decide, request by request, which fault strikes.

Faults let tests exercise a client's retry and recovery paths against a real server. The dice
are a seeded `random.Random` behind a lock, so a run with a given seed and request order
repeats exactly; tests in another process change the settings over `/_emulator/faults`.
"""

from __future__ import annotations

import dataclasses
import enum
import random
import threading
from collections.abc import Mapping
from typing import Any

_RATES = ("rate_429", "rate_503", "rate_reset", "drop_after_create", "request_error_rate")
_SECONDS = ("retry_after", "slow", "trickle")
_FLAGS = ("overloaded", "expire", "fail", "shuffle_results", "repeat_page_token",
          "endless_pages", "echo_key")
# The fields `wrong_types` can give the wrong JSON type. They are named after Gemini's answers,
# where they were first wanted; each provider's hostile Shapes says what each name breaks in
# its own answers (runner.emulator.hostile; Gemini's in runner.emulator.gemini.hostile).
WRONG_TYPES = ("state", "request-count", "response", "page", "operation", "candidates",
               "parts", "file")


@dataclasses.dataclass(frozen=True)
class Faults:
    """What goes wrong, and how often. Every default means "nothing goes wrong".

    Rates are probabilities in [0, 1]. `overloaded` turns the `rate_503` answers into a
    provider's own "overloaded" answer where it has one (Anthropic's 529); others ignore it.
    `expire` and `fail` decide how batches created while they are set end; `request_error_rate`
    and `shuffle_results` shape the results of batches created while they are set. `seed`
    seeds both the per-request dice and result choices.

    The rest make a hostile or broken server (runner.emulator.hostile): `trickle` sends each
    answer's body one byte every so many seconds; `repeat_page_token` ends every list page
    with the same next-page token, `endless_pages` with a new one, for ever; `echo_key` quotes
    the request's API key in every error message; `wrong_types` gives one field of every
    answer the wrong JSON type (one of WRONG_TYPES); `upload_url` (`scheme://host:port`)
    points the upload URL of a new upload at another server.
    """

    rate_429: float = 0.0
    retry_after: float = 1.0
    rate_503: float = 0.0
    overloaded: bool = False
    rate_reset: float = 0.0
    drop_after_create: float = 0.0
    slow: float = 0.0
    expire: bool = False
    fail: bool = False
    request_error_rate: float = 0.0
    shuffle_results: bool = False
    seed: int = 0
    trickle: float = 0.0
    repeat_page_token: bool = False
    endless_pages: bool = False
    echo_key: bool = False
    wrong_types: str = ""
    upload_url: str = ""

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def updated(self, changes: Mapping[str, Any]) -> Faults:
        """Apply a partial update; raise ValueError naming the first bad field."""
        fields: dict[str, Any] = {}
        for name, value in changes.items():
            if name in _RATES:
                if not _is_number(value) or not 0.0 <= value <= 1.0:
                    raise ValueError(f"{name} must be a number between 0 and 1")
                value = float(value)
            elif name in _SECONDS:
                if not _is_number(value) or value < 0:
                    raise ValueError(f"{name} must be a number of seconds >= 0")
                value = float(value)
            elif name in _FLAGS:
                if not isinstance(value, bool):
                    raise ValueError(f"{name} must be true or false")
            elif name == "seed":
                if isinstance(value, bool) or not isinstance(value, int):
                    raise ValueError("seed must be an integer")
            elif name == "wrong_types":
                if value not in ("", *WRONG_TYPES):
                    raise ValueError(f"wrong_types must be one of {', '.join(WRONG_TYPES)}")
            elif name == "upload_url":
                if not isinstance(value, str) or value and not value.startswith(
                        ("http://", "https://")):
                    raise ValueError("upload_url must be an http(s) URL, or empty")
            else:
                raise ValueError(f"unknown fault {name!r}")
            fields[name] = value
        return dataclasses.replace(self, **fields)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class Fault(enum.Enum):
    """The fate of one API request."""

    NONE = "none"
    RATE_LIMITED = "429"
    UNAVAILABLE = "503"
    RESET = "reset"


class FaultDice:
    """The current Faults plus the seeded random source that applies them."""

    def __init__(self, faults: Faults) -> None:
        self._lock = threading.Lock()
        self._faults = faults
        self._random = random.Random(faults.seed)

    @property
    def faults(self) -> Faults:
        with self._lock:
            return self._faults

    def replace(self, faults: Faults) -> None:
        with self._lock:
            if faults.seed != self._faults.seed:
                self._random.seed(faults.seed)
            self._faults = faults

    def update(self, changes: Mapping[str, Any]) -> Faults:
        with self._lock:
            faults = self._faults.updated(changes)
            if "seed" in changes:
                self._random.seed(faults.seed)
            self._faults = faults
            return faults

    def roll(self) -> Fault:
        """Pick the fault for one request: 429, 503 and reset share one draw."""
        with self._lock:
            faults = self._faults
            if not (faults.rate_429 or faults.rate_503 or faults.rate_reset):
                return Fault.NONE
            draw = self._random.random()
        for fault, rate in (
            (Fault.RATE_LIMITED, faults.rate_429),
            (Fault.UNAVAILABLE, faults.rate_503),
            (Fault.RESET, faults.rate_reset),
        ):
            if draw < rate:
                return fault
            draw -= rate
        return Fault.NONE

    def drop_after_create(self) -> bool:
        with self._lock:
            rate = self._faults.drop_after_create
            return bool(rate) and self._random.random() < rate
