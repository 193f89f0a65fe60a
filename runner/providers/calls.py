"""One provider's calls: sent, retried and bounded, their failures in words free of the key.

Every call ends, whatever the server does: a JSON call within `call_timeout`, a transfer
while it moves at least `min_rate` bytes a second, a list walk at a page token that comes
back or after `max_pages`, a wait for a retry at MAX_RETRY_AFTER, and all of it by `deadline`
when the caller sets one (apply does, from --timeout). Only idempotent calls are retried; a
call that may have created something raises AmbiguousCreate instead.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

import httpx
import orjson

from ..errors import ProviderError
from ..failpoints import hit
from ..retry import Backoff, Sleep, retry_after
from .base import AmbiguousCreate
from .reading import error_message
from .transport import MAX_ANSWER, Late, Redactor, TooLarge, client_for, receive

# 529 is Anthropic's "overloaded": a 503 by another number
RETRIABLE = {408, 429, 500, 502, 503, 504, 529}
CALL_TIMEOUT = 120.0               # seconds a JSON call may take, its answer read whole
MIN_RATE = 64 * 1024               # bytes a second a transfer must keep up, on average
MAX_PAGES = 1000                   # pages of a list walk: 100,000 jobs or files
# The most a result line may take, on average, for the bound on a results download: a message
# of 128k output tokens is about 0.5 MB of text; JSON escapes and thinking blocks may double
# it; an embedding of 3,072 numbers is 60 kB.
LINE_BYTES = 4 << 20
SLACK = 64 << 20


def results_limit(requests: int, most: int | None = None) -> int:
    """The most bytes the results of a job of `requests` requests may take: a download that
    goes past it is a provider (or a server in front of it) that would fill the disk. The
    count is the provider's, which may lie: it is capped at `most`, what a job may hold."""
    return SLACK + LINE_BYTES * max(min(requests, most or requests), 1)
MAX_RETRY_AFTER = 300.0            # the longest wait a Retry-After gets

T = TypeVar("T")


class NotFound(ProviderError):
    """HTTP 404: callers that expect it (get, cancel, delete) catch it; elsewhere it is the
    provider's error like any other."""

    def __init__(self, what: str):
        super().__init__(f"{what} failed: HTTP 404 (not found)")


class BadRequest(ProviderError):
    """HTTP 400: the provider refused the call as it was asked. Gemini's client then asks
    again without its partial-response mask, in case a server does not take that mask."""


