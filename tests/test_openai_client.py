"""The OpenAI client against httpx.MockTransport: the exact requests it sends and what it makes
of each answer, with no server. tests/test_openai_e2e.py drives the same client through the
CLI against the emulator; these pin the wire (paths, queries, headers, bodies), the retry
rules and the hostile answers call by call, in milliseconds."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fake_server import Answer, FakeServer, in_order, ok

from runner.errors import ProviderError
from runner.providers.base import AmbiguousCreate, JobState, RemoteJob
from runner.providers.calls import results_limit
from runner.providers.openai import OpenAIProvider

KEY = "sk-test-0123456789abcdef"
BASE = "http://127.0.0.1:9/v1"       # loopback http: no proxy from the environment applies


class Wire(FakeServer):
    def check(self, request: httpx.Request) -> None:
        assert request.headers["authorization"] == f"Bearer {KEY}"

    def provider(self, **kwargs: Any) -> OpenAIProvider:
        return OpenAIProvider(KEY, BASE, **self.fast(), **kwargs)


def script(*answers: Answer) -> Wire:
    """A server that gives `answers` in order, one per request."""
    return Wire(in_order(*answers))


def batch(name: str = "batch_1", status: str = "in_progress", **fields: Any) -> dict[str, Any]:
    return {"id": name, "object": "batch", "endpoint": "/v1/chat/completions",
            "input_file_id": "file-in", "completion_window": "24h", "status": status,
            "created_at": 1_767_225_600, "metadata": {"batch_runner_tag": f"tag-{name}"},
            "request_counts": {"total": 5, "completed": 2, "failed": 1}, **fields}


def page(*items: dict[str, Any], more: bool = False) -> dict[str, Any]:
    return {"object": "list", "data": list(items), "has_more": more,
            "first_id": items[0]["id"] if items else None,
            "last_id": items[-1]["id"] if items else None}


def test_list_pages_after_the_last_id_until_has_more_is_false() -> None:
    pages = {"": page(batch("batch_a"), batch("batch_b"), more=True),
             "batch_b": page(batch("batch_c"), more=True), "batch_c": page(batch("batch_d"))}
    wire = Wire(lambda r: ok(pages[r.url.params.get("after", "")]))
    jobs = list(wire.provider().list_jobs())
    assert [j.name for j in jobs] == ["batch_a", "batch_b", "batch_c", "batch_d"]
    assert jobs[0].display_name == "tag-batch_a"
    assert [(r.method, r.url.path) for r in wire.requests] == [("GET", "/v1/batches")] * 3
    assert [dict(r.url.params) for r in wire.requests] == [
        {"limit": "100"}, {"limit": "100", "after": "batch_b"},
        {"limit": "100", "after": "batch_c"}]


def test_list_stops_at_a_page_that_comes_back() -> None:
    wire = Wire(lambda r: ok(page(batch("batch_a"), more=True)))
    with pytest.raises(ProviderError, match="same page token"):
        list(wire.provider().list_jobs())
    assert len(wire.requests) == 2


def test_list_stops_after_max_pages_of_endless_new_pages() -> None:
    counter = iter(range(1000))
    wire = Wire(lambda r: ok(page(batch(f"batch_{next(counter)}"), more=True)))
    with pytest.raises(ProviderError, match="still more after 4 pages"):
        list(wire.provider(max_pages=4).list_jobs())
    assert len(wire.requests) == 4


def test_list_refuses_more_pages_after_an_empty_one() -> None:
    wire = script(ok({"object": "list", "data": [], "has_more": True, "last_id": "page-2"}))
    with pytest.raises(ProviderError, match="more items follow an empty page"):
        list(wire.provider().list_jobs())


@pytest.mark.parametrize(("status", "state"), [
    ("validating", JobState.PENDING), ("in_progress", JobState.RUNNING),
    ("finalizing", JobState.RUNNING), ("cancelling", JobState.RUNNING),
    ("completed", JobState.SUCCEEDED), ("cancelled", JobState.CANCELLED),
    ("expired", JobState.EXPIRED)])
def test_get_reads_the_batch(status: str, state: JobState) -> None:
    wire = script(ok(batch("batch_1", status, output_file_id=None, completed_at=1_767_229_200)))
    job = wire.provider().get_job("batch_1")
    assert job is not None
    assert (job.name, job.display_name, job.state) == ("batch_1", "tag-batch_1", state)
    assert (job.total, job.succeeded, job.failed) == (5, 2, 1)
    assert (job.create_time, job.end_time) == ("2026-01-01T00:00:00Z", "2026-01-01T01:00:00Z")
    assert job.input_file == "file-in" and job.model == ""
    (request,) = wire.requests
    assert (request.method, request.url.path) == ("GET", "/v1/batches/batch_1")


def test_an_expired_batch_with_an_output_file_keeps_what_it_finished() -> None:
    wire = script(ok(batch("batch_1", "expired", output_file_id="file-out",
                           error_file_id="file-err", expired_at=1_767_312_000)),
                  ok({"id": "file-out", "object": "file", "bytes": 10, "created_at": 1_767_225_600,
                      "filename": "batch_1_output.jsonl", "purpose": "batch_output",
                      "status": "processed"}))
    job = wire.provider().get_job("batch_1")
    assert job is not None and job.state is JobState.SUCCEEDED
    assert job.results_file == "file-out" and job.end_time == "2026-01-02T00:00:00Z"
    assert [r.url.path for r in wire.requests] == ["/v1/batches/batch_1", "/v1/files/file-out"]


def test_an_ended_batch_whose_files_were_deleted_is_gone() -> None:
    """OpenAI keeps a batch for good; deleting one (delete_job) deletes its files: with
    them gone, the batch is gone for the runner, whose plan then reads it as deleted."""
    gone = httpx.Response(404, json={"error": {"message": "No such File object"}})
    wire = script(ok(batch("batch_1", "completed", output_file_id="file-out")), gone, gone)
    assert wire.provider().get_job("batch_1") is None
    assert len(wire.sleeps) == 1        # a 404 is confirmed by a second, a moment later


def test_a_failed_batch_says_why() -> None:
    errors = {"object": "list", "data": [
        {"code": "token_limit_exceeded", "message": "Enqueued token limit reached", "line": None},
        {"code": "invalid_json_line", "message": "not JSON", "line": 3}]}
    wire = script(ok(batch("batch_1", "failed", errors=errors)))
    job = wire.provider().get_job("batch_1")
    assert job is not None and job.state is JobState.FAILED
    assert job.error == ("token_limit_exceeded: Enqueued token limit reached; "
                         "invalid_json_line: not JSON (line 3)")


def test_get_of_a_missing_batch_is_none_and_not_retried() -> None:
    wire = script(httpx.Response(404, json={"error": {"message": "No such batch"}}))
    assert wire.provider().get_job("batch_nope") is None
    assert len(wire.requests) == 1 and wire.sleeps == []


def test_a_get_is_retried_on_503() -> None:
    wire = script(httpx.Response(503), ok(batch()))
    assert wire.provider().get_job("batch_1") is not None
    assert len(wire.requests) == 2 and len(wire.sleeps) == 1


@pytest.mark.parametrize(("change", "words"), [
    ({"status": 3}, "batch_1: the provider sent status as a number, expected a string"),
    ({"status": "paused"}, "batch_1: unknown batch status 'paused'"),
    ({"request_counts": {"total": "many"}}, "sent request_counts.total as a string"),
    ({"output_file_id": ["file-out"]}, "sent output_file_id as an array"),
    ({"error_file_id": "../../files/x"}, "sent error_file_id '../../files/x', which is not an id"),
    ({"created_at": "yesterday"}, "sent created_at as a string, expected a time in seconds"),
    ({"metadata": "tag"}, "sent metadata as a string, expected an object"),
    ({"id": "batch_1/cancel"}, "sent id 'batch_1/cancel', which is not an id")])
def test_a_hostile_batch_names_the_field(change: dict[str, Any], words: str) -> None:
    wire = script(ok({**batch("batch_1"), **change}))
    with pytest.raises(ProviderError, match="^.*" + words.replace("(", r"\(").replace(
            ")", r"\)").replace("[", r"\[")):
        wire.provider().get_job("batch_1")


def test_a_page_of_the_wrong_shape_names_the_field() -> None:
    wire = script(ok([batch()]))
    with pytest.raises(ProviderError, match="list batches page 1: the provider sent the page "
                                            "as an array, expected an object"):
        list(wire.provider().list_jobs())


def test_an_id_that_is_not_one_path_segment_is_never_put_in_a_url() -> None:
    wire = script()
    with pytest.raises(ProviderError, match="not an OpenAI batch id"):
        wire.provider().get_job("../files/file-x")
    assert wire.requests == []


def test_create_sends_the_file_the_endpoint_and_the_tag() -> None:
    wire = script(ok(batch("batch_new", "validating")))
    job = wire.provider().create_job("gpt-4o-mini", "tag-new", input_file="file-in",
                                     endpoint="/v1/embeddings")
    assert job.name == "batch_new" and job.state is JobState.PENDING
    (request,) = wire.requests
    assert (request.method, request.url.path) == ("POST", "/v1/batches")
    assert json.loads(request.content) == {
        "input_file_id": "file-in", "endpoint": "/v1/embeddings", "completion_window": "24h",
        "metadata": {"batch_runner_tag": "tag-new"}}


@pytest.mark.parametrize("failure", [httpx.Response(500), httpx.Response(503),
                                     httpx.ReadError("Connection reset by peer"),
                                     httpx.ReadTimeout("no answer")])
def test_a_create_that_may_have_landed_is_ambiguous_and_not_retried(failure: Answer) -> None:
    wire = script(failure, ok(batch("batch_twice")))
    with pytest.raises(AmbiguousCreate):
        wire.provider().create_job("gpt-4o-mini", "tag-new", input_file="file-in")
    assert len(wire.requests) == 1 and wire.sleeps == []


def test_a_create_refused_with_400_says_why_once() -> None:
    wire = script(httpx.Response(400, json={"error": {"message": "Invalid endpoint"}}))
    with pytest.raises(ProviderError, match="HTTP 400: Invalid endpoint"):
        wire.provider().create_job("gpt-4o-mini", "tag-new", input_file="file-in")
    assert len(wire.requests) == 1


def test_org_and_project_headers_come_from_the_environment(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_ORG_ID", "org-123")
    monkeypatch.setenv("OPENAI_PROJECT_ID", "proj_456")
    wire = script(ok(batch()))
    wire.provider().get_job("batch_1")
    headers = wire.requests[0].headers
    assert (headers["openai-organization"], headers["openai-project"]) == ("org-123", "proj_456")
    bare = script(ok(batch()))
    monkeypatch.delenv("OPENAI_ORG_ID")
    monkeypatch.delenv("OPENAI_PROJECT_ID")
    bare.provider().get_job("batch_1")
    assert "openai-organization" not in bare.requests[0].headers
    assert "openai-project" not in bare.requests[0].headers


def test_the_key_is_never_in_an_error() -> None:
    wire = Wire(lambda r: httpx.Response(
        403, json={"error": {"message": f"Incorrect API key provided: {KEY}"}}))
    with pytest.raises(ProviderError) as caught:
        wire.provider().get_job("batch_1")
    assert KEY not in str(caught.value) and "***" in str(caught.value)
    failed = script(ok(batch("batch_1", "failed", errors={"data": [{"message": f"bad {KEY}"}]})))
    job = failed.provider().get_job("batch_1")
    assert job is not None and job.error is not None and KEY not in job.error


@pytest.mark.parametrize(("key", "base", "words"), [
    ("", None, "no OpenAI API key: set OPENAI_API_KEY"),
    ("sk-a b", None, "OPENAI_API_KEY holds characters"),
    (KEY, "http://api.example.com/v1", "OPENAI_BASE_URL may use plain http:// only"),
    (KEY, "ftp://x", "OPENAI_BASE_URL must be an http(s) URL")])
def test_bad_settings_are_one_line(key: str, base: str | None, words: str) -> None:
    with pytest.raises(ProviderError, match=words.replace("(", r"\(").replace(")", r"\)")):
        OpenAIProvider(key, base)


def test_count_tokens_is_gemini_only() -> None:
    with pytest.raises(ProviderError, match="countTokens"):
        script().provider().count_tokens("gpt-4o-mini", {"messages": []})


class _Endless(httpx.SyncByteStream):
    """A chunked answer (no Content-Length) that streams fast and never ends, up to `cap`."""

    def __init__(self, cap: int):
        self.cap, self.sent = cap, 0

    def __iter__(self) -> Iterator[bytes]:
        chunk = b'{"custom_id":"a","response":null,"error":{"code":"x"}}\n' * (1 << 14)
        while self.sent < self.cap:
            self.sent += len(chunk)
            yield chunk


def test_an_output_file_that_never_ends_is_cut_off(tmp_path: Path) -> None:
    """A batch of 5 requests whose output file streams without end, fast enough for the
    minimum rate: it stops at the bound the requests allow (calls.results_limit), not when
    the disk is full."""
    stream = _Endless(512 << 20)

    def answer(r: httpx.Request) -> httpx.Response:
        if r.url.path == "/v1/batches/batch_1":
            return ok(batch("batch_1", "completed", output_file_id="file-out"))
        return httpx.Response(200, stream=stream)

    job = RemoteJob("batch_1", "tag-batch_1", JobState.SUCCEEDED, total=5)
    with pytest.raises(ProviderError, match="more than the batch's requests can take"):
        Wire(answer).provider().download_results(job, tmp_path / "out.jsonl")
    assert stream.sent <= results_limit(5) + (2 << 20)
