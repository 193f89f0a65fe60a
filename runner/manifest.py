"""Manifests: load every batch declared in a directory, validate it, resolve its paths.

Path rule: every relative path in a manifest (rows, outputs, errors, included templates)
resolves against the manifest directory (the DIR given on the command line), whatever the
working directory. Outputs must stay inside that directory.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Iterator

import jsonschema
import yaml

from . import sources
from .errors import ManifestError
from .hashing import canonical, digest
from .yamlsrc import Document, describe_yaml_error, load_documents

MANIFEST_SUFFIXES = (".yaml", ".yml")
INLINE_LIMIT_NOTE = "inline requests are sent when the batch is under 20 MB"


@lru_cache(maxsize=None)
def load_schema(name: str) -> dict[str, Any]:
    """A schema from the project's schemas/ folder: beside the package in a checkout (and an
    editable install), inside it as runner/schemas in a built wheel."""
    root = Path(__file__).resolve().parent.parent
    beside = root / "schemas" / name
    if (root / "pyproject.toml").is_file() and beside.is_file():
        text = beside.read_text(encoding="utf-8")
    else:
        text = resources.files("runner.schemas").joinpath(name).read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


@dataclass(frozen=True)
class Output:
    rel: str           # as written, relative to the project directory
    path: Path         # resolved, absolute
    format: str        # "jsonl" | "csv"
    columns: tuple[tuple[str, str], ...] = ()


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
    rows: Path | None = None
    items: tuple[Any, ...] | None = None
    document_hash: str = ""   # canonical JSON of the manifest document

    @property
    def rel_source(self) -> str:
        return _rel(self.source, self.project)

    def iter_rows(self) -> Iterator[sources.Row]:
        if self.rows is not None:
            return sources.read_rows(self.rows)
        return sources.inline(list(self.items or ()), self.source, prefix="spec.items item")

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


def _inside(project: Path, rel: str, source: Path, line: int, what: str) -> Path:
    """Resolve an output path and refuse one that leaves the project (.., absolute, symlinks)."""
    if Path(rel).is_absolute() or rel.startswith("~"):
        raise ManifestError(f"{what} {rel!r} must be a relative path inside {project.name}/",
                            path=source, where=str(line))
    resolved = (project / rel).resolve()
    if not resolved.is_relative_to(project.resolve()):
        raise ManifestError(f"{what} {rel!r} leaves the project directory",
                            path=source, where=str(line))
    if resolved == project.resolve() or resolved.is_dir():
        raise ManifestError(f"{what} {rel!r} is a directory", path=source, where=str(line))
    return project / Path(rel)


def _schema_error(doc: Document, source: Path) -> ManifestError | None:
    validator = jsonschema.Draft202012Validator(load_schema("manifest.schema.json"))
    error = jsonschema.exceptions.best_match(validator.iter_errors(doc.data))
    if error is None:
        return None
    path = list(error.absolute_path)
    where = ".".join(str(p) if isinstance(p, str) else f"[{p}]" for p in path).replace(".[", "[")
    msg = error.message
    if error.validator == "additionalProperties":
        msg = msg.replace("Additional properties are not allowed", "unknown key")
    elif error.validator == "oneOf" and path == ["spec"]:
        msg = "spec needs exactly one of 'rows' (a data file) or 'items' (inline rows)"
    if len(msg) > 200:
        msg = msg[:197] + "..."
    return ManifestError(f"{where or 'document'}: {msg}" if where else msg,
                         path=source, where=str(doc.line_of(path)))


def _build(doc: Document, source: Path, project: Path) -> Manifest:
    err = _schema_error(doc, source)
    if err is not None:
        raise err
    data = doc.data
    spec = data["spec"]
    outputs = []
    for i, out in enumerate(spec["outputs"]):
        line = doc.line_of(["spec", "outputs", i, "path"])
        fmt = out.get("format") or ("csv" if out["path"].lower().endswith(".csv") else "jsonl")
        if fmt == "csv" and not out.get("columns"):
            raise ManifestError("a csv output needs columns", path=source, where=str(line))
        if fmt == "jsonl" and out.get("columns"):
            raise ManifestError("columns apply to csv outputs only", path=source, where=str(line))
        outputs.append(Output(out["path"], _inside(project, out["path"], source, line, "output"),
                              fmt, tuple(out.get("columns", {}).items())))
    errors_rel = spec.get("errors") or _default_errors(spec["outputs"][0]["path"])
    errors_line = doc.line_of(["spec", "errors"] if "errors" in spec else ["spec", "outputs"])
    errors = Output(errors_rel, _inside(project, errors_rel, source, errors_line, "errors path"),
                    "jsonl")
    rows = None
    if "rows" in spec:
        rows = project / spec["rows"]
    model = spec["model"].removeprefix("models/")
    return Manifest(
        name=data["metadata"]["name"], source=source, line=doc.node.start_mark.line + 1,
        project=project, provider=spec["provider"], model=model,
        key=spec.get("key", "{{ index }}"), request=spec["request"],
        outputs=tuple(outputs), errors=errors, vars=spec.get("vars", {}), rows=rows,
        items=tuple(spec["items"]) if "items" in spec else None,
        document_hash=digest(canonical(data).encode()),
    )


def _default_errors(first_output: str) -> str:
    stem = first_output.rsplit(".", 1)[0] if "." in first_output.rsplit("/", 1)[-1] else first_output
    return stem + ".errors.jsonl"


def manifest_files(directory: Path) -> list[Path]:
    if not directory.is_dir():
        raise ManifestError("not a directory", path=directory)
    return sorted(p for p in directory.iterdir()
                  if p.suffix in MANIFEST_SUFFIXES and p.is_file() and not p.name.startswith("."))


def load_file(source: Path, project: Path) -> list[Manifest]:
    try:
        text = source.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ManifestError("not valid UTF-8", path=source) from None
    except OSError as e:
        raise ManifestError(f"cannot read: {e.strerror}", path=source) from None
    try:
        docs = load_documents(text, source)
    except yaml.YAMLError as e:
        line, msg = describe_yaml_error(e)
        raise ManifestError(msg, path=source, where=str(line) if line else None) from None
    return [_build(doc, source, project) for doc in docs]


def load_directory(directory: Path) -> list[Manifest]:
    """Every manifest in `directory`, checked for clashes between them. Raises ManifestError."""
    project = directory.absolute()
    manifests: list[Manifest] = []
    for source in manifest_files(project):
        manifests.extend(load_file(source, project))
    names: dict[str, Manifest] = {}
    paths: dict[Path, tuple[Manifest, str]] = {}
    for m in manifests:
        if m.name in names:
            first = names[m.name]
            raise ManifestError(f"batch name {m.name!r} is already used by "
                                f"{first.rel_source}:{first.line}", path=m.source, where=str(m.line))
        names[m.name] = m
        for out in m.declared_paths():
            key = out.path.resolve()
            if key in paths:
                other, rel = paths[key]
                raise ManifestError(f"output path {out.rel!r} is already written by batch "
                                    f"{other.name!r} ({other.rel_source})",
                                    path=m.source, where=str(m.line))
            paths[key] = (m, out.rel)
    return manifests
