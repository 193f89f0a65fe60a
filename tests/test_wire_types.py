"""Wrong types anywhere in a provider's answer: one line naming the job (or the call) and the
field, or a failed request saying why, never a crash or a wrong value.

First the emulator's `wrong_types` fault through the CLI over real HTTP, then the parsers fuzzed
with hypothesis over random JSON and over real answers with one value swapped for random JSON.
"""

from __future__ import annotations

import copy
import io
import json
import re
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from conftest import MINIMAL, write_manifest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runner.cli import main
from runner.emulator import Emulator, Faults
from runner.emulator.faults import WRONG_TYPES
from runner.errors import ProviderError
from runner.providers.base import JobState, RemoteJob
from runner.providers.calls import decode
from runner.providers.dialect import Answer
from runner.providers.gemini.inline_results import write_results
from runner.providers.gemini.results import read_result
from runner.providers.gemini.wire import (
    parse_count,
    parse_file,
    parse_operation,
    parse_page,
    parse_uploaded,
)

JOB = r"batches/[a-z0-9]+"
# fault -> (what the emulator must hold first, the one line the CLI must print)
FAULTS = {
    "state": ("a job", rf"{JOB}: the provider sent metadata\.state as a number, expected a string"),
    "request-count": ("a job", rf"{JOB}: the provider sent metadata\.batchStats\.requestCount as "
                               r"a string, expected a count"),
    "response": ("a finished job", rf"{JOB}: the provider sent response as a string, expected "
                                   r"an object"),
    "page": ("nothing", r"list batches page 1: the provider sent the page as an array, expected "
                        r"an object"),
    "operation": ("a job to list", r"list batches page 1, item 1: the provider sent the "
                                   r"operation as a string, expected an object"),
    "file": ("an upload", r"upload of tiny-[0-9a-f]{12}: the provider sent file as a string, "
                          r"expected an object"),
}


def test_every_wrong_types_fault_is_covered() -> None:
    assert set(FAULTS) | {"candidates", "parts"} == set(WRONG_TYPES)


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_a_wrong_type_in_an_answer_is_one_line_naming_job_and_field(
        fault: str, proj: Path, emu: Emulator, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    setup, line = FAULTS[fault]
    command = ["apply", str(proj)]
    if setup != "nothing" and setup != "an upload":
        assert main(["apply", str(proj), "--no-wait"]) == 0
    if setup == "a finished job":
        httpx.post(f"{emu.base_url}/_emulator/clock", json={"advance": 60})
    if setup == "a job to list":        # a new batch: plan looks for its tag in the list
        write_manifest(proj, MINIMAL.replace("tiny", "other"), "other.yaml")
        command = ["plan", str(proj)]
    if setup == "an upload":
        monkeypatch.setenv("RUNNER_INLINE_LIMIT", "10")
    capsys.readouterr()
    httpx.post(f"{emu.base_url}/_emulator/faults", json={"wrong_types": fault})
    assert main(command) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    assert re.fullmatch(f"error: {line}", err), err


@pytest.mark.parametrize("fault, field", [("candidates", "candidates is a string, expected an "
                                                         "array"),
                                          ("parts", "candidates[0].content.parts[0] is a string, "
                                                    "expected an object")])
def test_a_wrong_type_in_a_result_fails_that_request_saying_why(
        fault: str, field: str, proj: Path, emu: Emulator) -> None:
    emu.faults = Faults(wrong_types=fault)
    assert main(["apply", str(proj)]) == 1      # both requests failed, none allowed to
    assert (proj / "out/tiny.jsonl").read_text() == ""
    errors = [json.loads(x) for x in (proj / "out/tiny.errors.jsonl").read_text().splitlines()]
    assert [e["key"] for e in errors] == ["a", "b"]
    assert {e["error"]["message"] for e in errors} == {
        f"the provider's result is malformed: {field}"}


def test_nan_in_an_answer_is_invalid_json() -> None:
    resp = httpx.Response(200, content=b'{"totalTokens": NaN}')
    with pytest.raises(ProviderError, match="^count tokens: the provider answered with invalid"):
        decode(resp, "count tokens")


# -- fuzzing ----------------------------------------------------------------------------------

FIELDS = ["name", "metadata", "state", "batchStats", "requestCount", "successfulRequestCount",
          "failedRequestCount", "pendingRequestCount", "output", "response", "responsesFile",
          "inlinedResponses", "error", "message", "code", "inputConfig", "fileName", "model",
          "displayName", "createTime", "endTime", "done", "operations", "nextPageToken",
          "files", "file", "totalTokens", "key", "candidates", "content", "parts", "text",
          "thought", "finishReason", "usageMetadata", "promptTokenCount", "candidatesTokenCount",
          "thoughtsTokenCount", "promptFeedback", "blockReason"]
SCALARS = (st.none() | st.booleans() | st.integers(-2, 2**63) | st.text(max_size=12)
           | st.floats(allow_nan=False, allow_infinity=False)
           | st.sampled_from(["BATCH_STATE_SUCCEEDED", "JOB_STATE_RUNNING", "7", "batches/x1",
                              "files/f1", "STOP"]))
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
    st.sampled_from(FIELDS) | st.text(max_size=6), inner, max_size=5), max_leaves=25)
