"""A finished inline batch's answers, read as they arrive and written a response at a time.

Against the emulator: the answers asked for alone (a partial response), joined by key, in
memory that does not grow with the batch. Against a small real HTTP server sending what a
broken or hostile provider might (wrong types, a document cut short, an endless stream, NaN,
nesting past the recursion limit, bytes that are not UTF-8): one error line, naming the job,
never a traceback, never unbounded memory or time.
"""

from __future__ import annotations

import io
import json
import os
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from runner.emulator import Emulator
from runner.errors import ProviderError
from runner.providers.base import JobState, RemoteJob
from runner.providers.gemini import GeminiProvider
from runner.providers.gemini.inline_results import write_results
from runner.providers.gemini.wire import ANSWER_FIELDS

KEY = "test-key-0123456789"
JOB = RemoteJob(name="batches/x", display_name="d", state=JobState.SUCCEEDED, model="m",
                total=2)


def answer(key: str, text: str = "hi") -> dict[str, Any]:
    return {"response": {"candidates": [{"content": {"parts": [{"text": text}]}}]},
            "metadata": {"key": key}}


def operation(items: Any) -> dict[str, Any]:
    return {"name": "batches/x", "metadata": {
        "@type": "type.googleapis.com/x.GenerateContentBatch", "state": "BATCH_STATE_SUCCEEDED",
        "output": {"inlinedResponses": {"inlinedResponses": items}}}}


# -- against the emulator ------------------------------------------------------------------


def test_an_inline_batch_s_answers_come_whole_and_by_key(tmp_path: Path) -> None:
    lines = tmp_path / "in.jsonl"
    lines.write_text("".join(json.dumps({"key": f"k{n}", "request": {"contents": [
        {"parts": [{"text": f"q{n}"}]}]}}) + "\n" for n in range(50)))
    with Emulator(tmp_path / "emu", latency=0) as emu:
        provider = GeminiProvider(KEY, emu.base_url)
        created = provider.create_job("gemini-2.5-flash", "dn", inline_lines=lines)
        job = provider.get_job(created.name)
        assert job is not None and job.state is JobState.SUCCEEDED and job.total == 50
        dest = tmp_path / "results.jsonl"
        provider.download_results(job, dest)
        provider.close()
    got = [orjson.loads(line) for line in dest.read_bytes().splitlines()]
    assert sorted(line["key"] for line in got) == sorted(f"k{n}" for n in range(50))
    assert all("q" in line["response"]["candidates"][0]["content"]["parts"][0]["text"]
               for line in got)
    # nothing else beside the results: the spool is a TemporaryFile, which has no name on
    # Linux, so looking for it by name (as this did) could not fail; this can
    assert sorted(p.name for p in tmp_path.iterdir()) == ["emu", "in.jsonl", "results.jsonl"]


def test_writing_the_answers_holds_one_at_a_time(tmp_path: Path) -> None:
    """20,000 answers of 1 kB, twice (`metadata.output` and `response`): the document is
    50 MB, what is held at once a few MB."""
    items = [answer(f"key-{n}", "x" * 1000) for n in range(20_000)]
    spool = tmp_path / "answer.json"
    spool.write_text(json.dumps(operation(items) | {"response": {
        "inlinedResponses": {"inlinedResponses": items}}}))
    del items
    tracemalloc.start()
    try:
        with open(spool, encoding="utf-8", newline="") as source, \
                open(os.devnull, "wb") as discard:
            count = write_results(source, discard, "batches/x", lambda s: s)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 20_000
    assert peak < 8 << 20, f"{peak >> 20} MiB held"


# -- against a hostile server --------------------------------------------------------------


Send = Callable[[BaseHTTPRequestHandler], None]


def body(data: bytes) -> Send:
    def send(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)
    return send


def cut_short(data: bytes) -> Send:
    """Announces more bytes than it sends, then closes the connection."""
    def send(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(data) + 1000))
        handler.end_headers()
        handler.wfile.write(data)
        handler.close_connection = True
    return send


