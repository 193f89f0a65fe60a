"""Gemini answers too large to hold, streamed to disk: a results file, a batch's inline answers.

Both arrive a piece at a time and are written as they arrive, bounded in time (the transfer
must keep up `min_rate` bytes a second on average, and end by the run's deadline) and, when a
`limit` is given, in size: an endless or bloated answer stops there instead of filling the
disk. A results file that breaks off resumes with a Range request; a JSON answer (the batch
resource) cannot be resumed, so it is asked for again from its start.
"""

from __future__ import annotations

import time
from typing import Any, BinaryIO

import httpx

from ...errors import ProviderError
from ...failpoints import hit
from ..base import OnProgress
from ..calls import RETRIABLE, Calls
from ..transport import Late, error_body, timeouts

_PIECE = 1 << 20                   # bytes between progress reports


def transfer(calls: Calls, url: str, params: dict[str, Any], out: BinaryIO, what: str, *,
             resume: bool, limit: int | None = None,
             on_progress: OnProgress | None = None) -> None:
    """The answer to GET `url` into `out` (from its current position, which is 0 for a fresh
    file), retried on a dropped connection or a retriable status."""
    backoff = calls.backoff()
    for attempt in range(1, calls.max_attempts + 1):
        if not resume:
            out.seek(0)
            out.truncate()
        have = out.tell()
        headers = {"Range": f"bytes={have}-"} if have else {}
        until = calls.until(what)
        started = time.monotonic()
        try:
            with calls.http.stream("GET", url, params=params, headers=headers,
                                   timeout=timeouts(calls.read, until)) as resp:
                if resp.status_code not in (200, 206):
                    if resp.status_code in RETRIABLE:
                        raise _Retry()
                    raise calls.refused(what, resp.status_code, error_body(resp, until))
                if resp.status_code == 200 and have:
                    out.seek(0)
                    out.truncate()
                elif resp.status_code == 206 and not resp.headers.get(
                        "content-range", "").startswith(f"bytes {have}-"):
                    raise ProviderError(f"{what}: the provider resumed at another "
                                        "offset than the one asked for")
                length = resp.headers.get("content-length", "")
                total = out.tell() + (int(length) if length.isdigit() else 0)
                _stream_to(calls, out, resp, started, what, on_progress, total, limit)
            return
        except Late:
            raise calls.late(what) from None
        except (httpx.TransportError, _Retry):
            calls.again(attempt, backoff, what)


def _stream_to(calls: Calls, out: BinaryIO, resp: httpx.Response, started: float, what: str,
               on_progress: OnProgress | None, total: int, limit: int | None) -> None:
    """The answer's bytes to `out`, each piece as it arrives, while it keeps up."""
    got = reported = 0
    for piece in resp.iter_bytes():
        out.write(piece)
        got += len(piece)
        if limit is not None and out.tell() > limit:
            raise calls.fail(f"{what}: the provider's answer is larger than {limit >> 20} MiB "
                             "(more than the job's requests can take); not read")
        if calls.lagging(started, got):
            raise Late
        if got - reported >= _PIECE:
            reported = got
            _written(out, on_progress, total)
    _written(out, on_progress, total)


def _written(out: BinaryIO, on_progress: OnProgress | None, total: int) -> None:
    out.flush()
    hit("during-download")
    if on_progress is not None:
        on_progress(out.tell(), total)


class _Retry(Exception):
    pass
