"""HTTP/1.1 plumbing: turn a socket request into a `Request`, write a `Reply` back.

Kept apart from the routes so the emulator's behaviour reads as plain functions of
(Request) -> Reply (runner.emulator.messages). The transport owns the rules that keep
keep-alive connections healthy: every reply has a Content-Length, a request body the route
did not read is drained before replying, and bodies (uploads of a gigabyte or more) are read
in chunks, never whole. It also owns the log, which must never show an API key. It knows no
provider: which one answers a path, and in what shape, is the `App`'s business.
"""

from __future__ import annotations

import logging
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qsl, unquote, urlsplit

from runner.emulator.messages import CHUNK, Body, ClientGone, Reply, Request
from runner.emulator.wire import ApiError

logger = logging.getLogger(__name__)

_KEY_IN_TEXT = re.compile(r"([?&]key=)[^&\s\"']*", re.IGNORECASE)


class App(Protocol):
    """What the server serves: answers to requests, and the error answer for a request that
    never became one (bad framing, or a crash in a route), in the shape its path calls for."""

    def handle(self, request: Request) -> Reply: ...

    def refuse(self, path: str, error: ApiError) -> Reply: ...


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
            error = ApiError("INVALID_ARGUMENT", "Invalid Content-Length.")
            self._send(self.server.app.refuse(unquote(url.path), error))
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
            error = ApiError("INTERNAL", "Internal error in the emulator.")
            reply = self.server.app.refuse(request.path, error)
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
