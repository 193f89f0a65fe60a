"""Declared JSON answers, piece by piece: Gemini's OpenAPI-subset schema read as the JSON
Schema it means, the emulator's documents fitting every kind of schema, the least document
output templates are checked against; and the official SDKs, unchanged, getting structured
answers from the emulator over real HTTP."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import jsonschema
import openai
import pytest
from google import genai
from google.genai import types

from runner.answers import stand_in
from runner.emulator import Emulator
from runner.emulator.documents import document, text_of
from runner.providers.gemini.answers import json_answer, json_schema_of

LATENCY = 60.0


def test_gemini_response_schema_means_this_json_schema() -> None:
    schema = {"type": "OBJECT", "nullable": False, "propertyOrdering": ["b", "a"],
              "properties": {
                  "a": {"type": "STRING", "format": "enum", "enum": ["x", "y"],
                        "nullable": True},
                  "b": {"type": "ARRAY", "minItems": "1", "maxItems": "2",
                        "items": {"type": "NUMBER", "minimum": 0, "example": 3}},
                  "c": {"anyOf": [{"type": "INTEGER"}, {"type": "BOOLEAN"}]}},
              "required": ["a"]}
    assert json_schema_of(schema) == {
        "type": "object", "required": ["a"], "properties": {
            "a": {"type": ["string", "null"], "enum": ["x", "y", None]},
            "b": {"type": "array", "minItems": 1, "maxItems": 2,
                  "items": {"type": "number", "minimum": 0}},
            "c": {"anyOf": [{"type": "integer"}, {"type": "boolean"}]}}}
    request = {"generation_config": {"response_mime_type": "application/json",
                                     "response_schema": schema}}
    found = json_answer(request)
    assert found is not None and found.at == ("generationConfig", "responseSchema")
    assert found.schema == json_schema_of(schema)
    assert json_answer({"generationConfig": {"responseMimeType": "text/plain",
                                             "responseSchema": schema}}) is None
    bare = json_answer({"generationConfig": {"responseMimeType": "application/json"}})
    assert bare is not None and bare.schema is None


SCHEMAS: list[dict[str, Any]] = [
    {"type": "object", "properties": {"label": {"enum": ["a", "b", "c"]},
                                      "score": {"type": "number", "minimum": 0.5,
                                                "maximum": 0.9},
                                      "n": {"type": "integer", "minimum": 3, "maximum": 4},
                                      "ok": {"type": "boolean"},
                                      "tags": {"type": "array", "items": {"type": "string"},
                                               "minItems": 2, "maxItems": 3},
                                      "none": {"type": "null"}},
     "required": ["label", "score"], "additionalProperties": False},
    {"$defs": {"item": {"type": "object", "properties": {"name": {"type": "string",
                                                                  "minLength": 40}},
                        "required": ["name"]}},
     "type": "object", "properties": {"items": {"type": "array",
                                                "items": {"$ref": "#/$defs/item"}},
                                      "either": {"anyOf": [{"type": "integer"},
                                                           {"type": "string"}]},
                                      "fixed": {"const": 7},
                                      "maybe": {"type": ["null", "string"], "maxLength": 3}},
     "required": ["items"]},
    {"type": "array", "items": {"type": "string", "enum": ["yes", "no"]}},
]


@pytest.mark.parametrize("schema", SCHEMAS)
def test_the_emulator_answers_a_document_that_fits_the_schema(schema: dict[str, Any]) -> None:
    for prompt in ("one", "two", "three ✓"):
        found = document(schema, prompt)
        jsonschema.validate(found, schema)
        assert document(schema, prompt) == found            # the same prompt, the same one
        assert json.loads(text_of(schema, prompt)) == found
    assert json.loads(text_of(None, "hi")) == {"echo": "hi"}


def test_a_gemini_schema_gets_a_document_in_its_property_order() -> None:
    schema = {"type": "OBJECT", "propertyOrdering": ["z", "a"],
              "properties": {"a": {"type": "STRING", "maxLength": "4"}, "z": {"type": "INTEGER"}}}
    text = text_of(schema, "prompt")
    assert list(json.loads(text)) == ["z", "a"] and json.loads(text)["a"] == "echo"
    jsonschema.validate(json.loads(text), json_schema_of(schema))


def test_the_least_document_holds_what_the_schema_requires() -> None:
    assert stand_in(SCHEMAS[0]) == {"label": "a", "score": 0.5}
    jsonschema.validate(stand_in(SCHEMAS[0]), SCHEMAS[0])
    assert set(stand_in(SCHEMAS[0], full=True)) == set(SCHEMAS[0]["properties"])
    assert stand_in(SCHEMAS[1]) == {"items": [{"name": ""}]}
    assert stand_in({"type": "array", "maxItems": 0}) == []


@pytest.fixture
def emu(tmp_path: Path) -> Iterator[Emulator]:
    with Emulator(tmp_path / "state", latency=LATENCY) as emulator:
        yield emulator


def advance(emu: Emulator) -> None:
    httpx.post(f"{emu.base_url}/_emulator/clock",
               json={"advance": LATENCY + 1}).raise_for_status()


CLASS = {"type": "object", "properties": {"label": {"type": "string", "enum": ["a", "b"]},
                                          "why": {"type": "string"}},
         "required": ["label", "why"], "additionalProperties": False}


def test_the_gemini_sdk_gets_a_structured_answer(emu: Emulator) -> None:
    client = genai.Client(api_key="k", http_options=types.HttpOptions(base_url=emu.base_url))
    config = types.GenerateContentConfig(response_mime_type="application/json",
                                         response_schema=CLASS)
    job = client.batches.create(model="gemini-2.5-flash", src=[
        types.InlinedRequest(contents="Label this", metadata={"key": "k1"}, config=config)])
    advance(emu)
    assert job.name is not None
    done = client.batches.get(name=job.name)
    assert done.dest is not None and done.dest.inlined_responses is not None
    response = done.dest.inlined_responses[0].response
    assert response is not None and response.text is not None
    assert json.loads(response.text) == document(CLASS, "Label this")


def test_the_openai_sdk_gets_a_structured_answer(emu: Emulator) -> None:
    with openai.OpenAI(api_key="k", base_url=emu.base_url + "/openai/v1") as client:
        line = {"custom_id": "k1", "method": "POST", "url": "/v1/chat/completions", "body": {
            "model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Label this"}],
            "response_format": {"type": "json_schema",
                                "json_schema": {"name": "c", "strict": True, "schema": CLASS}}}}
        file = client.files.create(file=("in.jsonl", json.dumps(line).encode(), "application/jsonl"),
                                   purpose="batch")
        batch = client.batches.create(input_file_id=file.id, endpoint="/v1/chat/completions",
                                      completion_window="24h")
        advance(emu)
        done = client.batches.retrieve(batch.id)
        assert done.output_file_id is not None
        result = json.loads(client.files.content(done.output_file_id).text)
    content = result["response"]["body"]["choices"][0]["message"]["content"]
    assert json.loads(content) == document(CLASS, "Label this")


def test_the_anthropic_sdk_gets_a_structured_answer(emu: Emulator) -> None:
    with anthropic.Anthropic(api_key="k", base_url=emu.base_url + "/anthropic") as client:
        batch = client.messages.batches.create(requests=[{"custom_id": "k1", "params": {
            "model": "claude-sonnet-4-5", "max_tokens": 1000,
            "messages": [{"role": "user", "content": "Label this"}],
            "output_config": {"format": {"type": "json_schema", "schema": CLASS}}}}])
        advance(emu)
        found = list(client.messages.batches.results(batch.id))
    assert found[0].result.type == "succeeded"
    block = found[0].result.message.content[0]
    assert block.type == "text" and json.loads(block.text) == document(CLASS, "Label this")
