"""A request as the routes see it and the reply they answer with, free of sockets.

A `Request`'s body is read lazily, piece by piece (uploads of a gigabyte or more never sit in
memory); a `Reply` says what to send, including the faults that send nothing (`drop`) or send
slowly (`trickle`). The transport (runner.emulator.transport) turns sockets into these and
back; keeping them apart lets routes be plain functions of (Request) -> Reply.
"""

from __future__ import annotations

import dataclasses
import io
import json
from collections.abc import Iterator, Mapping
from email.message import Message
from typing import IO, Any

from runner.emulator.wire import ApiError, dumps

CHUNK = 1024 * 1024
MAX_JSON_BYTES = 1024 * 1024


class ClientGone(Exception):
    """The client closed the connection or stalled in the middle of a request body."""


class Body:
    """A request body read lazily from the socket, framed by Content-Length or chunked."""

    def __init__(self, stream: io.BufferedIOBase, headers: Message) -> None:
        self._stream = stream
        self.chunked = "chunked" in headers.get("Transfer-Encoding", "").lower()
        raw_length = headers.get("Content-Length")
        if self.chunked:
            self.length: int | None = None
        elif raw_length is None:
            self.length = 0
        elif raw_length.strip().isdigit():
            self.length = int(raw_length)
        else:
            raise ValueError("invalid Content-Length")
        self._remaining = self.length or 0
        self._finished = False

    def chunks(self) -> Iterator[bytes]:
        """The body piece by piece, each at most CHUNK bytes; raises ClientGone if cut short."""
        if self._finished:
            return
        if self.chunked:
            yield from self._chunked()
        else:
            while self._remaining:
                data = self._read(min(self._remaining, CHUNK))
                self._remaining -= len(data)
                yield data
        self._finished = True

    def read(self, limit: int) -> bytes:
        """The whole body, which must not exceed `limit` bytes (HTTP 400 otherwise)."""
        if self.length is not None and self.length > limit:
            raise ApiError(
                "INVALID_ARGUMENT", f"Request payload size exceeds the limit: {limit} bytes."
            )
        parts: list[bytes] = []
        size = 0
        for data in self.chunks():
            size += len(data)
            if size > limit:
                raise ApiError(
                    "INVALID_ARGUMENT", f"Request payload size exceeds the limit: {limit} bytes."
                )
            parts.append(data)
        return b"".join(parts)

    def drain(self) -> None:
        for _ in self.chunks():
            pass

    def _chunked(self) -> Iterator[bytes]:
        while True:
            line = self._readline()
            try:
                size = int(line.split(b";")[0].strip(), 16)
            except ValueError:
                raise ClientGone("bad chunk framing") from None
            if size == 0:
                while self._readline().strip():
                    pass  # trailers
                return
            while size:
                data = self._read(min(size, CHUNK))
                size -= len(data)
                yield data
            self._readline()

    def _read(self, size: int) -> bytes:
        try:
            data = self._stream.read(size)
        except OSError as error:
            raise ClientGone(str(error)) from error
        if not data:
            raise ClientGone("connection closed mid-body")
        return data

    def _readline(self) -> bytes:
        try:
            line = self._stream.readline(65537)
        except OSError as error:
            raise ClientGone(str(error)) from error
        if not line:
            raise ClientGone("connection closed mid-body")
        return line


@dataclasses.dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: Mapping[str, str]
    headers: Message
    body: Body
    base_url: str  # how the client reached us: for absolute URLs such as the upload URL

    def json(self, limit: int = MAX_JSON_BYTES, empty_ok: bool = False) -> dict[str, Any]:
        """The body as a JSON object (HTTP 400 otherwise); `{}` for no body if `empty_ok`."""
        raw = self.body.read(limit)
        if empty_ok and not raw.strip():
            return {}
        try:
            data = json.loads(raw)
        except ValueError:
            raise ApiError("INVALID_ARGUMENT", "Invalid JSON payload received.") from None
        if not isinstance(data, dict):
            raise ApiError("INVALID_ARGUMENT", "The request body must be a JSON object.")
        return data


@dataclasses.dataclass(frozen=True)
class Reply:
    """What to answer. `stream` is sent as the body after `body` (length `stream_length`);
    `drop` closes the connection without answering at all; `trickle` sends the body one byte
    every so many seconds."""

    status: int = 200
    body: bytes = b""
    headers: Mapping[str, str] = dataclasses.field(default_factory=dict)
    content_type: str = "application/json; charset=UTF-8"
    stream: IO[bytes] | None = None
    stream_length: int = 0
    drop: bool = False
    trickle: float = 0.0

    @classmethod
    def json(cls, data: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Reply:
        return cls(status=status, body=dumps(data), headers=dict(headers or {}))
