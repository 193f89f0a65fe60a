"""The OpenAI Batch API over httpx: batches, the Files API and result download.

Wire facts (see the design notes on OpenAI's wire): the base URL includes `/v1`; the key goes
as `Authorization: Bearer`, with `OpenAI-Organization` and `OpenAI-Project` when
OPENAI_ORG_ID and OPENAI_PROJECT_ID are set; a batch reads an uploaded input file (never
inline requests) and sends every line to one endpoint; its user `metadata` carries the
runner's tag, the display name the core finds a job by; lists page with `after=<last id>`;
results come as an output file and an error file, joined by `custom_id` because their order
is not promised.

`wire` reads the answers and trusts none of them; `transport` keeps the key where it
belongs; `calls` retries and bounds each call (set `deadline` to bound them all).

Only idempotent calls are retried. Create is not: a create that may have reached the server
(no answer, a 5xx) raises `AmbiguousCreate`, and the caller looks for the job by its tag; a
429 is retried, as the server refuses those before doing anything (the shared rule).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx

from ...errors import ProviderError, ResultsGone
from ...limits import Limits
from ...retry import Backoff, Sleep, real_sleep
from ..base import OnProgress, RemoteJob
from ..calls import (
    CALL_TIMEOUT,
    MAX_PAGES,
    MIN_RATE,
    Calls,
    NotFound,
    OverCalls,
    results_limit,
)
from ..reading import is_id, model_name
from ..transport import check_base_url
from .files import Files
from .tokens import CHAT
from .wire import TAG, Batch, paging, parse_batch, parse_models, parse_page

DEFAULT_BASE_URL = "https://api.openai.com/v1"
# A job holds at most 50,000 requests in an input file of at most 200 MB (kept a little under,
# for safety: the limit's unit is not stated); requests are always uploaded, never inline. No
# cap on batches in flight is documented (only on creates an hour, and on enqueued tokens).
LIMITS = Limits(inline_bytes=0, file_bytes=199_000_000, requests=50_000)
MAX_TAG = 512                       # characters of a metadata value
LIST_LIMIT = 100                    # batches a page: the API's most


class OpenAIProvider(OverCalls):
    name = "openai"
    inline_limit = 0

    def __init__(self, api_key: str, base_url: str | None = None, *,
                 organization: str | None = None, project: str | None = None,
                 timeout: float = 60.0, call_timeout: float = CALL_TIMEOUT,
                 min_rate: float = MIN_RATE, max_pages: int = MAX_PAGES, max_attempts: int = 8,
                 sleep: Sleep = real_sleep, backoff: Backoff | None = None,
                 transport: httpx.BaseTransport | None = None):
        """`organization` and `project` default to OPENAI_ORG_ID and OPENAI_PROJECT_ID;
        `transport`, when given, carries every request instead of the network (tests pass
        an httpx.MockTransport); sleep and backoff make retries instant in tests."""
        api_key = api_key.strip()
        if not api_key:
            raise ProviderError("no OpenAI API key: set OPENAI_API_KEY, or pass --emulator to "
                                "use the local emulator")
        headers = {"Authorization": f"Bearer {_header_value(api_key, 'OPENAI_API_KEY')}"}
        for header, env, given in (("OpenAI-Organization", "OPENAI_ORG_ID", organization),
                                   ("OpenAI-Project", "OPENAI_PROJECT_ID", project)):
            value = (given if given is not None else os.environ.get(env, "")).strip()
            if value:
                headers[header] = _header_value(value, env)
        self._base = (base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL
                      ).rstrip("/")
        self._calls = Calls(check_base_url(self._base, "OPENAI_BASE_URL"), api_key,
                            headers=headers, read=timeout, call_timeout=call_timeout,
                            min_rate=min_rate, max_pages=max_pages, max_attempts=max_attempts,
                            sleep=sleep, backoff=backoff or Backoff(base=1.0, cap=30.0),
                            transport=transport)
        self._files = Files(self._calls, self._base)


    def _batch(self, answer: object, whose: str) -> Batch:
        batch = self._calls.parse(parse_batch, answer, whose)
        if batch.job.error is not None:
            batch = dataclasses.replace(batch, job=dataclasses.replace(
                batch.job, error=self._calls.redact(batch.job.error)))
        return batch

    def _fetch(self, name: str) -> Batch | None:
        if not is_id(name):
            raise ProviderError(f"{name!r} is not an OpenAI batch id")
        try:
            answer = self._calls.json("GET", f"{self._base}/batches/{name}", what=f"get {name}")
        except NotFound:
            return None
        return self._batch(answer, name)

    # -- batches ---------------------------------------------------------------------------

    def list_jobs(self) -> Iterator[RemoteJob]:
        for whose, item in self._calls.pages(f"{self._base}/batches", "list batches",
                                             lambda token: paging(token, LIST_LIMIT),
                                             parse_page):
            yield self._batch(item, whose).job

    def list_models(self) -> Iterator[str]:
        """The ids of the models the key may use: one list, not paged."""
        page = self._calls.json("GET", f"{self._base}/models", what="list models")
        items = self._calls.parse(parse_models, page, "list models")
        for i, item in enumerate(items, 1):
            yield self._calls.parse(model_name, item, f"list models, item {i}")

    def get_job(self, name: str) -> RemoteJob | None:
        """The batch, or None when it is gone for the runner's purposes: OpenAI keeps a batch
        for good, so an ended batch whose result files were deleted (what delete_job does)
        counts as deleted. A listing cannot tell (it would take a call a batch): a download
        that finds them all gone raises ResultsGone."""
        batch = self._fetch(name)
        if batch is None:
            return None
        files = batch.files_of_results
        if batch.job.state.terminal and files and not any(map(self._files.exists, files)):
            return None
        return batch.job

    def create_job(self, model: str, display_name: str, *, input_file: str | None = None,
                   inline_lines: Path | None = None, endpoint: str | None = None
                   ) -> RemoteJob:
        """A batch of the uploaded `input_file`, every line sent to `endpoint`, tagged with
        `display_name` in its metadata. The model is named by each line's body."""
        if input_file is None:
            raise ValueError("OpenAI batches read an uploaded file: create_job needs "
                             "input_file")
        if not is_id(input_file):
            raise ProviderError(f"{input_file!r} is not an OpenAI file id")
        if len(display_name) > MAX_TAG:
            raise ProviderError(f"the tag {display_name[:40]!r}… is longer than the "
                                f"{MAX_TAG} characters OpenAI's metadata holds")
        body: dict[str, Any] = {"input_file_id": input_file, "endpoint": endpoint or CHAT,
                                "completion_window": "24h", "metadata": {TAG: display_name}}
        what = f"create batch {display_name}"
        answer = self._calls.json("POST", f"{self._base}/batches", what=what,
                                  idempotent=False, json=body)
        return self._batch(answer, what).job

    def cancel_job(self, name: str) -> None:
        """Asks the batch to stop (it is `cancelling`, then `cancelled`); a batch already
        ended, or gone, has nothing to cancel."""
        if not is_id(name):
            raise ProviderError(f"{name!r} is not an OpenAI batch id")
        try:
            self._calls.json("POST", f"{self._base}/batches/{name}/cancel",
                             what=f"cancel {name}")
        except NotFound:
            return
        except ProviderError:
            found = self._fetch(name)
            if found is not None and not found.job.state.terminal:
                raise

    def delete_job(self, name: str) -> None:
        """OpenAI has no way to delete a batch: the batch stays in the list for good. What
        can go is deleted: its input, output and error files (the prompts and the answers).
        A batch already gone is fine."""
        batch = self._fetch(name)
        for file_id in batch.files if batch is not None else ():
            self._files.delete(file_id)

    def count_tokens(self, model: str, request: Mapping[str, Any]) -> int:
        raise ProviderError("--count-tokens asks Gemini's countTokens, which OpenAI's batch "
                            "API has no counterpart of; plan OpenAI batches without it (the "
                            "offline estimate)")

    # -- files -----------------------------------------------------------------------------

    def find_file(self, display_name: str) -> str | None:
        return self._files.find(display_name)

    def upload_file(self, path: Path, display_name: str, *,
                    on_progress: OnProgress | None = None) -> str:
        return self._files.upload(path, display_name, on_progress)

    def download_results(self, job: RemoteJob, dest: Path, *,
                         on_progress: OnProgress | None = None) -> None:
        """Writes the batch's output file, then its error file (either may be absent), to
        `dest` as one results file: its answers, then its failures (requests that failed, and
        those an expired batch never reached). The batch is read again for the error file's
        id, which RemoteJob has no place for."""
        batch = self._fetch(job.name)
        if batch is None:
            raise ProviderError(f"{job.name} is no longer on the provider")
        files = batch.files_of_results
        if not files:
            raise ProviderError(f"{job.name} ended {batch.job.state.value.lower()} but has no "
                                "output or error file")
        try:
            self._files.download(files, dest, on_progress,
                                 results_limit(batch.job.total, LIMITS.requests))
        except NotFound:
            raise ResultsGone(job.name, "its result files were deleted") from None


def _header_value(value: str, env: str) -> str:
    """A value that may go in a header as it is: no stray character from a pasted key."""
    if not (value.isascii() and value.isprintable() and " " not in value):
        raise ProviderError(f"{env} holds characters it cannot have (check it for a stray "
                            "space or character)")
    return value
