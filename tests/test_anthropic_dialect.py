"""The Anthropic dialect, pure: keys mapped to custom_ids and back (exactly, for any key, or
refused saying why), its input lines, what it reads from result lines (answers, and failures
that name their field, never raising), its token estimate and output bound, and its request
schema as validate says it."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from conftest import write_manifest
from hypothesis import given
from hypothesis import strategies as st

from runner.cli import main
from runner.providers.anthropic import DIALECT
from runner.providers.anthropic.keys import MARKER
from runner.providers.anthropic.tokens import MEDIA_TOKENS, MESSAGE_TOKENS
from runner.providers.dialect import UNFINISHED, Answer
from runner.usage import Usage

CUSTOM_ID = re.compile(r"[a-zA-Z0-9_-]{1,64}")


# -- keys ------------------------------------------------------------------------------------

@pytest.mark.parametrize("key", ["a", "row-17", "A_b-9", "x" * 64])
def test_a_key_custom_id_takes_is_sent_as_it_is(key: str) -> None:
    assert DIALECT.wire_key(key) == key
    assert DIALECT.key_of_wire(key) == key


@pytest.mark.parametrize(("key", "wire"), [
    ("é/1", "__w6kvMQ"), ("a b", "__YSBi"), ("", "__"), ("__x", "__X194"),
    ("row.1", "__cm93LjE"), ("日本", "__5pel5pys")])
def test_any_other_key_is_sent_encoded_and_read_back(key: str, wire: str) -> None:
    assert DIALECT.wire_key(key) == wire
    assert DIALECT.key_of_wire(wire) == key


@given(st.text(max_size=80))
def test_every_key_round_trips_or_is_refused(key: str) -> None:
    try:
        wire = DIALECT.wire_key(key)
    except ValueError as e:
        assert "64" in str(e)
        assert len(key) > 64 or len(key.encode()) > 46 or key.startswith(MARKER)
        return
    assert CUSTOM_ID.fullmatch(wire) or (key == "" and wire == MARKER)
    assert DIALECT.key_of_wire(wire) == key


@given(st.text(max_size=40), st.text(max_size=40))
def test_two_keys_are_never_sent_as_one_custom_id(first: str, second: str) -> None:
    try:
        wires = DIALECT.wire_key(first), DIALECT.wire_key(second)
    except ValueError:
        return
    assert (wires[0] == wires[1]) == (first == second)


@pytest.mark.parametrize(("key", "words"), [
    ("x" * 65, "it is 65 characters long, and Anthropic's custom_id holds at most 64"),
    ("é" * 24, "sent encoded, which takes 66 characters, more than the 64 it may have"),
    ("__" + "a" * 50, "it starts with '__', which marks an encoded key"),
    ("\ud800", "not valid Unicode")])
def test_a_key_that_fits_no_custom_id_is_refused_saying_why(key: str, words: str) -> None:
    with pytest.raises(ValueError, match=re.escape(words)):
        DIALECT.wire_key(key)


@pytest.mark.parametrize("wire", ["__!!", "__w6kvMR", "__YWJj", "__/w"])
def test_a_custom_id_no_key_is_sent_as_is_refused(wire: str) -> None:
    """Non-canonical base64 tails, a plain key encoded, bytes that are not UTF-8."""
    with pytest.raises(ValueError, match="is not one the runner sent"):
        DIALECT.key_of_wire(wire)


# -- lines and results -----------------------------------------------------------------------

def test_an_input_line_names_the_model_in_its_params() -> None:
    body = DIALECT.body({"max_tokens": 5, "messages": []}, "claude-haiku-4-5")
    request = json.dumps(body, separators=(",", ":")).encode()
    written = DIALECT.framing(None).line(b'"__w6kvMQ"', request)
    assert json.loads(written) == {"custom_id": "__w6kvMQ", "params": body}
    assert body == {"model": "claude-haiku-4-5", "max_tokens": 5, "messages": []}
    assert DIALECT.framing(None).split(written) == (b'"__w6kvMQ"', request)
    assert DIALECT.result_key({"custom_id": "__w6kvMQ", "result": {}}) == "__w6kvMQ"


def message(*content: Any, stop: Any = "end_turn", **usage: Any) -> dict[str, Any]:
    return {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x",
            "content": list(content), "stop_reason": stop, "stop_sequence": None,
            "usage": {"input_tokens": 7, "output_tokens": 3, **usage}}


def succeeded(msg: Any) -> dict[str, Any]:
    return {"custom_id": "k", "result": {"type": "succeeded", "message": msg}}


def test_an_answer_joins_its_text_blocks_and_leaves_thinking_out() -> None:
    msg = message({"type": "thinking", "thinking": "hmm", "signature": "s"},
                  {"type": "text", "text": "one "}, {"type": "tool_use", "id": "t", "name": "f",
                                                      "input": {}},
                  {"type": "text", "text": "two"}, stop="max_tokens")
    read = DIALECT.read_result(succeeded(msg))
    assert isinstance(read, Answer)
    assert (read.text, read.finish_reason, read.usage) == ("one two", "max_tokens", Usage(7, 3))
    assert read.usage_raw == msg["usage"] and read.response == msg


def test_cached_prompt_tokens_are_input_too() -> None:
    msg = message({"type": "text", "text": "x"}, cache_creation_input_tokens=100,
                  cache_read_input_tokens=200_000)
    read = DIALECT.read_result(succeeded(msg))
    assert isinstance(read, Answer)
    assert read.usage == Usage(200_107, 3, 200_107, 3,      # over the long-context line
                               cached_input_tokens=200_000, cache_write_tokens=100,
                               long_cached_input_tokens=200_000, long_cache_write_tokens=100)
    assert DIALECT.usage({"input_tokens": 1, "output_tokens": 2,
                          "cache_read_input_tokens": None}) == Usage(1, 2)
    assert DIALECT.usage({"input_tokens": 1, "output_tokens": 2, "cache_read_input_tokens": 5,
                          "cache_creation_input_tokens": 4}) == Usage(
        10, 2, cached_input_tokens=5, cache_write_tokens=4)


def test_an_errored_request_keeps_the_providers_error_and_request_id() -> None:
    error = {"type": "error", "error": {"type": "invalid_request_error", "message": "bad"},
             "request_id": "req_1"}
    read = DIALECT.read_result({"custom_id": "k", "result": {"type": "errored", "error": error}})
    assert read == {"type": "invalid_request_error", "message": "bad", "request_id": "req_1"}


def test_unprocessed_requests_are_failures_saying_why() -> None:
    """An expired request never ran, and is sent again by the core; a cancelled one was
    stopped on purpose."""
    assert DIALECT.read_result({"custom_id": "k", "result": {"type": "canceled"}}) == {
        "type": "canceled", "message": "the batch was cancelled before this request was "
                                       "processed"}
    assert DIALECT.read_result({"custom_id": "k", "result": {"type": "expired"}}) == {
        "type": "expired", "message": "the batch expired (24 h) before this request was "
                                      "processed", UNFINISHED: True}


@pytest.mark.parametrize(("result", "words"), [
    (None, "the provider returned no result for this key"),
    (succeeded(message(stop="tool_use")), "the response has no text (stop_reason: tool_use)"),
    (succeeded(message({"type": "text", "text": "I can"}, stop="refusal")),
     "the model refused (stop_reason: refusal)"),
    ({"custom_id": "k"}, "malformed: result is null, expected an object"),
    ({"custom_id": "k", "result": []}, "malformed: result is an array"),
    ({"custom_id": "k", "result": {"type": 3}}, "result.type is a number, expected succeeded, "
                                                "errored, canceled or expired"),
    ({"custom_id": "k", "result": {"type": "done"}}, "result.type is a string"),
    (succeeded("hi"), "result.message is a string, expected an object"),
    (succeeded({**message(), "content": "many"}), "result.message.content is a string"),
    (succeeded(message("text")), "result.message.content[0] is a string, expected an object"),
    (succeeded(message({"type": "text", "text": 5})), "result.message.content[0].text is a "
                                                      "number"),
    (succeeded(message({"type": "text", "text": "x"}, stop=1)), "result.message.stop_reason"),
    (succeeded({**message({"type": "text", "text": "x"}), "usage": None}),
     "result.message.usage is null"),
    (succeeded(message({"type": "text", "text": "x"}, output_tokens="3")),
     "usage.output_tokens is not a count"),
    ({"custom_id": "k", "result": {"type": "errored", "error": "boom"}},
     "result.error is a string, expected an object"),
    ({"custom_id": "k", "result": {"type": "errored", "error": {"error": {"message": 4}}}},
     "result.error.error.message is a number")])
def test_a_failure_is_an_error_naming_why(result: Any, words: str) -> None:
    read = DIALECT.read_result(result)
    assert not isinstance(read, Answer)
    assert words in read["message"]


# -- tokens ----------------------------------------------------------------------------------

def test_tokens_count_system_messages_blocks_and_tools() -> None:
    request = {"max_tokens": 300, "system": [{"type": "text", "text": "12345678"}],
               "messages": [
                   {"role": "user", "content": "1234"},
                   {"role": "user", "content": [
                       {"type": "text", "text": "12345678"},
                       {"type": "image", "source": {"type": "url", "url": "u"}},
                       {"type": "document", "source": {"type": "url", "url": "u"}}]}],
               "tools": [{"name": "f"}]}
    tools = len(json.dumps([{"name": "f"}], separators=(",", ":"))) // 4 + 1
    assert DIALECT.request_tokens(request, None) == (
        2 + 2 * MESSAGE_TOKENS + 1 + 2 + 2 * MEDIA_TOKENS + tools, 2)
    assert DIALECT.request_tokens({"system": "1234", "messages": "x"}, None) == (1, 0)
    assert DIALECT.output_bound(request, None) == 300
    assert DIALECT.output_bound({"max_tokens": "{{ vars.n }}"}, None) is None


# -- validate --------------------------------------------------------------------------------

MANIFEST = """\
apiVersion: batch-runner/v1
kind: Batch
metadata: {name: c}
spec:
  provider: anthropic
  model: claude-sonnet-4-5
  items: [{id: a}, {id: "ok too/é"}]
  key: "{{ row.id }}"
  request:
    max_tokens: 100
    messages: [{role: user, content: hi}]
  outputs: [{path: out/c.jsonl}]
