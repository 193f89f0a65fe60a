"""The Gemini API Batch Mode over httpx: batches, the Files API and result download.

Wire facts (see the design notes): batch calls answer with long-running Operations whose
`metadata` holds the batch; list returns `operations`; int64 counters are strings; states are
`BATCH_STATE_*` (the SDK's `JOB_STATE_*` names are accepted too); results are in
`metadata.output` (or the top-level `response`), as a responses file or inline responses, and
are joined by key because their order is not promised.

Only idempotent calls are retried. A create that may have reached the server raises
`AmbiguousCreate`; the caller resolves it by looking for the job's display name.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, BinaryIO, Iterator, Mapping

import httpx

from ..errors import ProviderError
from ..failpoints import hit
from ..limits import PROVIDERS
from ..retry import Backoff, Sleep, real_sleep, retry_after
from .base import AmbiguousCreate, JobState, OnProgress, RemoteJob

DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com"
INLINE_LIMIT = PROVIDERS["gemini"].inline_bytes
CHUNK = 8 * 1024 * 1024            # upload chunk: the server's granularity
RETRIABLE = {408, 429, 500, 502, 503, 504}

_STATES = {
    "PENDING": JobState.PENDING, "RUNNING": JobState.RUNNING, "SUCCEEDED": JobState.SUCCEEDED,
    "FAILED": JobState.FAILED, "CANCELLED": JobState.CANCELLED, "EXPIRED": JobState.EXPIRED,
    "UNSPECIFIED": JobState.PENDING,
}


def parse_state(wire: str) -> JobState:
    """`BATCH_STATE_X` (the wire) or `JOB_STATE_X` (the SDK's names) to a JobState."""
    for prefix in ("BATCH_STATE_", "JOB_STATE_"):
        if wire.startswith(prefix):
            state = _STATES.get(wire[len(prefix):])
            if state is not None:
                return state
    raise ProviderError(f"unknown batch state {wire!r} from the provider")


def parse_operation(op: dict[str, Any]) -> RemoteJob:
    meta = op.get("metadata") or {}
    output = meta.get("output") or op.get("response") or {}
    stats = meta.get("batchStats") or {}
    inline = (output.get("inlinedResponses") or {}).get("inlinedResponses")
    error = op.get("error")
    input_config = meta.get("inputConfig") or {}
    return RemoteJob(
        name=op.get("name") or meta.get("name", ""),
        display_name=meta.get("displayName", ""),
        state=parse_state(meta.get("state", "BATCH_STATE_UNSPECIFIED")),
        model=str(meta.get("model", "")).removeprefix("models/"),
        create_time=meta.get("createTime"), end_time=meta.get("endTime"),
        total=int(stats.get("requestCount", 0)),
        succeeded=int(stats.get("successfulRequestCount", 0)),
        failed=int(stats.get("failedRequestCount", 0)),
        pending=int(stats.get("pendingRequestCount", 0)),
        error=(f"{error.get('message', '')} (code {error.get('code')})" if error else None),
        results_file=output.get("responsesFile"),
        input_file=input_config.get("fileName"),
        inline_results=inline if isinstance(inline, list) else None,
    )


def api_key_from_env() -> str | None:
    return os.environ.get("GEMINI_API_KEY") or os.environ.get("GOOGLE_API_KEY") or None


class GeminiProvider:
    name = "gemini"
    inline_limit = INLINE_LIMIT

    def __init__(self, api_key: str, base_url: str | None = None, *, api_version: str = "v1beta",
                 timeout: float = 60.0, max_attempts: int = 8, sleep: Sleep = real_sleep,
                 backoff: Backoff | None = None, inline_limit: int = INLINE_LIMIT,
                 chunk_size: int = CHUNK):
        api_key = api_key.strip()
        if not api_key:
            raise ProviderError("no Gemini API key: set GEMINI_API_KEY (or GOOGLE_API_KEY), or "
                                "pass --emulator to use the local emulator")
        if not (api_key.isascii() and api_key.isprintable()):
            raise ProviderError("the Gemini API key holds characters an API key cannot have "
                                "(check GEMINI_API_KEY for a stray character)")
        self._base = (base_url or os.environ.get("GEMINI_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
        url = httpx.URL(self._base)
        if url.scheme not in ("http", "https") or not url.host:
            raise ProviderError(f"GEMINI_BASE_URL must be an http(s) URL (got {self._base!r})")
        if url.scheme == "http" and url.host not in ("localhost", "127.0.0.1", "::1") \
                and not url.host.startswith("127."):
            raise ProviderError("GEMINI_BASE_URL may use plain http:// only for a server on this "
                                "machine (the key would cross the network in clear); use https://")
        self._version = api_version
        self.inline_limit = inline_limit
        self._chunk = chunk_size
        # verify=True is httpx's default; stated so that nobody turns it off by accident.
        self._http = httpx.Client(headers={"x-goog-api-key": api_key}, verify=True,
                                  timeout=httpx.Timeout(timeout, connect=15.0))
        self._max_attempts = max_attempts
        self._sleep = sleep
        self._backoff = backoff or Backoff(base=1.0, cap=30.0)

    def close(self) -> None:
        self._http.close()

    # -- transport -------------------------------------------------------------------------

    def _url(self, path: str) -> str:
        return f"{self._base}/{self._version}/{path}"

    def _send(self, method: str, url: str, *, what: str, idempotent: bool = True,
              **kwargs: Any) -> httpx.Response:
        """One call with retries. Non-idempotent calls are retried only on a 429, which the
        server answers before doing anything; other failures raise AmbiguousCreate."""
        backoff = Backoff(self._backoff.base, self._backoff.cap, rng=self._backoff.rng)
        for attempt in range(1, self._max_attempts + 1):
            try:
                resp = self._http.request(method, url, **kwargs)
            except httpx.TransportError as e:
                if not idempotent:
                    raise AmbiguousCreate(f"{what}: {type(e).__name__}") from None
                if attempt == self._max_attempts:
                    raise ProviderError(f"{what} failed: {type(e).__name__} after "
                                        f"{attempt} attempts") from None
                self._sleep(backoff.next_delay())
                continue
            if resp.status_code == 200 or resp.status_code == 206:
                return resp
            if resp.status_code in RETRIABLE and attempt < self._max_attempts:
                if not idempotent and resp.status_code != 429:
                    raise AmbiguousCreate(f"{what}: HTTP {resp.status_code}")
                delay = backoff.next_delay()
                if resp.status_code == 429:
                    delay = max(delay, retry_after(resp.headers.get("retry-after"), delay))
                self._sleep(delay)
                continue
            if resp.status_code == 404:
                raise _NotFound(what)
            raise ProviderError(f"{what} failed: HTTP {resp.status_code}: {_message(resp)}")
        raise AssertionError("unreachable")

    def _json(self, method: str, path: str, *, what: str, **kwargs: Any) -> Any:
        resp = self._send(method, self._url(path), what=what, **kwargs)
        try:
            return resp.json() if resp.content else {}
        except ValueError:
            raise ProviderError(f"{what}: the provider answered with invalid JSON") from None

    # -- batches ---------------------------------------------------------------------------

    def list_jobs(self) -> Iterator[RemoteJob]:
        token = ""
        while True:
            params = {"pageSize": 100, **({"pageToken": token} if token else {})}
            page = self._json("GET", "batches", what="list batches", params=params)
            for op in page.get("operations", []):
                yield parse_operation(op)
            token = page.get("nextPageToken") or ""
            if not token:
                return

    def get_job(self, name: str) -> RemoteJob | None:
        try:
            return parse_operation(self._json("GET", name, what=f"get {name}"))
        except _NotFound:
            return None

    def create_job(self, model: str, display_name: str, *, input_file: str | None = None,
                   inline_lines: Path | None = None) -> RemoteJob:
        if input_file is not None:
            input_config: dict[str, Any] = {"fileName": input_file}
        elif inline_lines is not None:
            input_config = {"requests": {"requests": list(_inline_requests(inline_lines))}}
        else:
            raise ValueError("create_job needs input_file or inline_lines")
        body = {"batch": {"displayName": display_name, "inputConfig": input_config}}
        try:
            op = self._json("POST", f"models/{model}:batchGenerateContent",
                            what=f"create batch {display_name}", idempotent=False, json=body,
                            extensions={"trace": _trace_create_answer})
        except _NotFound:
            raise ProviderError(f"model {model!r} not found by the provider") from None
        return parse_operation(op)

    def count_tokens(self, model: str, request: Mapping[str, Any]) -> int:
        """Input tokens of one request, by the provider's countTokens (free, rate-limited)."""
        body = {"generateContentRequest": {"model": f"models/{model}", **request}}
        answer = self._json("POST", f"models/{model}:countTokens", what="count tokens", json=body)
        return int(answer.get("totalTokens", 0))

    def cancel_job(self, name: str) -> None:
        try:
            self._json("POST", f"{name}:cancel", what=f"cancel {name}")
        except _NotFound:
            pass

    def delete_job(self, name: str) -> None:
        try:
            self._json("DELETE", name, what=f"delete {name}")
        except _NotFound:
            pass

    # -- files -----------------------------------------------------------------------------

    def find_file(self, display_name: str) -> str | None:
        token = ""
        while True:
            params = {"pageSize": 100, **({"pageToken": token} if token else {})}
            page = self._json("GET", "files", what="list files", params=params)
            for f in page.get("files", []):
                if f.get("displayName") == display_name and f.get("state", "ACTIVE") == "ACTIVE":
                    return str(f["name"])
            token = page.get("nextPageToken") or ""
            if not token:
                return None

    def upload_file(self, path: Path, display_name: str, *,
                    on_progress: OnProgress | None = None) -> str:
        """Resumable upload in chunks read from disk; a failed chunk resumes from the offset
        the server reports (`query`), not from the start."""
        size = path.stat().st_size
        start = self._send(
            "POST", f"{self._base}/upload/{self._version}/files", what="start upload",
            headers={"X-Goog-Upload-Protocol": "resumable", "X-Goog-Upload-Command": "start",
                     "X-Goog-Upload-Header-Content-Length": str(size),
                     "X-Goog-Upload-Header-Content-Type": "application/jsonl"},
            json={"file": {"displayName": display_name, "mimeType": "application/jsonl"}})
        upload_url = start.headers.get("x-goog-upload-url")
        if not upload_url:
            raise ProviderError("start upload: the provider returned no upload URL")
        offset = 0
        failures = 0
        backoff = Backoff(self._backoff.base, self._backoff.cap, rng=self._backoff.rng)
        with open(path, "rb") as f:
            while True:
                length = min(self._chunk, size - offset)
                last = offset + length >= size
                command = "upload, finalize" if last else "upload"
                try:
                    resp = self._http.post(upload_url, content=_slices(f, offset, length),
                                           headers={"X-Goog-Upload-Command": command,
                                                    "X-Goog-Upload-Offset": str(offset),
                                                    "Content-Length": str(length)})
                    ok = resp.status_code == 200
                except httpx.TransportError:
                    ok, resp = False, None
                if ok and resp is not None:
                    status = resp.headers.get("x-goog-upload-status", "")
                    if last or status == "final":
                        if status != "final":
                            raise ProviderError("upload: the provider did not finalize the file")
                        if on_progress is not None:
                            on_progress(size, size)
                        return str(resp.json()["file"]["name"])
                    offset += length
                    backoff.reset()
                    if on_progress is not None:
                        on_progress(offset, size)
                    hit("during-upload")
                    continue
                failures += 1
                if failures >= self._max_attempts:
                    raise ProviderError(f"upload of {path.name} failed after {failures} attempts")
                self._sleep(backoff.next_delay())
                offset = self._query_offset(upload_url, offset)

    def _query_offset(self, upload_url: str, fallback: int) -> int:
        try:
            resp = self._http.post(upload_url, headers={"X-Goog-Upload-Command": "query"})
        except httpx.TransportError:
            return fallback
        received = resp.headers.get("x-goog-upload-size-received")
        if resp.status_code == 200 and received is not None and received.isdigit():
            return int(received)
        return fallback

    def download_results(self, job: RemoteJob, dest: Path, *,
                         on_progress: OnProgress | None = None) -> None:
        """Writes the job's results to `dest` as JSONL lines `{"key", "response"|"error"}`."""
        if job.results_file:
            self.download_file(job.results_file, dest, on_progress=on_progress)
            return
        if job.inline_results is None:
            raise ProviderError(f"{job.name} succeeded but reports no results")
        with open(dest, "w", encoding="utf-8") as out:
            for item in job.inline_results:
                line: dict[str, Any] = {"key": (item.get("metadata") or {}).get("key")}
                if "error" in item:
                    line["error"] = item["error"]
                else:
                    line["response"] = item.get("response", {})
                out.write(json.dumps(line, ensure_ascii=False) + "\n")

    def download_file(self, file_name: str, dest: Path, *,
                      on_progress: OnProgress | None = None) -> None:
        """Streams a file to disk; an interrupted transfer resumes with a Range request."""
        url = self._url(f"{file_name}:download")
        backoff = Backoff(self._backoff.base, self._backoff.cap, rng=self._backoff.rng)
        with open(dest, "wb") as out:
            for attempt in range(1, self._max_attempts + 1):
                have = out.tell()
                headers = {"Range": f"bytes={have}-"} if have else {}
                try:
                    with self._http.stream("GET", url, params={"alt": "media"},
                                           headers=headers) as resp:
                        if resp.status_code == 200 and have:
                            out.seek(0)
                            out.truncate()
                        elif resp.status_code not in (200, 206):
                            if resp.status_code in RETRIABLE:
                                raise _Retry()
                            resp.read()
                            raise ProviderError(f"download {file_name} failed: HTTP "
                                                f"{resp.status_code}: {_message(resp)}")
                        total = have + int(resp.headers.get("content-length", 0) or 0)
                        for chunk in resp.iter_bytes(1 << 20):
                            out.write(chunk)
                            out.flush()
                            hit("during-download")
                            if on_progress is not None:
                                on_progress(out.tell(), total)
                    return
                except (httpx.TransportError, _Retry):
                    if attempt == self._max_attempts:
                        raise ProviderError(f"download {file_name} failed after {attempt} "
                                            "attempts") from None
                    self._sleep(backoff.next_delay())


def _trace_create_answer(event: str, info: dict[str, Any]) -> None:
    """The moment the create's answer starts to arrive: the job exists, we do not know it yet."""
    if event == "http11.receive_response_headers.complete":
        hit("after-create-sent")


class _NotFound(Exception):
    pass


class _Retry(Exception):
    pass


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


def _message(resp: httpx.Response) -> str:
    try:
        err = resp.json().get("error", {})
        return str(err.get("message") or err)[:300]
    except (ValueError, AttributeError):
        return resp.text[:200].replace("\n", " ")


def _inline_requests(lines_path: Path) -> Iterator[dict[str, Any]]:
    with open(lines_path, encoding="utf-8") as f:
        for line in f:
            item = json.loads(line)
            yield {"request": item["request"], "metadata": {"key": item["key"]}}
