"""A fake server for a provider's client, over httpx.MockTransport: the client tests of each
provider subclass it with the headers their client must send and how to build the client."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import httpx

from runner.retry import Backoff

Answer = httpx.Response | Exception


class FakeServer:
    """`answer` gives each request's response (or an exception to raise, as a dropped
    connection would); every request and every retry wait is kept."""

    def __init__(self, answer: Callable[[httpx.Request], Answer]):
        self.answer = answer
        self.requests: list[httpx.Request] = []
        self.sleeps: list[float] = []

    def check(self, request: httpx.Request) -> None:
        """What every request to this provider must carry (its key, its headers)."""

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.check(request)
        request.read()
        self.requests.append(request)
        got = self.answer(request)
        if isinstance(got, Exception):
            raise got
        if got.is_stream_consumed:      # built from content=/json=: a real transport streams
            return httpx.Response(got.status_code, headers=got.headers,
                                  stream=httpx.ByteStream(got.content))
        return got

    def fast(self) -> dict[str, Any]:
        """A client's arguments that send through this server and make retries instant."""
        return {"transport": httpx.MockTransport(self), "sleep": self.sleeps.append,
                "max_attempts": 3,
                "backoff": Backoff(base=0.001, cap=0.004, rng=random.Random(7))}


def in_order(*answers: Answer) -> Callable[[httpx.Request], Answer]:
    """Answers given in order, one per request."""
    queue = list(answers)
    return lambda request: queue.pop(0)


def ok(payload: object) -> httpx.Response:
    return httpx.Response(200, json=payload)
