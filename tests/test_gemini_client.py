"""The Gemini client against httpx.MockTransport: the exact requests it sends and what it makes
of each answer, with no server. The emulator tests cover the same client end to end; these pin
the wire (paths, queries, headers, bodies) and the retry rules call by call, in milliseconds."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fake_server import Answer, FakeServer, in_order, ok

from runner.errors import ProviderError
from runner.providers.base import AmbiguousCreate, JobState
from runner.providers.gemini import GeminiProvider
from runner.providers.gemini.wire import JOB_FIELDS, LIST_FIELDS

KEY = "test-key-0123456789"
BASE = "http://127.0.0.1:9"            # loopback http: no proxy from the environment applies


class Wire(FakeServer):
    def check(self, request: httpx.Request) -> None:
        assert request.headers["x-goog-api-key"] == KEY

    def provider(self, **kwargs: Any) -> GeminiProvider:
        return GeminiProvider(KEY, BASE, **self.fast(), **kwargs)


def script(*answers: Answer) -> Wire:
    """A server that gives `answers` in order, one per request."""
    return Wire(in_order(*answers))


def body(request: httpx.Request) -> Any:
    return json.loads(request.content)


def op(name: str, state: str = "BATCH_STATE_PENDING", **meta: Any) -> dict[str, Any]:
    return {"name": name, "metadata": {"@type": "type.googleapis.com/x.GenerateContentBatch",
                                       "name": name, "displayName": f"dn-{name[8:]}",
                                       "state": state, **meta}}


def test_list_follows_page_tokens_and_stops_on_an_empty_one() -> None:
    pages = {"": {"operations": [op("batches/a")], "nextPageToken": "t1"},
             "t1": {"operations": [op("batches/b"), op("batches/c")], "nextPageToken": "t2"},
             "t2": {"operations": [op("batches/d")], "nextPageToken": ""}}
    wire = Wire(lambda r: ok(pages[r.url.params.get("pageToken", "")]))
    names = [job.name for job in wire.provider().list_jobs()]
    assert names == ["batches/a", "batches/b", "batches/c", "batches/d"]
    assert [(r.method, r.url.path) for r in wire.requests] == [("GET", "/v1beta/batches")] * 3
    mask = {"fields": LIST_FIELDS}
    assert [dict(r.url.params) for r in wire.requests] == [
        {"pageSize": "100", **mask}, {"pageSize": "100", "pageToken": "t1", **mask},
        {"pageSize": "100", "pageToken": "t2", **mask}]


def test_polls_and_lists_ask_for_a_partial_response_without_inline_answers() -> None:
    """The masks name the fields read, never `inlinedResponses`, which a finished inline job
    carries in full: polling and listing stay small whatever the batch's size."""
    wire = script(ok(op("batches/j1")), ok({"operations": [op("batches/j1")]}))
    provider = wire.provider()
    provider.get_job("batches/j1")
    list(provider.list_jobs())
    assert [r.url.params["fields"] for r in wire.requests] == [JOB_FIELDS, LIST_FIELDS]
    assert "inlinedResponses" not in JOB_FIELDS + LIST_FIELDS
    assert LIST_FIELDS.endswith(",nextPageToken")      # or paging would stop at page one


def test_a_refused_mask_is_dropped_and_the_call_made_whole() -> None:
    """A server in between that refuses the `fields` parameter (HTTP 400) gets the call
    again without it, and no mask after that."""
    refused = httpx.Response(400, json={"error": {"message": "Invalid field selection"}})
    wire = script(refused, ok(op("batches/j1")), ok({"operations": []}))
    provider = wire.provider()
    job = provider.get_job("batches/j1")
    assert job is not None and job.name == "batches/j1"
    assert list(provider.list_jobs()) == []
    assert ["fields" in r.url.params for r in wire.requests] == [True, False, False]


def test_a_bad_request_without_a_mask_is_still_an_error() -> None:
    refused = httpx.Response(400, json={"error": {"message": "no such batch name"}})
    wire = script(refused, refused)
    with pytest.raises(ProviderError, match="HTTP 400: no such batch name"):
        wire.provider().get_job("batches/j1")


def test_list_refuses_a_page_token_that_comes_back() -> None:
    wire = Wire(lambda r: ok({"operations": [], "nextPageToken": "again"}))
    with pytest.raises(ProviderError, match="same page token"):
        list(wire.provider().list_jobs())
    assert len(wire.requests) == 2


@pytest.mark.parametrize(("wire_state", "state"), [
    ("BATCH_STATE_RUNNING", JobState.RUNNING), ("JOB_STATE_RUNNING", JobState.RUNNING),
    ("BATCH_STATE_SUCCEEDED", JobState.SUCCEEDED), ("JOB_STATE_CANCELLED", JobState.CANCELLED)])
