"""Rendering: rows -> request lines, in a sandboxed Jinja2 environment.

Every string in a manifest's request is a template, compiled once and rendered per row with
`row`, `index`, `key` and `vars` in scope. Undefined names are errors, not empty strings, and the
sandbox keeps templates away from Python internals. Row values are inserted as data: a value
that looks like a template is never rendered again. Strings without template syntax are kept
as they are, and non-string values (numbers, booleans) keep their YAML type.
"""

from __future__ import annotations

import re
from array import array
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple

import jinja2
import orjson
from jinja2 import nodes
from jinja2.exceptions import SecurityError

from .bounds import MAX_REQUEST
from .errors import DataError, TemplateError, clipped, excerpt
from .hashing import canonical_bytes, file_digest
from .manifest import Manifest
from .providers.dialect import line_format
from .providers.registry import dialect_of
from .resolve import Resolver, leaves
from .sandbox import BoundedSandbox, TemplateLimit
from .sources import Row, parse_row

Compiled = Callable[[dict[str, Any]], Any]


class _Outside(Exception):
    """Internal: an included template's name leads out of the project directory."""

    def __init__(self, name: str, problem: str):
        super().__init__(problem)
        self.name = name


class _TrackingLoader(jinja2.FileSystemLoader):
    """Loads included templates from the project directory and remembers which, for the spec
    hash, and under which file name, so that an error inside one can name its file and line.
    A name that leads out of the project (absolute, `..`, a symlink) is refused before the
    file is opened: a template that includes /proc/self/environ would otherwise quote it in
    the error its syntax causes. Jinja loads each file once, so this runs once per file."""

    def __init__(self, root: Path):
        super().__init__(str(root))
        self.root = root
        self.used: set[str] = set()
        self.files: dict[str, str] = {}    # file name as Jinja reports it -> template name
        self._resolve = Resolver()

    def get_source(self, environment: jinja2.Environment, template: str
                   ) -> tuple[str, str, Callable[[], bool]]:
        problem = leaves(self.root, template, self._resolve)
        if problem is not None:
            raise _Outside(template, problem)
        try:
            result = super().get_source(environment, template)
        except UnicodeDecodeError as e:     # e.object holds the whole file's bytes
            raise TemplateError(f"not valid UTF-8 (byte {e.object[e.start]:#04x}); save the "
                                "template as UTF-8", path=self.root / template,
                                where=str(e.object.count(b"\n", 0, e.start) + 1)) from None
        self.used.add(template)
        self.files[result[1]] = template
        return result

    def place(self, tb: TracebackType | None) -> str:
        """' (in prompts/x.j2 line 3)' when the innermost template frame is an included file."""
        found = ""
        while tb is not None:
            name = self.files.get(tb.tb_frame.f_code.co_filename)
            if name is not None:
                found = f" (in {name} line {tb.tb_lineno})"
            tb = tb.tb_next
        return found


def _where(path: tuple[str | int, ...]) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else p)
    return out


class Request(NamedTuple):
    """One rendered request. It is kept as its canonical JSON bytes, which is what is written,
    hashed and sent; the dict form is parsed only where something needs to look inside."""

    index: int  # type: ignore[assignment]  # shadows tuple.index, which nothing calls
    key: str
    request_bytes: bytes
    row: Row

    @property
    def request(self) -> dict[str, Any]:
        value: dict[str, Any] = orjson.loads(self.request_bytes)
        return value


class _Splice:
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


