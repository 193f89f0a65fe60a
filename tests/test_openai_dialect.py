"""The OpenAI dialect, pure: its input lines, what it reads from result lines (answers, and
failures that name their field, never raising), its token estimate and output bound per
endpoint, and its request schemas as validate says them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import write_manifest

from runner import api
from runner.cli import main
from runner.providers.dialect import Answer
from runner.providers.openai import DIALECT
from runner.providers.openai.tokens import IMAGE_TOKENS, MESSAGE_TOKENS
from runner.usage import Usage

CHAT = "/v1/chat/completions"
RESPONSES = "/v1/responses"
EMBEDDINGS = "/v1/embeddings"


def line(body: Any, status: object = 200, error: Any = None) -> dict[str, Any]:
    response = None if body is None else {"status_code": status, "request_id": "req_1",
                                          "body": body}
    return {"id": "batch_req_1", "custom_id": "k", "response": response, "error": error}


def chat(content: Any, refusal: Any = None, finish: str = "stop") -> dict[str, Any]:
    return {"object": "chat.completion", "choices": [{"index": 0, "finish_reason": finish,
            "message": {"role": "assistant", "content": content, "refusal": refusal}}],
            "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}}


def test_an_input_line_names_its_endpoint_and_the_model_rides_in_the_body() -> None:
    body = DIALECT.body({"input": "hi"}, "text-embedding-3-small")
    request = json.dumps(body, separators=(",", ":")).encode()
    written = DIALECT.framing(EMBEDDINGS).line(b'"k\\"1"', request)
    assert json.loads(written) == {"custom_id": 'k"1', "method": "POST",
                                   "url": "/v1/embeddings", "body": body}
    assert body == {"model": "text-embedding-3-small", "input": "hi"}
    assert DIALECT.framing(EMBEDDINGS).split(written) == (b'"k\\"1"', request)
    assert DIALECT.framing(None) == DIALECT.framing(CHAT)
    assert DIALECT.result_key(line(chat("x"))) == "k"


def test_a_chat_answer() -> None:
    read = DIALECT.read_result(line(chat("four", finish="length")))
    assert isinstance(read, Answer)
    assert (read.text, read.finish_reason, read.usage) == ("four", "length", Usage(7, 3))
    assert read.usage_raw["total_tokens"] == 10 and read.response["object"] == "chat.completion"


@pytest.mark.parametrize(("result", "words"), [
    (line(chat(None, refusal="I can't help with that.")), "the model refused: I can't help"),
    (line(chat(None, finish="tool_calls")), "has no content (finish_reason: tool_calls)"),
    (line({"error": {"message": "Invalid model", "type": "invalid_request_error"}}, 400),
     "Invalid model"),
    (line(None, error={"code": "batch_expired", "message": "not executed in time"}),
     "not executed in time"),
    (None, "no result for this key"),
    (line({**chat("x"), "choices": "many"}), "malformed: response.body.choices is a string"),
    (line({"choices": [{"message": "text"}]}), "response.body.choices[0].message is a string"),
    (line(chat(["x"])), "response.body.choices[0].message.content is an array"),
    ({"custom_id": "k", "response": "ok", "error": None}, "malformed: response is a string"),
    (line(chat("x"), status="200"), "response.status_code is a string, expected an integer"),
    (line({**chat("x"), "usage": {"prompt_tokens": -1}}), "usage.prompt_tokens is not a count"),
    (line({"id": "x"}), "response.body is an object, expected an answer with choices")])
def test_a_failure_is_an_error_naming_why(result: Any, words: str) -> None:
    read = DIALECT.read_result(result)
    assert not isinstance(read, Answer)
    assert words in read["message"]


def test_an_http_error_keeps_its_status_and_the_providers_error() -> None:
    read = DIALECT.read_result(line({"error": {"message": "m", "code": "c"}}, 429))
    assert read == {"message": "m", "code": "c", "status_code": 429}


def test_a_responses_answer_joins_its_output_text() -> None:
    body = {"object": "response", "status": "completed", "output": [
        {"type": "reasoning", "summary": []},
        {"type": "message", "content": [{"type": "output_text", "text": "one "},
                                        {"type": "output_text", "text": "two"}]}],
            "usage": {"input_tokens": 5, "output_tokens": 2}}
    read = DIALECT.read_result(line(body))
    assert isinstance(read, Answer)
    assert (read.text, read.finish_reason, read.usage) == ("one two", "completed", Usage(5, 2))
    cut = {**body, "status": "incomplete", "incomplete_details": {"reason": "max_output_tokens"},
           "output": [{"type": "reasoning"}]}
    failed = DIALECT.read_result(line(cut))
    assert not isinstance(failed, Answer)
    assert failed["message"] == "the response has no output_text (status: max_output_tokens)"
    refused = {**body, "output": [{"type": "message", "content": [
        {"type": "refusal", "refusal": "No."}]}]}
    assert DIALECT.read_result(line(refused)) == {"message": "the model refused: No.",
                                                  "response": refused}


def test_an_embedding_is_its_vector_as_json() -> None:
    body = {"object": "list", "data": [{"object": "embedding", "index": 0,
                                        "embedding": [0.5, -0.25, 1e-05, 3]}],
            "usage": {"prompt_tokens": 2, "total_tokens": 2}}
    read = DIALECT.read_result(line(body))
    assert isinstance(read, Answer)
    assert json.loads(read.text) == [0.5, -0.25, 1e-05, 3] and read.finish_reason is None
    assert read.usage == Usage(2, 0)
    several = {**body, "data": [{"index": 1, "embedding": [2.0]}, {"index": 0, "embedding": [1.0]}]}
    read = DIALECT.read_result(line(several))
    assert isinstance(read, Answer) and json.loads(read.text) == [[1.0], [2.0]]
    packed = {**body, "data": [{"index": 0, "embedding": "AAAAPw=="}]}
    read = DIALECT.read_result(line(packed))
    assert isinstance(read, Answer) and read.text == "AAAAPw=="
    wrong = {**body, "data": [{"index": 0, "embedding": [0.5, "x"]}]}
    read = DIALECT.read_result(line(wrong))
    assert not isinstance(read, Answer)
    assert "response.body.data[0].embedding is an array" in read["message"]


def test_tokens_and_output_bounds_per_endpoint() -> None:
    request = {"model": "m", "messages": [
        {"role": "system", "content": "12345678"},
        {"role": "user", "content": [{"type": "text", "text": "1234"},
                                     {"type": "image_url", "image_url": {"url": "x"}}]}],
               "max_completion_tokens": 100, "n": 2}
    assert DIALECT.request_tokens(request, CHAT) == (2 * MESSAGE_TOKENS + 2 + 1 + IMAGE_TOKENS, 1)
    assert DIALECT.output_bound(request, CHAT) == 200
    assert DIALECT.output_bound({"messages": [], "max_tokens": 7}, CHAT) == 7
    assert DIALECT.output_bound({"messages": []}, CHAT) is None
    assert DIALECT.request_tokens({"input": "12345678", "instructions": "1234"}, RESPONSES) == \
        (3, 0)
    assert DIALECT.output_bound({"input": "x", "max_output_tokens": 9}, RESPONSES) == 9
    assert DIALECT.output_bound({"input": "x"}, RESPONSES) is None
    assert DIALECT.request_tokens({"input": ["12345678", "1234"]}, EMBEDDINGS) == (3, 0)
    assert DIALECT.request_tokens({"input": [[1, 2, 3]]}, EMBEDDINGS) == (3, 0)
    assert DIALECT.output_bound({"input": "x"}, EMBEDDINGS) == 0
    # without the endpoint, told from the keys
    assert DIALECT.output_bound({"input": "x", "dimensions": 8}, None) == 0
    assert DIALECT.output_bound({"messages": [], "max_tokens": 3}, None) == 3


MANIFEST = """\
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
  outputs: [{path: out/o.jsonl}]
