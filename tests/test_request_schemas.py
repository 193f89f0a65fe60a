"""The request schemas come from the providers' published descriptions
(runner/providers/schemas): validate refuses a key the provider does not define, at any
depth, in one line naming the file, the line and the key, with the closest name."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import write_manifest

from runner.cli import main
from runner.providers.schemas import generate

GEMINI = """\
apiVersion: batch-runner/v1
kind: Batch
metadata: {name: g}
spec:
  provider: gemini
  model: gemini-2.5-flash
  items: [{id: a}]
  key: "{{ row.id }}"
  request:
    contents: [{role: user, parts: [{text: hi}]}]
    generationConfig:
      temperature: 0
      maxOutputTokens: 16
  outputs: [{path: out/g.jsonl}]
"""

OPENAI = """\
apiVersion: batch-runner/v1
kind: Batch
metadata: {name: o}
spec:
  provider: openai
  model: gpt-4o-mini
  items: [{id: a}]
  key: "{{ row.id }}"
  request:
    messages: [{role: user, content: hi}]
    tools:
      - type: function
        function: {name: lookup, parameters: {type: object}}
  outputs: [{path: out/o.jsonl}]
"""

ANTHROPIC = """\
apiVersion: batch-runner/v1
kind: Batch
metadata: {name: c}
spec:
  provider: anthropic
  model: claude-haiku-4-5
  items: [{id: a}]
  key: "{{ row.id }}"
  request:
    max_tokens: 100
    messages: [{role: user, content: hi}]
    thinking: {type: enabled, budget_tokens: 1024}
  outputs: [{path: out/c.jsonl}]
"""


def test_the_schemas_are_generated_from_the_saved_descriptions() -> None:
    """Regenerating from the copies kept in the repository changes nothing."""
    assert generate.stale() == []


@pytest.mark.parametrize("provider", ["gemini", "openai", "anthropic"])
def test_each_copy_says_where_it_comes_from(provider: str) -> None:
    source = generate.load(provider)["source"]
    assert source["url"].startswith("https://pypi.org/project/")
    assert source["version"] and source["extracted"][:2] == "20"
    assert "trimmed" in source


@pytest.mark.parametrize(("manifest", "change", "words"), [
    (GEMINI, ("maxOutputTokens", "maxOutputToken"),
     "m.yaml:13: spec.request.generationConfig: unknown key 'maxOutputToken' "
     "(did you mean 'maxOutputTokens'?)"),
    (GEMINI, ("    generationConfig:", "    safetySettings:\n"
              "      - {category: HARM_CATEGORY_HARASSMENT, treshold: BLOCK_NONE}\n"
              "    generationConfig:"),
     "m.yaml:12: spec.request.safetySettings[0]: unknown key 'treshold' "
     "(did you mean 'threshold'?)"),
    (GEMINI, ("    generationConfig:", "    safetySettings:\n"
              "      - {category: HARM_CATEGORY_HARASMENT, threshold: BLOCK_NONE}\n"
              "    generationConfig:"),
     "spec.request.safetySettings[0].category: 'HARM_CATEGORY_HARASMENT' is not supported"),
    (GEMINI, ("    generationConfig:", "    tools:\n"
              "      - functionDeclarations: [{name: f, descripton: x}]\n"
              "    generationConfig:"),
     "spec.request.tools[0].functionDeclarations[0]: unknown key 'descripton' "
     "(did you mean 'description'?)"),
    (GEMINI, ("      temperature: 0", "      thinkingConfig: {thinkingBudget: 0, budget: 1}"),
     "spec.request.generationConfig.thinkingConfig: unknown key 'budget'"),
    (GEMINI, ("  request:", "  request:\n    labels: {team: x}"),
     "spec.request: unknown key 'labels'"),
    (OPENAI, ("parameters:", "parametrs:"),
     "m.yaml:13: spec.request.tools[0].function: unknown key 'parametrs' "
     "(did you mean 'parameters'?)"),
    (OPENAI, ("role: user", "role: usr"),
     "spec.request.messages[0].role: 'usr' is not supported; use one of: developer, system, "
     "user, assistant, tool, function"),
    (OPENAI, ("  request:", "  request:\n    response_format: {type: json_schema, "
              "json_schema: {name: x, schema: {}, strct: true}}"),
     "spec.request.response_format.json_schema: unknown key 'strct' "
     "(did you mean 'strict'?)"),
    (ANTHROPIC, ("budget_tokens", "budget_token"),
     "m.yaml:12: spec.request.thinking: unknown key 'budget_token' "
     "(did you mean 'budget_tokens'?)"),
    (ANTHROPIC, ("content: hi", "content: [{type: txt, text: hi}]"),
     "spec.request.messages[0].content[0].type: 'txt' is not supported; use one of: "),
])
def test_validate_refuses_what_the_provider_does_not_define(
        tmp_path: Path, manifest: str, change: tuple[str, str], words: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    write_manifest(tmp_path, manifest.replace(*change))
    assert main(["validate", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert words in err and err.count("\n") == 1, err


@pytest.mark.parametrize("manifest", [GEMINI, OPENAI, ANTHROPIC])
def test_what_the_provider_defines_validates(tmp_path: Path, manifest: str,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    write_manifest(tmp_path, manifest)
    assert main(["validate", str(tmp_path)]) == 0, capsys.readouterr().err


def test_a_structured_output_request_validates(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    schema = {"type": "OBJECT", "properties": {"label": {"type": "STRING",
                                                         "enum": ["a", "b"]}}}
    text = GEMINI.replace("temperature: 0", "responseMimeType: application/json\n"
                          f"      responseSchema: {json.dumps(schema)}")
    write_manifest(tmp_path, text)
    assert main(["validate", str(tmp_path)]) == 0, capsys.readouterr().err
