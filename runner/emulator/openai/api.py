"""OpenAI's Batch API surface (batches, files, uploads) as a provider of the shared server.

Mounted at "/openai/v1", so `OPENAI_BASE_URL=http://host:port/openai/v1` points the official
SDK at it; routes are written as the SDK appends them to its base URL. The checks every route
goes through (key, fault dice, delay, hostile answers) are the shared dispatcher's
(runner.emulator.dispatch); this module lists the routes, answers the batch ones, and shapes
what only OpenAI decides: its 401 for a missing key, its 429 and 503 (with `x-should-retry`
and a `Retry-After` the SDK honours, which it does only up to 120 s), its error body, and the
`x-request-id` OpenAI puts on every answer.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from runner.emulator import models
from runner.emulator.hostile import Shapes
from runner.emulator.messages import Reply, Request
from runner.emulator.openai import listing, views
from runner.emulator.openai.batches import Batches, Observation
from runner.emulator.openai.disk import Disk
from runner.emulator.openai.errors import OpenAiError, error_body, request_id
from runner.emulator.openai.files import Files
from runner.emulator.openai.hostile import SHAPES, api_key
from runner.emulator.openai.records import ID_PATTERN
from runner.emulator.openai.uploads import Uploads
from runner.emulator.provider import Handler, Route, Shared, route
from runner.emulator.wire import JSON, ApiError

MAX_LIST = 100
DEFAULT_LIST = 20
MAX_RETRY_AFTER = 120.0  # the SDK gives up at once on a longer Retry-After

_ID = f"(?P<id>{ID_PATTERN})"


class OpenAiApi:
    """OpenAI's routes and answers; safe to call from many threads at once."""

    def __init__(self, shared: Shared) -> None:
        self._shared = shared
        self._disk = disk = Disk(shared.store)
        self._batches = Batches(disk, shared.clock, shared.latency)
        files = Files(disk, shared.clock, shared.stats, lambda: shared.dice.faults)
        uploads = Uploads(disk, shared.clock, shared.stats, files)
        self._routes = tuple(
            route(method, pattern, _with_request_id(handler))
            for method, pattern, handler in (
                ("POST", "/batches", self._create),
                ("GET", "/batches", self._list),
                ("GET", "/models", lambda request, params: Reply.json(models.openai())),
                ("GET", f"/batches/{_ID}", self._get),
                ("POST", f"/batches/{_ID}/cancel", self._cancel),
                ("POST", "/files", files.create),
                ("GET", "/files", files.list),
                ("GET", f"/files/{_ID}", files.get),
                ("DELETE", f"/files/{_ID}", files.delete),
                ("GET", f"/files/{_ID}/content", files.content),
                ("POST", "/uploads", uploads.create),
                ("POST", f"/uploads/{_ID}/parts", uploads.add_part),
                ("POST", f"/uploads/{_ID}/complete", uploads.complete),
                ("POST", f"/uploads/{_ID}/cancel", uploads.cancel),
            )
        )

    # What the dispatcher asks of a provider (runner.emulator.provider.Provider).

    @property
    def routes(self) -> Sequence[Route]:
        return self._routes

    @property
    def shapes(self) -> Shapes:
        return SHAPES

    def authorize(self, request: Request) -> None:
        """Any non-empty Bearer key will do; OpenAI-Organization and OpenAI-Project are
        accepted and ignored."""
        if not api_key(request):
            raise OpenAiError(
                "UNAUTHENTICATED",
                "You didn't provide an API key. You need to provide your API key in an"
                " Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
            )

    def error_reply(self, error: ApiError) -> Reply:
        headers = {**error.headers, "x-request-id": request_id()}
        return Reply.json(error_body(error), error.http_status, headers)

    def rate_limited(self, retry_after: float) -> ApiError:
        wait = min(retry_after, MAX_RETRY_AFTER)
        return OpenAiError(
            "RESOURCE_EXHAUSTED",
            f"Rate limit reached for requests. Please try again in {wait:g}s.",
            code="rate_limit_exceeded",
            headers={"Retry-After": f"{wait:g}", "retry-after-ms": f"{wait * 1000:.0f}",
                     "x-should-retry": "true"},
        )

    def unavailable(self) -> ApiError:
        return OpenAiError(
            "UNAVAILABLE",
            "The server is overloaded or not ready yet.",
            headers={"x-should-retry": "true"},
        )

    def holdings(self) -> dict[str, int]:
        """How many batches, files and uploads the store holds now."""
        return {
            "openai_batches": len(self._disk.batches.all()),
            "openai_files": len(self._disk.files.all()),
            "openai_uploads": len(self._disk.uploads.all()),
        }

    def close(self) -> None:
        self._batches.close()

    # Batches.

    def _create(self, request: Request, params: dict[str, str]) -> Reply:
        seen = self._batches.create(request.json(), self._shared.dice.faults)
        if self._shared.drop_created():
            return Reply(drop=True)
        return Reply.json(_view(seen))

    def _get(self, request: Request, params: dict[str, str]) -> Reply:
        return Reply.json(_view(self._batches.get(params["id"])))

    def _list(self, request: Request, params: dict[str, str]) -> Reply:
        limit = listing.limit_of(request.query.get("limit"), DEFAULT_LIST, MAX_LIST)
        found, more = self._batches.page(limit, request.query.get("after"))
        return Reply.json(listing.listing([_view(seen) for seen in found], more))

    def _cancel(self, request: Request, params: dict[str, str]) -> Reply:
        return Reply.json(_view(self._batches.cancel(params["id"])))


def _view(seen: Observation) -> JSON:
    return views.batch_object(seen.record, seen.phase, seen.now)


def _with_request_id(handler: Handler) -> Handler:
    """The handler, its answers carrying an `x-request-id` as all of OpenAI's do."""

    def handle(request: Request, params: dict[str, str]) -> Reply:
        reply = handler(request, params)
        if reply.drop:
            return reply
        return dataclasses.replace(reply, headers={**reply.headers, "x-request-id": request_id()})

    return handle
