"""OpenAI's Files API as the batch client uses it: upload an input file, find one uploaded
before, download result files, delete a batch's files.

An input file is uploaded in one multipart call (`purpose=batch`, named `<tag>.jsonl`), read
from disk as it is sent; a batch's input is at most 200 MB, under the 512 MB a Files upload
takes, so the Uploads API (parts of 64 MB) is not needed. A retried upload may leave a second
copy of the file on the provider: files cost nothing to keep and expire after 30 days, and
`find` takes either. The name is what finds it again (`find`): the tag carries the batch's
content hash, so one name is one content.

Result files are streamed to disk while they keep up `min_rate` bytes a second on average;
a transfer that fails starts that file again (the Files API promises no ranges).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

import httpx

from ...errors import ProviderError
from ...failpoints import hit
from ..base import OnProgress
from ..calls import RETRIABLE, Calls, NotFound, decode
from ..transport import Late, error_body, timeouts
from .wire import paging, parse_deleted, parse_file, parse_page

LIST_LIMIT = 10_000                 # files a page: the API's most
_USABLE = ("processed", "uploaded")


class Files:
    def __init__(self, calls: Calls, base: str):
        self.calls = calls
        self.base = base

    def find(self, display_name: str) -> str | None:
        """The id of a batch input file named `<display_name>.jsonl`, newest first."""
        wanted = f"{display_name}.jsonl"
        for whose, item in self.calls.pages(
                f"{self.base}/files", "list files",
                lambda token: {"purpose": "batch", "order": "desc",
                               **paging(token, LIST_LIMIT)}, parse_page):
            found = self.calls.parse(parse_file, item, whose)
            if found.filename == wanted and found.purpose == "batch" and \
                    found.status in _USABLE:
                return found.id
        return None

    def upload(self, path: Path, display_name: str, on_progress: OnProgress | None) -> str:
        """Uploads the file as `<display_name>.jsonl` for batches; returns its id."""
        size = path.stat().st_size
        what = f"upload of {display_name}"
        with open(path, "rb") as f:
            resp = self.calls.send(
                "POST", f"{self.base}/files", what=what, size=size, data={"purpose": "batch"},
                files={"file": (f"{display_name}.jsonl", _Reporting(f, size, on_progress),
                                "application/jsonl")})
        stored = self.calls.parse(parse_file, decode(resp, what), what)
        if stored.bytes and stored.bytes != size:
            raise ProviderError(f"{what}: the provider stored {stored.bytes:,} bytes of "
                                f"{size:,}; not used")
        return stored.id

    def exists(self, file_id: str) -> bool:
        """Whether the file is still kept (deleted by a user, or 30 days on, it is not). Told
        by the status alone (what the answer says of the file is not needed), and a 404 only
        after a second one a moment later: a batch is sent again on it."""
        what = f"get file {file_id}"
        for confirming in (False, True):
            if confirming:
                self.calls.pause(self.calls.backoff().next_delay(), what)
            try:
                self.calls.send("GET", f"{self.base}/files/{file_id}", what=what)
                return True
            except NotFound:
                continue
        return False

    def delete(self, file_id: str) -> None:
        """Deletes a file; one already gone is fine."""
        what = f"delete of file {file_id}"
        try:
            answer = self.calls.json("DELETE", f"{self.base}/files/{file_id}", what=what)
        except NotFound:
            return
        if not self.calls.parse(parse_deleted, answer, what):
            raise ProviderError(f"{what}: the provider did not delete it")

    def download(self, file_ids: Sequence[str], dest: Path,
                 on_progress: OnProgress | None, limit: int) -> None:
        """The files' contents one after the other into `dest`, each ending with a newline;
        more than `limit` bytes in all is an error (see calls.results_limit). A file that is
        gone (deleted, or past its 30 days) is left out, and the requests it answered have no
        result; all of them gone is NotFound. A 404 for a file that is still there is an
        error (the next apply tries again), never taken for gone."""
        gone = []
        with open(dest, "w+b") as out:
            for file_id in file_ids:
                if not self._kept(file_id, out, on_progress, limit):
                    gone.append(file_id)
                    continue
                if out.tell():
                    out.seek(-1, 2)
                    if out.read(1) != b"\n":
                        out.write(b"\n")
        if gone and len(gone) == len(file_ids):
            raise NotFound(f"download of {', '.join(gone)}")

    def _kept(self, file_id: str, out: BinaryIO, on_progress: OnProgress | None,
              limit: int) -> bool:
        """The file's content appended to `out`; False (nothing appended) when it is gone.
        A 404 for a file the provider still has is tried once more, then an error."""
        start = out.tell()
        for again in (False, True):
            try:
                self._one(file_id, out, on_progress, limit)
                return True
            except NotFound:
                out.seek(start)
                out.truncate()
                if not self.exists(file_id):
                    return False
                if again:
                    raise self.calls.fail(f"download of {file_id} failed: HTTP 404 for a "
                                          "file the provider still has") from None
        raise AssertionError("unreachable")

    def _one(self, file_id: str, out: BinaryIO, on_progress: OnProgress | None,
             limit: int) -> None:
        url = f"{self.base}/files/{file_id}/content"
        what = f"download of {file_id}"
        start = out.tell()
        backoff = self.calls.backoff()
        for attempt in range(1, self.calls.max_attempts + 1):
            out.seek(start)
            out.truncate()
            until = self.calls.until(what)
            started = time.monotonic()
            try:
                with self.calls.http.stream("GET", url,
                                            timeout=timeouts(self.calls.read, until)) as resp:
                    if resp.status_code != 200:
                        if resp.status_code in RETRIABLE:
                            raise _Retry()
                        raise self.calls.refused(what, resp.status_code,
                                                 error_body(resp, until))
                    length = resp.headers.get("content-length", "")
                    total = start + int(length) if length.isdigit() else 0
                    self._stream(resp, out, started, what, on_progress, total, limit)
                return
            except Late:
                raise self.calls.late(what) from None
            except (httpx.TransportError, _Retry):
                self.calls.again(attempt, backoff, what)

    def _stream(self, resp: httpx.Response, out: BinaryIO, started: float, what: str,
                on_progress: OnProgress | None, total: int, limit: int) -> None:
        """The answer's bytes to `out` as they arrive, while they keep up and stay within
        `limit` in all; `total` is where the file will end in `out` (0: unknown)."""
        got = 0
        for piece in resp.iter_bytes():
            out.write(piece)
            got += len(piece)
            if out.tell() > limit:
                raise self.calls.fail(f"{what}: the results pass {limit:,} bytes, more than "
                                      "the batch's requests can take; stopped")
            if self.calls.lagging(started, got):
                raise Late
            out.flush()
            hit("during-download")
            if on_progress is not None:
                on_progress(out.tell(), total)


class _Retry(Exception):
    pass


class _Reporting:
    """A file read for an upload, reporting the bytes sent so far. httpx reads it in pieces
    (and from its start again on a retry), and learns its length from `fileno`."""

    def __init__(self, f: BinaryIO, size: int, on_progress: OnProgress | None):
        self._f, self._size, self._report = f, size, on_progress

    def read(self, n: int = -1) -> bytes:
        if self._f.tell():      # httpx sent the piece read before: the upload is under way
            hit("during-upload")
        data = self._f.read(n)
        if self._report is not None:
            self._report(self._f.tell(), self._size)
        return data

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._f.seek(offset, whence)

    def tell(self) -> int:
        return self._f.tell()

    def fileno(self) -> int:
        return self._f.fileno()