class Renderer:
    """Renders one manifest's rows into requests. Compile errors surface at construction."""

    def __init__(self, manifest: Manifest):
        self.manifest = manifest
        self._loader = _TrackingLoader(manifest.project)
        self._env = BoundedSandbox(
            undefined=jinja2.StrictUndefined, loader=self._loader, autoescape=False,
            keep_trailing_newline=True)
        self._key = self._compile(manifest.key, ("spec", "key"))
        self._fields: list[tuple[tuple[str | int, ...], Compiled]] = []  # templated strings
        self.dialect = dialect_of(manifest)
        # the provider's input line, as a %-format of (key's JSON, request's bytes)
        self.line_format = line_format(self.dialect)
        self._request = self._splice(self.dialect.body(manifest.request, manifest.model),
                                     ("spec", "request"))
        # csv columns compile here too, so that validate and plan report their mistakes
        self.columns = [[self._compile(template, ("spec", "outputs", i, "columns", name))
                         for name, template in out.columns]
                        for i, out in enumerate(manifest.outputs)]

    def _compile(self, value: Any, path: tuple[str | int, ...]) -> Compiled:
        if isinstance(value, str):
            if not _is_template(value):
                return lambda ctx: value
            try:
                template = self._env.from_string(value)
            except jinja2.TemplateSyntaxError as e:
                raise TemplateError(f"template syntax error in {_where(path)}: "
                                    f"{clipped(e.message or '')}",
                                    path=self.manifest.source,
                                    where=str(self.manifest.line_of(path))) from None
            pieces = _substitutions(self._env.parse(value))

            def render(ctx: dict[str, Any], t: jinja2.Template = template,
                       at: tuple[str | int, ...] = path) -> str:
                try:
                    return t.render(ctx)
                except jinja2.TemplateSyntaxError as e:   # only an included file gets here
                    file = self.manifest.project / e.name if e.name else self.manifest.source
                    raise TemplateError(f"template syntax error: {clipped(e.message or '')} "
                                        f"(included from {_where(at)})", path=file,
                                        where=str(e.lineno)) from None
                except _Outside as e:
                    raise _RowFailure(f"included template {excerpt(e.name)} {e} (in "
                                      f"{_where(at)})", at) from None
                except jinja2.TemplateNotFound as e:
                    raise _RowFailure(f"included template {e.name!r} not found (in "
                                      f"{_where(at)}; include paths are relative to the "
                                      "manifest directory)", at) from None
                except Exception as e:
                    failure = self._failure(e, at)
                    if failure is None:
                        raise
                    raise failure from None
            if pieces is not None:
                return _fast(pieces, render)
            return render
        if isinstance(value, dict):
            parts = [(k, self._compile(v, (*path, k))) for k, v in value.items()]
            return lambda ctx: {k: f(ctx) for k, f in parts}
        if isinstance(value, list):
            items = [self._compile(v, (*path, i)) for i, v in enumerate(value)]
            return lambda ctx: [f(ctx) for f in items]
        return lambda ctx: value

    def _splice(self, value: Any, path: tuple[str | int, ...]) -> Compiled:
        """Compiles the request tree into a _Splice: placeholders stand in for templated
        strings while the tree is serialised, then the bytes are cut at them."""
        holes: list[Compiled] = []

        def walk(v: Any, at: tuple[str | int, ...]) -> Any:
            if isinstance(v, str) and _is_template(v):
                holes.append(self._compile(v, at))
                self._fields.append((at, holes[-1]))
                return f"\x00hole{len(holes) - 1}\x00"
            if isinstance(v, dict):
                return {k: walk(x, (*at, k)) for k, x in v.items()}
            if isinstance(v, list):
                return [walk(x, (*at, i)) for i, x in enumerate(v)]
            return v

        data = canonical_bytes(walk(value, path))
        found = []
        for i, hole in enumerate(holes):
            token = canonical_bytes(f"\x00hole{i}\x00")
            if data.count(token) != 1:      # a literal string that looks like a placeholder
                tree = self._compile(value, path)
                return lambda ctx: canonical_bytes(tree(ctx))
            found.append((data.index(token), len(token), hole))
        found.sort(key=lambda f: f[0])
        segments, pos = [], 0
        for at, size, _ in found:
            segments.append(data[pos:at])
            pos = at + size
        segments.append(data[pos:])
        return _Splice(segments, [hole for _, _, hole in found])

    def _failure(self, e: Exception, at: tuple[str | int, ...]) -> _RowFailure | None:
        """A template's failure for one row, in words; None for an exception that is a bug."""
        kinds: list[tuple[type[Exception] | tuple[type[Exception], ...], str]] = [
            (jinja2.UndefinedError, "undefined variable"),
            (SecurityError, "template not allowed"),
            (TemplateLimit, "template over a limit"),
            (jinja2.TemplateError, "template error"),
            ((TypeError, ValueError, ArithmeticError, LookupError), "template failed"),
            (RecursionError, "template nested too deeply (one that includes or calls itself?)"),
            (MemoryError, "template ran out of memory"),
        ]
        for kind, what in kinds:
            if isinstance(e, kind):
                detail = e.message if isinstance(e, jinja2.TemplateError) and e.message else str(e)
                return _RowFailure(f"{what} in {_where(at)}{self._loader.place(e.__traceback__)}"
                                   f": {clipped(detail)}", at)
        return None

    def _render(self, ctx: dict[str, Any]) -> tuple[str, bytes]:
        """One row's key and request bytes; `ctx` gains the key. Raises _RowFailure."""
        key = self._key(ctx)
        if not isinstance(key, str) or not key.strip():
            raise _RowFailure(f"key renders empty (spec.key is {excerpt(self.manifest.key)})",
                              ("spec", "key"))
        ctx["key"] = key
        request: bytes = self._request(ctx)
        if len(request) + len(key) > MAX_REQUEST:
            raise self._too_big(ctx, len(request) + len(key))
        return key, request

    def _too_big(self, ctx: dict[str, Any], size: int) -> _RowFailure:
        """A request over MAX_REQUEST, named by its largest templated field."""
        fields = [(len(orjson.dumps(f(ctx))), at) for at, f in self._fields]
        biggest, at = max(fields, key=lambda f: f[0], default=(0, ("spec", "request")))
        return _RowFailure(f"the request renders to {size:,} bytes, more than {MAX_REQUEST:,}; "
                           f"its largest field is {_where(at)} ({biggest:,} bytes)", at)

    def _row_error(self, row: Row, e: _RowFailure) -> TemplateError:
        return TemplateError(f"{self.manifest.rows_where(row)}: {e}", path=self.manifest.source,
                             where=str(self.manifest.line_of(e.at)))

    def render_row(self, row: Row) -> Request:
        try:
            key, request = self._render(
                {"row": row.data, "index": row.index, "vars": self.manifest.vars})
        except _RowFailure as e:
            raise self._row_error(row, e) from None
        return Request(row.index, key, request, row)

    def line(self, request: Request) -> bytes:
        """The provider's input line of a request, canonical, without its newline."""
        return self.line_format % (canonical_bytes(request.key), request.request_bytes)

    def requests(self) -> Iterator[Request]:
        """Every request in input order; a repeated key is an error naming both rows."""
        keys = KeySet()
        for row in self.manifest.iter_rows():
            req = self.render_row(row)
            keys.add(req.key)
            yield req
        self.check_keys(keys)

    def render_jsonl(self, lines: Iterable[bytes], index: int, line: int,
                     write: Callable[[bytes], object], add_key: Callable[[str], object]
                     ) -> tuple[int, int]:
        """Renders lines of the JSONL rows file, the first being line `line` and holding row
        `index`: passes each provider input line (newline included) to `write`, and every key
        to `add_key`. Returns the rows and the lines read. The hot path of render_into: the same
        bytes and errors as requests(), without a Row, a Request or a generator per row."""
        path = self.manifest.rows
        assert path is not None
        variables = self.manifest.vars
        render, line_format = self._render, self.line_format + b"\n"
        first, n = index, line - 1
        for n, raw in enumerate(lines, line):
            value = parse_row(raw, path, n)
            if value is None:
                continue
            try:
                key, request = render({"row": value, "index": index, "vars": variables})
            except _RowFailure as e:
                raise self._row_error(Row(index, value, f"line {n}"), e) from None
            add_key(key)
            write(line_format % (canonical_bytes(key), request))
            index += 1
        return index - first, n - line + 1

    def check_keys(self, keys: KeySet) -> None:
        """Raises for a key that repeats, naming both rows: only then are the rows rendered
        again, to find them."""
        repeated = keys.repeated()
        if repeated:
            self._find_duplicate(repeated)

    def _find_duplicate(self, suspects: set[int]) -> None:
        """The slow path, taken only when a key hash repeated: render the keys again to name
        the two rows."""
        first: dict[str, str] = {}
        for row in self.manifest.iter_rows():
            key = self.render_row(row).key
            if hash(key) not in suspects:
                continue
            if key in first:
                raise DataError(f"duplicate key {excerpt(key)} at {self.manifest.rows_where(row)} "
                                f"(first at {first[key]}); spec.key must be unique per row",
                                path=self.manifest.source,
                                where=str(self.manifest.line_of(["spec", "key"])))
            first[key] = self.manifest.rows_where(row)

    @property
    def used_templates(self) -> frozenset[str]:
        """Names of the included template files seen so far."""
        return frozenset(self._loader.used)

    def add_used_templates(self, names: Iterable[str]) -> None:
        """Templates that were included while rendering elsewhere (in a worker process)."""
        self._loader.used.update(names)

    def template_files(self) -> dict[str, str]:
        """Included template files seen so far, with their digests (for the spec hash)."""
        return {name: file_digest(self.manifest.project / name)
                for name in sorted(self._loader.used)}

    def render_column(self, column: Compiled, ctx: dict[str, Any], row: Row) -> str:
        """Renders a csv column for one result, naming the row if the template fails."""
        try:
            value = column(ctx)
        except _RowFailure as e:
            raise self._row_error(row, e) from None
        return value if isinstance(value, str) else str(value)


