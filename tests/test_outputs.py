"""Joining results back to requests: every mode of ResultIndex gives the same answers."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from runner.errors import ProviderError
from runner.outputs import ResultIndex, response_text


def results_file(path: Path, keys: list[str], tag: str = "") -> Path:
    path.write_text("".join(json.dumps({"key": k, "response": {"v": k + tag}}) + "\n"
                            for k in keys))
    return path


@pytest.mark.parametrize("order", ["in-order", "windowed", "shuffled"])
def test_every_key_found_whatever_the_order(tmp_path: Path, order: str,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ResultIndex, "WINDOW", 50)      # small, so shuffling forces the index
    keys = [f"k{i}" for i in range(1000)]
    arrived = list(keys)
    rng = random.Random(3)
    if order == "windowed":
        for start in range(0, 1000, 20):
            window = arrived[start:start + 20]
            rng.shuffle(window)
            arrived[start:start + 20] = window
    elif order == "shuffled":
        rng.shuffle(arrived)
    arrived.remove("k999")                      # the provider lost one
    path = results_file(tmp_path / "r.jsonl", arrived + ["stray"])
    with ResultIndex([path], tmp_path / "work") as index:
        found = {k: index.lookup(k) for k in keys}
        assert found["k999"] is None
        assert all(found[k] == {"key": k, "response": {"v": k}} for k in keys if k != "k999")
        assert index.unmatched(999) == 1            # "stray"
        assert (index._db is None) == (order != "shuffled")
    assert list(tmp_path.glob("work/*")) == []      # the on-disk index is removed


def test_later_files_win_per_key(tmp_path: Path) -> None:
    first = results_file(tmp_path / "a.jsonl", ["a", "b", "c"])
    second = results_file(tmp_path / "b.jsonl", ["b"], tag="-retry")
    with ResultIndex([first, second], tmp_path) as index:
        assert [index.lookup(k)["response"]["v"] for k in "abc"] == ["a", "b-retry", "c"]
        assert index.unmatched(3) == 0


def test_bad_results_line_is_a_provider_error(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text('{"key": "a", "response": {}}\nnot json\n')
    with ResultIndex([path], tmp_path) as index:
        assert index.lookup("a") == {"key": "a", "response": {}}
        with pytest.raises(ProviderError, match="results file line 2"):
            index.lookup("b")


def test_response_text_skips_thoughts_and_handles_no_candidates() -> None:
    response = {"candidates": [{"content": {"parts": [{"text": "plan", "thought": True},
                                                      {"text": "Hello"}, {"text": " world"}]},
                                "finishReason": "STOP"}]}
    assert response_text(response) == ("Hello world", "STOP")
    assert response_text({"promptFeedback": {"blockReason": "SAFETY"}}) == (None, None)