def endless(piece: bytes, pause: float = 0.0) -> Send:
    """A chunked answer that never ends (until the client goes away)."""
    def send(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        try:
            head = b'{"metadata": {"output": {"inlinedResponses": {"inlinedResponses": ["'
            handler.wfile.write(b"%x\r\n%s\r\n" % (len(head), head))
            while True:
                handler.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                time.sleep(pause)
        except OSError:
            pass
    return send


@pytest.fixture
def hostile() -> Iterator[Callable[[Send], GeminiProvider]]:
    """A provider pointed at a server that answers every GET with what the test sets."""
    answers: list[Send] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            answers[0](self)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    providers: list[GeminiProvider] = []

    def make(send: Send, **kwargs: Any) -> GeminiProvider:
        answers[:] = [send]
        provider = GeminiProvider(KEY, f"http://127.0.0.1:{server.server_port}",
                                  max_attempts=2, backoff=None, sleep=lambda s: None,
                                  **kwargs)
        providers.append(provider)
        return provider

    yield make
    for provider in providers:
        provider.close()
    server.shutdown()
    server.server_close()


def one_line(error: pytest.ExceptionInfo[ProviderError]) -> str:
    text = str(error.value)
    assert "\n" not in text and "Traceback" not in text and len(text) < 300
    assert text.startswith("batches/x") or text.startswith("get batches/x")
    return text


def fetch(provider: GeminiProvider, tmp_path: Path, job: RemoteJob = JOB) -> Path:
    dest = tmp_path / "results.jsonl"
    provider.download_results(job, dest)
    return dest


def test_the_answers_are_asked_for_alone(hostile: Any, tmp_path: Path) -> None:
    seen: list[str] = []
    data = json.dumps(operation([answer("a"), answer("b")])).encode()

    def send(handler: BaseHTTPRequestHandler) -> None:
        seen.append(handler.path)
        body(data)(handler)
    dest = fetch(hostile(send), tmp_path)
    assert dest.read_text() == "".join(      # the bytes written when answers were read whole
        json.dumps({"key": key, "response": answer(key)["response"]}, ensure_ascii=False)
        + "\n" for key in ("a", "b"))
    (path,) = seen
    assert httpx.URL(path).params["fields"] == ANSWER_FIELDS


def test_a_refused_mask_gets_the_whole_batch_read_as_well(hostile: Any,
                                                         tmp_path: Path) -> None:
    """Without a partial response the answers come twice, in `metadata.output` and again in
    `response`: the first are written, the copy is left unread."""
    items = [answer("a"), answer("b")]
    whole = json.dumps(operation(items) | {"done": True, "response": {
        "inlinedResponses": {"inlinedResponses": items}}}).encode()

    def send(handler: BaseHTTPRequestHandler) -> None:
        if "fields=" in handler.path:
            error = b'{"error": {"code": 400, "message": "Invalid field selection"}}'
            handler.send_response(400)
            handler.send_header("Content-Length", str(len(error)))
            handler.end_headers()
            handler.wfile.write(error)
        else:
            body(whole)(handler)
    dest = fetch(hostile(send), tmp_path)
    assert [orjson.loads(line)["key"] for line in dest.read_bytes().splitlines()] == ["a", "b"]


@pytest.mark.parametrize(("document", "says"), [
    (operation("many"), "metadata.output.inlinedResponses.inlinedResponses as a string, "
                        "expected an array"),
    (operation([7]), "metadata.output.inlinedResponses.inlinedResponses[0] as a number"),
    (operation([{"metadata": "k"}]), "inlinedResponses[0].metadata as a string"),
    ({"name": "batches/x", "metadata": {"output": {"inlinedResponses": []}}},
     "metadata.output.inlinedResponses as an array, expected an object"),
    ([1, 2], "the batch as an array, expected an object"),
    ({"name": "batches/x", "metadata": {"state": "BATCH_STATE_SUCCEEDED"}},
     "succeeded but reports no results"),
])
def test_answers_of_the_wrong_shape(hostile: Any, tmp_path: Path, document: Any,
                                    says: str) -> None:
    with pytest.raises(ProviderError) as error:
        fetch(hostile(body(json.dumps(document).encode())), tmp_path)
    assert says in one_line(error)


@pytest.mark.parametrize(("data", "says"), [
    (json.dumps(operation([answer("a")])).encode()[:-20], "not valid JSON, or is cut short"),
    (json.dumps(operation([answer("a")])).encode().replace(b'"hi"', b"NaN"),
     "holds NaN, which JSON does not"),
    (json.dumps(operation([answer("a")])).encode().replace(b'"hi"', b'"\xff\xfe"'),
     "not UTF-8"),
    (json.dumps(operation([{"response": "R", "metadata": {}}])).encode().replace(
        b'"R"', b"[" * 100_000 + b"]" * 100_000), "nests values too deeply"),
    (b"", "the answer ends too soon"),
])
def test_broken_documents(hostile: Any, tmp_path: Path, data: bytes, says: str) -> None:
    with pytest.raises(ProviderError) as error:
        fetch(hostile(body(data)), tmp_path)
    assert says in one_line(error)


def test_a_body_cut_short_is_asked_for_again_then_given_up(hostile: Any,
                                                          tmp_path: Path) -> None:
    data = json.dumps(operation([answer("a")])).encode()
    with pytest.raises(ProviderError) as error:
        fetch(hostile(cut_short(data)), tmp_path)
    assert one_line(error) == "get batches/x (its inline answers) failed after 2 attempts"


def test_an_endless_answer_stops_at_what_the_job_can_hold(hostile: Any,
                                                          tmp_path: Path) -> None:
    """A job of 2 requests may take 64 MiB and 4 MiB a request: no more is read."""
    started = time.monotonic()
    with pytest.raises(ProviderError) as error:
        fetch(hostile(endless(b"x" * (1 << 20))), tmp_path)
    assert "answer is larger than 72 MiB" in one_line(error)
    assert time.monotonic() - started < 60
    assert list(tmp_path.iterdir()) == []      # no results file, not even a part of one


def test_a_trickling_endless_answer_stops_in_time(hostile: Any, tmp_path: Path) -> None:
    started = time.monotonic()
    with pytest.raises(ProviderError) as error:
        fetch(hostile(endless(b"x", pause=0.05), call_timeout=1.0), tmp_path)
    assert "no complete answer in time" in one_line(error)
    assert time.monotonic() - started < 10


def test_one_answer_past_the_bound_is_refused() -> None:
    document = json.dumps(operation([answer("a", "y" * (3 << 20))]))
    with pytest.raises(ProviderError) as error:
        write_results(io.StringIO(document), io.BytesIO(), "batches/x", lambda s: s,
                      most=2 << 20)
    assert "a value in the answer is larger than 2 MiB" in one_line(error)


def test_the_key_is_not_written_back(hostile: Any, tmp_path: Path) -> None:
    error = {"error": {"code": 3, "message": f"bad key {KEY}"}, "metadata": {"key": "a"}}
    dest = fetch(hostile(body(json.dumps(operation([error])).encode())), tmp_path)
    assert KEY not in dest.read_text() and "***" in dest.read_text()


# -- answers JSON takes but a results line cannot hold ---------------------------------------


@pytest.mark.parametrize(("text", "says"), [
    (rb'"\ud800 alone"', "inlinedResponses[1] holding a lone surrogate"),
    (b"1e400", "inlinedResponses[1] holding a number too large for JSON"),
    (b"-1e400", "inlinedResponses[1] holding a number too large for JSON"),
])
def test_a_value_no_results_line_can_hold_is_one_error_line(hostile: Any, tmp_path: Path,
                                                            text: bytes, says: str) -> None:
    """JSON's grammar lets a string escape half a surrogate pair and a number overflow a
    double; neither can be written back as a UTF-8 JSON line (Python reads 1e400 as
    infinity, which it writes as `Infinity`): one error line naming the answer, not a
    UnicodeEncodeError's traceback nor a results line nothing can read back."""
    data = json.dumps(operation([answer("a"), answer("b", "R")])).encode().replace(b'"R"',
                                                                                   text)
    with pytest.raises(ProviderError) as error:
        fetch(hostile(body(data)), tmp_path)
    assert says in one_line(error)


def test_a_surrogate_pair_escaped_is_one_character(hostile: Any, tmp_path: Path) -> None:
    data = json.dumps(operation([answer("a", "R")])).encode().replace(b'"R"',
                                                                     rb'"\ud83d\ude00"')
    dest = fetch(hostile(body(data)), tmp_path)
    assert orjson.loads(dest.read_bytes())["response"]["candidates"][0]["content"][
        "parts"][0]["text"] == "\U0001F600"


def test_a_stray_character_is_named_not_called_a_number(hostile: Any,
                                                        tmp_path: Path) -> None:
    """A byte order mark, or any character no JSON value starts with, is said as it is."""
    data = "\ufeff".encode() + json.dumps(operation([answer("a")])).encode()
    with pytest.raises(ProviderError) as error:
        fetch(hostile(body(data)), tmp_path)
    assert "'\\ufeff' where a value was due" in one_line(error)


def chunked(size: int) -> Send:
    """A chunked answer of `size` bytes of result lines, as fast as the socket takes them."""
    line = b'{"key": "a", "response": {}}\n' * 1024

    def send(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        try:
            for _ in range(size // len(line) + 1):
                handler.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
            handler.wfile.write(b"0\r\n\r\n")
        except OSError:
            pass
    return send


def test_a_results_file_past_what_the_job_can_hold_is_not_read(hostile: Any,
                                                               tmp_path: Path) -> None:
    """A results file is bounded as the inline answers are (and as OpenAI's and Anthropic's
    are): a job of 2 requests takes 64 MiB and 4 MiB a request, and an endless or bloated
    file stops there instead of filling the disk."""
    job = RemoteJob(name="batches/x", display_name="d", state=JobState.SUCCEEDED, model="m",
                    total=2, results_file="files/out")
    with pytest.raises(ProviderError) as error:
        fetch(hostile(chunked(80 << 20)), tmp_path, job)
    assert "answer is larger than 72 MiB" in str(error.value)


def test_where_a_document_breaks_is_counted_from_its_start() -> None:
    """The reader drops what it has read; a place it names is the document's, not the
    place in what it still holds."""
    document = json.dumps(operation([answer(f"k{n}", "x" * 1000) for n in range(3000)]))
    at = document.rindex("]")
    broken = document[:at] + "x" + document[at + 1:]
    with pytest.raises(ProviderError) as error:
        write_results(io.StringIO(broken), io.BytesIO(), "batches/x", lambda s: s)
    assert f"expected ']' at character {at}, found 'x'" in one_line(error)


def refusing(status: int) -> Send:
    """A refusal whose body never ends: an error page is read for its message, no more."""
    def send(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(status)
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        piece = b"Forbidden. " * (1 << 16)
        try:
            while True:
                handler.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
        except OSError:
            pass
    return send


@pytest.mark.parametrize("job", [JOB, RemoteJob(
    name="batches/x", display_name="d", state=JobState.SUCCEEDED, model="m", total=2,
    results_file="files/out")], ids=["inline", "file"])
def test_a_refusal_with_an_endless_body_is_one_error_line(hostile: Any, tmp_path: Path,
                                                          job: RemoteJob) -> None:
    """It was read whole into memory for its message, up to 256 MiB, and then past that
    bound raised TooLarge, which nothing caught: an internal error, exit 3."""
    started = time.monotonic()
    with pytest.raises(ProviderError) as error:
        fetch(hostile(refusing(403)), tmp_path, job)
    text = str(error.value)
    assert "\n" not in text and len(text) < 400
    assert "failed: HTTP 403: Forbidden. Forbidden." in text, text
    assert time.monotonic() - started < 30
