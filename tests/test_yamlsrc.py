"""YAML within bounds: aliases in reasonable numbers are read; an alias bomb, a value that
holds itself and nesting too deep are refused, at their line."""

from __future__ import annotations

import time
import tracemalloc
from pathlib import Path

import pytest

from runner.yamlsrc import (
    ALIAS_GROWTH,
    UnsupportedYAMLError,
    describe_yaml_error,
    load_documents,
)


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
