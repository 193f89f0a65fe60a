"""Gemini's Files API routes: Google's resumable upload protocol over HTTP, and file reads.

The protocol's state machine is in runner.emulator.gemini.files; these handlers read and
write its `X-Goog-Upload-*` headers and shape File resources. Upload chunk URLs carry no key
(the SDK strips it; the upload id is the credential), and every answer on one carries an
`x-goog-upload-status`, without which the SDK retries the chunk.
"""

from __future__ import annotations

import re

from runner.emulator import paging
from runner.emulator.admin import Stats
from runner.emulator.gemini import views
from runner.emulator.gemini.files import GRANULARITY, ChunkReply, Files
from runner.emulator.messages import MAX_JSON_BYTES, Reply, Request
from runner.emulator.wire import JSON, ApiError


class FileRoutes:
    """The handlers of the upload, file and download routes (mounted by gemini.api)."""

    def __init__(self, files: Files, stats: Stats) -> None:
        self._files = files
        self._stats = stats

    def start_upload(self, request: Request, params: dict[str, str]) -> Reply:
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

    def chunk(self, request: Request, params: dict[str, str]) -> Reply:
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

    def get_file(self, request: Request, params: dict[str, str]) -> Reply:
        record = self._files.get(params["id"])
        return Reply.json(views.file_resource(record, request.base_url, params["version"]))

    def list_files(self, request: Request, params: dict[str, str]) -> Reply:
        size = paging.page_size(request.query.get("pageSize"))
        found, token = self._files.page(size, request.query.get("pageToken"))
        version = params["version"]
        listing: JSON = {
            "files": [views.file_resource(r, request.base_url, version) for r in found]
        }
        if token:
            listing["nextPageToken"] = token
        return Reply.json(listing)

    def delete_file(self, request: Request, params: dict[str, str]) -> Reply:
        self._files.delete(params["id"])
        return Reply.json({})

    def download(self, request: Request, params: dict[str, str]) -> Reply:
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
