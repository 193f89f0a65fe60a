"""The official anthropic SDK, unchanged, against the emulator's Message Batches over real HTTP.

If these pass, code written for Anthropic's real Message Batches API runs against the
emulator: it speaks the wire the SDK expects (SDK 2.x: Bearer keys, anthropic-version
2026-10-21, results fetched from an absolute results_url). The clock is moved through the
admin route rather than slept through. Faults are in tests/test_emulator_anthropic_faults.py.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import anthropic
import httpx
import pytest
from anthropic.types.messages import MessageBatch

from runner.emulator import Emulator

MODEL = "claude-sonnet-4-5"
LATENCY = 60.0  # emulator-clock seconds; the tests move the clock instead of sleeping
DAY = 24 * 3600.0

PROMPTS = {
    "alpha": "Describe photosynthesis.",
    "beta_2": "Margherita ingredients?",
    "gamma-3": "Please EMULATOR_FAIL this one.",
    "delta": "Ünïcode prompt ✓",
}


@pytest.fixture
def emu(tmp_path: Path) -> Iterator[Emulator]:
    with Emulator(tmp_path / "state", latency=LATENCY) as emulator:
        yield emulator


@pytest.fixture
def client(emu: Emulator) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(api_key="test-key", base_url=emu.base_url + "/anthropic",
                             max_retries=0) as sdk:
        yield sdk


def advance(emu: Emulator, seconds: float) -> None:
    httpx.post(f"{emu.base_url}/_emulator/clock", json={"advance": seconds}).raise_for_status()


def stats(emu: Emulator) -> dict[str, int]:
    return cast(dict[str, int], httpx.get(f"{emu.base_url}/_emulator/stats").json())


def request(custom_id: str, prompt: str, max_tokens: int = 1024, **params: Any) -> Any:
    return {"custom_id": custom_id, "params": {
        "model": MODEL, "max_tokens": max_tokens,
        "messages": [{"role": "user", "content": prompt}], **params}}


def create(client: anthropic.Anthropic, prompts: dict[str, str]) -> MessageBatch:
    return client.messages.batches.create(
        requests=[request(custom_id, prompt) for custom_id, prompt in prompts.items()])


def results(client: anthropic.Anthropic, batch_id: str) -> dict[str, dict[str, Any]]:
    """custom_id -> result, as the server sent it."""
    return {line.custom_id: cast(dict[str, Any], line.result.to_dict(mode="json"))
            for line in client.messages.batches.results(batch_id)}


def echoed(prompt: str, max_tokens: int = 1024) -> dict[str, Any]:
    """The Message the echo rule promises, worked out here independently of the emulator."""
    text = ("echo: " + prompt)[: 4 * max_tokens]
    return {
        "type": "message", "role": "assistant", "model": MODEL,
        "content": [{"type": "text", "text": text}],
        "stop_reason": "max_tokens" if len("echo: " + prompt) > 4 * max_tokens else "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": max(1, math.ceil(len(prompt) / 4)),
                  "output_tokens": math.ceil(len(text) / 4)},
    }


def test_a_batch_from_create_to_results(client: anthropic.Anthropic, emu: Emulator) -> None:
    batch = create(client, PROMPTS)
    assert re.fullmatch(r"msgbatch_[0-9A-Za-z]{22}", batch.id)
    assert batch.type == "message_batch" and batch.processing_status == "in_progress"
    assert batch.request_counts.to_dict() == {
        "processing": 4, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
    assert batch.results_url is None and batch.ended_at is None
    assert batch.archived_at is None and batch.cancel_initiated_at is None
    assert (batch.expires_at - batch.created_at).total_seconds() == DAY
    with pytest.raises(anthropic.AnthropicError, match="No `results_url`"):
        client.messages.batches.results(batch.id)

    advance(emu, LATENCY / 2)
    assert client.messages.batches.retrieve(batch.id).processing_status == "in_progress"
    advance(emu, LATENCY / 2)
    ended = client.messages.batches.retrieve(batch.id)
    assert ended.processing_status == "ended"
    assert ended.request_counts.to_dict() == {
        "processing": 0, "succeeded": 3, "errored": 1, "canceled": 0, "expired": 0}
    assert ended.ended_at is not None
    assert (ended.ended_at - ended.created_at).total_seconds() == pytest.approx(LATENCY)
    # Absolute, at the origin and prefix the client used: the SDK fetches it as it is.
    assert ended.results_url == \
        f"{emu.base_url}/anthropic/v1/messages/batches/{batch.id}/results"

    found = results(client, batch.id)
    assert list(found) == list(PROMPTS)  # input order unless shuffle_results is on
    for custom_id, prompt in PROMPTS.items():
        if custom_id == "gamma-3":
            error = found[custom_id]["error"]
            assert found[custom_id]["type"] == "errored" and error["type"] == "error"
            assert error["error"]["type"] == "invalid_request_error"
            assert "EMULATOR_FAIL" in error["error"]["message"]
            assert error["request_id"].startswith("req_")
            continue
        message = dict(found[custom_id]["message"])
        assert found[custom_id]["type"] == "succeeded"
        assert re.fullmatch(r"msg_[A-Za-z0-9_-]+", message.pop("id"))
        assert message == echoed(prompt)
    assert results(client, batch.id) == found  # the same answers on every read


def test_the_echo_reads_blocks_ignores_system_and_obeys_max_tokens(
    client: anthropic.Anthropic, emu: Emulator
) -> None:
    blocks: Any = {"custom_id": "blocks", "params": {
        "model": MODEL, "max_tokens": 100, "system": "Be brief.",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "one"},
                                                  {"type": "text", "text": "two"}]},
                     {"role": "assistant", "content": "three"}]}}
    batch = client.messages.batches.create(requests=[blocks, request("cut", "x" * 40, 3)])
    advance(emu, LATENCY)
    found = results(client, batch.id)
    assert found["blocks"]["message"]["content"][0]["text"] == "echo: one\ntwo\nthree"
    cut = found["cut"]["message"]
    assert cut["content"][0]["text"] == "echo: xxxxxx"
    assert cut["stop_reason"] == "max_tokens" and cut["usage"]["output_tokens"] == 3


def test_params_are_checked_when_each_request_is_answered(
    client: anthropic.Anthropic, emu: Emulator
) -> None:
    """The batch guide: params are validated asynchronously, errors come back as results.
    API 2026-10-21 (the SDK's) removed temperature, top_p and top_k; older versions keep
    them."""
    no_max_tokens: Any = {"custom_id": "no_max", "params": {
        "model": MODEL, "messages": [{"role": "user", "content": "hi"}]}}
    sampled = [request(f"with_{name}", "hi", **{name: 1}) for name in
               ("temperature", "top_p", "top_k")]
    batch = client.messages.batches.create(
        requests=[no_max_tokens, *sampled, request("fine", "hi")])
    assert batch.request_counts.processing == 5
    headers = {"x-api-key": "k", "anthropic-version": "2023-06-01"}
    older = httpx.post(f"{emu.base_url}/anthropic/v1/messages/batches", headers=headers,
                       json={"requests": sampled}).json()
    advance(emu, LATENCY)
    found = results(client, batch.id)
    assert {k: v["type"] for k, v in found.items()} == {
        "no_max": "errored", "with_temperature": "errored", "with_top_p": "errored",
        "with_top_k": "errored", "fine": "succeeded"}
    assert found["no_max"]["error"]["error"] == {
        "type": "invalid_request_error", "message": "max_tokens: Field required"}
    assert "temperature" in found["with_temperature"]["error"]["error"]["message"]
    assert {v["type"] for v in results(client, older["id"]).values()} == {"succeeded"}


@pytest.mark.parametrize("custom_id", ["", "x" * 65, "has space", "dot.ted", "ünï"])
def test_an_invalid_custom_id_refuses_the_whole_batch(
    client: anthropic.Anthropic, emu: Emulator, custom_id: str
) -> None:
    with pytest.raises(anthropic.BadRequestError) as refused:
        client.messages.batches.create(requests=[request("ok", "hi"), request(custom_id, "hi")])
    body = cast(dict[str, Any], refused.value.body)
    assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
    assert "requests.1.custom_id" in body["error"]["message"]
    assert stats(emu)["anthropic_batches"] == 0


def test_duplicate_custom_ids_and_empty_batches_are_refused(
    client: anthropic.Anthropic, emu: Emulator
) -> None:
    with pytest.raises(anthropic.BadRequestError, match="not unique"):
        client.messages.batches.create(requests=[request("a", "1"), request("a", "2")])
    with pytest.raises(anthropic.BadRequestError, match="requests"):
        client.messages.batches.create(requests=[])
    client.messages.batches.create(requests=[request("x" * 64, "hi"), request("A-b_9", "hi")])
    assert stats(emu)["anthropic_batches"] == 1


def test_list_pages_newest_first(client: anthropic.Anthropic, emu: Emulator) -> None:
    made = [create(client, {"only": f"batch {n}"}).id for n in range(5)]
    newest_first = made[::-1]
    first = client.messages.batches.list(limit=2)
    assert [b.id for b in first.data] == newest_first[:2] and first.has_more
    assert (first.first_id, first.last_id) == (newest_first[0], newest_first[1])
    assert [b.id for b in client.messages.batches.list(limit=2)] == newest_first  # auto-paging
    assert [b.id for b in client.messages.batches.list()] == newest_first
    newer = client.messages.batches.list(limit=2, before_id=made[0])
    assert [b.id for b in newer.data] == newest_first[2:4] and newer.has_more
    last = client.messages.batches.list(limit=2, after_id=made[1])
    assert [b.id for b in last.data] == [made[0]] and not last.has_more
    # A page resumes after a batch deleted meanwhile: ids sort as their create times.
    advance(emu, LATENCY)
    client.messages.batches.delete(made[2])
    rest = client.messages.batches.list(limit=5, after_id=made[2])
    assert [b.id for b in rest.data] == [made[1], made[0]]
    empty = client.messages.batches.list(after_id=made[0])
    assert empty.data == [] and empty.first_id is None and empty.last_id is None
    for limit in (0, 1001):
        with pytest.raises(anthropic.BadRequestError, match="limit"):
            client.messages.batches.list(limit=limit)


def test_cancel_keeps_what_was_answered_and_cancels_the_rest(
    client: anthropic.Anthropic, emu: Emulator
) -> None:
    batch = create(client, {f"r{i}": f"prompt {i}" for i in range(4)})
    advance(emu, LATENCY / 2)  # requests are answered evenly in input order: r0 and r1 are
    canceling = client.messages.batches.cancel(batch.id)
    assert canceling.processing_status == "canceling"
    assert canceling.cancel_initiated_at is not None and canceling.results_url is None
    assert canceling.request_counts.processing == 4
    with pytest.raises(anthropic.AnthropicError, match="No `results_url`"):
        client.messages.batches.results(batch.id)
    advance(emu, LATENCY)
    ended = client.messages.batches.retrieve(batch.id)
    assert ended.processing_status == "ended"
    assert ended.request_counts.to_dict() == {
        "processing": 0, "succeeded": 2, "errored": 0, "canceled": 2, "expired": 0}
    assert {k: v["type"] for k, v in results(client, batch.id).items()} == {
        "r0": "succeeded", "r1": "succeeded", "r2": "canceled", "r3": "canceled"}
    assert results(client, batch.id)["r2"] == {"type": "canceled"}
    again = client.messages.batches.cancel(batch.id)  # an ended batch stays as it ended
    assert again.processing_status == "ended" and again.ended_at == ended.ended_at


def test_requests_not_answered_in_24_hours_expire(tmp_path: Path) -> None:
    with Emulator(tmp_path / "state", latency=4 * DAY) as emu, anthropic.Anthropic(
            api_key="k", base_url=emu.base_url + "/anthropic", max_retries=0) as client:
        batch = create(client, {f"r{i}": f"prompt {i}" for i in range(8)})
        advance(emu, DAY - 1)
        assert client.messages.batches.retrieve(batch.id).processing_status == "in_progress"
        advance(emu, 1)
        ended = client.messages.batches.retrieve(batch.id)
        assert ended.processing_status == "ended" and ended.ended_at == ended.expires_at
        assert ended.request_counts.to_dict() == {
            "processing": 0, "succeeded": 2, "errored": 0, "canceled": 0, "expired": 6}
        found = results(client, batch.id)
        assert [found[f"r{i}"]["type"] for i in range(8)] == ["succeeded"] * 2 + ["expired"] * 6
        # Results are kept 29 days from create; the batch itself stays readable.
        advance(emu, 28 * DAY)
        archived = client.messages.batches.retrieve(batch.id)
        assert archived.archived_at is not None
        assert (archived.archived_at - archived.created_at).total_seconds() == 29 * DAY
        with pytest.raises(anthropic.NotFoundError, match="no longer available"):
            client.messages.batches.results(batch.id)


def test_delete_only_once_ended(
    client: anthropic.Anthropic, emu: Emulator, tmp_path: Path
) -> None:
    batch = create(client, PROMPTS)
    with pytest.raises(anthropic.BadRequestError, match="cannot be deleted"):
        client.messages.batches.delete(batch.id)
    advance(emu, LATENCY)
    results(client, batch.id)
    deleted = client.messages.batches.delete(batch.id)
    assert deleted.to_dict() == {"id": batch.id, "type": "message_batch_deleted"}
    with pytest.raises(anthropic.NotFoundError) as gone:
        client.messages.batches.retrieve(batch.id)
    assert cast(dict[str, Any], gone.value.body)["error"]["type"] == "not_found_error"
    with pytest.raises(anthropic.NotFoundError):
        client.messages.batches.delete(batch.id)
    leftovers = [p for p in (tmp_path / "state" / "anthropic").rglob("*") if p.is_file()]
    assert leftovers == [] and stats(emu)["anthropic_batches"] == 0


def test_keys_in_either_style_and_the_version_header(emu: Emulator) -> None:
    url = f"{emu.base_url}/anthropic/v1/messages/batches"
    version = {"anthropic-version": "2023-06-01"}
    missing = httpx.get(url, headers=version)
    assert missing.status_code == 401 and missing.headers["request-id"].startswith("req_")
    body = missing.json()
    assert set(body) == {"type", "error", "request_id"} and body["type"] == "error"
    assert body["error"]["type"] == "authentication_error" and body["error"]["message"]
    for key in ({"x-api-key": "k"}, {"Authorization": "Bearer k"}):
        answer = httpx.get(url, headers={**key, **version}, params={"beta": "true"})
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"data": [], "has_more": False, "first_id": None,
                                 "last_id": None}
    unversioned = httpx.get(url, headers={"x-api-key": "k"})
    assert unversioned.status_code == 400
    assert unversioned.json()["error"]["message"] == "anthropic-version: header is required"
    nowhere = httpx.get(f"{emu.base_url}/anthropic/v1/nothing", headers={"x-api-key": "k"})
    assert nowhere.status_code == 404 and nowhere.json()["error"]["type"] == "not_found_error"
    # The SDK's own client, with a key the server has never seen, is let in.
    with anthropic.Anthropic(api_key="sk-ant-any", base_url=emu.base_url + "/anthropic") as sdk:
        assert list(sdk.messages.batches.list()) == []


def test_a_second_emulator_on_the_same_state_finds_everything(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with Emulator(state, latency=LATENCY) as first, anthropic.Anthropic(
            api_key="k", base_url=first.base_url + "/anthropic", max_retries=0) as client:
        batch = create(client, PROMPTS)
        canceled = create(client, PROMPTS)
        client.messages.batches.cancel(canceled.id)
    with Emulator(state, latency=LATENCY) as second, anthropic.Anthropic(
            api_key="k", base_url=second.base_url + "/anthropic", max_retries=0) as client:
        assert client.messages.batches.retrieve(batch.id).processing_status == "in_progress"
        assert client.messages.batches.retrieve(canceled.id).processing_status == "canceling"
        advance(second, LATENCY)
        ended = client.messages.batches.retrieve(batch.id)
        assert ended.results_url is not None and ended.results_url.startswith(second.base_url)
        found = results(client, batch.id)
        assert [b.id for b in client.messages.batches.list()] == [canceled.id, batch.id]
    with Emulator(state, latency=LATENCY) as third, anthropic.Anthropic(
            api_key="k", base_url=third.base_url + "/anthropic", max_retries=0) as client:
        assert results(client, batch.id) == found
        assert {r["type"] for r in results(client, canceled.id).values()} == {"canceled"}
    stored = json.loads((state / "anthropic/batches" / f"{batch.id}.json").read_text())
    assert stored["succeeded"] == 3 and stored["errored"] == 1
