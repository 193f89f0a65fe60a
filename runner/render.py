"""Rendering: rows -> request lines, in a sandboxed Jinja2 environment.

Every string in a manifest's request is a template, compiled once and rendered per row with
`row`, `index`, `key` and `vars` in scope. Undefined names are errors, not empty strings, and the
sandbox keeps templates away from Python internals. Row values are inserted as data: a value
that looks like a template is never rendered again. Strings without template syntax are kept
as they are, and non-string values (numbers, booleans) keep their YAML type.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, NamedTuple

import jinja2
import orjson
from jinja2 import nodes
from jinja2.exceptions import SecurityError

from .bounds import MAX_REQUEST
from .errors import DataError, TemplateError, clipped, excerpt
from .fastpath import Compiled, Splice, fast, is_template, substitutions
from .hashing import canonical_bytes, file_digest
from .keyset import KeySet
from .loader import Outside, TrackingLoader
from .manifest import Manifest
from .providers.registry import dialect_of
from .sandbox import BoundedSandbox, TemplateLimit
from .sources import Row, parse_row


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


class Renderer:
    """Renders one manifest's rows into requests. Compile errors surface at construction."""

    def __init__(self, manifest: Manifest):
        self.manifest = manifest
        self._loader = TrackingLoader(manifest.project)
        self._env = BoundedSandbox(
            undefined=jinja2.StrictUndefined, loader=self._loader, autoescape=False,
            keep_trailing_newline=True)
        self.trees: list[nodes.Template] = []   # of the templates compiled, in order
        self._key = self._compile(manifest.key, ("spec", "key"))
        self._fields: list[tuple[tuple[str | int, ...], Compiled]] = []  # templated strings
        self.dialect = dialect_of(manifest)
        self.framing = self.dialect.framing(manifest.endpoint)
        # the provider's input line, as a %-format of (key's JSON, request's bytes)
        self.line_format = self.framing.format()
        self._wire = self.dialect.wire_key if self.dialect.maps_keys else None
        self._request = self._splice(self.dialect.body(manifest.request, manifest.model),
                                     ("spec", "request"))
        self.line_trees = len(self.trees)       # the first, those a request line reads
        # csv columns compile here too, so that validate and plan report their mistakes
        self.columns = [[self._compile(template, ("spec", "outputs", i, "columns", name))
                         for name, template in out.columns]
                        for i, out in enumerate(manifest.outputs)]

    def _compile(self, value: Any, path: tuple[str | int, ...]) -> Compiled:
        if isinstance(value, str):
            if not is_template(value):
                return lambda ctx: value
            try:
                template = self._env.from_string(value)
            except jinja2.TemplateSyntaxError as e:
                raise TemplateError(f"template syntax error in {_where(path)}: "
                                    f"{clipped(e.message or '')}",
                                    path=self.manifest.source,
                                    where=str(self.manifest.line_of(path))) from None
            tree = self._env.parse(value)
            self.trees.append(tree)
            pieces = substitutions(tree)

            def render(ctx: dict[str, Any], t: jinja2.Template = template,
                       at: tuple[str | int, ...] = path) -> str:
                try:
                    return t.render(ctx)
                except jinja2.TemplateSyntaxError as e:   # only an included file gets here
                    file = self.manifest.project / e.name if e.name else self.manifest.source
                    raise TemplateError(f"template syntax error: {clipped(e.message or '')} "
                                        f"(included from {_where(at)})", path=file,
                                        where=str(e.lineno)) from None
                except Outside as e:
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
                return fast(pieces, render)
            return render
        if isinstance(value, dict):
            parts = [(k, self._compile(v, (*path, k))) for k, v in value.items()]
            return lambda ctx: {k: f(ctx) for k, f in parts}
        if isinstance(value, list):
            items = [self._compile(v, (*path, i)) for i, v in enumerate(value)]
            return lambda ctx: [f(ctx) for f in items]
        return lambda ctx: value

    def _splice(self, value: Any, path: tuple[str | int, ...]) -> Compiled:
        """Compiles the request tree into a Splice: placeholders stand in for templated
        strings while the tree is serialised, then the bytes are cut at them."""
        holes: list[Compiled] = []

        def walk(v: Any, at: tuple[str | int, ...]) -> Any:
            if isinstance(v, str) and is_template(v):
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
        return Splice(segments, [hole for _, _, hole in found])

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
        if self._wire is not None:
            try:
                self._wire(key)
            except ValueError as e:
                raise _RowFailure(f"key {excerpt(key)} cannot be sent to {self.dialect.name}: "
                                  f"{e}", ("spec", "key")) from None
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
        return self.line_format % (self._key_json(request.key), request.request_bytes)

    def _key_json(self, key: str) -> bytes:
        """A key's JSON as the input line holds it: as the provider is sent it."""
        return canonical_bytes(key if self._wire is None else self._wire(key))

    def requests(self) -> Iterator[Request]:
        """Every request in input order; a repeated key is an error naming both rows."""
        keys = KeySet()
        for row in self.manifest.iter_rows():
            req = self.render_row(row)
            keys.add(req.key)
            yield req
        self.check_keys(keys)

    def render_jsonl(self, lines: Iterable[bytes], index: int, line: int,
                     write: Callable[[bytes], object], add_key: Callable[[str], object],
                     look: Callable[[bytes, bytes, int], object] | None = None
                     ) -> tuple[int, int]:
        """Renders lines of the JSONL rows file, the first being line `line` and holding row
        `index`: passes each provider input line (newline included) to `write`, every key
        to `add_key`, and with `look`, each line's key's JSON, request bytes and length
        (runner.held's lookup, which would otherwise cut the lines apart again). Returns
        the rows and the lines read. The hot path of render_into: the same bytes and errors
        as requests(), without a Row, a Request or a generator per row."""
        path = self.manifest.rows
        assert path is not None
        variables = self.manifest.vars
        render, line_format = self._render, self.line_format + b"\n"
        key_json = canonical_bytes if self._wire is None else self._key_json
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
            if look is None:
                write(line_format % (key_json(key), request))
            else:
                wired = key_json(key)
                rendered = line_format % (wired, request)
                write(rendered)
                look(wired, request, len(rendered))
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


