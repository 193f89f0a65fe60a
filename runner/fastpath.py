"""Rendering without Jinja where a template does not need it: the hot path of a big batch.

Most request templates only insert row values (`Item {{ row.n }}: {{ row.body }}`). Such a
template is rendered with str.format_map, in C, and a request is serialised once with holes
for its templated strings (Splice), so that each row only fills them. Anything else (filters,
tags, expressions, a lookup that fails) goes through Jinja, which renders it or raises the
error a user expects; the bytes are the same either way.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import orjson
from jinja2 import nodes

Compiled = Callable[[dict[str, Any]], Any]


class Splice:
    """A request as canonical JSON with holes: the fixed bytes between templated strings are
    serialised once, and each row only fills the holes. Equal to serialising the rendered
    dict with sorted keys, because the keys (and so the order) never depend on the row."""

    def __init__(self, segments: list[bytes], holes: list[Compiled]):
        # bytes %-formatting (PEP 461) fills every hole in one C call; a literal % is doubled
        self._format = b"%s".join(segment.replace(b"%", b"%%") for segment in segments)
        self._holes = holes

    def __call__(self, ctx: dict[str, Any]) -> bytes:
        if len(self._holes) == 1:   # the common case, without building a tuple
            return self._format % orjson.dumps(self._holes[0](ctx))
        return self._format % tuple([orjson.dumps(hole(ctx)) for hole in self._holes])


def substitutions(tree: nodes.Template) -> list[Any] | None:
    """The template as literal text and plain lookups (`{{ row.title }}`, `{{ row['a b'] }}`),
    or None when it uses anything else (filters, tags, expressions): those go through Jinja."""
    if len(tree.body) != 1 or not isinstance(tree.body[0], nodes.Output):
        return None
    pieces: list[Any] = []
    for node in tree.body[0].nodes:
        if isinstance(node, nodes.TemplateData):
            pieces.append(node.data)
            continue
        path: list[str | int] = []
        while isinstance(node, (nodes.Getattr, nodes.Getitem)):
            if isinstance(node, nodes.Getattr):
                # row.items is dict.items in Jinja, not row["items"]: leave those to Jinja
                if node.attr.startswith("_") or hasattr(dict, node.attr):
                    return None
                path.append(node.attr)
            elif isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, (str, int)):
                path.append(node.arg.value)
            else:
                return None
            node = node.node
        if not isinstance(node, nodes.Name) or node.ctx != "load":
            return None
        pieces.append((node.name, tuple(reversed(path))))
    return pieces


def fast(pieces: list[Any], slow: Compiled) -> Compiled:
    """Renders a substitution-only template with str.format_map, in C, instead of setting up
    a Jinja context per call. Both print a value with str(), so the output is the same; a
    lookup that fails (a missing field, a non-container) goes to Jinja, which renders it or
    raises the error a user expects."""
    fields = []
    for piece in pieces:
        if type(piece) is str:
            fields.append(piece.replace("{", "{{").replace("}", "}}"))
            continue
        name, path = piece
        if not all(type(p) is str and _FORMAT_KEY.fullmatch(p) for p in path):
            return _fast_loop(pieces, slow)
        fields.append("{" + name + "".join(f"[{p}]" for p in path) + "}")
    fmt = "".join(fields)

    def render(ctx: dict[str, Any]) -> Any:
        try:
            return fmt.format_map(ctx)
        except (KeyError, IndexError, TypeError, AttributeError, ValueError):
            return slow(ctx)
    return render


# format_map reads "[12]" as an integer index and stops at "]", ".", "!" or ":"
_FORMAT_KEY = re.compile(r"(?![0-9]+$)[^\[\]{}.!:]+")


def _fast_loop(pieces: list[Any], slow: Compiled) -> Compiled:
    """The same for lookups format_map cannot spell (integer indexes, odd key names)."""

    def render(ctx: dict[str, Any]) -> Any:
        out: list[str] = []
        for piece in pieces:
            if type(piece) is str:
                out.append(piece)
                continue
            name, path = piece
            value = ctx.get(name, _MISSING)
            for step in path:
                kind = type(value)
                if kind is dict and step in value:
                    value = value[step]
                elif kind is list and type(step) is int and -len(value) <= step < len(value):
                    value = value[step]
                else:
                    return slow(ctx)
            out.append(str(value))
        return "".join(out)
    return render


def is_template(text: str) -> bool:
    return "{{" in text or "{%" in text or "{#" in text


_MISSING = object()
