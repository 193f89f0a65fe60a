"""YAML read strictly: only what maps onto JSON, and no more of it than the file warrants.

Everything read here becomes JSON (hashes, requests, the lockfile), so the YAML accepted is the
part that maps onto JSON: a date stays the text it was written as, and a value JSON cannot hold
(binary, a set, infinity, a mapping key that is not text) is an error at its line. Where plain
`yaml.safe_load` would make a silent choice, this refuses: a key given twice in one mapping and
leftover merge-conflict markers are errors, not last-one-wins. What a file may grow into is
bounded before anything is built from it: aliases that expand without end or far beyond the
file's size (an alias bomb), and nesting deeper than MAX_DEPTH, are errors at their line.

Each document read remembers where its values came from (runner.yamllines), so that an error
found later, by the schema check for one, names a line too.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from .errors import RunnerError, excerpt
from .yamllines import Document

_CONFLICT = re.compile(r"^(<{7}|>{7})(\s|$)", re.MULTILINE)
_TAG = "tag:yaml.org,2002:"
_JSON_TAGS = {_TAG + t for t in ("str", "int", "float", "bool", "null", "seq", "map")}
_KEY_KINDS = {"bool": "true or false", "int": "a number", "float": "a number", "null": "null"}
_NOT_FINITE = re.compile(r"^[-+]?\.(inf|nan)$", re.IGNORECASE)

# Bounds on what a small file may become. Written out, a file holds at most about one value a
# character; aliases may add this many more, which legitimate reuse (a shared block of vars,
# merge keys) stays far below and an alias bomb (a few hundred bytes naming each level nine
# times over) passes within microseconds, before anything is built. Deep nesting is refused
# too: hashing, rendering and printing a value recurse, once a level.
ALIAS_GROWTH = 1_000_000
MAX_DEPTH = 100


# libyaml's parser when PyYAML has it (ten times faster: it decides how long a plan over a
# thousand manifests takes); the pure-Python one otherwise.
_Base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_Base):  # type: ignore[valid-type,misc]
    """SafeLoader without implicit timestamps: `2024-05-01` is text, as it would be in JSON."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _TAG + "timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}


class UnsupportedYAMLError(yaml.constructor.ConstructorError):
    """Well-formed YAML that is refused: a repeated key, or a value JSON cannot hold."""


class MergeConflictError(UnsupportedYAMLError):
    """A git conflict marker was left in the file."""


def _refuse(problem: str, node: yaml.Node) -> UnsupportedYAMLError:
    return UnsupportedYAMLError(None, None, problem, node.start_mark)


def _check_nodes(root: yaml.Node) -> bool:
    """Raises a marked error at the first repeated key, non-text key, non-JSON value or value
    nested deeper than MAX_DEPTH. Returns whether an alias points at a node seen before."""
    seen_nodes: set[int] = set()
    aliased = False
    stack = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        if id(node) in seen_nodes:      # an alias points back at a node already checked
            aliased = True
            continue
        seen_nodes.add(id(node))
        if depth > MAX_DEPTH:
            raise _refuse(f"nested deeper than {MAX_DEPTH} levels", node)
        depth += 1
        if isinstance(node, yaml.MappingNode):
            first: dict[str, yaml.Node] = {}
            for k, v in node.value:
                if k.tag == _TAG + "merge":
                    stack.append((v, depth))
                    continue
                if not isinstance(k, yaml.ScalarNode):   # `key: {{ x }}` is a mapping in YAML
                    raise _refuse("a mapping or list is used as a key; quote a value that "
                                  "starts with '{{' or '{%'", k)
                if k.tag != _TAG + "str":
                    kind = k.tag.removeprefix(_TAG)
                    raise _refuse(f"key {excerpt(k.value)} is read as "
                                  f"{_KEY_KINDS.get(kind, f'a {kind} value')}, not text; quote it",
                                  k)
                earlier = first.setdefault(k.value, k)
                if earlier is not k:
                    raise _refuse(f"duplicate key {excerpt(k.value)} (first on line "
                                  f"{earlier.start_mark.line + 1})", k)
                stack.append((v, depth))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((v, depth) for v in node.value)
        if node.tag not in _JSON_TAGS:
            raise _refuse(f"a {node.tag.removeprefix(_TAG)} value has no JSON form; write it "
                          "as text", node)
        if node.tag == _TAG + "float" and _NOT_FINITE.match(node.value):
            raise _refuse(f"{node.value} is not a finite number", node)
    return aliased