def test_get_reads_the_operation(wire_state: str, state: JobState) -> None:
    answer = op("batches/j1", wire_state, model="models/gemini-2.5-flash",
                batchStats={"requestCount": "12", "successfulRequestCount": "9",
                            "failedRequestCount": "1", "pendingRequestCount": "2"},
                output={"responsesFile": "files/out1"})
    wire = script(ok(answer))
    job = wire.provider().get_job("batches/j1")
    assert job is not None
    assert (job.name, job.display_name, job.state, job.model) == \
        ("batches/j1", "dn-j1", state, "gemini-2.5-flash")
    assert (job.total, job.succeeded, job.failed, job.pending) == (12, 9, 1, 2)
    assert job.results_file == "files/out1"
    (request,) = wire.requests
    assert (request.method, request.url.path) == ("GET", "/v1beta/batches/j1")


def test_get_of_a_missing_job_is_none_and_not_retried() -> None:
    wire = script(httpx.Response(404, json={"error": {"message": "gone"}}))
    assert wire.provider().get_job("batches/nope") is None
    assert len(wire.requests) == 1 and wire.sleeps == []


def test_an_idempotent_get_is_retried_on_503() -> None:
    wire = script(httpx.Response(503), httpx.Response(503), ok(op("batches/j1")))
    job = wire.provider().get_job("batches/j1")
    assert job is not None and job.state is JobState.PENDING
    assert len(wire.requests) == 3 and len(wire.sleeps) == 2
    assert all(0 < s <= 0.004 for s in wire.sleeps)


def test_a_get_gives_up_after_max_attempts() -> None:
    wire = Wire(lambda r: httpx.Response(503, json={"error": {"message": "overloaded"}}))
    with pytest.raises(ProviderError, match="HTTP 503: overloaded"):
        wire.provider().get_job("batches/j1")
    assert len(wire.requests) == 3


def test_create_with_inline_requests(tmp_path: Path) -> None:
    lines = tmp_path / "in.jsonl"
    rows = [{"key": f"k{i}", "request": {"contents": [{"parts": [{"text": f"q{i}"}]}]}}
            for i in range(3)]
    lines.write_text("".join(json.dumps(row) + "\n" for row in rows))
    wire = script(ok(op("batches/new")))
    job = wire.provider().create_job("gemini-x", "dn-new", inline_lines=lines)
    assert job.name == "batches/new"
    (request,) = wire.requests
    assert (request.method, request.url.path) == ("POST", "/v1beta/models/gemini-x:"
                                                           "batchGenerateContent")
    batch = body(request)["batch"]
    assert batch["displayName"] == "dn-new"
    sent = batch["inputConfig"]["requests"]["requests"]
    assert [item["metadata"]["key"] for item in sent] == ["k0", "k1", "k2"]
    assert [item["request"] for item in sent] == [row["request"] for row in rows]


def test_create_with_a_file() -> None:
    wire = script(ok(op("batches/new", inputConfig={"fileName": "files/in1"})))
    job = wire.provider().create_job("gemini-x", "dn-new", input_file="files/in1")
    assert job.input_file == "files/in1"
    assert body(wire.requests[0]) == {"batch": {"displayName": "dn-new",
                                                "inputConfig": {"fileName": "files/in1"}}}


@pytest.mark.parametrize("failure", [httpx.Response(503), httpx.Response(500),
                                     httpx.ReadError("Connection reset by peer"),
                                     httpx.RemoteProtocolError("peer closed connection")])
def test_a_create_that_may_have_landed_is_ambiguous_and_not_retried(failure: Answer) -> None:
    wire = script(failure, ok(op("batches/twice")))
    with pytest.raises(AmbiguousCreate):
        wire.provider().create_job("gemini-x", "dn-new", input_file="files/in1")
    assert len(wire.requests) == 1 and wire.sleeps == []


def test_a_create_answered_429_is_retried_after_retry_after() -> None:
    wire = script(httpx.Response(429, headers={"Retry-After": "7"}), ok(op("batches/new")))
    job = wire.provider().create_job("gemini-x", "dn-new", input_file="files/in1")
    assert job.name == "batches/new"
    assert len(wire.requests) == 2 and wire.sleeps == [7.0]
    assert body(wire.requests[0]) == body(wire.requests[1])


def test_a_503_on_the_last_create_attempt_is_still_ambiguous() -> None:
    wire = script(httpx.Response(429), httpx.Response(429), httpx.Response(503))
    with pytest.raises(AmbiguousCreate):
        wire.provider().create_job("gemini-x", "dn-new", input_file="files/in1")


def test_cancel_and_delete_tolerate_404() -> None:
    wire = Wire(lambda r: httpx.Response(404))
    gemini = wire.provider()
    gemini.cancel_job("batches/j1")
    gemini.delete_job("batches/j1")
    assert [(r.method, r.url.path) for r in wire.requests] == [
        ("POST", "/v1beta/batches/j1:cancel"), ("DELETE", "/v1beta/batches/j1")]


def test_cancel_reports_other_errors() -> None:
    wire = script(httpx.Response(403, json={"error": {"message": "denied"}}))
    with pytest.raises(ProviderError, match="HTTP 403: denied"):
        wire.provider().cancel_job("batches/j1")


