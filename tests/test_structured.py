"""Structured answers as columns: a request that declares its answer JSON gets, from the
emulator, a document that fits its schema; the runner parses each answer once and offers it
to csv columns as `json`; an answer that is not JSON, or does not match the schema, goes to
the errors output with the reason and is sent again by `retry_failed`. End to end over real
HTTP for each provider, and with the official SDKs."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from conftest import MINIMAL, ROWS_MANIFEST, write_manifest
from providers_matrix import ANTHROPIC, GEMINI, OPENAI, PROVIDERS, Flavour, serve

from runner import lockfile
from runner.cli import main
from runner.emulator.documents import document

LABELS = ["delivery", "quality", "price", "other"]
SCHEMA = {"type": "object", "properties": {
    "topic": {"type": "string", "enum": LABELS},
    "stars": {"type": "integer", "minimum": 1, "maximum": 5},
    "summary": {"type": "string", "maxLength": 30}},
    "required": ["topic", "stars", "summary"], "additionalProperties": False}
GEMINI_SCHEMA = {"type": "OBJECT", "properties": {
    "topic": {"type": "STRING", "enum": LABELS},
    "stars": {"type": "INTEGER", "minimum": 1, "maximum": 5},
    "summary": {"type": "STRING", "maxLength": "30"}},
    "required": ["topic", "stars", "summary"], "propertyOrdering": ["summary", "topic"]}
PROMPT = "Classify: {{ row.body }}"
TEXTS = ["Arrived late", "Broke in a week", "Too dear", "Fine"]
COLUMNS = ('\n        id: "{{ row.n }}"\n        topic: "{{ json.topic }}"'
           '\n        stars: "{{ json.stars }}"\n        summary: "{{ (text | fromjson).summary }}"')


def request_of(flavour: Flavour, schema: dict[str, Any] | None = None,
               endpoint: str | None = None, max_tokens: int = 1000) -> str:
    """spec.request (as flow-style JSON) asking `flavour` for an answer of the schema."""
    prompt = [{"role": "user", "content": PROMPT}]
    body: dict[str, Any]
    if flavour is GEMINI:
        body = {"contents": [{"role": "user", "parts": [{"text": PROMPT}]}],
                "generationConfig": {"responseMimeType": "application/json", **(
                    # Google's own schema takes OBJECT, STRING...; a JSON Schema goes as such
                    {"responseJsonSchema": schema} if schema and schema["type"].islower()
                    else {"responseSchema": schema or GEMINI_SCHEMA})}}
    elif flavour is OPENAI and endpoint == "/v1/responses":
        body = {"input": PROMPT, "text": {"format": {
            "type": "json_schema", "name": "topics", "strict": True, "schema": schema or SCHEMA}}}
    elif flavour is OPENAI:
        body = {"messages": prompt, "max_completion_tokens": max_tokens,
                "response_format": {"type": "json_schema", "json_schema": {
                    "name": "topics", "strict": True, "schema": schema or SCHEMA}}}
    else:
        body = {"messages": prompt, "max_tokens": max_tokens,
                "output_config": {"format": {"type": "json_schema", "schema": schema or SCHEMA}}}
    return json.dumps(body)


def project(tmp_path: Path, flavour: Flavour, request: str, extra: str = "") -> Path:
    """ROWS_MANIFEST for `flavour`, sending `request`, with the answers' fields as columns."""
    d = tmp_path / "proj"
    start, end = ROWS_MANIFEST.index("  request:"), ROWS_MANIFEST.index("  outputs:")
    write_manifest(d, (ROWS_MANIFEST[:start] + f"  request: {request}\n" + ROWS_MANIFEST[end:])
                   .replace("provider: gemini\n  model: gemini-2.5-flash\n",
                            f"provider: {flavour.name}\n  model: {flavour.model}\n{extra}")
                   .replace('{n: "{{ row.n }}", answer: "{{ text }}"}', COLUMNS))
    (d / "data").mkdir()
    (d / "data/rows.jsonl").write_text("".join(json.dumps({"n": n, "body": text}) + "\n"
                                               for n, text in enumerate(TEXTS, 1)))
    return d


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def errors(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize("flavour, endpoint", [
    (GEMINI, None), (OPENAI, None), (OPENAI, "/v1/responses"), (ANTHROPIC, None)],
    ids=["gemini", "openai-chat", "openai-responses", "anthropic"])
def test_a_declared_json_answer_becomes_columns(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        flavour: Flavour, endpoint: str | None) -> None:
    extra = f"  endpoint: {endpoint}\n" if endpoint else ""
    d = project(tmp_path, flavour, request_of(flavour, endpoint=endpoint), extra)
    with serve(flavour, tmp_path / "emu", monkeypatch, 0.1):
        assert main(["apply", str(d)]) == 0, capsys.readouterr().err
    rows = read_csv(d / "out/big.csv")
    assert [r["id"] for r in rows] == ["1", "2", "3", "4"]
    for row, text in zip(rows, TEXTS):
        expected = document(SCHEMA, f"Classify: {text}")
        assert row == {"id": row["id"], "topic": expected["topic"],
                       "stars": str(expected["stars"]), "summary": expected["summary"]}
        assert row["topic"] in LABELS and 1 <= int(row["stars"]) <= 5
        assert row["summary"] == f"echo: Classify: {text}"[:30]
    assert len({r["topic"] for r in rows}) > 1      # derived from each prompt
    for line in (d / "out/big.jsonl").read_text().splitlines():
        jsonschema.validate(json.loads(json.loads(line)["text"]), SCHEMA)
    assert (d / "out/big.errors.jsonl").read_text() == ""


def test_an_answer_that_misses_the_schema_is_a_failed_request_sent_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The emulator does not honour `pattern`, so its answer breaks this schema: each request
    fails, naming the field, and retry_failed sends them again as a follow-up job."""
    schema = {"type": "OBJECT", "properties": {
        "topic": {"type": "STRING", "enum": LABELS},
        "stars": {"type": "INTEGER"}, "summary": {"type": "STRING", "pattern": "^[0-9]+$"}},
        "required": ["topic", "stars", "summary"]}
    d = project(tmp_path, GEMINI, request_of(GEMINI, schema), extra="  retry_failed: 1\n")
    with serve(GEMINI, tmp_path / "emu", monkeypatch, 0.1) as emu:
        assert main(["apply", str(d)]) == 1
        assert len(GEMINI.jobs(emu)) == 2               # the job, and its follow-up
    assert "4 of 4 requests failed" in capsys.readouterr().out
    failed = errors(d / "out/big.errors.jsonl")
    assert [f["key"] for f in failed] == ["r1", "r2", "r3", "r4"]
    message = failed[0]["error"]["message"]
    assert message.startswith("the answer does not match "
                              "spec.request.generationConfig.responseSchema: at $.summary: ")
    assert "does not match '^[0-9]+$'" in message
    assert "candidates" in failed[0]["error"]["response"]
    assert read_csv(d / "out/big.csv") == []
    entry = lockfile.load(d / "batches.lock").batches["big"]
    assert entry.counts == {"succeeded": 0, "failed": 4} and len(entry.retries) == 1


def test_an_answer_cut_short_is_not_json_and_fails_its_request(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Claude's answer stops at max_tokens, in the middle of the document."""
    d = project(tmp_path, ANTHROPIC, request_of(ANTHROPIC, max_tokens=5),
                extra='  allowed_failures: "100%"\n')
    with serve(ANTHROPIC, tmp_path / "emu", monkeypatch, 0.1):
        assert main(["apply", str(d)]) == 0, capsys.readouterr().err
    failed = errors(d / "out/big.errors.jsonl")
    assert len(failed) == 4
    assert failed[0]["error"]["message"].startswith(
        "the answer is not JSON, as spec.request.output_config.format.schema asks: ")
    assert failed[0]["error"]["response"]["stop_reason"] == "max_tokens"


def test_without_a_declaration_json_is_whatever_the_text_holds(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """No schema declared: the echo is not JSON, so `json` is None, which a column can test;
    the request is not failed for it."""
    d = tmp_path / "proj"
    write_manifest(d, MINIMAL.replace("What is 1+1?\"}", "What is 1+1?\", meta: '{\"size\": 3}'}")
                   .replace("    - path: out/tiny.jsonl\n", """\
    - path: out/plain.csv
      columns:
        parsed: "{{ json is none }}"
        size: "{{ (row.meta | fromjson).size if row.meta is defined else '' }}"
        topic: "{{ json.topic if json else 'none' }}"
"""))
    with serve(GEMINI, tmp_path / "emu", monkeypatch, 0.1):
        assert main(["apply", str(d)]) == 0, capsys.readouterr().err
    assert read_csv(d / "out/plain.csv") == [{"parsed": "True", "size": "3", "topic": "none"},
                                            {"parsed": "True", "size": "", "topic": "none"}]


@PROVIDERS
def test_a_column_reading_an_optional_property_must_give_a_default(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], flavour: Flavour) -> None:
    schema: dict[str, Any] = {"type": "object", "properties": {
        "topic": {"type": "string", "enum": LABELS}, "stars": {"type": "integer"},
        "summary": {"type": "string"}}, "required": ["topic", "summary"]}
    d = project(tmp_path, flavour, request_of(flavour, schema))
    assert main(["validate", str(d)]) == 1
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and "spec.outputs[1].columns.stars" in error
    assert "the response schema does not require this property" in error
    manifest = d / "m.yaml"
    manifest.write_text(manifest.read_text().replace("{{ json.stars }}",
                                                     "{{ json.stars | default('') }}"))
    assert main(["validate", str(d)]) == 0, capsys.readouterr().err
    manifest.write_text(manifest.read_text().replace("json.topic", "json.topik"))
    assert main(["validate", str(d)]) == 1
    error = capsys.readouterr().err
    assert "columns.topic" in error and "has no attribute 'topik'" in error
    assert "does not require" not in error


def test_a_response_schema_that_is_not_one_fails_validate(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = project(tmp_path, OPENAI, request_of(OPENAI, {"type": "object", "required": "topic"}))
    assert main(["validate", str(d)]) == 1
    error = capsys.readouterr().err.strip()
    assert error.startswith(f"error: {d / 'm.yaml'}:9: spec.request.response_format.json_schema"
                            ".schema is not a valid schema: "), error
