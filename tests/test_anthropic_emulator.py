"""The Anthropic client against the embedded emulator over real HTTP: a batch's whole life
(created inline, listed across pages, read, cancelled, its results read back through the
dialect, deleted) and the emulator's faults, each met as one clear error or a retry. The
clock is moved through the admin route rather than slept through."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from runner.emulator import Emulator
from runner.errors import ProviderError
from runner.providers.anthropic import DIALECT, AnthropicProvider
from runner.providers.base import AmbiguousCreate, JobState, RemoteJob
from runner.providers.dialect import Answer
from runner.retry import Backoff

KEY = "sk-ant-emulated-0123456789"
MODEL = "claude-sonnet-4-5"
LATENCY = 60.0          # emulator-clock seconds; the tests move the clock instead of sleeping
KEYS = ["alpha", "b/2 é", "gamma EMULATOR_FAIL", "__d", "日本"]


@pytest.fixture
def emu(tmp_path: Path) -> Iterator[Emulator]:
    with Emulator(tmp_path / "emu", latency=LATENCY) as emulator:
        yield emulator


@pytest.fixture
def client(emu: Emulator) -> Iterator[AnthropicProvider]:
    provider = AnthropicProvider(KEY, emu.base_url + "/anthropic", max_attempts=3,
                                 backoff=Backoff(base=0.01, cap=0.02), page_size=2)
    yield provider
    provider.close()


def advance(emu: Emulator, seconds: float) -> None:
    httpx.post(f"{emu.base_url}/_emulator/clock", json={"advance": seconds}).raise_for_status()


def requests_file(tmp_path: Path, keys: list[str] = KEYS, **params: Any) -> Path:
    """Input lines as the core renders them: the key mapped, the model in the params."""
    path = tmp_path / f"in-{len(list(tmp_path.glob('in-*')))}.jsonl"
    with open(path, "wb") as f:
        for key in keys:
            body = DIALECT.body({"max_tokens": 50, "messages": [
                {"role": "user", "content": f"say {key}"}], **params}, MODEL)
            line = DIALECT.framing(None).line(json.dumps(DIALECT.wire_key(key)).encode(),
                                              json.dumps(body).encode())
            f.write(line + b"\n")
    return path


def results(client: AnthropicProvider, job: RemoteJob, tmp_path: Path
            ) -> dict[str, Answer | dict[str, Any]]:
    """key -> what the dialect reads of its result line."""
    dest = tmp_path / "results.jsonl"
    client.download_results(job, dest)
    read = {}
    for raw in dest.read_text().splitlines():
        line = json.loads(raw)
        read[DIALECT.key_of_wire(str(DIALECT.result_key(line)))] = DIALECT.read_result(line)
    return read


def test_a_batch_from_create_to_delete(client: AnthropicProvider, emu: Emulator,
                                       tmp_path: Path) -> None:
    created = client.create_job(MODEL, "life-0123456789ab", inline_lines=requests_file(tmp_path))
    assert created.display_name == "life-0123456789ab" and created.state is JobState.RUNNING
    assert (created.total, created.pending) == (5, 5)
    seen = client.get_job(created.name)
    assert seen is not None and seen.display_name == "" and seen.state is JobState.RUNNING
    with pytest.raises(ProviderError, match="has not ended yet"):
        client.download_results(seen, tmp_path / "early.jsonl")

    advance(emu, LATENCY)
    done = client.get_job(created.name)
    assert done is not None and done.state is JobState.SUCCEEDED
    assert (done.total, done.succeeded, done.failed, done.pending) == (5, 4, 1, 0)
    assert done.end_time is not None and done.create_time == created.create_time
    read = results(client, done, tmp_path)
    assert list(read) == KEYS           # every key back, exactly as written
    answer = read["b/2 é"]
    assert isinstance(answer, Answer) and answer.text == "echo: say b/2 é"
    assert answer.finish_reason == "end_turn" and answer.usage.input_tokens > 0
    failed = read["gamma EMULATOR_FAIL"]
    assert not isinstance(failed, Answer)
    assert failed["type"] == "invalid_request_error" and failed["request_id"].startswith("req_")

    client.delete_job(created.name)
    assert client.get_job(created.name) is None
    client.delete_job(created.name)         # gone already: fine
    client.cancel_job(created.name)


def test_list_pages_through_every_batch_newest_first(client: AnthropicProvider,
                                                     tmp_path: Path) -> None:
    made = [client.create_job(MODEL, f"t{i}", inline_lines=requests_file(tmp_path, ["k"])).name
            for i in range(5)]
    listed = list(client.list_jobs())
    assert [j.name for j in listed] == made[::-1]       # three pages of two
    assert all(j.display_name == "" and j.total == 1 for j in listed)


def test_a_cancelled_batch_keeps_what_it_finished(client: AnthropicProvider, emu: Emulator,
                                                  tmp_path: Path) -> None:
    keys = [f"k{i}" for i in range(4)]
    job = client.create_job(MODEL, "t", inline_lines=requests_file(tmp_path, keys))
    advance(emu, LATENCY / 2)           # two of four answered
    client.cancel_job(job.name)
    cancelling = client.get_job(job.name)
    assert cancelling is not None and cancelling.state is JobState.RUNNING
    advance(emu, 120)
    ended = client.get_job(job.name)
    assert ended is not None and ended.state is JobState.SUCCEEDED
    assert (ended.succeeded, ended.failed) == (2, 2)
    read = results(client, ended, tmp_path)
    assert [k for k, r in read.items() if isinstance(r, Answer)] == ["k0", "k1"]
    assert read["k3"] == {"type": "canceled", "message": "the batch was cancelled before this "
                                                         "request was processed"}
    client.cancel_job(job.name)         # ended: nothing to cancel


def test_delete_cancels_a_running_batch_and_waits_for_its_end(
        emu: Emulator, tmp_path: Path) -> None:
    """prune cancels, then deletes at once: the delete waits for the cancel to end it."""
    ticks: list[float] = []

    def sleep(seconds: float) -> None:
        ticks.append(seconds)
        advance(emu, 30)

    client = AnthropicProvider(KEY, emu.base_url + "/anthropic", sleep=sleep)
    job = client.create_job(MODEL, "t", inline_lines=requests_file(tmp_path, ["a", "b"]))
    client.delete_job(job.name)
    assert client.get_job(job.name) is None and len(ticks) == 2   # 60 s of cancel grace
    client.close()


def test_a_batch_nothing_finished_in_is_cancelled_or_expired(
        client: AnthropicProvider, emu: Emulator, tmp_path: Path) -> None:
    job = client.create_job(MODEL, "t", inline_lines=requests_file(tmp_path, ["a"]))
    client.cancel_job(job.name)
    advance(emu, 120)
    cancelled = client.get_job(job.name)
    assert cancelled is not None and cancelled.state is JobState.CANCELLED
    emu.faults = replace(emu.faults, expire=True)
    slow = client.create_job(MODEL, "t", inline_lines=requests_file(tmp_path, ["only"]))
    emu.faults = replace(emu.faults, expire=False)
    advance(emu, 25 * 3600)
    expired = client.get_job(slow.name)
    assert expired is not None and expired.state is JobState.EXPIRED
    assert expired.error is not None and "expired (24 h)" in expired.error


def test_temperature_fails_each_request_not_the_batch(client: AnthropicProvider,
                                                      emu: Emulator, tmp_path: Path) -> None:
    """What the schema refuses up front, the API refuses per request at the pinned version."""
    job = client.create_job(MODEL, "t", inline_lines=requests_file(tmp_path, ["a"],
                                                                    temperature=0.5))
    advance(emu, LATENCY)
    done = client.get_job(job.name)
    assert done is not None
    [read] = results(client, done, tmp_path).values()
    assert not isinstance(read, Answer) and "temperature" in read["message"]
    assert "2026-10-21" in read["message"]


# -- faults ----------------------------------------------------------------------------------

def test_overloaded_and_unavailable_reads_are_retried(emu: Emulator, tmp_path: Path) -> None:
    client = AnthropicProvider(KEY, emu.base_url + "/anthropic", max_attempts=8,
                               backoff=Backoff(base=0.01, cap=0.02))
    job = client.create_job(MODEL, "t", inline_lines=requests_file(tmp_path, ["a"]))
    emu.faults = replace(emu.faults, rate_503=0.5, overloaded=True, retry_after=0.01, seed=4)
    for _ in range(5):
        assert client.get_job(job.name) is not None
    counted = httpx.get(f"{emu.base_url}/_emulator/stats").json()
    assert counted["faults_503"] > 0
    client.close()


@pytest.mark.parametrize("fault", [{"drop_after_create": 1.0}, {"rate_503": 1.0,
                                                                 "overloaded": True}])
def test_a_create_whose_answer_is_lost_is_ambiguous(client: AnthropicProvider, emu: Emulator,
                                                    tmp_path: Path, fault: dict[str, Any]
                                                    ) -> None:
    emu.faults = replace(emu.faults, retry_after=0.01, **fault)
    with pytest.raises(AmbiguousCreate):
        client.create_job(MODEL, "t", inline_lines=requests_file(tmp_path))
    emu.faults = replace(emu.faults, drop_after_create=0.0, rate_503=0.0)
    assert len(list(client.list_jobs())) == int("drop_after_create" in fault)


@pytest.mark.parametrize(("fault", "call", "words"), [
    ("state", "get", "sent processing_status as a number, expected a string"),
    ("request-count", "get", "sent request_counts.processing as a string, expected a count"),
    ("response", "get", "sent results_url as a number, expected a string"),
    ("page", "list", "list batches page 1: the provider sent the page as an array"),
    ("operation", "list", "list batches page 1, item 1: the provider sent the batch as a "
                          "string")])
def test_answers_of_the_wrong_shape_name_the_field(
        client: AnthropicProvider, emu: Emulator, tmp_path: Path, fault: str, call: str,
        words: str) -> None:
    job = client.create_job(MODEL, "t", inline_lines=requests_file(tmp_path, ["a"]))
    advance(emu, LATENCY)
    emu.faults = replace(emu.faults, wrong_types=fault)
    with pytest.raises(ProviderError) as caught:
        client.get_job(job.name) if call == "get" else list(client.list_jobs())
    assert words in str(caught.value)


@pytest.mark.parametrize(("fault", "words"), [
    ("candidates", "result.message.content is a string, expected an array"),
    ("parts", "result.message.content[0] is a string, expected an object")])
def test_messages_of_the_wrong_shape_fail_their_own_request(
        client: AnthropicProvider, emu: Emulator, tmp_path: Path, fault: str, words: str
        ) -> None:
    job = client.create_job(MODEL, "t", inline_lines=requests_file(tmp_path, ["a", "b"]))
    advance(emu, LATENCY)
    done = client.get_job(job.name)
    assert done is not None
    emu.faults = replace(emu.faults, wrong_types=fault)
    for read in results(client, done, tmp_path).values():
        assert not isinstance(read, Answer) and words in read["message"]


@pytest.mark.parametrize(("fault", "words"), [
    ({"endless_pages": True}, "still more after 3 pages"),
    ({"repeat_page_token": True}, "same page token again")])
def test_paging_that_never_ends_stops(emu: Emulator, tmp_path: Path, fault: dict[str, Any],
                                      words: str) -> None:
    client = AnthropicProvider(KEY, emu.base_url + "/anthropic", max_pages=3)
    client.create_job(MODEL, "t", inline_lines=requests_file(tmp_path, ["a"]))
    emu.faults = replace(emu.faults, **fault)
    with pytest.raises(ProviderError, match=words):
        list(client.list_jobs())
    client.close()


def test_the_key_quoted_back_never_shows(emu: Emulator) -> None:
    client = AnthropicProvider(KEY, emu.base_url + "/anthropic", page_size=5000)
    emu.faults = replace(emu.faults, echo_key=True)
    with pytest.raises(ProviderError, match="HTTP 400") as caught:
        list(client.list_jobs())
    assert KEY not in str(caught.value) and "***" in str(caught.value)
    client.close()


def test_shuffled_results_keep_every_key(client: AnthropicProvider, emu: Emulator,
                                         tmp_path: Path) -> None:
    emu.faults = replace(emu.faults, shuffle_results=True, seed=5)
    keys = [f"key {i}" for i in range(30)]
    job = client.create_job(MODEL, "t", inline_lines=requests_file(tmp_path, keys))
    advance(emu, LATENCY)
    done = client.get_job(job.name)
    assert done is not None
    read = results(client, done, tmp_path)
    assert sorted(read) == sorted(keys) and list(read) != keys
    assert all(isinstance(r, Answer) and r.text == f"echo: say {k}" for k, r in read.items())


def test_a_large_batch_is_streamed_whole(client: AnthropicProvider, tmp_path: Path) -> None:
    """Megabytes of requests in one create call, read from the file as they are sent."""
    keys = [f"row {i} {'x' * 200}"[:40] for i in range(20_000)]
    path = requests_file(tmp_path, keys)
    assert path.stat().st_size > 3 << 20
    job = client.create_job(MODEL, "big", inline_lines=path)
    seen = client.get_job(job.name)
    assert seen is not None and seen.total == job.total == 20_000
