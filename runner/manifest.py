"""Manifests: load every batch declared in a directory, validate it, resolve its paths.

Path rule: every relative path in a manifest (rows, outputs, errors, included templates)
resolves against the manifest directory (the DIR given on the command line), whatever the
working directory, and must stay inside it (runner.resolve.leaves), as must the manifests.
No output may be a file the project reads (runner.clashes).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import parquet, sources
from .clashes import check_outputs
from .errors import DataError, ManifestError, excerpt
from .hashing import canonical, digest
from .parsecache import NO_CACHE, ParseCache, salt
from .providers import registry
from .resolve import Resolver, folders_down_to, is_dir, leaves
from .schema_check import load_schema, schema_error
from .yamllines import Located
from .yamlsrc import read_documents

MANIFEST_SUFFIXES = (".yaml", ".yml")
PATH_EXCERPT = 120      # a path from a manifest is quoted whole up to this length


@dataclass(frozen=True)
class Output:
    rel: str           # as written, relative to the project directory
    path: Path         # resolved, absolute
    format: str        # "jsonl" | "csv" | "parquet"
    columns: tuple[tuple[str, str], ...] = ()
    line: int = field(default=0, compare=False)   # where it is declared, for messages


@dataclass(frozen=True)
class Manifest:
    name: str
    source: Path              # the manifest file
    line: int                 # where its document starts
    project: Path             # the manifest directory: base of every relative path
    provider: str
    model: str
    key: str
    request: dict[str, Any]
    outputs: tuple[Output, ...]
    errors: Output
    vars: dict[str, Any] = field(default_factory=dict)
    retry_failed: int = 0
    allowed_failures: int | str = 0     # a count, or a share of the batch ("0.5%")
    budget: float | None = None
    max_requests: int | None = None     # requests per job; more are split into shards
    reuse: bool = True                  # requests the result store holds are not sent again
    endpoint: str | None = None         # where requests go, for a provider with several
    rows: Path | None = None
    items: tuple[Any, ...] | None = None
    document_hash: str = ""   # canonical JSON of the manifest document
    document: Located | None = field(default=None, compare=False, repr=False)

    @property
    def rel_source(self) -> str:
        return _rel(self.source, self.project)

    def line_of(self, path: Sequence[str | int]) -> int:
        """1-based line in the manifest file of the value at `path` (e.g. spec.request...)."""
        return self.document.line_of(path) if self.document is not None else self.line

    def iter_rows(self) -> Iterator[sources.Row]:
        if self.rows is not None:
            return self._file_rows(self.rows)
        return sources.inline(list(self.items or ()), self.source, prefix="spec.items item")

    def _file_rows(self, path: Path) -> Iterator[sources.Row]:
        """The rows file's rows; a missing, unreadable or empty one is reported at spec.rows."""
        rel = _rel(path, self.project)
        where = str(self.line_of(["spec", "rows"]))
        if path.is_dir():
            raise DataError(f"spec.rows: {rel} is a directory, not a rows file",
                            path=self.source, where=where)
        if not path.is_file():
            what = "is a symlink to a missing file" if path.is_symlink() else "not found"
            raise DataError(f"spec.rows: rows file {rel} {what} (relative paths start at the "
                            "manifest directory)", path=self.source, where=where)
        empty = True
        for row in sources.read_rows(path):
            empty = False
            yield row
        if empty:
            raise DataError(f"spec.rows: {rel} has no rows; a batch needs at least one",
                            path=self.source, where=where)

    def rows_where(self, row: sources.Row) -> str:
        """Names a row for messages: 'data/p.jsonl line 3' or 'spec.items item 2'."""
        if self.rows is not None:
            return f"{_rel(self.rows, self.project)} {row.where}"
        return row.where

    def declared_paths(self) -> list[Output]:
        return [*self.outputs, self.errors]


def _rel(path: Path, base: Path) -> str:
    try:
        return path.relative_to(base).as_posix()
    except ValueError:
        return str(path)


