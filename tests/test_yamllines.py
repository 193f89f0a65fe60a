"""The line table a loaded manifest keeps instead of the YAML node tree."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from runner.yamllines import Located
from runner.yamlsrc import load_documents

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