"""

REMOVED = "API version 2026-10-21, which the runner uses, removed temperature, top_p and top_k"


def test_a_manifest_validates(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_manifest(tmp_path, MANIFEST)
    assert main(["validate", str(tmp_path)]) == 0
    assert "1 manifest(s) valid, 2 requests" in capsys.readouterr().out


@pytest.mark.parametrize(("change", "words"), [
    (("    max_tokens: 100", "    max_tokens: 100\n    temperature: 0.2"),
     f"m.yaml:11: spec.request.temperature: not allowed: {REMOVED}; leave them out"),
    (("    max_tokens: 100", "    max_tokens: 100\n    top_k: 5"),
     "spec.request.top_k: not allowed: API version 2026-10-21"),
    (("    max_tokens: 100", "    max_tokens: 100\n    temprature: 0"),
     f"spec.request: unknown key 'temprature' (did you mean 'temperature'? it is not allowed: "
     f"{REMOVED}"),
    (("    max_tokens: 100", "    max_token: 100"),
     "spec.request: unknown key 'max_token' (did you mean 'max_tokens'?)"),
    (("    max_tokens: 100", "    max_tokens: 100\n    stop_sequence: [x]"),
     "unknown key 'stop_sequence' (did you mean 'stop_sequences'?)"),
    (("    max_tokens: 100", "    max_tokens: 100\n    model: claude-x"),
     "spec.request.model: not allowed: spec.model names the model"),
    (("    max_tokens: 100", "    max_tokens: 100\n    stream: true"),
     "spec.request.stream: not allowed: Message Batches do not stream"),
    (("    max_tokens: 100\n", ""), "spec.request: 'max_tokens' is a required property"),
    (("role: user", "role: usr"), "spec.request.messages[0].role"),
    (("  request:", "  endpoint: /v1/messages\n  request:"),
     "spec.endpoint: '/v1/messages' does not apply to anthropic"),
    (("{id: a}", "{id: " + "x" * 65 + "}"),
     "cannot be sent to anthropic: it is 65 characters long, and Anthropic's custom_id holds "
     "at most 64; make spec.key shorter")])
def test_validate_says_what_is_wrong_in_one_line(tmp_path: Path, change: tuple[str, str],
                                                 words: str,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    write_manifest(tmp_path, MANIFEST.replace(*change))
    assert main(["validate", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and words in err[0], err


def test_a_key_that_cannot_be_sent_names_its_file_and_row(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_manifest(tmp_path, MANIFEST.replace('"ok too/é"', '"' + "é" * 24 + '"'))
    assert main(["plan", str(tmp_path)]) == 1
    [err] = capsys.readouterr().err.strip().splitlines()
    assert err.startswith(f"error: {tmp_path / 'm.yaml'}:8: spec.items item 2: key 'éé")
    assert "cannot be sent to anthropic: Anthropic's custom_id holds only A-Z, a-z, 0-9" in err
