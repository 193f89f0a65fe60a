"""The official openai SDK, unchanged, against the emulator's OpenAI Batch API over real HTTP.

If these pass, code written for the real Batch API (files, uploads, batches) runs against the
emulator given only a base URL. The clock is moved through the admin route rather than slept
through. The wire details the SDK hides are in test_emulator_openai_wire.py.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Final, Literal

import httpx
import openai
import pytest
from openai.types import CreateEmbeddingResponse
from openai.types.chat import ChatCompletion
from openai.types.responses import Response

from runner.emulator import Emulator

MODEL = "gpt-4o-mini"
LATENCY = 60.0  # emulator-clock seconds: validating 15, in progress until 45, final at 60
DAY = 86400.0
Endpoint = Literal["/v1/chat/completions", "/v1/responses", "/v1/embeddings"]
CHAT: Final = "/v1/chat/completions"
RESPONSES: Final = "/v1/responses"
EMBEDDINGS: Final = "/v1/embeddings"
PROMPTS = {
    "alpha": "Describe photosynthesis.",
    "beta": "Margherita ingredients?",
    "gamma": "Please EMULATOR_FAIL this one.",
    "delta": "Ünïcode prompt ✓",
}


@pytest.fixture
def emu(tmp_path: Path) -> Iterator[Emulator]:
    with Emulator(tmp_path / "state", latency=LATENCY) as emulator:
        yield emulator


Sdk = Callable[..., openai.OpenAI]


@pytest.fixture
def sdk() -> Iterator[Sdk]:
    """Makes the SDK as a user would point it at an emulator (no retries unless asked, so
    that what the emulator answers is what the test sees), and closes it afterwards."""
    made: list[openai.OpenAI] = []

    def make(emu: Emulator, **options: Any) -> openai.OpenAI:
        options.setdefault("max_retries", 0)
        made.append(openai.OpenAI(api_key="test-key", base_url=emu.base_url + "/openai/v1",
                                  **options))
        return made[-1]

    yield make
    for client in made:
        client.close()


@pytest.fixture
def client(emu: Emulator, sdk: Sdk) -> openai.OpenAI:
    return sdk(emu)


def admin(emu: Emulator, route: str, **body: Any) -> Any:
    answer = httpx.post(f"{emu.base_url}/_emulator/{route}", json=body)
    answer.raise_for_status()
    return answer.json()


def advance(emu: Emulator, seconds: float) -> None:
    admin(emu, "clock", advance=seconds)


def stats(emu: Emulator) -> dict[str, int]:
    answer: dict[str, int] = httpx.get(f"{emu.base_url}/_emulator/stats").json()
    return answer


def body_for(endpoint: str, prompt: str, model: str = MODEL) -> dict[str, Any]:
    if endpoint == CHAT:
        return {"model": model, "messages": [{"role": "system", "content": "be brief"},
                                             {"role": "user", "content": prompt}]}
    if endpoint == RESPONSES:
        return {"model": model, "input": prompt, "instructions": "be brief"}
    return {"model": model, "input": [prompt, prompt + "!"], "dimensions": 8}


def jsonl(lines: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(line) + "\n" for line in lines).encode()


def upload(client: openai.OpenAI, prompts: dict[str, str], endpoint: Endpoint = CHAT) -> str:
    lines = [{"custom_id": key, "method": "POST", "url": endpoint,
              "body": body_for(endpoint, prompt)} for key, prompt in prompts.items()]
    return client.files.create(file=("in.jsonl", jsonl(lines), "application/jsonl"),
                               purpose="batch").id


def by_id(client: openai.OpenAI, file_id: str | None) -> dict[str, dict[str, Any]]:
    if file_id is None:
        return {}
    lines = [json.loads(line) for line in client.files.content(file_id).text.splitlines()]
    found = {line["custom_id"]: line for line in lines}
    assert len(found) == len(lines)
    return found


def start(client: openai.OpenAI, prompts: dict[str, str], endpoint: Endpoint = CHAT,
          **options: Any) -> str:
    return client.batches.create(input_file_id=upload(client, prompts, endpoint),
                                 endpoint=endpoint, completion_window="24h", **options).id


def test_file_batch_round_trip(client: openai.OpenAI, emu: Emulator) -> None:
    source = jsonl([{"custom_id": key, "method": "POST", "url": CHAT,
                     "body": body_for(CHAT, prompt)} for key, prompt in PROMPTS.items()])
    uploaded = client.files.create(file=("in.jsonl", source, "application/jsonl"),
                                   purpose="batch")
    assert uploaded.id.startswith("file-") and uploaded.bytes == len(source)
    assert (uploaded.purpose, uploaded.status, uploaded.filename) == \
        ("batch", "processed", "in.jsonl")
    assert uploaded.expires_at == uploaded.created_at + 30 * 86400
    assert client.files.retrieve(uploaded.id) == uploaded
    assert client.files.content(uploaded.id).read() == source

    batch = client.batches.create(input_file_id=uploaded.id, endpoint=CHAT,
                                  completion_window="24h", metadata={"br_hash": "a" * 64})
    assert batch.id.startswith("batch_") and batch.status == "validating"
    assert batch.metadata == {"br_hash": "a" * 64} and batch.model == MODEL
    assert batch.expires_at == batch.created_at + 86400
    assert batch.request_counts is not None and batch.request_counts.total == 0

    advance(emu, LATENCY / 2)
    running = client.batches.retrieve(batch.id)
    assert running.status == "in_progress" and running.in_progress_at is not None
    assert running.request_counts is not None and running.request_counts.total == 4
    advance(emu, LATENCY / 2 - 10)
    assert client.batches.retrieve(batch.id).status == "finalizing"
    advance(emu, 10)
    done = client.batches.retrieve(batch.id)
    assert done.status == "completed" and done.errors is None
    assert done.in_progress_at and done.finalizing_at and done.completed_at
    assert done.created_at <= done.in_progress_at <= done.finalizing_at <= done.completed_at
    assert done.request_counts is not None
    assert (done.request_counts.completed, done.request_counts.failed) == (3, 1)

    answered = by_id(client, done.output_file_id)
    assert sorted(answered) == ["alpha", "beta", "delta"]
    tokens_in = tokens_out = 0
    for key, line in answered.items():
        assert line["error"] is None and line["id"].startswith("batch_req_")
        assert line["response"]["status_code"] == 200
        assert line["response"]["request_id"].startswith("req_")
        completion = ChatCompletion.model_validate(line["response"]["body"])
        text = "echo: " + PROMPTS[key]  # the system message is not part of the prompt
        assert completion.choices[0].message.content == text
        assert completion.choices[0].finish_reason == "stop" and completion.model == MODEL
        assert completion.usage is not None
        assert completion.usage.prompt_tokens == math.ceil(len(PROMPTS[key]) / 4)
        assert completion.usage.completion_tokens == math.ceil(len(text) / 4)
        tokens_in += completion.usage.prompt_tokens
        tokens_out += completion.usage.completion_tokens
    failed = by_id(client, done.error_file_id)
    assert list(failed) == ["gamma"]
    assert failed["gamma"]["response"]["status_code"] == 400
    assert failed["gamma"]["response"]["body"]["error"]["type"] == "invalid_request_error"
    assert done.usage is not None
    assert (done.usage.input_tokens, done.usage.output_tokens) == (tokens_in, tokens_out)
    assert done.usage.total_tokens == tokens_in + tokens_out

    outputs = {f.id: f for f in client.files.list(purpose="batch_output")}
    assert set(outputs) == {done.output_file_id, done.error_file_id}
    output = outputs[str(done.output_file_id)]
    assert output.filename == f"{batch.id}_output.jsonl" and output.status == "processed"


@pytest.mark.parametrize("endpoint", [RESPONSES, EMBEDDINGS])
def test_responses_and_embeddings_answer_in_their_shapes(
    client: openai.OpenAI, emu: Emulator, endpoint: Endpoint
) -> None:
    batch_id = start(client, PROMPTS, endpoint)
    advance(emu, LATENCY)
    done = client.batches.retrieve(batch_id)
    assert done.status == "completed" and done.endpoint == endpoint
    answered = by_id(client, done.output_file_id)
    assert sorted(answered) == ["alpha", "beta", "delta"]
    assert list(by_id(client, done.error_file_id)) == ["gamma"]
    for key, line in answered.items():
        body = line["response"]["body"]
        if endpoint == RESPONSES:
            response = Response.model_validate(body)
            assert response.output_text == "echo: " + PROMPTS[key]
            assert response.usage is not None
            assert response.usage.input_tokens == math.ceil(len(PROMPTS[key]) / 4)
        else:
            embeddings = CreateEmbeddingResponse.model_validate(body)
            first, second = (item.embedding for item in embeddings.data)
            assert len(first) == 8 and abs(sum(x * x for x in first) - 1) < 1e-4
            assert first != second and embeddings.usage.prompt_tokens > 0
    if endpoint == EMBEDDINGS:  # the same text gets the same vector, whatever the batch
        again = by_id(client, client.batches.retrieve(batch_id).output_file_id)
        assert again["alpha"]["response"]["body"]["data"] == \
            answered["alpha"]["response"]["body"]["data"]


def test_list_pages_newest_first(client: openai.OpenAI) -> None:
    file_id = upload(client, {"only": "hi"})
    created = [client.batches.create(input_file_id=file_id, endpoint=CHAT,
                                      completion_window="24h", metadata={"n": str(i)}).id
               for i in range(5)]
    first = client.batches.list(limit=2)
    assert [b.id for b in first.data] == created[::-1][:2] and first.has_more
    assert [b.id for b in client.batches.list(limit=2)] == created[::-1]  # auto-paging
    assert [b.metadata for b in client.batches.list()] == [{"n": str(i)} for i in range(4, -1, -1)]
    last = client.batches.list(limit=2, after=created[1])
    assert [b.id for b in last.data] == [created[0]] and not last.has_more


def test_uploads_api_assembles_parts_into_a_batch_input(
    client: openai.OpenAI, emu: Emulator
) -> None:
    data = jsonl([{"custom_id": f"u{i}", "method": "POST", "url": CHAT,
                   "body": body_for(CHAT, f"part {i}")} for i in range(40)])
    done = client.uploads.upload_file_chunked(file=data, filename="big.jsonl", bytes=len(data),
                                              mime_type="application/jsonl", purpose="batch",
                                              part_size=1000)
    assert done.status == "completed" and done.file is not None
    assert done.file.bytes == len(data) and done.file.filename == "big.jsonl"
    assert client.files.content(done.file.id).read() == data
    assert stats(emu)["openai_uploads"] == 1

    batch = client.batches.create(input_file_id=done.file.id, endpoint=CHAT,
                                  completion_window="24h")
    advance(emu, LATENCY)
    answered = by_id(client, client.batches.retrieve(batch.id).output_file_id)
    assert answered["u7"]["response"]["body"]["choices"][0]["message"]["content"] == \
        "echo: part 7"

    abandoned = client.uploads.create(bytes=10, filename="x.jsonl", mime_type="text/jsonl",
                                      purpose="batch")
    assert abandoned.status == "pending" and abandoned.expires_at == abandoned.created_at + 3600
    assert client.uploads.cancel(abandoned.id).status == "cancelled"
    with pytest.raises(openai.BadRequestError):
        client.uploads.parts.create(abandoned.id, data=b"0123456789")


def test_cancel_keeps_what_was_finished(client: openai.OpenAI, emu: Emulator) -> None:
    prompts = {f"c{i}": f"question {i}" for i in range(10)}
    batch_id = start(client, prompts)
    advance(emu, LATENCY / 2)  # halfway through its run: half its requests are done
    cancelling = client.batches.cancel(batch_id)
    assert cancelling.status == "cancelling" and cancelling.cancelling_at is not None
    assert client.batches.cancel(batch_id).status == "cancelling"  # again: as it is
    advance(emu, LATENCY / 4)
    cancelled = client.batches.retrieve(batch_id)
    assert cancelled.status == "cancelled" and cancelled.cancelled_at is not None
    assert sorted(by_id(client, cancelled.output_file_id)) == [f"c{i}" for i in range(5)]
    assert cancelled.error_file_id is None
    assert cancelled.request_counts is not None
    assert (cancelled.request_counts.total, cancelled.request_counts.completed) == (10, 5)
    advance(emu, LATENCY)
    assert client.batches.retrieve(batch_id).status == "cancelled"

    finished = start(client, {"x": "y"})
    advance(emu, LATENCY)
    with pytest.raises(openai.BadRequestError) as refused:
        client.batches.cancel(finished)
    assert refused.value.status_code == 400  # never 409, which the SDK would retry


def test_expiry_keeps_the_finished_part(client: openai.OpenAI, emu: Emulator) -> None:
    admin(emu, "faults", expire=True)
    prompts = {f"e{i}": f"slow {i}" for i in range(6)}
    prompts["e1"] = "EMULATOR_FAIL"
    batch_id = start(client, prompts)
    admin(emu, "faults", expire=False)
    advance(emu, LATENCY)
    assert client.batches.retrieve(batch_id).status == "in_progress"
    advance(emu, DAY)
    expired = client.batches.retrieve(batch_id)
    assert expired.status == "expired" and expired.expired_at == expired.expires_at
    assert sorted(by_id(client, expired.output_file_id)) == ["e0", "e2"]
    errors = by_id(client, expired.error_file_id)
    assert errors["e1"]["response"]["status_code"] == 400
    for key in ("e3", "e4", "e5"):
        assert errors[key]["response"] is None
        assert errors[key]["error"]["code"] == "batch_expired"
    assert expired.request_counts is not None
    assert (expired.request_counts.completed, expired.request_counts.failed) == (2, 4)


def test_a_batch_longer_than_its_window_expires_on_time(tmp_path: Path, sdk: Sdk) -> None:
    with Emulator(tmp_path / "state", latency=2 * DAY) as emu:
        client = sdk(emu)
        batch_id = start(client, {f"k{i}": "x" for i in range(4)})
        advance(emu, DAY)
        expired = client.batches.retrieve(batch_id)
        assert expired.status == "expired"
        assert len(by_id(client, expired.output_file_id)) == 2  # half its run fitted


def test_a_malformed_input_fails_the_batch_with_line_errors(
    client: openai.OpenAI, emu: Emulator
) -> None:
    good = {"custom_id": "a", "method": "POST", "url": CHAT, "body": body_for(CHAT, "hi")}
    lines = [json.dumps(good), "{not json",
             json.dumps({**good, "custom_id": "b", "url": EMBEDDINGS}),
             json.dumps({**good, "custom_id": "c", "body": body_for(CHAT, "hi", "gpt-5")}),
             json.dumps(good), json.dumps({"custom_id": "d", "url": CHAT, "body": {}})]
    bad = client.files.create(file=("bad.jsonl", "\n".join(lines).encode()), purpose="batch")
    batch = client.batches.create(input_file_id=bad.id, endpoint=CHAT, completion_window="24h")
    assert batch.status == "validating"  # the real API answers 200, then fails the batch
    advance(emu, LATENCY / 4)
    failed = client.batches.retrieve(batch.id)
    assert failed.status == "failed" and failed.failed_at is not None
    assert failed.in_progress_at is None and failed.output_file_id is None
    assert failed.errors is not None and failed.errors.data is not None
    assert [(e.code, e.line, e.param) for e in failed.errors.data] == [
        ("invalid_json_line", 2, None),
        ("url_mismatch", 3, "url"),
        ("model_mismatch", 4, "body.model"),
        ("duplicate_custom_id", 5, "custom_id"),
        ("missing_required_parameter", 6, "method"),
    ]
    assert failed.errors.data[0].message == "This line is not parseable as valid JSON."

    empty = client.files.create(file=("empty.jsonl", b""), purpose="batch")
    other = client.files.create(file=("notes.jsonl", b"{}\n"), purpose="user_data")
    ended = []
    for file_id in (empty.id, other.id, "file-doesnotexist"):
        ended.append(client.batches.create(input_file_id=file_id, endpoint=CHAT,
                                           completion_window="24h").id)
    advance(emu, LATENCY / 4)
    codes = []
    for batch_id in ended:
        seen = client.batches.retrieve(batch_id)
        assert seen.status == "failed" and seen.errors and seen.errors.data
        codes.append((seen.errors.data[0].code, seen.errors.data[0].param))
    assert codes == [("empty_file", None), ("invalid_request", "input_file_id"),
                     ("invalid_request", "input_file_id")]


def test_bad_requests_are_refused_with_the_parameter_named(client: openai.OpenAI) -> None:
    file_id = upload(client, {"a": "b"})
    too_many = {f"k{i}": "v" for i in range(17)}
    for options, param in (
        ({"endpoint": "/v1/nothing"}, "endpoint"),
        ({"completion_window": "48h"}, "completion_window"),
        ({"metadata": too_many}, "metadata"),
        ({"metadata": {"k" * 65: "v"}}, "metadata"),
        ({"metadata": {"k": "v" * 513}}, "metadata.k"),
    ):
        arguments: dict[str, Any] = {"input_file_id": file_id, "endpoint": CHAT,
                                     "completion_window": "24h", **options}
        with pytest.raises(openai.BadRequestError) as refused:
            client.batches.create(**arguments)
        assert isinstance(refused.value.body, dict) and refused.value.body["param"] == param
    with pytest.raises(openai.BadRequestError) as refused:
        client.files.create(file=("notes.txt", b"{}\n"), purpose="batch")
    assert refused.value.message.endswith("Invalid file format for Batch API. Must be .jsonl")
    with pytest.raises(openai.NotFoundError):
        client.batches.retrieve("batch_nothing")
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve("file-nothing")


def test_a_key_is_required_and_organization_headers_are_ignored(emu: Emulator, sdk: Sdk) -> None:
    client = sdk(emu, organization="org-emulated", project="proj-emulated")
    assert list(client.batches.list()) == []
    with pytest.raises(openai.AuthenticationError) as refused:
        client.batches.list(extra_headers={"Authorization": ""})
    assert refused.value.status_code == 401
    assert refused.value.body == {
        "message": "You didn't provide an API key. You need to provide your API key in an"
                   " Authorization header using Bearer auth (i.e. Authorization: Bearer"
                   " YOUR_KEY).",
        "type": "invalid_request_error", "param": None, "code": None}


def test_a_second_emulator_sees_what_the_first_did(tmp_path: Path, sdk: Sdk) -> None:
    state = tmp_path / "state"
    with Emulator(state, latency=LATENCY) as first:
        client = sdk(first)
        batch_id = start(client, PROMPTS, metadata={"run": "1"})
        advance(first, LATENCY / 2)
    with Emulator(state, latency=1) as second:  # its own latency; the batch keeps its own
        client = sdk(second)
        assert client.batches.retrieve(batch_id).status == "in_progress"
        advance(second, LATENCY / 2)
        done = client.batches.retrieve(batch_id)
        assert done.status == "completed" and done.metadata == {"run": "1"}
        assert sorted(by_id(client, done.output_file_id)) == ["alpha", "beta", "delta"]
        assert stats(second)["openai_batches"] == 1
    with Emulator(state) as third:
        client = sdk(third)
        assert client.batches.retrieve(batch_id) == done
        assert len(client.files.list().data) == 3  # the input, output and error files


# The shared faults, as the SDK meets them.


def test_429_says_when_to_retry_and_the_sdk_obeys(emu: Emulator, sdk: Sdk) -> None:
    admin(emu, "faults", rate_429=1.0, retry_after=2.5)
    with pytest.raises(openai.RateLimitError) as limited:
        sdk(emu).batches.list()
    answer = limited.value.response
    assert answer.headers["retry-after"] == "2.5" and answer.headers["x-should-retry"] == "true"
    assert answer.headers["x-request-id"].startswith("req_")
    assert isinstance(limited.value.body, dict)
    assert limited.value.body["code"] == "rate_limit_exceeded"
    admin(emu, "faults", retry_after=1000)
    with pytest.raises(openai.RateLimitError) as capped:
        sdk(emu).files.list()
    assert capped.value.response.headers["retry-after"] == "120"  # the SDK's limit

    admin(emu, "faults", retry_after=0.01)
    with pytest.raises(openai.RateLimitError):
        sdk(emu, max_retries=2).batches.list()
    assert stats(emu)["faults_429"] == 2 + 3  # two tries above, then three here
    admin(emu, "faults", rate_429=0.0)
    assert list(sdk(emu).batches.list()) == []


def test_503_and_reset_reach_the_sdk_as_its_errors(emu: Emulator, sdk: Sdk) -> None:
    client = sdk(emu)
    admin(emu, "faults", rate_503=1.0)
    with pytest.raises(openai.InternalServerError) as unavailable:
        client.files.list()
    assert unavailable.value.status_code == 503
    admin(emu, "faults", rate_503=0.0, rate_reset=1.0)
    with pytest.raises(openai.APIConnectionError):
        client.files.list()
    admin(emu, "faults", rate_reset=0.0)
    counts = stats(emu)
    assert (counts["faults_503"], counts["faults_reset"], counts["openai_files"]) == (1, 1, 0)


def test_a_dropped_create_answer_still_created_the_batch(
    client: openai.OpenAI, emu: Emulator
) -> None:
    file_id = upload(client, {"a": "b"})
    admin(emu, "faults", drop_after_create=1.0)
    with pytest.raises(openai.APIConnectionError):
        client.batches.create(input_file_id=file_id, endpoint=CHAT, completion_window="24h",
                              metadata={"br_hash": "h1"})
    admin(emu, "faults", drop_after_create=0.0)
    found = [b for b in client.batches.list() if b.metadata == {"br_hash": "h1"}]
    assert len(found) == 1  # what a client finds again by its metadata
    assert stats(emu)["drops_after_create"] == 1


def test_request_errors_and_shuffling_are_fixed_at_create(
    client: openai.OpenAI, emu: Emulator
) -> None:
    prompts = {f"r{i:02}": f"prompt {i}" for i in range(30)}
    admin(emu, "faults", request_error_rate=0.5, seed=7, shuffle_results=True)
    first, second = start(client, prompts), start(client, prompts)
    admin(emu, "faults", request_error_rate=0.0, shuffle_results=False)
    advance(emu, LATENCY)
    failed: list[set[str]] = []
    for batch_id in (first, second):
        done = client.batches.retrieve(batch_id)
        errors = by_id(client, done.error_file_id)
        assert all(line["response"]["status_code"] == 500 for line in errors.values())
        assert {line["response"]["body"]["error"]["type"] for line in errors.values()} == \
            {"server_error"}
        answered = list(by_id(client, done.output_file_id))
        assert sorted(answered + list(errors)) == sorted(prompts)
        assert answered != sorted(answered)  # shuffled
        failed.append(set(errors))
    assert failed[0] == failed[1] and 0 < len(failed[0]) < 30  # the same requests fail


def test_the_fail_fault_fails_validation_as_a_full_queue_does(
    client: openai.OpenAI, emu: Emulator
) -> None:
    admin(emu, "faults", fail=True)
    batch_id = start(client, {"a": "b"})
    admin(emu, "faults", fail=False)
    advance(emu, LATENCY)
    failed = client.batches.retrieve(batch_id)
    assert failed.status == "failed" and failed.errors and failed.errors.data
    assert failed.errors.data[0].code == "token_limit_exceeded"
    assert failed.errors.data[0].message and MODEL in failed.errors.data[0].message


def test_slow_answers_still_arrive(client: openai.OpenAI, emu: Emulator) -> None:
    admin(emu, "faults", slow=0.2)
    with pytest.raises(openai.APITimeoutError):
        client.with_options(timeout=0.05).batches.list()
    assert list(client.batches.list()) == []