def test_resumable_upload_resumes_from_the_offset_the_server_reports(tmp_path: Path) -> None:
    data = b"abcdefghij"
    path = tmp_path / "in.jsonl"
    path.write_bytes(data)
    upload_url = f"{BASE}/upload/session/s1"
    chunks: list[tuple[str, str, bytes]] = []

    def server(request: httpx.Request) -> Answer:
        command = request.headers["x-goog-upload-command"]
        if command == "start":
            return httpx.Response(200, headers={"x-goog-upload-url": upload_url})
        if command == "query":
            return httpx.Response(200, headers={"x-goog-upload-size-received": "6"})
        chunks.append((command, request.headers["x-goog-upload-offset"], request.content))
        if len(chunks) == 2:
            return httpx.Response(503)
        if command == "upload, finalize":
            return httpx.Response(200, headers={"x-goog-upload-status": "final"},
                                  json={"file": {"name": "files/up1", "state": "ACTIVE"}})
        return httpx.Response(200, headers={"x-goog-upload-status": "active"})

    wire = Wire(server)
    progress: list[tuple[int, int]] = []
    name = wire.provider(chunk_size=4).upload_file(
        path, "dn-in", on_progress=lambda sent, total: progress.append((sent, total)))
    assert name == "files/up1"
    start = wire.requests[0]
    assert (start.method, start.url.path) == ("POST", "/upload/v1beta/files")
    assert start.headers["x-goog-upload-protocol"] == "resumable"
    assert start.headers["x-goog-upload-header-content-length"] == "10"
    assert start.headers["x-goog-upload-header-content-type"] == "application/jsonl"
    assert body(start) == {"file": {"displayName": "dn-in", "mimeType": "application/jsonl"}}
    assert [r.headers["x-goog-upload-command"] for r in wire.requests] == [
        "start", "upload", "upload", "query", "upload, finalize"]
    assert all(str(r.url) == upload_url for r in wire.requests[1:])
    assert chunks == [("upload", "0", b"abcd"), ("upload", "4", b"efgh"),
                      ("upload, finalize", "6", b"ghij")]
    assert len(wire.sleeps) == 1 and progress[-1] == (10, 10)


def test_upload_refuses_an_upload_url_on_another_server(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"x")
    wire = script(httpx.Response(200, headers={"x-goog-upload-url": "http://127.0.0.2:9/u"}))
    with pytest.raises(ProviderError, match="another server"):
        wire.provider().upload_file(path, "dn-in")
    assert len(wire.requests) == 1


def test_upload_stops_at_a_chunk_the_server_refuses(tmp_path: Path) -> None:
    """A 403 on a chunk is not a passing failure: reported at once with the server's words.
    (A 400 whose session is still active, an offset that does not match, is resumed.)"""
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"0123456789")
    start = httpx.Response(200, headers={"x-goog-upload-url": f"{BASE}/upload/session"})
    refused = httpx.Response(403, json={"error": {"message": "quota exceeded"}})
    wire = script(start, refused)
    with pytest.raises(ProviderError, match="HTTP 403: quota exceeded"):
        wire.provider().upload_file(path, "dn-in")
    assert len(wire.requests) == 2 and wire.sleeps == []


class Dropped(httpx.SyncByteStream):
    """A body that stops after `head` as a dropped connection does."""

    def __init__(self, head: bytes):
        self.head = head

    def __iter__(self) -> Iterator[bytes]:
        yield self.head
        raise httpx.ReadError("connection dropped")


def test_download_resumes_with_a_range_after_a_dropped_stream(tmp_path: Path) -> None:
    data = bytes(range(256)) * 4

    def server(request: httpx.Request) -> Answer:
        if "range" not in request.headers:
            return httpx.Response(200, headers={"content-length": str(len(data))},
                                  stream=Dropped(data[:300]))
        return httpx.Response(206, headers={"content-range": f"bytes 300-1023/{len(data)}"},
                              content=data[300:])

    wire = Wire(server)
    dest = tmp_path / "out.jsonl"
    wire.provider().download_file("files/out1", dest)
    assert dest.read_bytes() == data
    assert [r.headers.get("range") for r in wire.requests] == [None, "bytes=300-"]
    assert {(r.method, r.url.path, r.url.query) for r in wire.requests} == {
        ("GET", "/v1beta/files/out1:download", b"alt=media")}
    assert len(wire.sleeps) == 1


def test_download_refuses_a_resume_at_another_offset(tmp_path: Path) -> None:
    wire = script(httpx.Response(200, stream=Dropped(b"x" * 10)),
                  httpx.Response(206, headers={"content-range": "bytes 0-19/20"},
                                 content=b"y" * 20))
    with pytest.raises(ProviderError, match="another offset"):
        wire.provider().download_file("files/out1", tmp_path / "out.jsonl")


def test_count_tokens() -> None:
    wire = script(ok({"totalTokens": 42}))
    request = {"contents": [{"parts": [{"text": "hi"}]}]}
    assert wire.provider().count_tokens("gemini-x", request) == 42
    (sent,) = wire.requests
    assert (sent.method, sent.url.path) == ("POST", "/v1beta/models/gemini-x:countTokens")
    assert body(sent) == {"generateContentRequest": {"model": "models/gemini-x", **request}}