FUZZ = settings(max_examples=250, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow])

RESPONSE = {"candidates": [{"content": {"parts": [{"text": "plan", "thought": True},
                                                  {"text": "Hello"}], "role": "model"},
                            "finishReason": "STOP", "index": 0}],
            "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": "13",
                              "thoughtsTokenCount": 2, "totalTokenCount": 20}}
INLINE_DONE = {
    "name": "batches/4m855v7q30kc7gtzcigdg9m72o87s08w33vp",
    "metadata": {"@type": "type.googleapis.com/google.ai.generativelanguage.v1main."
                          "GenerateContentBatch",
                 "model": "models/gemini-2.5-flash", "displayName": "tiny-0123456789ab",
                 "output": {"inlinedResponses": {"inlinedResponses": [
                     {"response": RESPONSE, "metadata": {"key": "a"}},
                     {"error": {"code": 13, "message": "internal"}, "metadata": {"key": "b"}},
                     {"response": {"promptFeedback": {"blockReason": "SAFETY"}},
                      "metadata": {"key": "c"}}]}},
                 "createTime": "2025-12-10T18:27:01.407650525Z",
                 "endTime": "2025-12-10T18:28:31.548158795Z",
                 "batchStats": {"requestCount": "3", "successfulRequestCount": "2",
                                "failedRequestCount": "1"},
                 "state": "BATCH_STATE_SUCCEEDED",
                 "name": "batches/4m855v7q30kc7gtzcigdg9m72o87s08w33vp"},
    "done": True,
    "response": {"@type": "type.googleapis.com/google.ai.generativelanguage.v1main."
                          "GenerateContentBatchOutput", "responsesFile": "files/batch-abc"},
}
FILE_FAILED = {"name": "batches/f2", "metadata": {
    "displayName": "big-0123456789ab", "inputConfig": {"fileName": "files/in-1"},
    "batchStats": {"requestCount": "9", "pendingRequestCount": "9"},
    "state": "BATCH_STATE_FAILED"}, "done": True, "error": {"code": 3, "message": "bad input"}}
ANSWERS: list[dict[str, Any]] = [INLINE_DONE, FILE_FAILED,
           {"operations": [INLINE_DONE, FILE_FAILED], "nextPageToken": "next"},
           {"files": [{"name": "files/in-1", "displayName": "big", "state": "ACTIVE"}]},
           {"file": {"name": "files/in-1", "displayName": "big", "state": "ACTIVE"}},
           {"totalTokens": 12}]
RESULTS: list[dict[str, Any]] = [
    {"key": "a", "response": RESPONSE}, {"key": "b", "error": {"code": 13}},
    {"key": "c", "response": {"promptFeedback": {"blockReason": "SAFETY"}}},
    {"key": "d", "response": {"candidates": []}}, {"key": "e"}]


