"""The emulator's faults as the official anthropic SDK meets them in Message Batches.

Each fault is switched on through the admin route, as a test in another process would, and
observed through the SDK (with `max_retries=0` where the point is to see it, not survive it):
429 with a small Retry-After, 503 or Anthropic's own 529, a reset, a create whose answer is
lost, per-request errors, shuffled results, failed and expired batches, and the hostile
server's answers.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import anthropic
import httpx
import pytest

from runner.emulator import Emulator
from runner.emulator.anthropic import api, settle

LATENCY = 60.0
KEY = "test-key"


@pytest.fixture
def emu(tmp_path: Path) -> Iterator[Emulator]:
    with Emulator(tmp_path / "state", latency=LATENCY) as emulator:
        yield emulator


@pytest.fixture
def client(emu: Emulator) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(api_key=KEY, base_url=emu.base_url + "/anthropic",
                             max_retries=0) as sdk:
        yield sdk


def faults(emu: Emulator, **changes: Any) -> None:
    httpx.post(f"{emu.base_url}/_emulator/faults", json=changes).raise_for_status()


def advance(emu: Emulator, seconds: float) -> None:
    httpx.post(f"{emu.base_url}/_emulator/clock", json={"advance": seconds}).raise_for_status()


def stats(emu: Emulator) -> dict[str, int]:
    return cast(dict[str, int], httpx.get(f"{emu.base_url}/_emulator/stats").json())


def requests(n: int) -> list[Any]:
    return [{"custom_id": f"r{i}", "params": {
        "model": "claude-haiku-4-5", "max_tokens": 64,
        "messages": [{"role": "user", "content": f"question {i}"}]}} for i in range(n)]


def result_types(client: anthropic.Anthropic, batch_id: str) -> list[tuple[str, str]]:
    return [(line.custom_id, line.result.type)
            for line in client.messages.batches.results(batch_id)]


def test_429_carries_a_small_retry_after_and_changes_nothing(
    client: anthropic.Anthropic, emu: Emulator
) -> None:
    # The SDK waits whatever Retry-After says, so an hour is sent as MAX_RETRY_AFTER.
    faults(emu, rate_429=1.0, retry_after=3600)
    with pytest.raises(anthropic.RateLimitError) as limited:
        client.messages.batches.create(requests=requests(2))
    assert limited.value.status_code == 429
    assert limited.value.response.headers["retry-after"] == f"{api.MAX_RETRY_AFTER:g}"
    assert limited.value.response.headers["x-should-retry"] == "true"
    assert cast(dict[str, Any], limited.value.body)["error"]["type"] == "rate_limit_error"
    assert stats(emu)["anthropic_batches"] == 0 and stats(emu)["faults_429"] == 1


def test_503_and_the_overloaded_529(client: anthropic.Anthropic, emu: Emulator) -> None:
    faults(emu, rate_503=1.0, retry_after=0.25)
    with pytest.raises(anthropic.ServiceUnavailableError) as down:
        client.messages.batches.list()
    assert cast(dict[str, Any], down.value.body)["error"]["type"] == "api_error"
    assert down.value.response.headers["retry-after"] == "0.25"
    faults(emu, overloaded=True)
    with pytest.raises(anthropic.OverloadedError) as overloaded:
        client.messages.batches.create(requests=requests(1))
    assert overloaded.value.status_code == 529
    assert cast(dict[str, Any], overloaded.value.body)["error"] == {
        "type": "overloaded_error", "message": "Overloaded"}
    assert stats(emu)["faults_503"] == 2 and stats(emu)["anthropic_batches"] == 0


def test_the_sdk_retries_through_429_and_529(emu: Emulator) -> None:
    faults(emu, rate_429=0.3, rate_503=0.3, overloaded=True, retry_after=0.01, seed=3)
    with anthropic.Anthropic(api_key=KEY, base_url=emu.base_url + "/anthropic",
                             max_retries=10) as sdk:
        made = [sdk.messages.batches.create(requests=requests(1)).id for _ in range(4)]
        assert {b.id for b in sdk.messages.batches.list()} == set(made)
    counted = stats(emu)
    assert counted["faults_429"] > 0 and counted["faults_503"] > 0
    assert counted["anthropic_batches"] == 4


def test_a_reset_answers_nothing(client: anthropic.Anthropic, emu: Emulator) -> None:
    faults(emu, rate_reset=1.0)
    with pytest.raises(anthropic.APIConnectionError):
        client.messages.batches.create(requests=requests(1))
    faults(emu, rate_reset=0.0)
    assert list(client.messages.batches.list()) == []


def test_a_create_whose_answer_is_lost_still_made_the_batch(
    client: anthropic.Anthropic, emu: Emulator
) -> None:
    """What makes "never twice" hard: the SDK retries a create by default, so this is the
    duplicate a client must reconcile by listing (Anthropic batches carry no tag)."""
    faults(emu, drop_after_create=1.0)
    with pytest.raises(anthropic.APIConnectionError):
        client.messages.batches.create(requests=requests(3))
    faults(emu, drop_after_create=0.0)
    [made] = client.messages.batches.list()
    assert made.request_counts.processing == 3
    assert stats(emu)["drops_after_create"] == 1


def test_request_errors_are_deterministic(client: anthropic.Anthropic, emu: Emulator) -> None:
    faults(emu, request_error_rate=0.5, seed=7)
    first = client.messages.batches.create(requests=requests(20)).id
    second = client.messages.batches.create(requests=requests(20)).id
    advance(emu, LATENCY)
    errored = [cid for cid, kind in result_types(client, first) if kind == "errored"]
    assert 0 < len(errored) < 20
    assert [cid for cid, kind in result_types(client, second) if kind == "errored"] == errored
    lines = {line.custom_id: line.result for line in client.messages.batches.results(first)}
    failed = lines[errored[0]]
    assert failed.type == "errored" and failed.error.error.type == "api_error"


def test_shuffled_results_keep_every_request(client: anthropic.Anthropic, emu: Emulator) -> None:
    faults(emu, shuffle_results=True, seed=5)
    batch = client.messages.batches.create(requests=requests(30))
    advance(emu, LATENCY)
    order = [cid for cid, _ in result_types(client, batch.id)]
    assert sorted(order) == sorted(f"r{i}" for i in range(30))
    assert order != [f"r{i}" for i in range(30)]
    assert [cid for cid, _ in result_types(client, batch.id)] == order


def test_fail_and_expire_are_fixed_at_create(client: anthropic.Anthropic, emu: Emulator) -> None:
    """Anthropic batches have no failed state: with `fail` every request errs. With
    `expire` a batch is too slow to answer more than its first half in 24 h."""
    faults(emu, fail=True)
    failing = client.messages.batches.create(requests=requests(2)).id
    faults(emu, fail=False, expire=True)
    expiring = client.messages.batches.create(requests=requests(4)).id
    faults(emu, expire=False)
    advance(emu, LATENCY)
    assert {kind for _, kind in result_types(client, failing)} == {"errored"}
    assert client.messages.batches.retrieve(expiring).processing_status == "in_progress"
    advance(emu, 24 * 3600)
    ended = client.messages.batches.retrieve(expiring)
    assert ended.ended_at == ended.expires_at
    assert result_types(client, expiring) == [
        ("r0", "succeeded"), ("r1", "succeeded"), ("r2", "expired"), ("r3", "expired")]


def test_big_batches_are_answered_in_the_background(
    client: anthropic.Anthropic, emu: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(settle, "SYNC_LIMIT", 0)
    batch = client.messages.batches.create(requests=requests(50))
    advance(emu, LATENCY)
    first = client.messages.batches.retrieve(batch.id)
    deadline = time.monotonic() + 10
    seen = first
    while seen.processing_status != "ended" and time.monotonic() < deadline:
        time.sleep(0.01)
        seen = client.messages.batches.retrieve(batch.id)
    assert first.processing_status in ("in_progress", "ended")
    assert seen.processing_status == "ended" and seen.request_counts.succeeded == 50
    assert len(result_types(client, batch.id)) == 50


def test_a_create_over_the_size_limit_is_413(
    client: anthropic.Anthropic, emu: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(api, "MAX_CREATE_BYTES", 1000)
    with pytest.raises(anthropic.APIStatusError) as refused:
        client.messages.batches.create(requests=requests(20))
    assert refused.value.status_code == 413
    assert cast(dict[str, Any], refused.value.body)["error"]["type"] == "request_too_large"


def test_hostile_answers(client: anthropic.Anthropic, emu: Emulator) -> None:
    batch = client.messages.batches.create(requests=requests(1))
    url = f"{emu.base_url}/anthropic/v1/messages/batches"
    headers = {"x-api-key": KEY, "anthropic-version": "2026-10-21"}
    faults(emu, echo_key=True)
    with pytest.raises(anthropic.NotFoundError, match=f"API key: {KEY}"):
        client.messages.batches.retrieve("msgbatch_missing")
    faults(emu, echo_key=False, wrong_types="state")
    assert client.messages.batches.retrieve(batch.id).processing_status == 3  # type: ignore[comparison-overlap]
    faults(emu, wrong_types="page")
    assert httpx.get(url, headers=headers).json()[0]["id"] == batch.id
    faults(emu, wrong_types="", endless_pages=True)
    endless = httpx.get(url, headers=headers, params={"after_id": "page-4"}).json()
    assert endless["has_more"] is True and endless["last_id"] == "page-5"
    assert [b["id"] for b in endless["data"]] == [batch.id]
    faults(emu, endless_pages=False, repeat_page_token=True)
    assert httpx.get(url, headers=headers).json()["last_id"] == "the-same-page-again"
    faults(emu, repeat_page_token=False, trickle=0.0002)
    assert client.messages.batches.retrieve(batch.id).id == batch.id


def test_wrong_types_reach_the_messages_in_results(
    client: anthropic.Anthropic, emu: Emulator
) -> None:
    batch = client.messages.batches.create(requests=requests(2))
    advance(emu, LATENCY)
    url = f"{emu.base_url}/anthropic/v1/messages/batches/{batch.id}/results"
    headers = {"x-api-key": KEY, "anthropic-version": "2026-10-21"}
    for fault, content in (("candidates", "many"), ("parts", ["text"])):
        faults(emu, wrong_types=fault)
        lines = [json.loads(x) for x in httpx.get(url, headers=headers).text.splitlines()]
        assert [line["result"]["message"]["content"] for line in lines] == [content] * 2
    faults(emu, wrong_types="")
    assert [r for _, r in result_types(client, batch.id)] == ["succeeded"] * 2
