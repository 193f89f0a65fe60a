"""Anthropic's Message Batches API as a provider of the shared server (mounted at /anthropic).

The SDK is pointed at `<emulator>/anthropic` and appends `/v1/messages/batches...` itself.
The checks every route goes through (key, fault dice, delay, hostile answers) are the shared
dispatcher's (runner.emulator.dispatch); this module lists Anthropic's routes, answers them,
and shapes what only Anthropic decides: a missing key (401) or `anthropic-version` (400), its
429 and its overloaded 529, and its error body. Any `anthropic-version` value is accepted;
the one a batch is created with decides which request parameters it refuses.

The SDK honours any Retry-After, however long, so the fault answers' is capped at
MAX_RETRY_AFTER; they also say `x-should-retry: true`, which the SDK obeys.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from typing import IO

from runner.emulator import models
from runner.emulator.anthropic import views
from runner.emulator.anthropic.batches import Batches
from runner.emulator.anthropic.disk import Disk
from runner.emulator.anthropic.errors import api_key, error_body, new_request_id
from runner.emulator.anthropic.hostile import SHAPES, WRONG_IN_RESULTS, distort_results
from runner.emulator.anthropic.lifecycle import IN_PROGRESS, Observation
from runner.emulator.hostile import Shapes
from runner.emulator.messages import Reply, Request
from runner.emulator.provider import Route, Shared, route
from runner.emulator.wire import ApiError

MAX_CREATE_BYTES = 256 * 1024 * 1024
MAX_RETRY_AFTER = 5.0
DEFAULT_LIMIT = 20
MAX_LIMIT = 1000

_BATCHES = "/v1/messages/batches"
_ID = r"(?P<id>[A-Za-z0-9_]+)"
_RETRY = {"x-should-retry": "true"}


class AnthropicApi:
    """Anthropic's routes and answers; safe to call from many threads at once."""

    def __init__(self, shared: Shared) -> None:
        self._shared = shared
        self._disk = Disk(shared.store)
        self._batches = Batches(self._disk, shared.clock, shared.latency)
        self._routes = (
            route("POST", _BATCHES, self._create),
            route("GET", _BATCHES, self._list),
            route("GET", "/v1/models", self._models),
            route("GET", rf"{_BATCHES}/{_ID}", self._retrieve),
            route("POST", rf"{_BATCHES}/{_ID}/cancel", self._cancel),
            route("DELETE", rf"{_BATCHES}/{_ID}", self._delete),
            route("GET", rf"{_BATCHES}/{_ID}/results", self._results),
        )

    # What the dispatcher asks of a provider (runner.emulator.provider.Provider).

    @property
    def routes(self) -> Sequence[Route]:
        return self._routes

    @property
    def shapes(self) -> Shapes:
        return SHAPES

    def authorize(self, request: Request) -> None:
        """A key, in either style, then an `anthropic-version` (any value)."""
        if not api_key(request):
            raise ApiError(
                "UNAUTHENTICATED",
                "An API key is required: send it as `Authorization: Bearer <key>` or in the"
                " x-api-key header.",
            )
        if not request.headers.get("anthropic-version", "").strip():
            raise ApiError("INVALID_ARGUMENT", "anthropic-version: header is required")

    def error_reply(self, error: ApiError) -> Reply:
        request_id = new_request_id()
        headers = {**error.headers, "request-id": request_id}
        return Reply.json(error_body(error, request_id), error.http_status, headers)

    def rate_limited(self, retry_after: float) -> ApiError:
        return ApiError(
            "RESOURCE_EXHAUSTED",
            "Number of request tokens has exceeded your per-minute rate limit.",
            headers={"retry-after": _seconds(retry_after), **_RETRY},
        )

    def unavailable(self) -> ApiError:
        """A 503, or with the `overloaded` fault Anthropic's 529; both with the (capped)
        Retry-After of the faults, as HTTP allows a 503, so that SDK retries stay quick."""
        faults = self._shared.dice.faults
        headers = {"retry-after": _seconds(faults.retry_after), **_RETRY}
        if faults.overloaded:
            return ApiError("OVERLOADED", "Overloaded", headers=headers)
        return ApiError("UNAVAILABLE", "The service is temporarily unavailable.", headers=headers)

    def holdings(self) -> dict[str, int]:
        """How many Message Batches the store holds now."""
        return {"anthropic_batches": len(self._disk.batches.all())}

    def close(self) -> None:
        self._batches.close()

    # The routes.

    def _create(self, request: Request, params: dict[str, str]) -> Reply:
        length = request.body.length
        if length is not None and length > MAX_CREATE_BYTES:
            raise ApiError(
                "PAYLOAD_TOO_LARGE",
                f"Request exceeds the maximum allowed number of bytes ({MAX_CREATE_BYTES}).",
            )
        body = request.json(MAX_CREATE_BYTES)
        version = request.headers.get("anthropic-version", "").strip()
        record = self._batches.create(body, version, self._shared.dice.faults)
        if self._shared.drop_created():
            return Reply(drop=True)
        # The create answer is the batch as submitted, even with zero latency.
        submitted = Observation(record, IN_PROGRESS, self._shared.clock.now())
        return _json(views.message_batch(submitted, request.base_url))

    def _list(self, request: Request, params: dict[str, str]) -> Reply:
        limit = _limit(request.query.get("limit"))
        before, after = request.query.get("before_id"), request.query.get("after_id")
        if before is not None and after is not None:
            raise ApiError("INVALID_ARGUMENT", "Only one of before_id and after_id may be given.")
        found, more = self._batches.page(limit, before, after)
        listed = [views.message_batch(seen, request.base_url) for seen in found]
        return _json(views.page(listed, more))

    @staticmethod
    def _models(request: Request, params: dict[str, str]) -> Reply:
        return _json(models.anthropic(_limit(request.query.get("limit")),
                                      request.query.get("before_id"),
                                      request.query.get("after_id")))

    def _retrieve(self, request: Request, params: dict[str, str]) -> Reply:
        return _json(views.message_batch(self._batches.get(params["id"]), request.base_url))

    def _cancel(self, request: Request, params: dict[str, str]) -> Reply:
        return _json(views.message_batch(self._batches.cancel(params["id"]), request.base_url))

    def _delete(self, request: Request, params: dict[str, str]) -> Reply:
        self._batches.delete(params["id"])
        return _json({"id": params["id"], "type": "message_batch_deleted"})

    def _results(self, request: Request, params: dict[str, str]) -> Reply:
        """The results file, streamed from disk; read whole and distorted when a
        `wrong_types` fault reaches the Messages in it."""
        path = self._batches.results(params["id"])
        try:
            stream: IO[bytes] = path.open("rb")
        except FileNotFoundError:  # deleted since
            raise ApiError("NOT_FOUND", f"Message batch {params['id']} not found.") from None
        size = os.fstat(stream.fileno()).st_size
        fault = self._shared.dice.faults.wrong_types
        if fault in WRONG_IN_RESULTS:
            with stream:
                stream = io.BytesIO(distort_results(stream.read(), fault))
            size = len(stream.getvalue())
        return Reply(
            stream=stream,
            stream_length=size,
            content_type="application/binary",
            headers={"request-id": new_request_id()},
        )


def _json(data: object) -> Reply:
    return Reply.json(data, headers={"request-id": new_request_id()})


def _seconds(retry_after: float) -> str:
    return f"{min(retry_after, MAX_RETRY_AFTER):g}"


def _limit(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_LIMIT
    try:
        limit = int(raw)
    except ValueError:
        raise ApiError("INVALID_ARGUMENT", "limit: Input should be a valid integer") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise ApiError("INVALID_ARGUMENT", f"limit: Input should be between 1 and {MAX_LIMIT}")
    return limit
