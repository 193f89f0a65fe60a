"""How a provider's client reaches its API: where the API key may travel, and how long a call
may take, whatever the server does.

The key rides in a header of every request (each client names its own: Gemini's
`x-goog-api-key`, OpenAI's `Authorization: Bearer`), so:

- plain http is allowed only to this machine (`localhost` and literal loopback addresses such
  as 127.0.0.1 or ::1, never a name that merely starts with "127."), and then always directly:
  a proxy from the environment would read the key in clear, and cannot reach our loopback;
- https may go through HTTPS_PROXY / ALL_PROXY: httpx tunnels it with CONNECT, so the proxy
  sees the host name and never the key;
- a URL that a server hands back (the upload URL) must be on the same scheme, host and port;
- text that reaches a message is redacted of the key's value first (`Redactor`).

httpx's timeouts bound each read, not a call: a server that trickles a byte every few seconds
keeps a call alive for ever. `receive` reads an answer in a loop against a deadline, and each
read waits at most the time left.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import httpx

from ..errors import ProviderError
from .reading import one_line

CONNECT_SECONDS = 15.0
MIN_SECRET = 8                      # characters; a Gemini API key has 39, an OpenAI one more
_PORTS = {"http": 80, "https": 443}


class Late(Exception):
    """A call's deadline passed before its whole answer arrived."""


def is_loopback(host: str) -> bool:
    """Whether `host` is this machine by its spelling alone (no name lookup)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_base_url(base: str, env: str) -> httpx.URL:
    """The base URL, if the key may be sent there: https anywhere, plain http only to this
    machine. `env` names the variable a user sets it with (GEMINI_BASE_URL, OPENAI_BASE_URL),
    for the message."""
    try:
        url = httpx.URL(base)
    except httpx.InvalidURL:
        url = None
    if url is None or url.scheme not in _PORTS or not url.host:
        raise ProviderError(f"{env} must be an http(s) URL (got {one_line(base, 80)!r})")
    if url.scheme == "http" and not is_loopback(url.host):
        raise ProviderError(f"{env} may use plain http:// only for a server on this "
                            "machine (localhost or a loopback address such as 127.0.0.1; the "
                            "key would cross the network in clear); use https://")
    return url


def client_for(base: httpx.URL, headers: Mapping[str, str], read: float, *,
               transport: httpx.BaseTransport | None = None) -> httpx.Client:
    """The client for `base`, sending `headers` (the key, in the provider's own header) with
    every request: https trusts the environment (proxies tunnelled by CONNECT, CA bundles);
    plain http, which check_base_url allows only to this machine, goes direct. `transport`
    replaces httpx's network transport (tests pass an httpx.MockTransport); None keeps
    httpx's own."""
    try:
        # verify=True is httpx's default; stated so that nobody turns it off by accident.
        return httpx.Client(headers=dict(headers), verify=True,
                            timeout=httpx.Timeout(read, connect=CONNECT_SECONDS),
                            follow_redirects=False, trust_env=base.scheme == "https",
                            transport=transport)
    except (ValueError, ImportError):    # a proxy URL httpx cannot use (say, socks5 or ftp)
        raise ProviderError("the proxy set in the environment (HTTPS_PROXY or ALL_PROXY) is "
                            "not one httpx can use: give an http:// or https:// proxy URL, "
                            "or unset it") from None


def origin(url: httpx.URL) -> tuple[str, str, int]:
    return url.scheme, url.host, url.port or _PORTS.get(url.scheme, 0)


def same_origin(url: str, base: httpx.URL) -> httpx.URL | None:
    """`url` parsed, if it is on the scheme, host and port of `base`; None otherwise."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        return None
    return parsed if origin(parsed) == origin(base) else None


def origin_text(url: str) -> str:
    """`scheme://host:port` of a URL, for a message; never its path or query."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        return "an invalid URL"
    scheme, host, port = origin(parsed)
    return one_line(f"{scheme}://{host}:{port}", 100) if scheme else "a URL without a scheme"


class Redactor:
    """Replaces the key's value, as is and URL-encoded, with `***` in text bound for a
    message: a provider (or a proxy in front of it) may quote the key back in an error.
    Keys shorter than MIN_SECRET (no real API key is) are left alone: replacing every `k` of
    a test key "k" would garble each message and hide nothing."""

    def __init__(self, secret: str):
        forms = {secret, quote(secret, safe="")} if len(secret) >= MIN_SECRET else set()
        self._forms = sorted(forms, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for form in self._forms:
            text = text.replace(form, "***")
        return text


def timeouts(read: float, deadline: float) -> httpx.Timeout:
    """httpx's timeouts for a call that must end by `deadline`: no single wait outlasts it."""
    left = max(0.001, deadline - time.monotonic())
    return httpx.Timeout(min(read, left), connect=min(CONNECT_SECONDS, left))


# The most a JSON answer may hold once decoded. A job's inline results (under 20 MB of requests)
# stay far below it; an endless or decompression-bomb answer stops here instead of in the
# memory of the machine.
MAX_ANSWER = 256 << 20


class TooLarge(Exception):
    """An answer grew past MAX_ANSWER bytes."""


def read_within(resp: httpx.Response, deadline: float, limit: int = MAX_ANSWER) -> bytes:
    """The rest of a streamed answer's bytes, decoded (gzip and the like), by `deadline` and
    within `limit` bytes."""
    body = bytearray()
    for piece in resp.iter_bytes():
        body += piece
        if len(body) > limit:
            raise TooLarge
        if time.monotonic() > deadline:
            raise Late
    return bytes(body)


ERROR_BODY = 64 << 10              # bytes of a refusal's body read for its message


def error_body(resp: httpx.Response, deadline: float) -> bytes:
    """The start of a refused transfer's body, for its message (which quotes 300 characters
    of it at most): read whole, an error page of any size (an endless one) held its bytes in
    memory up to MAX_ANSWER and then raised TooLarge, which a transfer's caller does not
    expect of a refusal. The rest is left unread; the connection closes with the stream."""
    body = bytearray()
    for piece in resp.iter_bytes():
        body += piece
        if len(body) >= ERROR_BODY or time.monotonic() > deadline:
            break
    return bytes(body[:ERROR_BODY])


def receive(client: httpx.Client, method: str, url: str, *, deadline: float, read: float,
            **kwargs: Any) -> httpx.Response:
    """One request and its whole answer by `deadline` (a time.monotonic() value); raises Late
    after it, including when a read waited out the time left."""
    if time.monotonic() >= deadline:
        raise Late
    try:
        with client.stream(method, url, timeout=timeouts(read, deadline), **kwargs) as resp:
            body = read_within(resp, deadline)
    except httpx.TimeoutException:
        if time.monotonic() >= deadline:
            raise Late from None
        raise
    headers = [(k, v) for k, v in resp.headers.multi_items()
               if k.lower() not in ("content-encoding", "content-length")]    # decoded above
    answer = httpx.Response(resp.status_code, headers=headers, content=body,
                            request=resp.request)
    answer.read()
    return answer
