"""Where each value of a YAML document starts, so that an error can name its line.

A loaded document keeps its node tree (Document) until it is checked; what a loaded manifest
keeps after that is the lighter line table (Located), which a cache can store as JSON. Both
answer the same question the same way. Reading and refusing YAML is runner.yamlsrc's work.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import yaml


@dataclass(frozen=True)
class Document:
    """One YAML document of a file: its data, and its node tree for line look-ups."""

    data: Any
    node: yaml.Node
    index: int

    def line_of(self, path: Sequence[str | int]) -> int:
        """1-based line of the value at `path`, or of the deepest part of it that exists."""
        node = self.node
        for part in path:
            child = _child(node, part)
            if child is None:
                break
            node = child
        return int(node.start_mark.line) + 1

    def key_line(self, path: Sequence[str | int], key: str) -> int:
        """1-based line of `key` in the mapping at `path` (of the mapping if it is not there)."""
        node = self.node
        for part in path:
            child = _child(node, part)
            if child is None:
                return int(node.start_mark.line) + 1
            node = child
        if isinstance(node, yaml.MappingNode):
            for k, _ in node.value:
                if isinstance(k, yaml.ScalarNode) and k.value == key:
                    return int(k.start_mark.line) + 1
        return int(node.start_mark.line) + 1


    def located(self) -> Located:
        """The data with a table of its lines, dropping the node tree."""
        return Located(self.data, line_table(self.node))


@dataclass(frozen=True)
class Located:
    """A document's data and the line each of its values starts on, as plain data.

    What a loaded manifest keeps: a fraction of the size of the YAML node tree, and storable
    as JSON, so that a cache can hand back a document without parsing it again. `line_of`
    answers as `Document.line_of` does for the same path.
    """

    data: Any
    lines: Any      # see line_table

    def line_of(self, path: Sequence[str | int]) -> int:
        """1-based line of the value at `path`, or of the deepest part of it that exists."""
        table = self.lines
        for part in path:
            child = None
            if isinstance(table, list):
                inner = table[1]
                if isinstance(inner, dict):
                    child = inner.get(str(part))
                elif isinstance(part, int) and 0 <= part < len(inner):
                    child = inner[part]
            if child is None:
                break
            table = child
        return int(table[0] if isinstance(table, list) else table) + 1


def line_table(root: yaml.Node) -> Any:
    """Where each node under `root` starts (0-based line), mirroring the node tree: a scalar
    is its line, a mapping `[line, {key: table}]`, a sequence `[line, [table, ...]]`. A key
    found twice keeps its first value, as `Document.line_of` does (merge keys put the merged
    ones first). Built without recursion, so that nesting depth is no limit."""
    made: dict[int, Any] = {}
    order: list[yaml.Node] = []
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in made:            # an alias: one table for the node it points at
            continue
        line = int(node.start_mark.line)
        if isinstance(node, yaml.MappingNode):
            made[id(node)] = [line, {}]
            stack.extend(v for _, v in node.value)
        elif isinstance(node, yaml.SequenceNode):
            made[id(node)] = [line, []]
            stack.extend(node.value)
        else:
            made[id(node)] = line
        order.append(node)
    for node in order:
        if isinstance(node, yaml.MappingNode):
            keys = made[id(node)][1]
            for k, v in node.value:
                if isinstance(k, yaml.ScalarNode):
                    keys.setdefault(k.value, made[id(v)])
        elif isinstance(node, yaml.SequenceNode):
            made[id(node)][1].extend(made[id(v)] for v in node.value)
    return made[id(root)]


def _child(node: yaml.Node, part: str | int) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode) and k.value == str(part):
                return v  # type: ignore[no-any-return]
    elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) \
            and 0 <= part < len(node.value):
        return node.value[part]  # type: ignore[no-any-return]
    return None
