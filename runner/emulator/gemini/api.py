"""Routing: the Gemini API surface (Batch Mode + Files) plus the `/_emulator/*` admin routes.

Every API route is served under both `/v1beta` and `/v1` (google-genai >= 3.0 defaults to
`v1`). Order of checks on an API route: the API key, then the fault dice (a 429, 503 or reset
is decided before any state changes), then the route itself, then the `slow` delay, then the
hostile faults, which distort the reply (runner.emulator.hostile). Upload chunk URLs carry no
key (the SDK strips it; the upload id is the credential). Admin routes skip keys and faults so
tests can always steer the emulator.
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Callable

from runner.emulator import hostile, paging
from runner.emulator.admin import Admin, Stats
from runner.emulator.clock import Clock
from runner.emulator.faults import Fault, FaultDice
from runner.emulator.gemini import echo, views
from runner.emulator.gemini.batches import Batches, Observation, Phase
from runner.emulator.gemini.disk import Disk
from runner.emulator.gemini.files import GRANULARITY, ChunkReply, Files
from runner.emulator.gemini.hostile import SHAPES
from runner.emulator.gemini.protojson import error_body
from runner.emulator.gemini.records import PENDING
from runner.emulator.messages import MAX_JSON_BYTES, Reply, Request
from runner.emulator.store import Store
from runner.emulator.wire import JSON, ApiError

MAX_CREATE_BYTES = 20 * 1024 * 1024

_VERSION = r"(?P<version>v1|v1beta)"
_ID = r"(?P<id>[a-z0-9-]+)"

Handler = Callable[[Request, dict[str, str]], Reply]


@dataclasses.dataclass(frozen=True)
class _Route:
    method: str
    pattern: re.Pattern[str]
    handler: Handler
    needs_key: bool = True
    query_flag: str | None = None  # matches only when this query parameter is present


class GeminiApp:
    """Answers requests; safe to call from many threads at once."""

    def __init__(self, store: Store, clock: Clock, dice: FaultDice, latency: float) -> None:
        self._dice = dice
        self._disk = disk = Disk(store)
        self._batches = Batches(disk, clock, latency)
        self._files = Files(disk, clock)
        self._stats = Stats()
        admin = Admin(clock, dice, self._stats, self.holdings)
        self._admin = [
            self._route("GET", "/_emulator/faults", admin.get_faults),
            self._route("POST", "/_emulator/faults", admin.set_faults),
            self._route("POST", "/_emulator/clock", admin.advance_clock),
            self._route("GET", "/_emulator/stats", admin.get_stats),
        ]
        self._api = [
            self._route(
                "POST", rf"/{_VERSION}/models/(?P<model>[^/:]+):batchGenerateContent", self._create
            ),
            self._route(
                "POST", rf"/{_VERSION}/models/(?P<model>[^/:]+):countTokens", self._count_tokens
            ),
            self._route("GET", rf"/{_VERSION}/batches", self._list_batches),
            self._route("GET", rf"/{_VERSION}/batches/{_ID}", self._get_batch),
            self._route("POST", rf"/{_VERSION}/batches/{_ID}:cancel", self._cancel_batch),
            self._route("DELETE", rf"/{_VERSION}/batches/{_ID}", self._delete_batch),
            _Route(
                "POST",
                re.compile(rf"/upload/{_VERSION}/files"),
                self._chunk,
                needs_key=False,
                query_flag="upload_id",
            ),
            self._route("POST", rf"/upload/{_VERSION}/files", self._start_upload),
            self._route("GET", rf"/{_VERSION}/files", self._list_files),
            self._route("GET", rf"/{_VERSION}/files/{_ID}", self._get_file),
            self._route("DELETE", rf"/{_VERSION}/files/{_ID}", self._delete_file),
            self._route("GET", rf"/{_VERSION}/files/{_ID}:download", self._download),
            self._route("GET", rf"/download/{_VERSION}/files/{_ID}:download", self._download),
        ]

    def holdings(self) -> dict[str, int]:
        """How many batches and files the store holds now."""
        return {"batches": len(self._disk.batches.all()), "files": len(self._disk.files.all())}

    def close(self) -> None:
        """Stop background work; called once the server no longer accepts requests."""
        self._batches.close()

    @staticmethod
    def _route(method: str, pattern: str, handler: Handler) -> _Route:
        return _Route(method, re.compile(pattern), handler)

    def handle(self, request: Request) -> Reply:
        try:
            for route in self._admin:
                params = self._match(route, request)
                if params is not None:
                    return route.handler(request, params)
            for route in self._api:
                params = self._match(route, request)
                if params is not None:
                    return self._serve_api(route, request, params)
            raise ApiError("NOT_FOUND", f"No route for {request.method} {request.path}.")
        except ApiError as error:
            return _error_reply(error)

    @staticmethod
    def _match(route: _Route, request: Request) -> dict[str, str] | None:
        if route.method != request.method:
            return None
        if route.query_flag is not None and route.query_flag not in request.query:
            return None
        found = route.pattern.fullmatch(request.path)
        return None if found is None else found.groupdict()

    def refuse(self, path: str, error: ApiError) -> Reply:
        return _error_reply(error)

    def _serve_api(self, route: _Route, request: Request, params: dict[str, str]) -> Reply:
        self._stats.count("requests_served")
        if route.needs_key:
            _require_key(request)
        faults = self._dice.faults
        fault = self._dice.roll()
        if fault is Fault.RESET:
            self._stats.count("faults_reset")
            return Reply(drop=True)
        try:
            if fault is Fault.RATE_LIMITED:
                self._stats.count("faults_429")
                raise _rate_limited(faults.retry_after)
            if fault is Fault.UNAVAILABLE:
                self._stats.count("faults_503")
                raise ApiError("UNAVAILABLE", "The service is currently unavailable.")
            reply = route.handler(hostile.first_page(request, faults, SHAPES), params)
        except ApiError as error:
            reply = _error_reply(error)
        if (delay := faults.slow) and not reply.drop:
            time.sleep(delay)
        return reply if reply.drop else hostile.distort(request, reply, faults, SHAPES)

    # Batches.

    def _create(self, request: Request, params: dict[str, str]) -> Reply:
        body = request.json(MAX_CREATE_BYTES)
        record = self._batches.create(params["model"], body, self._dice.faults)
        self._stats.count("creates")
        if self._dice.drop_after_create():
            self._stats.count("drops_after_create")
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
        return Reply.json({"totalTokens": echo.prompt_tokens_of(echo.prompt_of(inner))})

    def _get_batch(self, request: Request, params: dict[str, str]) -> Reply:
        return Reply.json(views.operation(self._batches.get(params["id"])))

    def _list_batches(self, request: Request, params: dict[str, str]) -> Reply:
        size = paging.page_size(request.query.get("pageSize"))
        found, token = self._batches.page(size, request.query.get("pageToken"))
        listing: JSON = {"operations": [views.operation(seen) for seen in found]}
        if token:
            listing["nextPageToken"] = token
        return Reply.json(listing)

    def _cancel_batch(self, request: Request, params: dict[str, str]) -> Reply:
        self._batches.cancel(params["id"])
        return Reply.json({})

    def _delete_batch(self, request: Request, params: dict[str, str]) -> Reply:
        self._batches.delete(params["id"])
        return Reply.json({})

    # Files.

    def _start_upload(self, request: Request, params: dict[str, str]) -> Reply:
        headers = request.headers
        if headers.get("X-Goog-Upload-Protocol", "").lower() != "resumable":
            raise ApiError("INVALID_ARGUMENT", "The emulator supports resumable uploads only.")
        if headers.get("X-Goog-Upload-Command", "").strip().lower() != "start":
            raise ApiError(
                "INVALID_ARGUMENT", "A new upload must use X-Goog-Upload-Command: start."
            )
        meta = request.json(MAX_JSON_BYTES, empty_ok=True).get("file") or {}
        if not isinstance(meta, dict):
            raise ApiError("INVALID_ARGUMENT", "file must be an object")
        size_header = headers.get("X-Goog-Upload-Header-Content-Length")
        session = self._files.start_upload(
            meta,
            _int_header(size_header, "X-Goog-Upload-Header-Content-Length"),
            headers.get("X-Goog-Upload-Header-Content-Type"),
        )
        self._stats.count("uploads_started")
        version = params["version"]
        upload_url = (
            f"{request.base_url}/upload/{version}/files"
            f"?upload_id={session.id}&upload_protocol=resumable"
        )
        return Reply(
            headers={
                "x-goog-upload-url": upload_url,
                "x-goog-upload-status": "active",
                "x-goog-upload-chunk-granularity": str(GRANULARITY),
                "x-guploader-uploadid": session.id,
            }
        )

    def _chunk(self, request: Request, params: dict[str, str]) -> Reply:
        raw_command = request.headers.get("X-Goog-Upload-Command", "")
        commands = frozenset(c.strip().lower() for c in raw_command.split(",") if c.strip())
        try:
            offset = _int_header(
                request.headers.get("X-Goog-Upload-Offset"), "X-Goog-Upload-Offset"
            )
            result = self._files.command(
                request.query["upload_id"], commands, offset, request.body.chunks()
            )
        except ApiError as error:
            # A reply on an upload URL without a status makes the SDK retry the chunk, which
            # is right for the 429/503 faults (raised before this route) but not here.
            error.headers.setdefault("x-goog-upload-status", "active")
            raise
        return _chunk_reply(result, request.base_url, params["version"])

    def _get_file(self, request: Request, params: dict[str, str]) -> Reply:
        record = self._files.get(params["id"])
        return Reply.json(views.file_resource(record, request.base_url, params["version"]))

    def _list_files(self, request: Request, params: dict[str, str]) -> Reply:
        size = paging.page_size(request.query.get("pageSize"))
        found, token = self._files.page(size, request.query.get("pageToken"))
        version = params["version"]
        listing: JSON = {
            "files": [views.file_resource(r, request.base_url, version) for r in found]
        }
        if token:
            listing["nextPageToken"] = token
        return Reply.json(listing)

    def _delete_file(self, request: Request, params: dict[str, str]) -> Reply:
        self._files.delete(params["id"])
        return Reply.json({})

    def _download(self, request: Request, params: dict[str, str]) -> Reply:
        """The file's bytes, streamed from disk; `Range: bytes=N-[M]` resumes a download."""
        record = self._files.get(params["id"])
        size = record.size_bytes
        start, end = 0, size - 1
        headers = {"Accept-Ranges": "bytes"}
        wanted = request.headers.get("Range")
        if wanted:
            found = re.fullmatch(r"\s*bytes=(\d+)-(\d*)\s*", wanted)
            if found is None or int(found.group(1)) >= size:
                raise ApiError(
                    "OUT_OF_RANGE",
                    "Range not satisfiable.",
                    headers={"Content-Range": f"bytes */{size}"},
                )
            start = int(found.group(1))
            end = min(int(found.group(2) or end), end)
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        stream = self._files.open(record)
        stream.seek(start)
        return Reply(
            status=206 if wanted else 200,
            headers=headers,
            content_type=record.mime_type
            if "/" in record.mime_type
            else "application/octet-stream",
            stream=stream,
            stream_length=end - start + 1,
        )


