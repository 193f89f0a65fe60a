"""A Message Batch's results file, streamed to disk within bounds of time and size.

The results are fetched from the batch's absolute `results_url` with the key in the header,
so the URL is followed only when it is on the scheme, host and port of the base URL: a
hostile or mistaken answer must not send the key elsewhere. The body is written as it arrives
while it keeps up `min_rate` bytes a second on average (and ends by the run's deadline), and
stops at `limit` bytes: an endless answer must not fill the disk. A transfer that fails
starts again from the beginning (ranges are not promised).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import BinaryIO

import httpx

from ...failpoints import hit
from ..base import OnProgress
from ..calls import RETRIABLE, Calls
from ..transport import Late, error_body, origin_text, same_origin, timeouts


def checked_url(calls: Calls, base: httpx.URL, url: str, whose: str) -> str:
    """`url` if the key may be sent there (the base URL's origin); raises otherwise."""
    if same_origin(url, base) is None:
        raise calls.fail(f"{whose}: the provider sent a results_url on {origin_text(url)}, "
                         f"not on the API's own {origin_text(str(base))}; not followed (the "
                         "API key would be sent there)")
    return url


def download(calls: Calls, url: str, dest: Path, what: str, limit: int,
             on_progress: OnProgress | None) -> None:
    """The body of `url` into `dest`, ending with a newline; retried from the start on a
    dropped connection or a retriable status."""
    backoff = calls.backoff()
    with open(dest, "w+b") as out:
        for attempt in range(1, calls.max_attempts + 1):
            out.seek(0)
            out.truncate()
            until = calls.until(what)
            started = time.monotonic()
            try:
                with calls.http.stream("GET", url, timeout=timeouts(calls.read, until),
                                       headers={"Accept": "application/binary"}) as resp:
                    if resp.status_code != 200:
                        if resp.status_code in RETRIABLE:
                            raise _Retry()
                        raise calls.refused(what, resp.status_code, error_body(resp, until))
                    length = resp.headers.get("content-length", "")
                    total = int(length) if length.isdigit() else 0
                    _stream(calls, resp, out, started, what, limit, on_progress, total)
                break
            except Late:
                raise calls.late(what) from None
            except (httpx.TransportError, _Retry):
                calls.again(attempt, backoff, what)
        if out.tell():
            out.seek(-1, 2)
            if out.read(1) != b"\n":
                out.write(b"\n")


def _stream(calls: Calls, resp: httpx.Response, out: BinaryIO, started: float, what: str,
            limit: int, on_progress: OnProgress | None, total: int) -> None:
    """The answer's bytes to `out` as they arrive, while they keep up and fit `limit`."""
    got = 0
    for piece in resp.iter_bytes():
        out.write(piece)
        got += len(piece)
        if got > limit:
            raise calls.fail(f"{what}: the results are larger than the {limit:,} bytes "
                             "expected of this batch; stopped (the answer does not end)")
        if calls.lagging(started, got):
            raise Late
        out.flush()
        hit("during-download")
        if on_progress is not None:
            on_progress(got, total)


class _Retry(Exception):
    pass
