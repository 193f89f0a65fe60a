"""Joining results back to requests: the same answers whatever the order of the results and
however many temp files the join spreads them over."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from conftest import ROWS_MANIFEST, write_manifest, write_rows

from runner import join
from runner.errors import ProviderError
from runner.manifest import load_directory
from runner.outputs import write_outputs
from runner.providers.gemini.results import response_text


def results_file(path: Path, keys: list[str], tag: str = "") -> Path:
    path.write_text("".join(json.dumps({"key": k, "response": {"candidates": [
        {"content": {"parts": [{"text": k + tag}]}, "finishReason": "STOP"}]}}) + "\n"
        for k in keys))
    return path


def texts(path: Path) -> list[str]:
    return [json.loads(line)["text"] for line in path.read_text().splitlines()]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    d = tmp_path / "p"
    write_manifest(d, ROWS_MANIFEST)
    write_rows(d, 1000, "x")
    return d


@pytest.mark.parametrize("bucket_bytes", [500, 1 << 20])
@pytest.mark.parametrize("order", ["in-order", "windowed", "shuffled"])
def test_every_key_found_whatever_the_order(project: Path, order: str, bucket_bytes: int,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(join, "BUCKET_BYTES", bucket_bytes)  # 500: ~150 buckets and ranges
    keys = [f"r{i}" for i in range(1000)]
    arrived = list(keys)
    rng = random.Random(3)
    if order == "windowed":
        for start in range(0, 1000, 20):
            window = arrived[start:start + 20]
            rng.shuffle(window)
            arrived[start:start + 20] = window
    elif order == "shuffled":
        rng.shuffle(arrived)
    arrived.remove("r999")                      # the provider lost one
    path = results_file(project / "r.jsonl", arrived + ["stray"])
    [m] = load_directory(project)
    written = write_outputs(m, [path], project / "work")
    assert texts(project / "out/big.jsonl") == keys[:-1]
    errors = [json.loads(line) for line in (project / "out/big.errors.jsonl").read_text()
              .splitlines()]
    assert [e["key"] for e in errors] == ["r999"]
    assert (written.succeeded, written.failed, written.unmatched) == (999, 1, 1)   # "stray"
    assert list((project / "work").iterdir()) == []     # the temp files are removed


def test_later_files_win_per_key(project: Path) -> None:
    keys = [f"r{i}" for i in range(1000)]
    first = results_file(project / "a.jsonl", keys)
    second = results_file(project / "b.jsonl", ["r1", "r500", "stray"], tag="-retry")
    third = results_file(project / "c.jsonl", ["r500", "stray"], tag="-again")
    [m] = load_directory(project)
    written = write_outputs(m, [first, second, third], project / "work")
    got = texts(project / "out/big.jsonl")
    assert got[:3] == ["r0", "r1-retry", "r2"] and got[500] == "r500-again"
    assert written.unmatched == 1               # one key, however many lines


def test_bad_results_line_is_a_provider_error(project: Path) -> None:
    path = project / "r.jsonl"
    path.write_text('{"key": "r0", "response": {}}\nnot json\n')
    [m] = load_directory(project)
    with pytest.raises(ProviderError, match="r.jsonl:2: a results line is not valid JSON "
                       r"\(invalid literal, expected 'null' at column 1\)"):
        write_outputs(m, [path], project / "work")
    assert list((project / "out").iterdir()) == []      # nothing written


@pytest.mark.parametrize(("line", "said"), [
    ('{"key": "r1", "response": {"text": "\\ud800"}}', "no low surrogate in string"),
    ('{"key": "r1", "response": {"n": 1e400}}', "number is infinity when parsed as double"),
    ('["r1"]', None)])
def test_a_results_line_the_parser_refuses_says_why(project: Path, line: str,
                                                     said: str | None) -> None:
    """A JSON object orjson refuses (a lone surrogate, a number past a double's range) was
    said to be "not a JSON object", which it is; now the parser's reason is given."""
    path = project / "r.jsonl"
    path.write_text('{"key": "r0", "response": {}}\n' + line + "\n")
    [m] = load_directory(project)
    with pytest.raises(ProviderError) as e:
        write_outputs(m, [path], project / "work")
    assert "r.jsonl:2: " in str(e.value)
    assert (said in str(e.value)) if said else "is not a JSON object" in str(e.value), e.value
    assert list((project / "out").iterdir()) == []


def test_a_key_repeated_within_one_results_file_is_counted(project: Path) -> None:
    first, second = project / "a.jsonl", project / "b.jsonl"
    ok = {"candidates": [{"content": {"parts": [{"text": "x"}]}}]}
    first.write_text("".join(json.dumps({"key": k, "response": ok}) + "\n"
                             for k in ("r0", "r1", "r0")))
    second.write_text(json.dumps({"key": "r1", "response": ok}) + "\n")
    [m] = load_directory(project)
    written = write_outputs(m, [first, second], project / "work")
    assert written.repeated == 1        # r0 twice in one file; r1 again in a follow-up is not


def test_response_text_skips_thoughts_and_handles_no_candidates() -> None:
    response = {"candidates": [{"content": {"parts": [{"text": "plan", "thought": True},
                                                      {"text": "Hello"}, {"text": " world"}]},
                                "finishReason": "STOP"}]}
    assert response_text(response) == ("Hello world", "STOP")
    assert response_text({"promptFeedback": {"blockReason": "SAFETY"}}) == (None, None)
