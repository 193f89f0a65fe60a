"""HTTP/1.1 plumbing: turn a socket request into a `Request`, write a `Reply` back.

Kept apart from the routes so the emulator's behaviour reads as plain functions of
(Request) -> Reply. The transport owns the rules that keep keep-alive connections healthy:
every reply has a Content-Length, a request body the route did not read is drained before
replying, and bodies (uploads of a gigabyte or more) are read in chunks, never whole. It also
owns the log, which must never show an API key.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import re
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import IO, Any, Protocol
from urllib.parse import parse_qsl, unquote, urlsplit

from runner.emulator.gemini.protojson import ApiError, dumps

logger = logging.getLogger(__name__)

CHUNK = 1024 * 1024
MAX_JSON_BYTES = 1024 * 1024
_KEY_IN_TEXT = re.compile(r"([?&]key=)[^&\s\"']*", re.IGNORECASE)


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

    @classmethod
    def error(cls, error: ApiError) -> Reply:
        return cls.json(error.body(), error.http_status, error.headers)


class App(Protocol):
    def handle(self, request: Request) -> Reply: ...


def redact(text: str) -> str:
    return _KEY_IN_TEXT.sub(r"\1REDACTED", text)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "batch-runner-emulator"
    timeout = 300  # seconds a kept-alive connection may sit idle before its thread gives up
    # Headers and body go out in separate writes; with Nagle on, each reply waits ~40 ms for
    # the client's delayed ACK.
    disable_nagle_algorithm = True
    server: Server

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        url = urlsplit(self.path)
        try:
            body = Body(self.rfile, self.headers)
        except ValueError:
            self.close_connection = True
            self._send(Reply.error(ApiError("INVALID_ARGUMENT", "Invalid Content-Length.")))
            return
        host = self.headers.get("Host")
        request = Request(
            method=self.command,
            path=unquote(url.path),
            query=dict(parse_qsl(url.query)),
            headers=self.headers,
            body=body,
            base_url=f"http://{host}" if host else self.server.base_url,
        )
        try:
            reply = self.server.app.handle(request)
            if not reply.drop:
                body.drain()
        except ClientGone:
            self.close_connection = True
            return
        except Exception:
            logger.exception("emulator error on %s %s", self.command, redact(self.path))
            self.close_connection = True
            reply = Reply.error(ApiError("INTERNAL", "Internal error in the emulator."))
        if reply.drop:
            self.close_connection = True
            return
        try:
            self._send(reply)
        except OSError:
            self.close_connection = True
        finally:
            if reply.stream is not None:
                reply.stream.close()

    def _send(self, reply: Reply) -> None:
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body) + reply.stream_length))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if reply.trickle:
            self._trickle(reply)
            return
        self.wfile.write(reply.body)
        left = reply.stream_length
        while left and reply.stream is not None:
            data = reply.stream.read(min(left, CHUNK))
            if not data:
                raise OSError("file shrank while it was being sent")
            self.wfile.write(data)
            left -= len(data)

    def _trickle(self, reply: Reply) -> None:
        """The body a byte at a time: a server that never quite stalls, so that no read of
        the client's ever times out. A client that hangs up ends it (the write fails)."""
        body = reply.body
        if reply.stream is not None:
            body += reply.stream.read(reply.stream_length)
        for byte in body:
            time.sleep(reply.trickle)
            self.wfile.write(bytes((byte,)))

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        logger.info("%s %s -> %s", self.command, redact(self.path), code)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s", redact(format % args))


class Server(ThreadingHTTPServer):
    """A threading HTTP server that can also cut its kept-alive connections when stopped."""

    daemon_threads = True

    def __init__(self, host: str, port: int, app: App) -> None:
        if ":" in host:
            self.address_family = socket.AF_INET6
        self.app = app
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__((host, port), _Handler)

    @property
    def base_url(self) -> str:
        host, port = self.server_address[:2]
        text = host.decode() if isinstance(host, bytes) else host
        return f"http://[{text}]:{port}" if ":" in text else f"http://{text}:{port}"

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Wake every handler thread blocked on an idle kept-alive connection."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