def _check_expansion(root: yaml.Node, budget: int) -> int:
    """The values `root` holds once its aliases are expanded, as every later step sees them
    (constructing, hashing, rendering): an error if an alias refers to a value that contains
    it, if that is more than `budget`, or if expansion nests deeper than MAX_DEPTH. One visit
    a node, in the order of a depth-first walk, with each node's size and height kept."""
    sizes: dict[int, tuple[int, int]] = {}     # id -> (values, levels), once finished
    open_nodes: set[int] = set()              # started, not finished: the current path
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        children = _children(node)
        if finished:
            open_nodes.discard(id(node))
            below = [sizes[id(c)] for c in children]
            size = 1 + sum(n for n, _ in below)
            height = 1 + max((h for _, h in below), default=0)
            if size > budget:
                raise _refuse(f"the aliases here expand to more than {budget:,} values (an "
                              "alias bomb?); write the values out, or use fewer aliases", node)
            if height > MAX_DEPTH:
                raise _refuse(f"the aliases here nest values deeper than {MAX_DEPTH} levels",
                              node)
            sizes[id(node)] = (size, height)
            continue
        if id(node) in sizes:
            continue
        if id(node) in open_nodes:
            raise _refuse("an alias refers to a value that contains it, which has no end", node)
        open_nodes.add(id(node))
        stack.append((node, True))
        stack.extend((c, False) for c in children if id(c) not in sizes)
    return sizes[id(root)][0]


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _check_conflict_markers(text: str) -> None:
    match = _CONFLICT.search(text)
    if match is not None:
        line = text.count("\n", 0, match.start())
        raise MergeConflictError(
            None, None, "unresolved git merge conflict marker "
            f"{match.group(1)!r}; resolve the conflict first",
            yaml.Mark("<text>", match.start(), line, 0, None, None))  # type: ignore[arg-type]


def load_documents(text: str, source: Path) -> list[Document]:
    """Every non-empty document in `text`; raises yaml.YAMLError with marks on bad syntax,
    on a key repeated in one mapping, on merge-conflict markers, and on aliases that expand
    beyond ALIAS_GROWTH values more than the text could hold written out."""
    _check_conflict_markers(text)
    loader = _Loader(text)
    docs: list[Document] = []
    budget = ALIAS_GROWTH + len(text)
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            if _check_nodes(node):
                budget -= _check_expansion(node, budget)
            data = loader.construct_document(node)
            if data is not None:
                docs.append(Document(data, node, len(docs)))
    finally:
        loader.dispose()
    return docs


def describe_yaml_error(exc: yaml.YAMLError, text: str) -> tuple[int | None, str]:
    """(line, message) for a YAML syntax error in `text`, in a single line. A problem found
    at the end of a file that lacks a final newline is reported on its last line."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    context_mark = getattr(exc, "context_mark", None)
    if mark is None:
        mark = context_mark
    if context and context_mark is not None and mark is not None \
            and context_mark.line != mark.line:
        context += f" started on line {context_mark.line + 1}"
    msg = ("" if isinstance(exc, UnsupportedYAMLError) else "invalid YAML: ") + problem \
        + (f" ({context})" if context else "")
    last = text.count("\n") + (0 if text.endswith("\n") else 1)
    line = min(mark.line + 1, max(last, 1)) if mark is not None else None
    return line, " ".join(msg.split())


def read_documents(path: Path, error: type[RunnerError], *, utf8_advice: str,
                   yaml_advice: str = "") -> list[Document]:
    """Reads, decodes (a BOM is fine) and parses a YAML file; every failure is `error`, in one
    line naming the file and the line, with the advice given (none for a merge conflict,
    whose message says what to do)."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise error(f"cannot read: {e.strerror}", path=path) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise error(f"not valid UTF-8 (byte {raw[e.start]:#04x}); {utf8_advice}", path=path,
                    where=str(raw.count(b"\n", 0, e.start) + 1)) from None
    try:
        return load_documents(text, path)
    except yaml.YAMLError as e:
        line, msg = describe_yaml_error(e, text)
        hint = f"; {yaml_advice}" if yaml_advice and not isinstance(e, MergeConflictError) \
            else ""
        raise error(msg + hint, path=path, where=str(line) if line else None) from None
