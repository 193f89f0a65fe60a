"""Rendering: rows -> request lines, in a sandboxed Jinja2 environment.

Every string in a manifest's request is a template, compiled once and rendered per row with
`row`, `index`, `key` and `vars` in scope. Undefined names are errors, not empty strings, and the
sandbox keeps templates away from Python internals. Row values are inserted as data: a value
that looks like a template is never rendered again. Strings without template syntax are kept
as they are, and non-string values (numbers, booleans) keep their YAML type.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Callable, Iterator

import jinja2
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from .errors import DataError, TemplateError
from .hashing import canonical, file_digest
from .manifest import Manifest
from .sources import Row

Compiled = Callable[[dict[str, Any]], Any]


class _TrackingLoader(jinja2.FileSystemLoader):
    """Loads included templates from the project directory and remembers which, for the spec
    hash, and under which file name, so that an error inside one can name its file and line."""

    def __init__(self, root: Path):
        super().__init__(str(root))
        self.root = root
        self.used: set[str] = set()
        self.files: dict[str, str] = {}    # file name as Jinja reports it -> template name

    def get_source(self, environment: jinja2.Environment, template: str
                   ) -> tuple[str, str, Callable[[], bool]]:
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


@dataclass(frozen=True)
class Request:
    index: int
    key: str
    request: dict[str, Any]
    row: Row

    def line(self) -> str:
        """The JSONL input line for the provider, canonical so that it hashes stably."""
        return canonical({"key": self.key, "request": self.request})


class Renderer:
    """Renders one manifest's rows into requests. Compile errors surface at construction."""

    def __init__(self, manifest: Manifest):
        self.manifest = manifest
        self._loader = _TrackingLoader(manifest.project)
        self._env = ImmutableSandboxedEnvironment(
            undefined=jinja2.StrictUndefined, loader=self._loader, autoescape=False,
            keep_trailing_newline=True)
        self._key = self._compile(manifest.key, ("spec", "key"))
        self._request = self._compile(manifest.request, ("spec", "request"))
        # csv columns compile here too, so that validate and plan report their mistakes
        self.columns = [[self._compile(template, ("spec", "outputs", i, "columns", name))
                         for name, template in out.columns]
                        for i, out in enumerate(manifest.outputs)]

    def _compile(self, value: Any, path: tuple[str | int, ...]) -> Compiled:
        if isinstance(value, str):
            if "{{" not in value and "{%" not in value and "{#" not in value:
                return lambda ctx: value
            try:
                template = self._env.from_string(value)
            except jinja2.TemplateSyntaxError as e:
                raise TemplateError(f"template syntax error in {_where(path)}: {e.message}",
                                    path=self.manifest.source,
                                    where=str(self.manifest.line_of(path))) from None

            def render(ctx: dict[str, Any], t: jinja2.Template = template,
                       at: tuple[str | int, ...] = path) -> str:
                try:
                    return t.render(ctx)
                except jinja2.TemplateSyntaxError as e:   # only an included file gets here
                    file = self.manifest.project / e.name if e.name else self.manifest.source
                    raise TemplateError(f"template syntax error: {e.message} (included from "
                                        f"{_where(at)})", path=file, where=str(e.lineno)
                                        ) from None
                except jinja2.TemplateNotFound as e:
                    raise _RowFailure(f"included template {e.name!r} not found (in "
                                      f"{_where(at)}; include paths are relative to the "
                                      "manifest directory)", at) from None
                except Exception as e:
                    failure = self._failure(e, at)
                    if failure is None:
                        raise
                    raise failure from None
            return render
        if isinstance(value, dict):
            parts = [(k, self._compile(v, (*path, k))) for k, v in value.items()]
            return lambda ctx: {k: f(ctx) for k, f in parts}
        if isinstance(value, list):
            items = [self._compile(v, (*path, i)) for i, v in enumerate(value)]
            return lambda ctx: [f(ctx) for f in items]
        return lambda ctx: value

    def _failure(self, e: Exception, at: tuple[str | int, ...]) -> _RowFailure | None:
        """A template's failure for one row, in words; None for an exception that is a bug."""
        kinds: list[tuple[type[Exception] | tuple[type[Exception], ...], str]] = [
            (jinja2.UndefinedError, "undefined variable"),
            (SecurityError, "template not allowed"),
            (jinja2.TemplateError, "template error"),
            ((TypeError, ValueError, ArithmeticError, LookupError), "template failed"),
        ]
        for kind, what in kinds:
            if isinstance(e, kind):
                detail = e.message if isinstance(e, jinja2.TemplateError) and e.message else e
                return _RowFailure(f"{what} in {_where(at)}{self._loader.place(e.__traceback__)}"
                                   f": {detail}", at)
        return None

    def render_row(self, row: Row) -> Request:
        ctx: dict[str, Any] = {"row": row.data, "index": row.index, "vars": self.manifest.vars}
        try:
            key = self._key(ctx)
            if not isinstance(key, str) or not key.strip():
                raise _RowFailure(f"key renders empty (spec.key is {self.manifest.key!r})",
                                  ("spec", "key"))
            ctx["key"] = key
            request = self._request(ctx)
        except _RowFailure as e:
            raise TemplateError(f"{self.manifest.rows_where(row)}: {e}", path=self.manifest.source,
                                where=str(self.manifest.line_of(e.at))) from None
        return Request(row.index, key, request, row)

    def requests(self) -> Iterator[Request]:
        """Every request in input order; a repeated key is an error naming both rows."""
        seen: dict[str, str] = {}
        for row in self.manifest.iter_rows():
            req = self.render_row(row)
            if req.key in seen:
                raise DataError(f"duplicate key {req.key!r} at {self.manifest.rows_where(row)} "
                                f"(first at {seen[req.key]}); spec.key must be unique per row",
                                path=self.manifest.source,
                                where=str(self.manifest.line_of(["spec", "key"])))
            seen[req.key] = self.manifest.rows_where(row)
            yield req

    def template_files(self) -> dict[str, str]:
        """Included template files seen so far, with their digests (for the spec hash)."""
        return {name: file_digest(self.manifest.project / name)
                for name in sorted(self._loader.used)}

    def render_column(self, column: Compiled, ctx: dict[str, Any], req: Request) -> str:
        """Renders a csv column for one result, naming the row if the template fails."""
        try:
            value = column(ctx)
        except _RowFailure as e:
            raise TemplateError(f"{self.manifest.rows_where(req.row)}: {e}",
                                path=self.manifest.source,
                                where=str(self.manifest.line_of(e.at))) from None
        return value if isinstance(value, str) else str(value)


class _RowFailure(Exception):
    """Internal: a template failed for one row; re-raised as TemplateError with the row's place
    and the manifest line of the template (`at`)."""

    def __init__(self, message: str, at: tuple[str | int, ...]):
        super().__init__(message)
        self.at = at