def _error_reply(error: ApiError) -> Reply:
    return Reply.json(error_body(error), error.http_status, error.headers)


def _require_key(request: Request) -> None:
    if not (
        request.headers.get("x-goog-api-key", "").strip() or request.query.get("key", "").strip()
    ):
        raise ApiError(
            "PERMISSION_DENIED",
            "Method doesn't allow unregistered callers (callers without established identity)."
            " Please use API Key or other form of API consumer identity to call this API.",
        )


def _rate_limited(retry_after: float) -> ApiError:
    return ApiError(
        "RESOURCE_EXHAUSTED",
        "You exceeded your current quota, please check your plan and billing details.",
        headers={"Retry-After": f"{retry_after:g}"},
        details=[
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{retry_after:g}s"}
        ],
    )


def _chunk_reply(result: ChunkReply, base_url: str, version: str) -> Reply:
    headers = {
        "x-goog-upload-status": result.status,
        "x-goog-upload-size-received": str(result.received),
    }
    if result.file is None:
        return Reply(headers=headers)
    return Reply.json({"file": views.file_resource(result.file, base_url, version)}, 200, headers)


def _int_header(raw: str | None, name: str) -> int | None:
    if raw is None:
        return None
    if not raw.strip().isdigit():
        raise ApiError("INVALID_ARGUMENT", f"{name} must be a non-negative integer")
    return int(raw)