class _RowFailure(Exception):
    """Internal: a template failed for one row; re-raised as TemplateError with the row's place
    and the manifest line of the template (`at`)."""

    def __init__(self, message: str, at: tuple[str | int, ...]):
        super().__init__(message)
        self.at = at


class KeySet:
    """Tells whether a key repeats, in 8 bytes per key instead of the ~100 a set of strings
    costs: each key's hash is appended to one of 64 arrays (by its low bits), and at the end
    each array is checked with a set, one at a time, so that the check needs a 64th of the
    memory one set of every hash would. hash() differs between processes: keys rendered in
    worker processes are added here, in one process."""

    PARTS = 64

    def __init__(self) -> None:
        self._parts = [array("q") for _ in range(self.PARTS)]

    def add(self, key: str) -> None:
        h = hash(key)
        self._parts[h % self.PARTS].append(h)

    def update(self, keys: Iterable[str]) -> None:
        parts = self._parts
        for key in keys:
            h = hash(key)
            parts[h % self.PARTS].append(h)

    def repeated(self) -> set[int]:
        """Hashes seen more than once (nearly always a key seen more than once)."""
        found: set[int] = set()
        for part in self._parts:
            if len(set(part)) != len(part):
                found.update(h for h, n in Counter(part).items() if n > 1)
        return found


def _substitutions(tree: nodes.Template) -> list[Any] | None:
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


def _fast(pieces: list[Any], slow: Compiled) -> Compiled:
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


def _is_template(text: str) -> bool:
    return "{{" in text or "{%" in text or "{#" in text


_MISSING = object()