def _inside(project: Path, rel: str, source: Path, line: int, what: str,
            resolve: Resolver) -> Path:
    """Resolve an output path and refuse one that leaves the project (.., absolute, symlinks)
    or that cannot be a file (a directory, or under something that is not a directory)."""
    def refuse(problem: str) -> ManifestError:
        return ManifestError(f"{what} {excerpt(rel, PATH_EXCERPT)} {problem}", path=source,
                             where=str(line))

    problem = leaves(project, rel, resolve)
    if problem is not None:
        raise refuse(problem)
    path = project / rel
    root = resolve(project)
    resolved = resolve(path)
    if rel.endswith("/") or resolved == root or is_dir(resolved):
        raise refuse("is a directory; name a file")
    for parent in folders_down_to(resolved, root):
        if not resolve.can_hold_files(parent):
            raise refuse(f"cannot be written: {_rel(Path(parent), Path(root))} is a file, "
                         "not a directory")
    return path


def _build(doc: Located, source: Path, project: Path, resolve: Resolver) -> Manifest:
    """A Manifest from a document that conforms to the schema; checks what the schema cannot
    (csv columns, output paths: those depend on the file system and run every time)."""
    data = doc.data
    spec = data["spec"]
    outputs = []
    for i, out in enumerate(spec["outputs"]):
        line = doc.line_of(["spec", "outputs", i, "path"])
        fmt = out.get("format") or _format_of(out["path"])
        if fmt != "jsonl" and not out.get("columns"):
            raise ManifestError(f"a {fmt} output needs columns", path=source, where=str(line))
        if fmt == "jsonl" and out.get("columns"):
            raise ManifestError("columns apply to csv and parquet outputs only", path=source,
                                where=str(line))
        if fmt == "parquet" and not parquet.available():
            raise ManifestError(f"a parquet output needs pyarrow: {parquet.EXTRA}",
                                path=source, where=str(line))
        outputs.append(Output(out["path"], _inside(project, out["path"], source, line, "output",
                                                   resolve),
                              fmt, tuple(out.get("columns", {}).items()), line))
    errors_rel = spec.get("errors") or _default_errors(spec["outputs"][0]["path"])
    errors_line = doc.line_of(["spec", "errors"] if "errors" in spec else ["spec", "outputs"])
    errors = Output(errors_rel, _inside(project, errors_rel, source, errors_line, "errors path",
                                        resolve), "jsonl", line=errors_line)
    rows = None
    if "rows" in spec:
        problem = leaves(project, spec["rows"], resolve)
        if problem is not None:
            raise ManifestError(f"spec.rows: rows file {excerpt(spec['rows'], PATH_EXCERPT)} "
                                f"{problem}", path=source, where=str(doc.line_of(["spec", "rows"])))
        rows = project / spec["rows"]
    model = registry.dialect(spec["provider"]).model_id(spec["model"])
    return Manifest(
        name=data["metadata"]["name"], source=source, line=doc.line_of([]),
        project=project, provider=spec["provider"], model=model,
        key=spec.get("key", "{{ index }}"), request=spec["request"],
        outputs=tuple(outputs), errors=errors, vars=spec.get("vars", {}),
        retry_failed=spec.get("retry_failed", 0), budget=spec.get("budget"),
        allowed_failures=spec.get("allowed_failures", 0),
        max_requests=spec.get("max_requests"), reuse=spec.get("reuse", True), rows=rows,
        endpoint=_endpoint(spec),
        items=tuple(spec["items"]) if "items" in spec else None,
        document_hash=digest(canonical(data).encode()), document=doc,
    )


def _endpoint(spec: dict[str, Any]) -> str | None:
    """The endpoint the requests go to: as given, or the provider's default (its first)."""
    endpoints = registry.dialect(spec["provider"]).endpoints
    return spec.get("endpoint") or (endpoints[0] if endpoints else None)


def _format_of(path: str) -> str:
    """An output's format by its path's extension: .csv and .parquet, anything else jsonl."""
    suffix = path.lower().rsplit(".", 1)[-1]
    return suffix if suffix in ("csv", "parquet") else "jsonl"


