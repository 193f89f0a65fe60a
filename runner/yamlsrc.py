"""YAML documents that remember where each value came from, so errors can name a line."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

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
            child = None
            if isinstance(node, yaml.MappingNode):
                for k, v in node.value:
                    if isinstance(k, yaml.ScalarNode) and k.value == str(part):
                        child = v
                        break
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
                if 0 <= part < len(node.value):
                    child = node.value[part]
            if child is None:
                break
            node = child
        return int(node.start_mark.line) + 1


def load_documents(text: str, source: Path) -> list[Document]:
    """Every non-empty document in `text`; raises yaml.YAMLError with marks on bad syntax."""
    loader = yaml.SafeLoader(text)
    docs: list[Document] = []
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            data = loader.construct_document(node)
            if data is not None:
                docs.append(Document(data, node, len(docs)))
    finally:
        loader.dispose()  # type: ignore[no-untyped-call]
    return docs


def describe_yaml_error(exc: yaml.YAMLError) -> tuple[int | None, str]:
    """(line, message) for a YAML syntax error, in a single line."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    msg = f"invalid YAML: {problem}" + (f" ({context})" if context else "")
    return (mark.line + 1 if mark is not None else None), " ".join(msg.split())
