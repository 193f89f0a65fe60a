"""The Gemini API surface (Batch Mode + Files) as a provider of the shared server.

Every route is served under both `/v1beta` and `/v1` (google-genai >= 3.0 defaults to `v1`).
The checks every route goes through (key, fault dice, delay, hostile answers) are the shared
dispatcher's (runner.emulator.dispatch); this module lists Gemini's routes, answers the batch
ones, and shapes what only Gemini decides: its missing-key error, its 429 with a RetryInfo, and
Google's error body.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Sequence

from runner.emulator import model, models, paging
from runner.emulator.gemini import echo, fieldmask, views
from runner.emulator.gemini.batches import Batches, Inline
from runner.emulator.gemini.disk import Disk
from runner.emulator.gemini.file_routes import FileRoutes
from runner.emulator.gemini.files import Files
from runner.emulator.gemini.hostile import SHAPES
from runner.emulator.gemini.lifecycle import Observation, Phase, RawArray
from runner.emulator.gemini.protojson import error_body
from runner.emulator.gemini.records import PENDING
from runner.emulator.hostile import Shapes
from runner.emulator.messages import Reply, Request
from runner.emulator.provider import Route, Shared, route
from runner.emulator.wire import JSON, ApiError

MAX_CREATE_BYTES = 20 * 1024 * 1024
# The fields of an Operation and of a list of them, which a partial response may choose.
_OPERATION = frozenset({"name", "metadata", "done", "error", "response"})
_LISTING = frozenset({"operations", "nextPageToken"})

_VERSION = r"(?P<version>v1|v1beta)"
_ID = r"(?P<id>[a-z0-9-]+)"
_MODEL = r"(?P<model>[^/:]+)"


class GeminiApi:
    """Gemini's routes and answers; safe to call from many threads at once."""

    def __init__(self, shared: Shared) -> None:
        self._shared = shared
        self._disk = disk = Disk(shared.store)
        self._batches = Batches(disk, shared.clock, shared.latency)
        files = FileRoutes(Files(disk, shared.clock), shared.stats)
        self._routes = (
            route("POST", rf"/{_VERSION}/models/{_MODEL}:batchGenerateContent", self._create),
            route("POST", rf"/{_VERSION}/models/{_MODEL}:countTokens", self._count_tokens),
            route("GET", rf"/{_VERSION}/models", self._list_models),
            route("GET", rf"/{_VERSION}/batches", self._list_batches),
            route("GET", rf"/{_VERSION}/batches/{_ID}", self._get_batch),
            route("POST", rf"/{_VERSION}/batches/{_ID}:cancel", self._cancel_batch),
            route("DELETE", rf"/{_VERSION}/batches/{_ID}", self._delete_batch),
            Route(
                "POST",
                re.compile(rf"/upload/{_VERSION}/files"),
                files.chunk,
                needs_key=False,
                query_flag="upload_id",
            ),
            route("POST", rf"/upload/{_VERSION}/files", files.start_upload),
            route("GET", rf"/{_VERSION}/files", files.list_files),
            route("GET", rf"/{_VERSION}/files/{_ID}", files.get_file),
            route("DELETE", rf"/{_VERSION}/files/{_ID}", files.delete_file),
            route("GET", rf"/{_VERSION}/files/{_ID}:download", files.download),
            route("GET", rf"/download/{_VERSION}/files/{_ID}:download", files.download),
        )

    # What the dispatcher asks of a provider (runner.emulator.provider.Provider).

    @property
    def routes(self) -> Sequence[Route]:
        return self._routes

    @property
    def shapes(self) -> Shapes:
        return SHAPES

    def authorize(self, request: Request) -> None:
        header = request.headers.get("x-goog-api-key", "")
        if not (header.strip() or request.query.get("key", "").strip()):
            raise ApiError(
                "PERMISSION_DENIED",
                "Method doesn't allow unregistered callers (callers without established"
                " identity). Please use API Key or other form of API consumer identity to call"
                " this API.",
            )

    def error_reply(self, error: ApiError) -> Reply:
        return Reply.json(error_body(error), error.http_status, error.headers)

    def rate_limited(self, retry_after: float) -> ApiError:
        return ApiError(
            "RESOURCE_EXHAUSTED",
            "You exceeded your current quota, please check your plan and billing details.",
            headers={"Retry-After": f"{retry_after:g}"},
            details=[
                {
                    "@type": "type.googleapis.com/google.rpc.RetryInfo",
                    "retryDelay": f"{retry_after:g}s",
                }
            ],
        )

    def unavailable(self) -> ApiError:
        return ApiError("UNAVAILABLE", "The service is currently unavailable.")

    def holdings(self) -> dict[str, int]:
        """How many batches and files the store holds now."""
        return {"batches": len(self._disk.batches.all()), "files": len(self._disk.files.all())}

    def close(self) -> None:
        self._batches.close()

    # Batches.

    def _create(self, request: Request, params: dict[str, str]) -> Reply:
        body = request.json(MAX_CREATE_BYTES)
        record = self._batches.create(params["model"], body, self._shared.dice.faults)
        if self._shared.drop_created():
            return Reply(drop=True)
        # The create answer is the job as submitted, even with zero latency.
        submitted = Observation(record, Phase(PENDING, record.create_time))
        return Reply.json(views.operation(submitted))

    @staticmethod
    def _count_tokens(request: Request, params: dict[str, str]) -> Reply:
        """countTokens, by the same rule as the echo's promptTokenCount, so that an exact count
        and the usage the job later reports agree."""
        body = request.json()
        inner = body.get("generateContentRequest") or body.get("generate_content_request") or body
        return Reply.json({"totalTokens": model.prompt_tokens_of(echo.prompt_of(inner))})

    @staticmethod
    def _list_models(request: Request, params: dict[str, str]) -> Reply:
        return Reply.json(models.gemini(request.query.get("pageSize"),
                                        request.query.get("pageToken")))

    def _get_batch(self, request: Request, params: dict[str, str]) -> Reply:
        """A batch, or the fields of it a partial response asks for (`fields`): a mask that
        leaves the inline answers out spares reading them."""
        mask = fieldmask.requested(request)
        fieldmask.check(mask, _OPERATION)
        seen = self._batches.get(params["id"], inline=_inline_form(mask))
        return _reply(fieldmask.apply(mask, views.operation(seen)))

    def _list_batches(self, request: Request, params: dict[str, str]) -> Reply:
        mask = fieldmask.requested(request)
        fieldmask.check(mask, _LISTING)
        inner = None if mask is None else mask.get("operations", mask.get("*"))
        size = paging.page_size(request.query.get("pageSize"))
        found, token = self._batches.page(size, request.query.get("pageToken"),
                                          inline=_inline_form(inner))
        listing: JSON = {"operations": [views.operation(seen) for seen in found]}
        if token:
            listing["nextPageToken"] = token
        return _reply(fieldmask.apply(mask, listing))

    def _cancel_batch(self, request: Request, params: dict[str, str]) -> Reply:
        self._batches.cancel(params["id"])
        return Reply.json({})

    def _delete_batch(self, request: Request, params: dict[str, str]) -> Reply:
        self._batches.delete(params["id"])
        return Reply.json({})