"""


@pytest.mark.parametrize(("change", "words"), [
    (("    messages:", "    stream: true\n    messages:"),
     "spec.request.stream: not allowed: the Batch API refuses streamed requests"),
    (("    messages:", "    temprature: 0\n    messages:"),
     "unknown key 'temprature' (did you mean 'temperature'?)"),
    (("  request:", "  endpoint: /v1/embeddings\n  request:"), "spec.request: unknown key"),
    (("  request:", "  endpoint: /v1/images\n  request:"),
     "spec.endpoint: '/v1/images' is not supported; use one of: /v1/chat/completions, "
     "/v1/responses, /v1/embeddings"),
    (("role: user", "role: usr"), "spec.request.messages[0].role"),
    (("  request:\n", "  request:\n    model: gpt-5\n"), "unknown key 'model'")])
def test_validate_says_what_is_wrong_in_one_line(tmp_path: Path, change: tuple[str, str],
                                                 words: str,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    write_manifest(tmp_path, MANIFEST.replace(*change))
    assert main(["validate", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and words in err[0], err


def test_cached_input_is_counted_apart_for_its_price() -> None:
    chat = {"prompt_tokens": 100, "completion_tokens": 5,
            "prompt_tokens_details": {"cached_tokens": 64}}
    responses = {"input_tokens": 100, "output_tokens": 5,
                 "input_tokens_details": {"cached_tokens": 32}}
    assert DIALECT.usage(chat) == Usage.of_request(100, 5, cached=64)
    assert DIALECT.usage(responses) == Usage.of_request(100, 5, cached=32)
    assert DIALECT.usage({"prompt_tokens": 3, "prompt_tokens_details": None}) == \
        Usage.of_request(3, 0)
    bads: list[object] = [{"cached_tokens": "many"}, [], {"cached_tokens": 200}]
    for bad in bads:
        with pytest.raises(ValueError):
            DIALECT.usage({"prompt_tokens": 100, "prompt_tokens_details": bad})


def test_a_fine_tuned_model_id_validates(tmp_path: Path) -> None:
    d = tmp_path / "proj"
    write_manifest(d, """\
apiVersion: batch-runner/v1
kind: Batch
metadata: {name: tuned}
spec:
  provider: openai
  model: "ft:gpt-4o-mini-2024-07-18:acme:labels:9AbCdEf"
  items: [{q: hi}]
  request:
    messages: [{role: user, content: "{{ row.q }}"}]
  outputs: [{path: out/tuned.jsonl}]
""")
    assert main(["validate", str(d)]) == 0
    line = json.loads(next(iter(api.render(d, "tuned"))))
    assert line["body"]["model"] == "ft:gpt-4o-mini-2024-07-18:acme:labels:9AbCdEf"


def test_a_provider_error_cannot_mark_itself_unfinished() -> None:
    for line in ({"custom_id": "a", "error": {"code": "x", "message": "m", "unfinished": True}},
                 {"custom_id": "a", "response": {"status_code": 400, "body": {"error": {
                     "message": "m", "unfinished": True}}}}):
        read = DIALECT.read_result(line)
        assert isinstance(read, dict) and "unfinished" not in read and read["message"] == "m"
