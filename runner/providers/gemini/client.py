"""The Gemini API Batch Mode over httpx: batches, the Files API and result download.

Wire facts (see the design notes): batch calls answer with long-running Operations whose
`metadata` holds the batch; list returns `operations`; int64 counters are strings; states are
`BATCH_STATE_*` (the SDK's `JOB_STATE_*` names are accepted too); results are in
`metadata.output` (or the top-level `response`), as a responses file or inline responses, and
are joined by key because their order is not promised.

`wire` reads the answers and trusts none of them; `transport` keeps the key where it
belongs; `calls` retries and bounds each call (set `deadline` to bound them all).

Only idempotent calls are retried. A create that may have reached the server raises
`AmbiguousCreate`; the caller resolves it by looking for the job's display name.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import io
import itertools
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import httpx

from ...errors import ProviderError, ResultsGone
from ...limits import Limits
from ...retry import Backoff, Sleep, real_sleep
from ..base import OnProgress, RemoteJob
from ..calls import (
    CALL_TIMEOUT,
    MAX_PAGES,
    MIN_RATE,
    BadRequest,
    Calls,
    NotFound,
    OverCalls,
    results_limit,
)
from ..reading import model_name
from ..transport import check_base_url
from .download import transfer
from .inline import InlineBody
from .inline_results import write_results
from .upload import ResumableUpload
from .wire import (
    ANSWER_FIELDS,
    JOB_FIELDS,
    LIST_FIELDS,
    paging,
    parse_count,
    parse_file,
    parse_operation,
    parse_page,
)

T = TypeVar("T")

DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com"
# Inline requests up to 20 MB (kept under it, for the envelope), an input file up to 2 GB,
# 100 batch jobs in flight per project; no documented cap on requests a job.
LIMITS = Limits(inline_bytes=20_000_000, file_bytes=2_000_000_000, concurrent_jobs=100)
INLINE_LIMIT = LIMITS.inline_bytes
CHUNK = 8 * 1024 * 1024            # upload chunk: the server's granularity
_SMALLEST_REQUEST = 32             # bytes of the least InlinedRequest, `{"request":{...}}`
_SMALLEST_LINE = 26                # bytes of the least input file line, `{"key":"k","request":{}}`


class GeminiProvider(OverCalls):
    name = "gemini"
    inline_limit = INLINE_LIMIT

    def __init__(self, api_key: str, base_url: str | None = None, *, api_version: str = "v1beta",
                 timeout: float = 60.0, call_timeout: float = CALL_TIMEOUT,
                 min_rate: float = MIN_RATE, max_pages: int = MAX_PAGES, max_attempts: int = 8,
                 sleep: Sleep = real_sleep, backoff: Backoff | None = None,
                 inline_limit: int = INLINE_LIMIT, chunk_size: int = CHUNK,
                 transport: httpx.BaseTransport | None = None):
        """`transport`, when given, carries every request instead of the network (tests pass
        an httpx.MockTransport); sleep and backoff make retries instant in tests."""
        api_key = api_key.strip()
        if not api_key:
            raise ProviderError("no Gemini API key: set GEMINI_API_KEY (or GOOGLE_API_KEY), or "
                                "pass --emulator to use the local emulator")
        if not (api_key.isascii() and api_key.isprintable()):
            raise ProviderError("the Gemini API key holds characters an API key cannot have "
                                "(check GEMINI_API_KEY for a stray character)")
        self._base = (base_url or os.environ.get("GEMINI_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
        self._base_url = check_base_url(self._base, "GEMINI_BASE_URL")
        self._version = api_version
        self.inline_limit = inline_limit
        self._chunk = chunk_size
        self._fields = True                 # partial responses, until refused
        self._calls = Calls(self._base_url, api_key, headers={"x-goog-api-key": api_key},
                            read=timeout, call_timeout=call_timeout,
                            min_rate=min_rate, max_pages=max_pages, max_attempts=max_attempts,
                            sleep=sleep, backoff=backoff or Backoff(base=1.0, cap=30.0),
                            transport=transport)


    def _url(self, path: str) -> str:
        return f"{self._base}/{self._version}/{path}"

    def _json(self, method: str, path: str, *, what: str, **kwargs: Any) -> Any:
        return self._calls.json(method, self._url(path), what=what, **kwargs)

    def _job(self, op: object, whose: str) -> RemoteJob:
        job = self._calls.parse(parse_operation, op, whose)
        if job.error is not None:
            job = dataclasses.replace(job, error=self._calls.redact(job.error))
        return job

    # -- batches ---------------------------------------------------------------------------

    def list_jobs(self) -> Iterator[RemoteJob]:
        """Every batch, each without its inline answers (a partial response)."""
        pages = self._masked(lambda params: self._first_page(params.get("fields")),
                             LIST_FIELDS)
        for whose, op in pages:
            yield self._job(op, whose)

    def _first_page(self, fields: str | None) -> Iterator[tuple[str, Any]]:
        """The list walk, its first page read before returning: a mask it refuses shows
        there."""
        walk = self._calls.pages(self._url("batches"), "list batches",
                                 functools.partial(paging, fields=fields),
                                 functools.partial(parse_page, items="operations"))
        first = next(walk, None)
        return itertools.chain(() if first is None else (first,), walk)

    def list_models(self) -> Iterator[str]:
        """The ids of the models the key may use (`models/` left off), every page."""
        for whose, item in self._calls.pages(self._url("models"), "list models", paging,
                                             functools.partial(parse_page, items="models")):
            yield self._calls.parse(model_name, item, whose)

    def get_job(self, name: str) -> RemoteJob | None:
        try:
            op = self._masked(lambda params: self._json("GET", name, what=f"get {name}",
                                                        params=params), JOB_FIELDS)
        except NotFound:
            return None
        return self._job(op, name)

    def create_job(self, model: str, display_name: str, *, input_file: str | None = None,
                   inline_lines: Path | None = None, endpoint: str | None = None
                   ) -> RemoteJob:
        what = f"create batch {display_name}"
        with contextlib.ExitStack() as stack:
            if input_file is not None:
                body = {"batch": {"displayName": display_name,
                                  "inputConfig": {"fileName": input_file}}}
                send: dict[str, Any] = {"json": body, "size": 0}
            elif inline_lines is not None:
                inline = stack.enter_context(contextlib.closing(
                    InlineBody(display_name, inline_lines)))
                send = {"content": inline, "size": inline_lines.stat().st_size,
                        "headers": {"Content-Type": "application/json",
                                    "Content-Length": str(inline.size)}}
            else:
                raise ValueError("create_job needs input_file or inline_lines")
            try:
                op = self._json("POST", f"models/{model}:batchGenerateContent", what=what,
                                idempotent=False, **send)
            except NotFound:
                raise ProviderError(f"model {model!r} not found by the provider") from None
        return self._job(op, what)

    def count_tokens(self, model: str, request: Mapping[str, Any]) -> int:
        """Input tokens of one request, by the provider's countTokens (free, rate-limited)."""
        body = {"generateContentRequest": {"model": f"models/{model}", **request}}
        answer = self._json("POST", f"models/{model}:countTokens", what="count tokens", json=body)
        return self._calls.parse(parse_count, answer, "count tokens")

    def cancel_job(self, name: str) -> None:
        try:
            self._json("POST", f"{name}:cancel", what=f"cancel {name}")
        except NotFound:
            pass

    def delete_job(self, name: str) -> None:
        try:
            self._json("DELETE", name, what=f"delete {name}")
        except NotFound:
            pass

    # -- files -----------------------------------------------------------------------------

    def find_file(self, display_name: str) -> str | None:
        for whose, item in self._calls.pages(
                self._url("files"), "list files", paging,
                functools.partial(parse_page, items="files")):
            name, shown, state = self._calls.parse(parse_file, item, whose)
            if shown == display_name and state == "ACTIVE":
                return name
        return None

    def upload_file(self, path: Path, display_name: str, *,
                    on_progress: OnProgress | None = None) -> str:
        return ResumableUpload(self._calls, self._base, self._base_url, self._version,
                               self._chunk).send(path, display_name, on_progress)

    def download_results(self, job: RemoteJob, dest: Path, *,
                         on_progress: OnProgress | None = None) -> None:
        """Writes the job's results to `dest` as JSONL lines `{"key", "response"|"error"}`:
        its results file, or its inline answers, read from the batch resource as it arrives
        (spooled beside `dest`) and written one answer at a time."""
        if job.results_file:
            # bounded as the inline answers are, and as OpenAI's and Anthropic's results:
            # an endless results file stops there instead of filling the disk (the count is
            # the provider's, capped at what a 2 GB input file can hold)
            limit = results_limit(job.total, LIMITS.file_bytes // _SMALLEST_LINE)
            try:
                self.download_file(job.results_file, dest, on_progress=on_progress,
                                   limit=limit)
            except NotFound:
                raise ResultsGone(job.name, f"its results file {job.results_file} was "
                                  "deleted, or expired") from None
            return
        what = f"get {job.name} (its inline answers)"
        # the provider's count, which may lie, capped at what 20 MB of requests can hold
        limit = results_limit(job.total, self.inline_limit // _SMALLEST_REQUEST)
        with tempfile.TemporaryFile(dir=dest.parent, prefix=".answer-") as spool:
            try:
                self._masked(lambda params: transfer(
                    self._calls, self._url(job.name), params, spool, what, resume=False,
                    limit=limit, on_progress=on_progress), ANSWER_FIELDS)
            except NotFound:
                raise ResultsGone(job.name, "the batch was deleted, or expired") from None
            spool.seek(0)
            source = io.TextIOWrapper(spool, encoding="utf-8", newline="")
            with open(dest, "wb") as out:
                write_results(source, out, job.name, self._calls.redact)

    def download_file(self, file_name: str, dest: Path, *,
                      on_progress: OnProgress | None = None, limit: int | None = None
                      ) -> None:
        """Streams a file to disk; an interrupted transfer resumes with a Range request. It
        must keep up min_rate bytes a second on average, so a trickle ends and a slow but
        steady transfer does not; past `limit` bytes (when given) it ends too."""
        with open(dest, "wb") as out:
            transfer(self._calls, self._url(f"{file_name}:download"), {"alt": "media"}, out,
                     f"download of {file_name}", resume=True, limit=limit,
                     on_progress=on_progress)

    def _masked(self, call: Callable[[dict[str, Any]], T], fields: str) -> T:
        """`call(params)` with the partial-response mask `fields`, as long as the provider
        takes masks: one it refuses (HTTP 400) is not sent again, and the call is made whole.
        Every method of the API takes the `fields` system parameter; this is for a server in
        between that would not."""
        if self._fields:
            try:
                return call({"fields": fields})
            except BadRequest:
                self._fields = False
        return call({})
