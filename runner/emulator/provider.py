"""The seam between the shared server and one provider's API.

One server, on one state directory, serves every emulated provider, each under its own path
prefix: Gemini at the root, where its SDK and the runner have always found it; OpenAI's Batch
API under "/openai/v1"; Anthropic's Message Batches under "/anthropic".
A provider package exposes a `Factory`: given the `Shared` machinery it returns a `Provider`,
its routes plus the few answers only it knows how to shape (a missing key, a 429, an error).
The shared dispatcher (runner.emulator.dispatch) does the rest the same way for all: admin
routes, the fault dice, the `slow` delay, the hostile distortions, the counters.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Sequence
from typing import Protocol

from runner.emulator.admin import Stats
from runner.emulator.clock import Clock
from runner.emulator.faults import FaultDice
from runner.emulator.hostile import Shapes
from runner.emulator.messages import Reply, Request
from runner.emulator.store import Store
from runner.emulator.wire import ApiError

Handler = Callable[[Request, dict[str, str]], Reply]


@dataclasses.dataclass(frozen=True)
class Route:
    """A method and a path pattern (relative to the provider's prefix) and who answers them.

    `needs_key` routes go through the provider's `authorize` first; `query_flag` makes a
    route match only when that query parameter is present (Gemini's upload URL shares its
    path with the start of an upload)."""

    method: str
    pattern: re.Pattern[str]
    handler: Handler
    needs_key: bool = True
    query_flag: str | None = None

    def match(self, request: Request) -> dict[str, str] | None:
        """The path's named groups when this route answers `request`, else None."""
        if self.method != request.method:
            return None
        if self.query_flag is not None and self.query_flag not in request.query:
            return None
        found = self.pattern.fullmatch(request.path)
        return None if found is None else found.groupdict()


def route(method: str, pattern: str, handler: Handler, *, needs_key: bool = True) -> Route:
    return Route(method, re.compile(pattern), handler, needs_key)


@dataclasses.dataclass(frozen=True)
class Shared:
    """What every provider is given: one store (each provider keeps its own tables in it),
    one clock (for latency and expiry), one set of fault dice and counters, and how long
    (emulator clock) a batch runs."""

    store: Store
    clock: Clock
    dice: FaultDice
    stats: Stats
    latency: float

    def drop_created(self) -> bool:
        """Count a batch just created; True when its answer must be dropped all the same
        (the `drop_after_create` fault: the job exists, the client never hears of it)."""
        self.stats.count("creates")
        if self.dice.drop_after_create():
            self.stats.count("drops_after_create")
            return True
        return False


class Provider(Protocol):
    """One provider's API. Its routes see a request as if served at the root: the dispatcher
    takes the prefix off the path and adds it to `base_url` (for absolute URLs it answers)."""

    @property
    def routes(self) -> Sequence[Route]: ...

    @property
    def shapes(self) -> Shapes:
        """Where its answers keep what the hostile faults distort."""
        ...

    def authorize(self, request: Request) -> None:
        """Raise the provider's error when a `needs_key` route's request carries no API key."""

    def error_reply(self, error: ApiError) -> Reply:
        """An error answer in the provider's shape."""
        ...

    def rate_limited(self, retry_after: float) -> ApiError:
        """The provider's 429, for the `rate_429` fault."""
        ...

    def unavailable(self) -> ApiError:
        """The provider's 503, for the `rate_503` fault."""
        ...

    def holdings(self) -> dict[str, int]:
        """How many records of each kind it holds now, for `/_emulator/stats`."""
        ...

    def close(self) -> None:
        """Stop background work; called once the server no longer accepts requests."""


Factory = Callable[[Shared], Provider]
