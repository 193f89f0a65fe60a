"""The line table a loaded manifest keeps instead of the YAML node tree."""

from __future__ import annotations

import json
import time
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from runner.yamlsrc import (
    ALIAS_GROWTH,
    Located,
    UnsupportedYAMLError,
    describe_yaml_error,
    load_documents,
)

# Anchors, a merge key that a later key overrides, flow and block style, a multi-line
# string, an alias to a whole mapping, two documents.
TEXT = """\
base: &base
  a: 1
  b: [x, {c: 2}]
merged:
  <<: *base
  a: 3
again: *base
flow: {k: [1, 2, {m: n}], "quoted key": v}
text: |
  one
  two
empty: {}
none: []
---
- 1
- [2, [3]]
"""


def _paths(value: Any, prefix: list[str | int] | None = None) -> list[list[str | int]]:
    prefix = prefix or []
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, [*prefix, k])
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths(v, [*prefix, i])
    return out


def test_the_line_table_answers_as_the_node_tree_does() -> None:
    docs = load_documents(TEXT, Path("t.yaml"))
    assert len(docs) == 2
    for doc in docs:
        located = doc.located()
        # and once more after a round trip through JSON, as the parse cache stores it
        stored = Located(*json.loads(json.dumps([located.data, located.lines])))
        probes = [[*p, extra] for p in _paths(doc.data) for extra in (0, 1, "a", "x")]
        probes += _paths(doc.data) + [["nowhere"], ["merged", "a"], ["merged", "b", 1, "c"]]
        for probe in probes:
            assert located.line_of(probe) == doc.line_of(probe), probe
            assert stored.line_of(probe) == doc.line_of(probe), probe


def test_the_line_table_is_plain_data_shared_for_aliases() -> None:
    [doc, _] = load_documents(TEXT, Path("t.yaml"))
    lines = doc.located().lines
    assert lines[0] == 0 and lines[1]["base"][1]["a"] == 1
    assert lines[1]["again"] is lines[1]["base"]
    json.dumps(lines)


def test_aliases_in_reasonable_numbers_are_read() -> None:
    """Shared blocks merged into thousands of rows expand to many values, all written out
    in the file's own size or near it: none of that is an alias bomb."""
    text = "defaults: &d {model: m, temperature: 0, labels: [a, b, c], note: shared}\nrows:\n" \
        + "".join(f"  - {{<<: *d, id: {i}}}\n" for i in range(5000))
    [doc] = load_documents(text, Path("rows.yaml"))
    assert len(doc.data["rows"]) == 5000
    assert doc.data["rows"][4999] == {"model": "m", "temperature": 0, "labels": ["a", "b", "c"],
                                      "note": "shared", "id": 4999}


def test_an_alias_bomb_is_refused_before_it_is_built() -> None:
    """Nine levels of nine aliases (about 390 million values from 400 bytes) are refused in
    a fraction of a second and a few hundred kilobytes, at the line where they pass the
    bound."""
    text = "".join([f"l0: &l0 [{', '.join(['lol'] * 9)}]\n"]
                   + [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]\n" for i in range(1, 9)])
    tracemalloc.start()
    start = time.monotonic()
    try:
        with pytest.raises(UnsupportedYAMLError) as e:
            load_documents(text, Path("bomb.yaml"))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.monotonic() - start < 1 and peak < 2_000_000, (time.monotonic() - start, peak)
    line, message = describe_yaml_error(e.value, text)
    assert line == 7 and message.startswith(f"the aliases here expand to more than "
                                            f"{ALIAS_GROWTH + len(text):,} values")


def test_a_value_holding_itself_or_nested_too_deep_is_refused() -> None:
    for text, line, problem in [
            ("a: &a [1, *a]\n", 1, "an alias refers to a value that contains it"),
            ("a: &a {b: [x, *a]}\n", 1, "an alias refers to a value that contains it"),
            ("a: " + "[" * 101 + "]" * 101 + "\n", 1, "nested deeper than 100 levels"),
            ("a: &a " + "[" * 60 + "]" * 60 + "\nb: " + "[" * 60 + "*a" + "]" * 60 + "\n", 1,
             "nested deeper than 100 levels"),
            # as deep, with the 60 levels also named where they nest no deeper (c)
            ("a: &a " + "[" * 60 + "]" * 60 + "\nb: " + "[" * 60 + "*a" + "]" * 60 + "\nc: *a\n",
             2, "the aliases here nest values deeper than 100 levels")]:
        with pytest.raises(UnsupportedYAMLError) as e:
            load_documents(text, Path("t.yaml"))
        assert describe_yaml_error(e.value, text) == (line, problem + (
            ", which has no end" if "contains" in problem else "")), text