@st.composite
def mutated(draw: st.DrawFn, originals: list[dict[str, Any]]) -> Any:
    """A real answer with one value, anywhere in it, replaced by random JSON (or dropped)."""
    answer = copy.deepcopy(draw(st.sampled_from(originals)))
    spots: list[tuple[Any, Any]] = []

    def walk(node: Any) -> None:
        for key in (range(len(node)) if isinstance(node, list) else list(node)
                    if isinstance(node, dict) else []):
            spots.append((node, key))
            walk(node[key])

    walk(answer)
    if not spots:
        return answer
    node, key = draw(st.sampled_from(spots))
    if isinstance(node, dict) and draw(st.booleans()):
        del node[key]
    else:
        node[key] = draw(JSON)
    return answer


ANSWER = mutated(ANSWERS) | JSON
RESULT = mutated(RESULTS) | st.dictionaries(st.sampled_from(FIELDS), JSON, max_size=4)


def one_line_error(error: ProviderError) -> str:
    text = str(error)
    assert "\n" not in text and len(text) < 500
    return text


def check_job(job: RemoteJob) -> None:
    """A parsed job holds only values of the types it declares."""
    assert job.name.startswith("batches/") and isinstance(job.state, JobState)
    for count in (job.total, job.succeeded, job.failed, job.pending):
        assert type(count) is int and count >= 0
    for text in (job.display_name, job.model):
        assert isinstance(text, str)
    for optional in (job.create_time, job.end_time, job.error, job.results_file,
                     job.input_file):
        assert optional is None or isinstance(optional, str)


def check_result(line: Any) -> None:
    read = read_result(line)
    if isinstance(read, dict):
        assert isinstance(read.get("message"), str) or line is not None and "error" in line
    else:
        assert isinstance(read, Answer)
        assert isinstance(read.text, str)
        assert read.finish_reason is None or isinstance(read.finish_reason, str)
        assert min(vars(read.usage).values()) >= 0


@FUZZ
@given(ANSWER)
def test_fuzz_operations_parse_or_name_the_field(answer: Any) -> None:
    try:
        job = parse_operation(answer, "get batches/x")
    except ProviderError as e:
        assert one_line_error(e).startswith(("get batches/x: ", "batches/"))
        return
    check_job(job)


@FUZZ
@given(ANSWER)
def test_fuzz_pages_files_and_counts_parse_or_name_the_call(answer: Any) -> None:
    for parse, whose in ((lambda a: parse_page(a, "list batches page 1", "operations"),
                          "list batches page 1: "),
                         (lambda a: parse_page(a, "list files page 2", "files"),
                          "list files page 2: "),
                         (lambda a: parse_file(a, "list files page 1, item 1"),
                          "list files page 1, item 1: "),
                         (lambda a: parse_uploaded(a, "upload of x"), "upload of x: "),
                         (lambda a: parse_count(a, "count tokens"), "count tokens: ")):
        try:
            parsed = parse(answer)
        except ProviderError as e:
            assert one_line_error(e).startswith(whose)
            continue
        assert parsed is not None


@FUZZ
@given(RESULT)
def test_fuzz_result_lines_give_a_success_or_a_reason(line: Any) -> None:
    check_result(line)


@FUZZ
@given(mutated([INLINE_DONE]))
def test_fuzz_inline_results_from_operation_to_outputs(answer: Any) -> None:
    """A finished inline job as the provider sends it, written out a response at a time as
    the client does, read back as outputs do: every line a success or a failure with its
    reason, or one line naming what is wrong with the answer."""
    text = json.dumps(answer, ensure_ascii=False)
    out = io.BytesIO()
    try:
        write_results(io.StringIO(text), out, "batches/x", lambda s: s)
    except ProviderError as e:
        assert one_line_error(e).startswith("batches/x")
        return
    for raw in out.getvalue().splitlines():
        line = orjson.loads(raw)
        if isinstance(line.get("key"), str):
            check_result(line)