class Calls:
    def __init__(self, base_url: httpx.URL, api_key: str, *, headers: Mapping[str, str],
                 read: float, call_timeout: float, min_rate: float, max_pages: int,
                 max_attempts: int, sleep: Sleep, backoff: Backoff,
                 transport: httpx.BaseTransport | None = None):
        """`headers` go with every call (the key, in the provider's own header); `api_key`
        is what messages are redacted of."""
        self.http = client_for(base_url, headers, read, transport=transport)
        self.redact = Redactor(api_key)
        self.read = read
        self.call_timeout = call_timeout
        self.min_rate = min_rate
        self.max_attempts = max_attempts
        self._max_pages = max_pages
        self._sleep = sleep
        self._backoff = backoff
        # time.monotonic() by which every call must end, or None
        self.deadline: float | None = None

    # -- bounds and words ------------------------------------------------------------------

    def fail(self, message: str) -> ProviderError:
        return ProviderError(self.redact(message))

    def parse(self, parse: Callable[..., T], *args: Any) -> T:
        """A wire parser's result; its complaints quote provider text, so redacted."""
        try:
            return parse(*args)
        except ProviderError as e:
            raise self.fail(str(e)) from None

    def until(self, what: str, size: int = 0) -> float:
        """The deadline of a call moving `size` bytes; raises if the run's has passed."""
        now = time.monotonic()
        if self.deadline is not None and now >= self.deadline:
            raise timed_out(what)
        until = now + self.call_timeout + size / self.min_rate
        return until if self.deadline is None else min(until, self.deadline)

    def late(self, what: str) -> ProviderError:
        """A call cut at its deadline: the run's, or its own."""
        if self.deadline is not None and time.monotonic() >= self.deadline - 0.01:
            return timed_out(what)
        return self.fail(f"{what}: no complete answer in time (the provider is too slow or "
                         "stalled); try again later")

    def pause(self, seconds: float, what: str) -> None:
        """A wait before a retry, unless it would end past the run's deadline."""
        if self.deadline is not None and time.monotonic() + seconds >= self.deadline:
            raise timed_out(what)
        self._sleep(seconds)

    def backoff(self) -> Backoff:
        return Backoff(self._backoff.base, self._backoff.cap, rng=self._backoff.rng)

    def again(self, attempt: int, backoff: Backoff, what: str) -> None:
        """After a transfer's attempt `attempt` broke off: the wait before the next, or the
        error that ends it (out of attempts, or past the run's deadline)."""
        if self.deadline is not None and time.monotonic() >= self.deadline:
            raise self.late(what) from None
        if attempt == self.max_attempts:
            raise ProviderError(f"{what} failed after {attempt} attempts") from None
        self.pause(backoff.next_delay(), what)

    def lagging(self, started: float, got: int) -> bool:
        """Whether a transfer that started at `started` (monotonic) and has moved `got` bytes
        falls behind `min_rate`, or has run past the run's deadline."""
        now = time.monotonic()
        return now > started + self.call_timeout + got / self.min_rate or \
            (self.deadline is not None and now > self.deadline)

    # -- calls -----------------------------------------------------------------------------

    def send(self, method: str, url: str, *, what: str, idempotent: bool = True, size: int = 0,
             **kwargs: Any) -> httpx.Response:
        """One call with retries. Non-idempotent calls are retried only on a 429, which the
        server answers before doing anything; other failures raise AmbiguousCreate."""
        backoff = self.backoff()
        if not idempotent:
            kwargs = {**kwargs, "extensions": {"trace": _trace_create_answer}}
        for attempt in range(1, self.max_attempts + 1):
            until = self.until(what, size)
            try:
                resp = receive(self.http, method, url, deadline=until, read=self.read, **kwargs)
            except Late:
                if not idempotent:
                    raise AmbiguousCreate(f"{what}: no complete answer in time") from None
                raise self.late(what) from None
            except TooLarge:
                if not idempotent:
                    raise AmbiguousCreate(f"{what}: an answer too large to read") from None
                raise self.fail(f"{what}: the provider's answer is larger than "
                                f"{MAX_ANSWER >> 20} MiB; not read") from None
            except httpx.TransportError as e:
                if not idempotent:
                    raise AmbiguousCreate(f"{what}: {type(e).__name__}") from None
                if attempt == self.max_attempts:
                    raise ProviderError(f"{what} failed: {type(e).__name__} after "
                                        f"{attempt} attempts") from None
                self.pause(backoff.next_delay(), what)
                continue
            if resp.status_code == 200 or resp.status_code == 206:
                return resp
            if resp.status_code in RETRIABLE and not idempotent and resp.status_code != 429:
                # the server may have created it before failing, on any attempt
                raise AmbiguousCreate(f"{what}: HTTP {resp.status_code}")
            if resp.status_code in RETRIABLE and attempt < self.max_attempts:
                delay = backoff.next_delay()
                if resp.status_code == 429:
                    delay = max(delay, min(MAX_RETRY_AFTER,
                                           retry_after(resp.headers.get("retry-after"), delay)))
                self.pause(delay, what)
                continue
            raise self.refused(what, resp.status_code, resp.content)
        raise AssertionError("unreachable")

    def refused(self, what: str, status: int, body: bytes) -> ProviderError:
        """The error for a call the provider answered with a status it will not change its
        mind about: NotFound for a 404, which callers that expect one catch."""
        if status == 404:
            return NotFound(what)
        message = self.redact(f"{what} failed: HTTP {status}: "
                              f"{error_message(body, body.decode('utf-8', 'replace'))}")
        return BadRequest(message) if status == 400 else ProviderError(message)

    def attempt(self, method: str, url: str, *, what: str, size: int = 0,
                **kwargs: Any) -> httpx.Response | None:
        """One bounded try, not retried (the caller knows how to resume): None when the
        connection failed."""
        try:
            return receive(self.http, method, url, deadline=self.until(what, size),
                           read=self.read, **kwargs)
        except Late:
            raise self.late(what) from None
        except TooLarge:
            raise self.fail(f"{what}: the provider's answer is larger than "
                            f"{MAX_ANSWER >> 20} MiB; not read") from None
        except httpx.TransportError:
            return None

    def json(self, method: str, url: str, *, what: str, **kwargs: Any) -> Any:
        return decode(self.send(method, url, what=what, **kwargs), what)

    def pages(self, url: str, what: str, params: Callable[[str], dict[str, Any]],
              parse: Callable[[object, str], tuple[list[Any], str]]
              ) -> Iterator[tuple[str, Any]]:
        """Every item of a paged list, with words naming it. `params(token)` is the query of
        the page a token ("" for the first) names, `parse(page, whose)` a page's items and the
        next page's token ("" after the last): each API pages in its own words. Stops, with
        an error, at a token seen before (the walk would go round for ever) and after
        max_pages pages."""
        token, seen = "", set()
        for number in range(1, self._max_pages + 1):
            page = self.json("GET", url, what=f"{what} (page {number})", params=params(token))
            found, token = self.parse(parse, page, f"{what} page {number}")
            for i, item in enumerate(found, 1):
                yield f"{what} page {number}, item {i}", item
            if not token:
                return
            if token in seen:
                raise self.fail(f"{what}: the provider sent the same page token again on page "
                                f"{number}; stopping (its paging would never end)")
            seen.add(token)
        raise self.fail(f"{what}: still more after {self._max_pages} pages; stopping (the "
                        "provider's paging does not end)")


class OverCalls:
    """What every provider's client shares over its Calls: the run's deadline, which
    Clients.time_limit sets on each client, and closing the connection pool."""

    _calls: Calls

    @property
    def deadline(self) -> float | None:
        """A time.monotonic() value by which every call must end (None: each call's own
        bound only); apply sets it from --timeout."""
        return self._calls.deadline

    @deadline.setter
    def deadline(self, value: float | None) -> None:
        self._calls.deadline = value

    def close(self) -> None:
        self._calls.http.close()


def decode(resp: httpx.Response, what: str) -> Any:
    """A JSON answer. NaN and Infinity, which Python's parser lets through, are refused: no
    JSON writer downstream would take them back."""
    if not resp.content:
        return {}
    try:    # orjson refuses NaN and Infinity too, and is 5x faster on a job's inline results
        return orjson.loads(resp.content)
    except orjson.JSONDecodeError:  # an integer past 64 bits, or not JSON: the json module's
        pass
    try:
        return json.loads(resp.content, parse_constant=_refuse)
    except ValueError:
        raise ProviderError(f"{what}: the provider answered with invalid JSON") from None


def _trace_create_answer(event: str, info: dict[str, Any]) -> None:
    """The moment a create's answer starts to arrive: the job exists, the caller does not
    know it yet (the kill point after-create-sent, the same for every provider)."""
    if event == "http11.receive_response_headers.complete":
        hit("after-create-sent")


def _refuse(constant: str) -> Any:
    raise ValueError(constant)


def timed_out(what: str) -> ProviderError:
    return ProviderError(f"{what}: timed out at the run's time limit; run apply again to resume")
