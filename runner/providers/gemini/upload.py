"""Gemini's resumable upload of an input file, chunk by chunk, resumed where the server says.

Each chunk is streamed from disk; a failed one is resumed from the offset the server reports
(`query`), not from the start, and the upload gives up only after max_attempts failures in a
row without new bytes acknowledged, however long the file. The chunks' URL comes from the
server, so it must be on the base URL's server: the key goes with every chunk.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import httpx

from ...errors import ProviderError
from ...failpoints import hit
from ..base import OnProgress
from ..calls import RETRIABLE, Calls, decode
from ..reading import error_message
from ..transport import origin_text, same_origin
from .wire import parse_uploaded


@dataclass
class ResumableUpload:
    calls: Calls
    base: str               # as the user gave it, for messages
    base_url: httpx.URL
    version: str
    chunk: int

    def send(self, path: Path, display_name: str, on_progress: OnProgress | None) -> str:
        """Resumable upload in chunks read from disk; a failed chunk resumes from the offset
        the server reports (`query`), not from the start. It gives up after max_attempts
        failures in a row without new bytes acknowledged, however long the file."""
        size = path.stat().st_size
        what = f"upload of {display_name}"
        start = self.calls.send(
            "POST", f"{self.base}/upload/{self.version}/files", what=f"start {what}",
            headers={"X-Goog-Upload-Protocol": "resumable", "X-Goog-Upload-Command": "start",
                     "X-Goog-Upload-Header-Content-Length": str(size),
                     "X-Goog-Upload-Header-Content-Type": "application/jsonl"},
            json={"file": {"displayName": display_name, "mimeType": "application/jsonl"}})
        upload_url = self._upload_url(start, what)
        offset = acknowledged = failures = 0
        backoff = self.calls.backoff()
        with open(path, "rb") as f:
            while True:
                length = min(self.chunk, size - offset)
                last = offset + length >= size
                command = "upload, finalize" if last else "upload"
                resp = self.calls.attempt(
                    "POST", upload_url, what=what, size=length,
                    content=_slices(f, offset, length),
                    headers={"X-Goog-Upload-Command": command, "X-Goog-Upload-Offset": str(offset),
                             "Content-Length": str(length)})
                if resp is not None and resp.status_code == 200:
                    status = resp.headers.get("x-goog-upload-status", "")
                    if last or status == "final":
                        if status != "final":
                            raise ProviderError(f"{what}: the provider did not finalize the file")
                        if on_progress is not None:
                            on_progress(size, size)
                        return self.calls.parse(parse_uploaded, decode(resp, what), what)
                    offset += length
                    if offset > acknowledged:       # new bytes: the count starts again
                        acknowledged, failures = offset, 0
                        backoff.reset()
                    if on_progress is not None:
                        on_progress(offset, size)
                    hit("during-upload")
                    continue
                if resp is not None and resp.status_code not in RETRIABLE and \
                        resp.headers.get("x-goog-upload-status") != "active":
                    # refused, and the session is not waiting for more (a 403, 404, a
                    # cancelled session): sending it again changes nothing. An "active"
                    # session (an offset that does not match) is queried and resumed.
                    raise self.calls.fail(f"{what} failed: HTTP {resp.status_code}: "
                                           f"{error_message(resp.content, resp.text)}")
                failures += 1
                if failures >= self.calls.max_attempts:
                    raise ProviderError(f"{what} failed: {failures} attempts in a row without "
                                        f"progress at byte {offset:,} of {size:,}")
                self.calls.pause(backoff.next_delay(), what)
                offset = self._query_offset(upload_url, offset, size, what)

    def _upload_url(self, start: httpx.Response, what: str) -> str:
        """The URL the chunks go to, which must be on the base URL's server: the key goes
        with every chunk."""
        upload_url: str | None = start.headers.get("x-goog-upload-url")
        if not upload_url:
            raise ProviderError(f"start {what}: the provider returned no upload URL")
        if same_origin(upload_url, self.base_url) is None:
            raise self.calls.fail(f"start {what}: the provider handed back an upload URL on "
                                   f"another server ({origin_text(upload_url)}, not "
                                   f"{self.base}); refusing to send the file and the key there")
        return upload_url

    def _query_offset(self, upload_url: str, fallback: int, size: int, what: str) -> int:
        resp = self.calls.attempt("POST", upload_url, what=what,
                                   headers={"X-Goog-Upload-Command": "query"})
        received = "" if resp is None else resp.headers.get("x-goog-upload-size-received", "")
        if resp is not None and resp.status_code == 200 and received.isascii() and \
                received.isdigit() and int(received) <= size:
            return int(received)
        return fallback


def _slices(f: BinaryIO, offset: int, length: int, piece: int = 1 << 20) -> Iterator[bytes]:
    """A chunk streamed from disk in small pieces: no chunk-sized buffer is ever allocated,
    which keeps the allocator from fragmenting over a multi-gigabyte upload."""
    f.seek(offset)
    while length > 0:
        data = f.read(min(piece, length))
        if not data:
            raise ProviderError("upload: the input file shrank while it was being sent")
        length -= len(data)
        yield data