def _default_errors(first_output: str) -> str:
    has_suffix = "." in first_output.rsplit("/", 1)[-1]
    stem = first_output.rsplit(".", 1)[0] if has_suffix else first_output
    return stem + ".errors.jsonl"


def manifest_files(directory: Path) -> list[Path]:
    if not directory.is_dir():
        raise ManifestError("not a directory", path=directory)
    return sorted(p for p in directory.iterdir()
                  if p.suffix in MANIFEST_SUFFIXES and p.is_file() and not p.name.startswith("."))


def parse_cache(state_dir: Path) -> ParseCache:
    """The cache of parsed, schema-valid manifest documents in the state directory; a new
    schema (another field, another rule) makes every manifest be parsed and validated again."""
    return ParseCache(state_dir / "manifests.cache", salt(
        load_schema("manifest.schema.json"),
        {name: [registry.dialect(name).request_schema(endpoint)
                for endpoint in registry.dialect(name).endpoints or (None,)]
         for name in registry.names()}))


def load_file(source: Path, project: Path, cache: ParseCache = NO_CACHE,
              resolve: Resolver | None = None, skipped: list[Path] | None = None
              ) -> list[Manifest]:
    """The manifests of one file. YAML parsing and schema validation are skipped when `cache`
    holds the file's documents for its current stamp; the rest of the checks always run. A
    file none of whose documents is a batch-runner document (a docker-compose.yml beside the
    manifests) gives none, and goes to `skipped`."""
    resolve = resolve or Resolver()
    try:
        st: os.stat_result | None = os.stat(source)
    except OSError:
        st = None                       # reading it says what is wrong
    cached = cache.get(source.name, st) if st is not None else None
    if cached is not None:
        return [_build(Located(data, lines), source, project, resolve)
                for data, lines in cached]
    docs: list[Located] = []
    manifests = []
    found = list(read_documents(source, ManifestError, utf8_advice="save the file as UTF-8"))
    if found and not any(_ours(doc.data) for doc in found):
        if skipped is not None:
            skipped.append(source)
        return []
    for doc in found:
        err = schema_error(doc, source)
        if err is not None:
            raise err
        docs.append(doc.located())
        manifests.append(_build(docs[-1], source, project, resolve))
    if st is not None:
        cache.put(source.name, st, [[d.data, d.lines] for d in docs])
    return manifests


def _ours(data: Any) -> bool:
    """Whether a YAML document is meant as a batch-runner manifest, broken or not: it names
    our apiVersion or kind, or it has neither but holds a metadata or a spec (a manifest
    whose apiVersion was left out). Anything else (docker-compose, a Kubernetes object) is
    another tool's file."""
    if not isinstance(data, dict):
        return True         # not a mapping: the schema says what a manifest must be
    version, kind = data.get("apiVersion"), data.get("kind")
    if version is not None or kind is not None:
        return kind == "Batch" or (isinstance(version, str) and version.startswith("batch-"))
    return "spec" in data or "metadata" in data


def load_directory(directory: Path, cache: ParseCache = NO_CACHE,
                   skipped: list[Path] | None = None) -> list[Manifest]:
    """Every manifest in `directory`, checked for clashes between them. Raises ManifestError.
    `cache` may spare parsing unchanged files; the caller saves it once all is well. Files of
    other tools go to `skipped` (see load_file)."""
    project = directory.absolute()
    files = manifest_files(project)
    resolve = Resolver()
    manifests: list[Manifest] = []
    for source in files:
        problem = leaves(project, source.name, resolve)
        if problem is not None:
            raise ManifestError(f"this manifest {problem}; keep manifests in the directory",
                                path=source)
        manifests.extend(load_file(source, project, cache, resolve, skipped))
    names: dict[str, Manifest] = {}
    for m in manifests:
        if m.name in names:
            first = names[m.name]
            raise ManifestError(f"batch name {m.name!r} is already used by "
                                f"{first.rel_source}:{first.line_of(['metadata', 'name'])}",
                                path=m.source, where=str(m.line_of(["metadata", "name"])))
        names[m.name] = m
    check_outputs(project, files, manifests, resolve)
    return manifests
