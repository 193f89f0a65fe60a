"""Partial responses on the emulator's Gemini batches, over real HTTP: the `fields` system
parameter and the `X-Goog-FieldMask` header choose what a get or a list answers with, as on
Google's APIs; without them the answer is whole, as the SDK expects."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from runner.emulator import Emulator
from runner.emulator.gemini import fieldmask
from runner.providers.gemini.wire import ANSWER_FIELDS, JOB_FIELDS, LIST_FIELDS

KEY = {"x-goog-api-key": "k"}
INLINE = {"batch": {"displayName": "masked", "inputConfig": {"requests": {"requests": [
    {"request": {"contents": [{"parts": [{"text": f"q{n}"}]}]}, "metadata": {"key": f"k{n}"}}
    for n in range(3)]}}}}


@pytest.fixture
def done(tmp_path: Path) -> Iterator[tuple[Emulator, str]]:
    """An emulator holding one finished batch sent inline, and the batch's name."""
    with Emulator(tmp_path / "emu", latency=0) as emu:
        created = httpx.post(f"{emu.base_url}/v1beta/models/m:batchGenerateContent",
                             json=INLINE, headers=KEY).json()
        yield emu, created["name"]


def get(emu: Emulator, path: str, **kwargs: Any) -> httpx.Response:
    return httpx.get(f"{emu.base_url}/v1beta/{path}", headers={**KEY, **kwargs.pop("headers",
                                                                                {})}, **kwargs)


def test_a_get_without_a_mask_is_whole(done: tuple[Emulator, str]) -> None:
    emu, name = done
    op = get(emu, name).json()
    assert len(op["metadata"]["output"]["inlinedResponses"]["inlinedResponses"]) == 3
    assert len(op["response"]["inlinedResponses"]["inlinedResponses"]) == 3


def test_the_runner_s_poll_mask_leaves_the_answers_out(done: tuple[Emulator, str]) -> None:
    emu, name = done
    op = get(emu, name, params={"fields": JOB_FIELDS}).json()
    assert set(op) <= {"name", "done", "metadata", "response"} and op["done"] is True
    assert op.get("response", {}) == {}             # it holds no responsesFile
    meta = op["metadata"]
    assert meta["state"] == "BATCH_STATE_SUCCEEDED" and meta["name"] == name
    assert meta["batchStats"] == {"requestCount": "3", "successfulRequestCount": "3"}
    assert meta["output"] == {} and "inlinedResponses" not in str(op)
    assert meta["@type"].endswith("GenerateContentBatch")      # an Any keeps its type


def test_the_header_is_the_same_mask(done: tuple[Emulator, str]) -> None:
    emu, name = done
    by_header = get(emu, name, headers={"X-Goog-FieldMask": "name,metadata.state"}).json()
    by_query = get(emu, name, params={"fields": "name,metadata(state)"}).json()
    assert by_header == by_query == {"name": name, "metadata": {
        "@type": by_query["metadata"]["@type"], "state": "BATCH_STATE_SUCCEEDED"}}


def test_the_answers_alone(done: tuple[Emulator, str]) -> None:
    emu, name = done
    op = get(emu, name, params={"fields": ANSWER_FIELDS}).json()
    items = op["metadata"]["output"]["inlinedResponses"]["inlinedResponses"]
    assert sorted(item["metadata"]["key"] for item in items) == ["k0", "k1", "k2"]
    assert set(op) == {"metadata"} and set(op["metadata"]) == {"@type", "output"}


def test_a_list_applies_the_mask_to_each_operation(done: tuple[Emulator, str]) -> None:
    emu, name = done
    page = get(emu, "batches", params={"fields": LIST_FIELDS, "pageSize": 1}).json()
    (op,) = page["operations"]
    assert op["name"] == name and "inlinedResponses" not in str(page)
    without_token = get(emu, "batches", params={"fields": "operations.name"}).json()
    assert without_token == {"operations": [{"name": name}]}


@pytest.mark.parametrize("mask", ["name,", "metadata(state", "metadata..state", "a b",
                                  "nosuchfield", "operations.name"])
def test_a_bad_mask_is_refused_with_400(done: tuple[Emulator, str], mask: str) -> None:
    emu, name = done
    answer = get(emu, name, params={"fields": mask})
    assert answer.status_code == 400
    assert answer.json()["error"]["status"] == "INVALID_ARGUMENT"


@pytest.mark.parametrize(("text", "parsed"), [
    ("a", {"a": None}),
    ("a.b,a.c", {"a": {"b": None, "c": None}}),
    ("a/b", {"a": {"b": None}}),
    ("a(b,c(d)),e", {"a": {"b": None, "c": {"d": None}}, "e": None}),
    ("a.b,a", {"a": None}),
    ("a,a.b", {"a": None}),
])
def test_the_mask_syntax(text: str, parsed: fieldmask.Mask) -> None:
    assert fieldmask.parse(text) == parsed


def test_a_mask_over_a_repeated_field_applies_to_each_element() -> None:
    mask = fieldmask.parse("items(id),*")
    assert fieldmask.apply(fieldmask.parse("items(id)"), {"items": [{"id": 1, "x": 2}], "n": 3}) \
        == {"items": [{"id": 1}]}
    assert fieldmask.apply(mask, {"items": [{"id": 1, "x": 2}], "n": 3}) == \
        {"items": [{"id": 1}], "n": 3}


def test_a_mask_inside_each_answer_and_the_whole_agree(done: tuple[Emulator, str]) -> None:
    """Whole answers are written as stored, unparsed; a mask reaching inside each answer
    parses them: both say the same."""
    emu, name = done
    whole = get(emu, name).json()
    items = whole["metadata"]["output"]["inlinedResponses"]["inlinedResponses"]
    assert items == whole["response"]["inlinedResponses"]["inlinedResponses"]
    keys = get(emu, name, params={
        "fields": "metadata.output.inlinedResponses.inlinedResponses.metadata"}).json()
    assert keys["metadata"]["output"]["inlinedResponses"]["inlinedResponses"] == \
        [{"metadata": item["metadata"]} for item in items]
