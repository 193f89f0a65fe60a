"""The Anthropic client against httpx.MockTransport: the exact requests it sends and what it
makes of each answer, with no server. tests/test_anthropic_emulator.py drives the same client
against the emulator over HTTP; these pin the wire (paths, queries, headers, bodies), the
retry rules and the hostile answers call by call, in milliseconds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from fake_server import Answer, FakeServer, in_order, ok

from runner.errors import ProviderError
from runner.providers.anthropic import API_VERSION, DIALECT, AnthropicProvider
from runner.providers.anthropic.client import DELETE_POLLS, INLINE_BYTES, LIMITS, MAX_REQUESTS
from runner.providers.base import AmbiguousCreate, JobState, RemoteJob
from runner.providers.dialect import UNFINISHED

KEY = "sk-ant-test-0123456789abcdef"
BASE = "http://127.0.0.1:9"          # loopback http: no proxy from the environment applies
BATCHES = "/v1/messages/batches"


class Wire(FakeServer):
    def check(self, request: httpx.Request) -> None:
        assert request.headers["authorization"] == f"Bearer {KEY}"
        assert request.headers["anthropic-version"] == API_VERSION
        assert "x-api-key" not in request.headers

    def provider(self, **kwargs: Any) -> AnthropicProvider:
        return AnthropicProvider(KEY, BASE, **self.fast(), **kwargs)


def script(*answers: Answer) -> Wire:
    """A server that gives `answers` in order, one per request."""
    return Wire(in_order(*answers))


def batch(name: str = "msgbatch_1", status: str = "in_progress", **fields: Any
          ) -> dict[str, Any]:
    counts = {"processing": 5, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
    return {"id": name, "type": "message_batch", "processing_status": status,
            "request_counts": {**counts, **fields.pop("counts", {})},
            "ended_at": None, "created_at": "2026-01-01T00:00:00.5Z",
            "expires_at": "2026-01-02T00:00:00.5Z", "archived_at": None,
            "cancel_initiated_at": None, "results_url": None, **fields}


def ended(name: str = "msgbatch_1", **counts: int) -> dict[str, Any]:
    return batch(name, "ended", counts={"processing": 0, **counts},
                 ended_at="2026-01-01T01:00:00Z",
                 results_url=f"{BASE}{BATCHES}/{name}/results")


def page(*items: dict[str, Any], more: object = False, **fields: Any) -> dict[str, Any]:
    return {"data": list(items), "has_more": more,
            "first_id": items[0]["id"] if items else None,
            "last_id": items[-1]["id"] if items else None, **fields}


# -- list and get ----------------------------------------------------------------------------

def test_list_pages_after_the_last_id_until_has_more_is_false() -> None:
    pages = {"": page(batch("msgbatch_a"), batch("msgbatch_b"), more=True),
             "msgbatch_b": page(batch("msgbatch_c"), more=True),
             "msgbatch_c": page(batch("msgbatch_d"))}
    wire = Wire(lambda r: ok(pages[r.url.params.get("after_id", "")]))
    jobs = list(wire.provider(page_size=2).list_jobs())
    assert [j.name for j in jobs] == ["msgbatch_a", "msgbatch_b", "msgbatch_c", "msgbatch_d"]
    assert all(j.display_name == "" and j.model == "" for j in jobs)
    assert [(r.method, r.url.path) for r in wire.requests] == [("GET", BATCHES)] * 3
    assert [dict(r.url.params) for r in wire.requests] == [
        {"limit": "2"}, {"limit": "2", "after_id": "msgbatch_b"},
        {"limit": "2", "after_id": "msgbatch_c"}]
    assert wire.provider().inline_limit == INLINE_BYTES


def test_list_stops_at_a_page_that_comes_back() -> None:
    wire = Wire(lambda r: ok(page(batch("msgbatch_a"), more=True)))
    with pytest.raises(ProviderError, match="same page token"):
        list(wire.provider().list_jobs())
    assert len(wire.requests) == 2


def test_list_stops_after_max_pages_of_endless_new_pages() -> None:
    counter = iter(range(1000))
    wire = Wire(lambda r: ok(page(batch(f"msgbatch_{next(counter)}"), more=True)))
    with pytest.raises(ProviderError, match="still more after 4 pages"):
        list(wire.provider(max_pages=4).list_jobs())
    assert len(wire.requests) == 4


@pytest.mark.parametrize(("answer", "words"), [
    (page(more=True, last_id="msgbatch_x"), "more items follow an empty page"),
    (page(batch(), more=True, last_id=None), "sent no last_id to ask for them with"),
    (page(batch(), more=True, last_id="../x"), "sent last_id '../x', which is not an id"),
    (page(batch(), more="yes"), "sent has_more as a string, expected true or false"),
    ([batch()], "list batches page 1: the provider sent the page as an array"),
    ({"data": ["msgbatch_1"], "has_more": False},
     "list batches page 1, item 1: the provider sent the batch as a string")])
def test_a_page_that_has_no_way_on_or_the_wrong_shape_is_refused(answer: Any, words: str
                                                                ) -> None:
    wire = script(ok(answer))
    with pytest.raises(ProviderError, match=words.replace("(", r"\(").replace(")", r"\)")
                       .replace(".", r"\.")):
        list(wire.provider().list_jobs())


@pytest.mark.parametrize(("answer", "state", "counts"), [
    (batch(), JobState.RUNNING, (5, 0, 0, 5)),
    (batch(status="canceling", cancel_initiated_at="2026-01-01T00:10:00Z"), JobState.RUNNING,
     (5, 0, 0, 5)),
    (ended(succeeded=3, errored=1, expired=1), JobState.SUCCEEDED, (5, 3, 2, 0)),
    (ended(errored=5), JobState.SUCCEEDED, (5, 0, 5, 0)),
    (ended(succeeded=1, canceled=4), JobState.SUCCEEDED, (5, 1, 4, 0)),
    (ended(canceled=2, expired=3), JobState.CANCELLED, (5, 0, 5, 0)),
    (ended(expired=5), JobState.EXPIRED, (5, 0, 5, 0))])
def test_get_reads_the_batch(answer: dict[str, Any], state: JobState,
                             counts: tuple[int, int, int, int]) -> None:
    wire = script(ok(answer))
    job = wire.provider().get_job("msgbatch_1")
    assert job is not None
    assert (job.name, job.display_name, job.model, job.state) == ("msgbatch_1", "", "", state)
    assert (job.total, job.succeeded, job.failed, job.pending) == counts
    assert job.create_time == "2026-01-01T00:00:00.5Z"
    assert job.end_time == (None if state is JobState.RUNNING else "2026-01-01T01:00:00Z")
    assert (job.error is not None) == (state in (JobState.CANCELLED, JobState.EXPIRED))
    (request,) = wire.requests
    assert (request.method, request.url.path) == ("GET", f"{BATCHES}/msgbatch_1")


@pytest.mark.parametrize(("sent", "read"), [
    ("2026-06-02T15:03:37.719714+00:00", "2026-06-02T15:03:37.719714Z"),
    ("2026-06-02T17:03:37+02:00", "2026-06-02T15:03:37Z"),
    ("2026-01-01T00:30:00.123456789-01:00", "2026-01-01T01:30:00.123456789Z"),
    ("2026-12-31T23:59:59z", "2026-12-31T23:59:59Z")])
def test_times_are_read_as_utc(sent: str, read: str) -> None:
    job = script(ok(batch(created_at=sent))).provider().get_job("msgbatch_1")
    assert job is not None and job.create_time == read


def test_get_of_a_missing_batch_is_none_and_not_retried() -> None:
    wire = script(httpx.Response(404, json={"type": "error", "error": {
        "type": "not_found_error", "message": "not found"}}))
    assert wire.provider().get_job("msgbatch_nope") is None
    assert len(wire.requests) == 1 and wire.sleeps == []


@pytest.mark.parametrize("status", [503, 529])
def test_a_get_is_retried_when_unavailable_or_overloaded(status: int) -> None:
    wire = script(httpx.Response(status), ok(batch()))
    assert wire.provider().get_job("msgbatch_1") is not None
    assert len(wire.requests) == 2 and len(wire.sleeps) == 1


@pytest.mark.parametrize(("change", "words"), [
    ({"processing_status": 3}, "sent processing_status as a number, expected a string"),
    ({"processing_status": "paused"}, "unknown processing_status 'paused'"),
    ({"type": "message"}, "sent type 'message', expected message_batch"),
    ({"request_counts": {"processing": "many"}}, "sent request_counts.processing as a string"),
    ({"request_counts": [1]}, "sent request_counts as an array"),
    ({"results_url": 1}, "sent results_url as a number"),
    ({"created_at": "yesterday"}, "sent created_at 'yesterday', which is not an RFC 3339 time"),
    ({"ended_at": "2026-13-01T00:00:00Z"}, "sent ended_at '2026-13-01T00:00:00Z', which is not"),
    ({"archived_at": 5}, "sent archived_at as a number"),
    ({"id": "msgbatch_1/cancel"}, "sent id 'msgbatch_1/cancel', which is not an id"),
    ({"id": None}, "sent a batch without an id")])
def test_a_hostile_batch_names_the_field(change: dict[str, Any], words: str) -> None:
    wire = script(ok({**batch(), **change}))
    with pytest.raises(ProviderError) as caught:
        wire.provider().get_job("msgbatch_1")
    assert str(caught.value).startswith("msgbatch_1: ") and words in str(caught.value)


def test_an_id_that_is_not_one_path_segment_is_never_put_in_a_url() -> None:
    wire = script()
    for call in ("get_job", "cancel_job", "delete_job"):
        with pytest.raises(ProviderError, match="not an Anthropic message batch id"):
            getattr(wire.provider(), call)("../v1/files")
    assert wire.requests == []


# -- create ----------------------------------------------------------------------------------

LINES = [{"custom_id": "a", "params": {"model": "m", "max_tokens": 5,
                                       "messages": [{"role": "user", "content": "x\ny"}]}},
         {"custom_id": "__w6kvMQ", "params": {"model": "m", "max_tokens": 5, "messages": []}}]


def input_file(tmp_path: Path, lines: list[Any] = LINES, newline: bool = True) -> Path:
    path = tmp_path / "in.jsonl"
    text = "\n".join(json.dumps(line, separators=(",", ":")) for line in lines)
    path.write_text(text + ("\n" if newline else ""))
    return path


@pytest.mark.parametrize("newline", [True, False])
def test_create_sends_the_lines_inline_with_their_length(tmp_path: Path, newline: bool) -> None:
    wire = script(ok(batch("msgbatch_new")))
    job = wire.provider().create_job("m", "tag-new", inline_lines=input_file(
        tmp_path, newline=newline))
    assert (job.name, job.display_name, job.state) == ("msgbatch_new", "tag-new",
                                                       JobState.RUNNING)
    (request,) = wire.requests
    assert (request.method, request.url.path) == ("POST", BATCHES)
    assert json.loads(request.content) == {"requests": LINES}
    assert request.headers["content-length"] == str(len(request.content))
    assert request.headers["content-type"] == "application/json"
    assert "transfer-encoding" not in request.headers


def test_create_streams_the_file_in_pieces(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                           ) -> None:
    monkeypatch.setattr("runner.providers.anthropic.inline.CHUNK", 7)
    lines = [{"custom_id": f"k{i}", "params": {"n": i}} for i in range(50)]
    wire = script(ok(batch("msgbatch_new")))
    wire.provider().create_job("m", "t", inline_lines=input_file(tmp_path, lines))
    assert json.loads(wire.requests[0].content) == {"requests": lines}


def test_a_429_on_create_is_retried_with_the_whole_body(tmp_path: Path) -> None:
    wire = script(httpx.Response(429, headers={"retry-after": "0"}), ok(batch("msgbatch_new")))
    wire.provider().create_job("m", "t", inline_lines=input_file(tmp_path))
    assert len(wire.requests) == 2
    assert wire.requests[0].content == wire.requests[1].content
    assert json.loads(wire.requests[1].content) == {"requests": LINES}


@pytest.mark.parametrize("failure", [httpx.Response(500), httpx.Response(503),
                                     httpx.Response(529),
                                     httpx.ReadError("Connection reset by peer"),
                                     httpx.ReadTimeout("no answer")])
def test_a_create_that_may_have_landed_is_ambiguous_and_not_retried(
        tmp_path: Path, failure: Answer) -> None:
    wire = script(failure, ok(batch("msgbatch_twice")))
    with pytest.raises(AmbiguousCreate):
        wire.provider().create_job("m", "t", inline_lines=input_file(tmp_path))
    assert len(wire.requests) == 1 and wire.sleeps == []


def test_a_create_refused_with_400_says_why_once(tmp_path: Path) -> None:
    wire = script(httpx.Response(400, json={"type": "error", "error": {
        "type": "invalid_request_error", "message": "requests.0.custom_id: String should "
        "match pattern"}}))
    with pytest.raises(ProviderError, match="HTTP 400: requests.0.custom_id: String should"):
        wire.provider().create_job("m", "t", inline_lines=input_file(tmp_path))
    assert len(wire.requests) == 1


def test_create_takes_no_file(tmp_path: Path) -> None:
    wire = script()
    with pytest.raises(ValueError, match="inline"):
        wire.provider().create_job("m", "t", input_file="file-1")
    with pytest.raises(ValueError, match="at least one"):
        (tmp_path / "empty.jsonl").write_bytes(b"")
        wire.provider().create_job("m", "t", inline_lines=tmp_path / "empty.jsonl")
    with pytest.raises(ProviderError, match="never as an uploaded file"):
        wire.provider().upload_file(input_file(tmp_path), "t")
    assert wire.provider().find_file("t") is None and wire.requests == []


def test_every_shard_goes_inline() -> None:
    """The core sends inline when the file and 64 bytes a request fit under inline_limit."""
    assert LIMITS.requests is not None
    assert LIMITS.file_bytes + 64 * LIMITS.requests < LIMITS.inline_bytes == INLINE_BYTES
    assert INLINE_BYTES < 256_000_000


# -- cancel and delete -----------------------------------------------------------------------

def test_cancel_posts_and_a_batch_ended_or_gone_is_fine() -> None:
    wire = script(ok(batch(status="canceling")))
    wire.provider().cancel_job("msgbatch_1")
    assert [(r.method, r.url.path) for r in wire.requests] == [
        ("POST", f"{BATCHES}/msgbatch_1/cancel")]
    script(httpx.Response(404)).provider().cancel_job("msgbatch_1")
    refused = script(httpx.Response(400, json={"error": {"message": "already ended"}}),
                     ok(ended(succeeded=5)))
    refused.provider().cancel_job("msgbatch_1")
    running = script(httpx.Response(400, json={"error": {"message": "no"}}), ok(batch()))
    with pytest.raises(ProviderError, match="HTTP 400: no"):
        running.provider().cancel_job("msgbatch_1")


def test_delete_of_an_ended_batch() -> None:
    wire = script(ok(ended(succeeded=5)), ok({"id": "msgbatch_1",
                                              "type": "message_batch_deleted"}))
    wire.provider().delete_job("msgbatch_1")
    assert [(r.method, r.url.path) for r in wire.requests] == [
        ("GET", f"{BATCHES}/msgbatch_1"), ("DELETE", f"{BATCHES}/msgbatch_1")]
    script(httpx.Response(404)).provider().delete_job("msgbatch_1")
    odd = script(ok(ended(succeeded=5)), ok({"id": "msgbatch_1", "type": "message_batch"}))
    with pytest.raises(ProviderError, match="did not say the batch was deleted"):
        odd.provider().delete_job("msgbatch_1")


def test_delete_of_a_running_batch_cancels_it_and_waits_for_its_end() -> None:
    wire = script(ok(batch()), ok(batch(status="canceling")), ok(batch(status="canceling")),
                  ok(ended(succeeded=2, canceled=3)),
                  ok({"id": "msgbatch_1", "type": "message_batch_deleted"}))
    wire.provider().delete_job("msgbatch_1")
    assert [(r.method, r.url.path.rsplit("/", 1)[-1]) for r in wire.requests] == [
        ("GET", "msgbatch_1"), ("POST", "cancel"), ("GET", "msgbatch_1"),
        ("GET", "msgbatch_1"), ("DELETE", "msgbatch_1")]
    assert wire.sleeps == [2.0, 2.0]


def test_delete_of_a_batch_that_never_ends_says_to_try_again() -> None:
    wire = Wire(lambda r: ok(batch(status="canceling")))
    with pytest.raises(ProviderError, match="has not ended yet: Anthropic deletes only a batch "
                                            "that has ended; try again"):
        wire.provider().delete_job("msgbatch_1")
    assert len(wire.sleeps) == DELETE_POLLS
    assert not any(r.method == "DELETE" for r in wire.requests)


# -- results ---------------------------------------------------------------------------------

RESULTS = (b'{"custom_id":"a","result":{"type":"canceled"}}\n'
           b'{"custom_id":"b","result":{"type":"expired"}}')


def test_results_are_streamed_from_the_results_url(tmp_path: Path) -> None:
    wire = script(ok(ended(canceled=1, expired=1)), httpx.Response(200, content=RESULTS))
    seen: list[tuple[int, int]] = []
    dest = tmp_path / "results.jsonl"
    wire.provider().download_results(RemoteJob("msgbatch_1", "", JobState.CANCELLED), dest,
                            on_progress=lambda got, total: seen.append((got, total)))
    assert dest.read_bytes() == RESULTS + b"\n"
    assert seen[-1] == (len(RESULTS), len(RESULTS))
    _, fetch = wire.requests
    assert (fetch.method, fetch.url.path) == ("GET", f"{BATCHES}/msgbatch_1/results")
    assert fetch.headers["accept"] == "application/binary"


@pytest.mark.parametrize("url", ["https://evil.example.com/v1/messages/batches/x/results",
                                 "http://127.0.0.1:10/v1/messages/batches/x/results",
                                 "https://127.0.0.1:9/results", "not a url", "/relative"])
def test_a_results_url_elsewhere_is_never_followed(tmp_path: Path, url: str) -> None:
    wire = script(ok({**ended(succeeded=5), "results_url": url}))
    with pytest.raises(ProviderError, match="not followed \\(the API key would be sent there"):
        wire.provider().download_results(RemoteJob("msgbatch_1", "", JobState.SUCCEEDED),
                                          tmp_path / "r.jsonl")
    assert len(wire.requests) == 1


@pytest.mark.parametrize(("answer", "words"), [
    (batch(), "has not ended yet"),
    ({**ended(succeeded=5), "archived_at": "2026-01-30T00:00:00Z"},
     "no longer on the provider \\(Anthropic keeps them 29 days"),
    ({**ended(succeeded=5), "results_url": None}, "gave no results_url"),
    (None, "is no longer on the provider")])
def test_results_that_cannot_be_had_say_why(tmp_path: Path, answer: Any, words: str) -> None:
    wire = script(httpx.Response(404) if answer is None else ok(answer))
    with pytest.raises(ProviderError, match=words):
        wire.provider().download_results(RemoteJob("msgbatch_1", "", JobState.SUCCEEDED),
                                          tmp_path / "r.jsonl")


def test_a_results_download_is_retried_from_the_start(tmp_path: Path) -> None:
    wire = script(ok(ended(succeeded=2)), httpx.Response(503), httpx.ReadError("reset"),
                  httpx.Response(200, content=RESULTS))
    dest = tmp_path / "r.jsonl"
    wire.provider().download_results(RemoteJob("msgbatch_1", "", JobState.SUCCEEDED), dest)
    assert dest.read_bytes() == RESULTS + b"\n" and len(wire.sleeps) == 2


def test_results_larger_than_a_batch_could_hold_stop(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("runner.providers.calls.SLACK", 0)
    monkeypatch.setattr("runner.providers.calls.LINE_BYTES", 10)
    endless = httpx.Response(200, stream=httpx.ByteStream(b"x" * 1000))
    wire = script(ok(ended(succeeded=2)), endless)
    with pytest.raises(ProviderError, match="larger than the 20 bytes expected of this batch"):
        wire.provider().download_results(RemoteJob("msgbatch_1", "", JobState.SUCCEEDED),
                                          tmp_path / "r.jsonl")


# -- settings and words ----------------------------------------------------------------------

def test_the_key_is_never_in_an_error() -> None:
    wire = Wire(lambda r: httpx.Response(401, json={"type": "error", "error": {
        "type": "authentication_error", "message": f"invalid x-api-key {KEY}"}}))
    with pytest.raises(ProviderError) as caught:
        wire.provider().get_job("msgbatch_1")
    assert KEY not in str(caught.value) and "***" in str(caught.value)


def test_the_base_url_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://localhost:9/")
    wire = Wire(lambda r: ok(batch()))
    AnthropicProvider(KEY, transport=httpx.MockTransport(wire)).get_job("msgbatch_1")
    assert str(wire.requests[0].url) == f"http://localhost:9{BATCHES}/msgbatch_1"


@pytest.mark.parametrize(("key", "base", "words"), [
    ("", None, "no Anthropic API key: set ANTHROPIC_API_KEY"),
    ("sk-a b", None, "ANTHROPIC_API_KEY holds characters"),
    (KEY, "http://api.example.com", "ANTHROPIC_BASE_URL may use plain http:// only"),
    (KEY, "ftp://x", "ANTHROPIC_BASE_URL must be an http(s) URL")])
def test_bad_settings_are_one_line(key: str, base: str | None, words: str) -> None:
    with pytest.raises(ProviderError, match=words.replace("(", r"\(").replace(")", r"\)")):
        AnthropicProvider(key, base)


def test_count_tokens_is_gemini_only() -> None:
    with pytest.raises(ProviderError, match="countTokens"):
        script().provider().count_tokens("claude-x", {"messages": []})


# -- what a hostile review found (each failed before its fix) ----------------------------------

def test_a_count_of_five_thousand_digits_is_a_provider_error_not_a_traceback() -> None:
    with pytest.raises(ProviderError):
        script(ok(batch(counts={"processing": "9" * 5000}))).provider().get_job("msgbatch_1")
    wire = script(ok({"data": [batch(counts={"succeeded": "1" * 4301})], "has_more": False}))
    with pytest.raises(ProviderError):
        list(wire.provider().list_jobs())


def test_a_provider_error_cannot_mark_itself_unfinished() -> None:
    """`unfinished` is the dialect's own mark (expired before running: sent again by itself,
    past spec.retry_failed); an errored result's error object is the provider's text."""
    line = {"custom_id": "a", "result": {"type": "errored", "error": {
        "type": "error", "error": {"type": "invalid_request_error", "message": "bad",
                                   UNFINISHED: True}, "request_id": "req_1"}}}
    read = DIALECT.read_result(line)
    assert isinstance(read, dict) and UNFINISHED not in read and read["message"] == "bad"


def test_results_download_is_bounded_even_when_request_counts_lie(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch holds at most 100,000 requests: a count of 10**15 does not lift the bound."""
    monkeypatch.setattr("runner.providers.calls.SLACK", 0)
    monkeypatch.setattr("runner.providers.calls.LINE_BYTES", 10)
    body = b"x" * (10 * MAX_REQUESTS + 4096)
    wire = script(ok(ended(succeeded=10 ** 15)),
                  httpx.Response(200, stream=httpx.ByteStream(body)))
    with pytest.raises(ProviderError, match="larger than"):
        wire.provider().download_results(RemoteJob("msgbatch_1", "", JobState.SUCCEEDED),
                                          tmp_path / "r.jsonl")


def test_a_refused_results_download_with_a_long_error_page_is_one_error_line(
        tmp_path: Path) -> None:
    """A refusal's body is read for its message: one of more than a megabyte (an HTML error
    page, an endless one) was an internal error (TooLarge, uncaught), exit 3."""
    page = httpx.Response(403, stream=httpx.ByteStream(b"<html>denied</html>" * (1 << 17)))
    wire = script(ok(ended(succeeded=2)), page)
    with pytest.raises(ProviderError, match=r"failed: HTTP 403: <html>denied</html><html>"):
        wire.provider().download_results(RemoteJob("msgbatch_1", "", JobState.SUCCEEDED),
                                          tmp_path / "r.jsonl")
