"""Anthropic's Message Batches API over httpx: create, list, get, cancel, delete, results.

Wire facts (see the design notes on Anthropic's wire): the base URL excludes `/v1`
(ANTHROPIC_BASE_URL, as the SDK reads it); the key goes as `Authorization: Bearer`, which the
current API documents and the SDK sends since 2.0, with `anthropic-version` pinned to
API_VERSION, the version of that SDK, so that every call, and every request of every batch,
is read by one version whatever the account's default: 2026-10-21 is also the version that
refuses `temperature`, `top_p` and `top_k`, which the request schema refuses up front. A batch
holds its requests inline in the create call (there is no file to upload); lists page with
`after_id=<last_id>`, newest first; results are fetched from the batch's absolute
`results_url`, joined by `custom_id` because their order is not promised.

A batch carries no name, tag or metadata: every RemoteJob read here has display_name "",
except the one create_job returns, which carries the display name it was given, so that the
core can check the create's answer against its record. Jobs are recognised by the core from
the lockfile's intents (Dialect.tags_jobs is False).

Only idempotent calls are retried. Create is not: a create that may have reached the server
(no answer, a 5xx, a 529 overloaded) raises `AmbiguousCreate`; a 429 is retried, as the
server refuses those before doing anything (the shared rule in `calls`).
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
from .download import checked_url, download
from .inline import InlineBody
from .wire import Batch, paging, parse_batch, parse_deleted, parse_page

DEFAULT_BASE_URL = "https://api.anthropic.com"
API_VERSION = "2026-10-21"
# A batch holds at most 100,000 requests and 256 MB, all sent in the create call. The core
# sends a batch inline when its input file and 64 bytes a request fit under the inline limit,
# so a shard's file is capped that much below it, and the limit kept under 256 MB (whose unit
# is not stated) for the body's envelope: every shard goes inline, and none is ever uploaded.
INLINE_BYTES = 250_000_000
MAX_REQUESTS = 100_000
LIMITS = Limits(inline_bytes=INLINE_BYTES, file_bytes=INLINE_BYTES - 64 * MAX_REQUESTS - 1_000,
                requests=MAX_REQUESTS)
LIST_LIMIT = 1000                   # batches a page: the API's most
DELETE_POLLS = 60                   # waits for a cancelled batch to end before deleting it
DELETE_POLL_SECONDS = 2.0


class AnthropicProvider(OverCalls):
    name = "anthropic"
    inline_limit = INLINE_BYTES

    def __init__(self, api_key: str, base_url: str | None = None, *,
                 timeout: float = 60.0, call_timeout: float = CALL_TIMEOUT,
                 min_rate: float = MIN_RATE, max_pages: int = MAX_PAGES, max_attempts: int = 8,
                 sleep: Sleep = real_sleep, backoff: Backoff | None = None,
                 page_size: int = LIST_LIMIT, transport: httpx.BaseTransport | None = None):
        """`transport`, when given, carries every request instead of the network (tests pass
        an httpx.MockTransport); sleep and backoff make retries instant in tests, and a small
        `page_size` (batches a list page) makes lists page."""
        api_key = api_key.strip()
        if not api_key:
            raise ProviderError("no Anthropic API key: set ANTHROPIC_API_KEY, or pass "
                                "--emulator to use the local emulator")
        if not (api_key.isascii() and api_key.isprintable() and " " not in api_key):
            raise ProviderError("ANTHROPIC_API_KEY holds characters it cannot have (check it "
                                "for a stray space or character)")
        self._base = (base_url or os.environ.get("ANTHROPIC_BASE_URL") or DEFAULT_BASE_URL
                      ).rstrip("/")
        self._base_url = check_base_url(self._base, "ANTHROPIC_BASE_URL")
        headers = {"Authorization": f"Bearer {api_key}", "anthropic-version": API_VERSION}
        self._calls = Calls(self._base_url, api_key, headers=headers, read=timeout,
                            call_timeout=call_timeout, min_rate=min_rate, max_pages=max_pages,
                            max_attempts=max_attempts, sleep=sleep,
                            backoff=backoff or Backoff(base=1.0, cap=30.0), transport=transport)
        self._batches = f"{self._base}/v1/messages/batches"
        self._page_size = page_size

    def _batch(self, answer: object, whose: str) -> Batch:
        return self._calls.parse(parse_batch, answer, whose)

    def _url(self, name: str, *rest: str) -> str:
        if not is_id(name):
            raise ProviderError(f"{name!r} is not an Anthropic message batch id")
        return "/".join((self._batches, name, *rest))

    def _fetch(self, name: str) -> Batch | None:
        url = self._url(name)
        try:
            answer = self._calls.json("GET", url, what=f"get {name}")
        except NotFound:
            return None
        return self._batch(answer, name)

    # -- batches ---------------------------------------------------------------------------

    def list_jobs(self) -> Iterator[RemoteJob]:
        for whose, item in self._calls.pages(self._batches, "list batches",
                                             lambda token: paging(token, self._page_size),
                                             parse_page):
            batch = self._batch(item, whose)
            if not batch.archived:      # gone for the runner's purposes, as get_job says
                yield batch.job

    def list_models(self) -> Iterator[str]:
        """The ids of the models the key may use, every page."""
        for whose, item in self._calls.pages(self._batches.removesuffix("messages/batches")
                                             + "models", "list models",
                                             lambda token: paging(token, 1000), parse_page):
            yield self._calls.parse(model_name, item, whose)

    def get_job(self, name: str) -> RemoteJob | None:
        """The batch, or None when it is gone for the runner's purposes: deleted, or archived
        (its results no longer kept, 29 days after its creation)."""
        batch = self._fetch(name)
        return None if batch is None or batch.archived else batch.job

    def create_job(self, model: str, display_name: str, *, input_file: str | None = None,
                   inline_lines: Path | None = None, endpoint: str | None = None
                   ) -> RemoteJob:
        """A batch of the requests in `inline_lines` (input lines, which name their model),
        streamed from the file into the call's body. The batch keeps no name: the job
        returned carries `display_name` only so that the core can tell it is this create's."""
        if input_file is not None or inline_lines is None:
            raise ValueError("Anthropic batches take their requests inline: create_job needs "
                             "inline_lines, and no input_file")
        body = InlineBody(inline_lines)
        what = f"create batch {display_name}"
        answer = self._calls.json(
            "POST", self._batches, what=what, idempotent=False, size=body.length,
            content=body, headers={"Content-Type": "application/json",
                                   "Content-Length": str(body.length)})
        job = self._batch(answer, what).job
        return dataclasses.replace(job, display_name=display_name)

    def cancel_job(self, name: str) -> None:
        """Asks the batch to stop (it is `canceling`, then `ended`); a batch already ended,
        or gone, has nothing to cancel."""
        url = self._url(name, "cancel")
        try:
            self._calls.json("POST", url, what=f"cancel {name}")
        except NotFound:
            return
        except ProviderError:
            found = self._fetch(name)
            if found is not None and not found.ended:
                raise

    def delete_job(self, name: str) -> None:
        """Deletes the batch, its requests and its results; one already gone is fine.
        Anthropic deletes only a batch that has ended, and a cancelled one ends a little
        after the cancel (prune cancels and deletes in one go): an unfinished batch is
        cancelled, then waited for, DELETE_POLLS times DELETE_POLL_SECONDS at most (and
        never past the run's deadline), and an error says to try again if it has not ended
        by then."""
        batch = self._fetch(name)
        if batch is None:
            return
        if not batch.ended:
            self.cancel_job(name)
            for _ in range(DELETE_POLLS):
                self._calls.pause(DELETE_POLL_SECONDS, f"delete {name}")
                batch = self._fetch(name)
                if batch is None:
                    return
                if batch.ended:
                    break
            else:
                raise ProviderError(f"{name} was cancelled, and has not ended yet: Anthropic "
                                    "deletes only a batch that has ended; try again in a few "
                                    "minutes")
        what = f"delete {name}"
        try:
            answer = self._calls.json("DELETE", self._url(name), what=what)
        except NotFound:
            return
        self._calls.parse(parse_deleted, answer, what)

    def count_tokens(self, model: str, request: Mapping[str, Any]) -> int:
        raise ProviderError("--count-tokens asks Gemini's countTokens; the runner does not "
                            "ask Anthropic's: plan Anthropic batches without it (the offline "
                            "estimate)")

    # -- files -----------------------------------------------------------------------------

    def find_file(self, display_name: str) -> str | None:
        return None                 # nothing is ever uploaded

    def upload_file(self, path: Path, display_name: str, *,
                    on_progress: OnProgress | None = None) -> str:
        raise ProviderError("Anthropic batches take their requests inline, never as an "
                            f"uploaded file (this one is {path.stat().st_size:,} bytes; a "
                            f"batch's requests must stay under {INLINE_BYTES:,})")

    def download_results(self, job: RemoteJob, dest: Path, *,
                         on_progress: OnProgress | None = None) -> None:
        """Writes the batch's results file to `dest`. The batch is read again for its
        results_url, which is followed only on the base URL's origin."""
        batch = self._fetch(job.name)
        if batch is None:
            raise ProviderError(f"{job.name} is no longer on the provider")
        if not batch.ended:
            raise ProviderError(f"{job.name} has not ended yet; its results come when it has")
        if batch.archived:
            raise ResultsGone(job.name, "Anthropic keeps them 29 days after the batch's "
                              "creation")
        if not batch.results_url:
            raise ProviderError(f"{job.name} ended but the provider gave no results_url")
        url = checked_url(self._calls, self._base_url, batch.results_url, job.name)
        try:
            download(self._calls, url, dest, f"download of {job.name}'s results",
                     results_limit(batch.job.total, LIMITS.requests), on_progress)
        except NotFound:
            raise ResultsGone(job.name, "the provider answered 404 for them") from None