_INLINE_AT = (("metadata", "output", "inlinedResponses", "inlinedResponses"),
              ("response", "inlinedResponses", "inlinedResponses"))
# Where an answer's inline answers go, as their stored text: a string no name or display
# name holds, replaced once the rest is written.
_MARK = f"\ue000inline answers {uuid.uuid4()}\ue000"
_SPLICE = json.dumps(_MARK, ensure_ascii=False).encode()


def _inline_form(mask: fieldmask.Mask | None) -> Inline:
    """How an Operation under `mask` needs its inline answers: not at all, whole (their
    stored text), or parsed (a mask that reaches inside each)."""
    if not any(fieldmask.wants(mask, *path) for path in _INLINE_AT):
        return None
    return "raw" if all(fieldmask.whole(mask, *path) for path in _INLINE_AT) else "parsed"


def _reply(data: JSON) -> Reply:
    """`data` as a JSON answer, inline answers held as their text spliced in unparsed."""
    raw: list[bytes] = []

    def splice(value: object) -> str:
        if not isinstance(value, RawArray):
            raise TypeError(f"{type(value).__name__} is not JSON")
        raw.append(value.text)
        return _MARK

    body = json.dumps(data, ensure_ascii=False, separators=(",", ":"), default=splice).encode()
    if raw:
        first, *rest = body.split(_SPLICE)
        body = first + b"".join(text + after for text, after in zip(raw, rest, strict=True))
    return Reply(body=body)
