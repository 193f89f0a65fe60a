"""Row readers: each yields rows one at a time, with the place each came from.

Rows are streamed so that a rows file of any size is read in constant memory. Every malformed
row is reported with its file and line, never skipped. Cutting a JSONL file into blocks of lines
for rendering across cores is runner.parallel's, its only user; the line rules they share
(parse_row, blank) are here.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import orjson
import yaml

from . import parquet
from .errors import DataError, excerpt
from .yamlsrc import describe_yaml_error, load_documents


class Row(NamedTuple):
    """One row. A NamedTuple, not a dataclass: a million of them are made per render."""

    index: int  # type: ignore[assignment]  # shadows tuple.index, which nothing calls
    data: Any
    where: str  # "line 3", "row 3", "items[2]": for messages


class _Repeated(dict[str, Any]):
    """A JSON object that named a key twice; kept so the row holding it can be reported."""

    def __init__(self, pairs: list[tuple[str, Any]], key: str):
        super().__init__(pairs)
        self.key = key


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """object_pairs_hook: JSON allows a repeated key and keeps the last; a rows file must not."""
    seen: set[str] = set()
    for k, _ in pairs:
        if k in seen:
            return _Repeated(pairs, k)
        seen.add(k)
    return dict(pairs)


def _repeated_key(value: Any) -> str | None:
    """The repeated key of the first _Repeated object in `value`, searching nested values."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, _Repeated):
            return v.key
        if isinstance(v, dict):
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
    return None


def _not_utf8(raw: bytes, start: int) -> str:
    return f"not valid UTF-8 (byte {raw[start]:#04x}); save the file as UTF-8"


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
            type(None): "null"}.get(type(value), "a number")


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """Decoded lines with 1-based numbers; a bad byte is reported with its line."""
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        raise DataError("rows file not found", path=path) from None
    except OSError as e:
        raise DataError(f"cannot read rows file: {e.strerror}", path=path) from None
    with f:
        for n, raw in enumerate(f, 1):
            try:
                text = raw.decode("utf-8-sig" if n == 1 else "utf-8")
            except UnicodeDecodeError as e:
                raise DataError(_not_utf8(raw, e.start), path=path, where=f"{n}") from None
            yield n, text


def open_jsonl(path: Path) -> io.BufferedReader:
    try:
        return open(path, "rb")
    except OSError as e:
        raise DataError(f"cannot read rows file: {e.strerror}", path=path) from None


def _jsonl(path: Path) -> Iterator[Row]:
    """The hot path at a million rows: orjson parses each line straight from bytes, and only a
    line that fails is looked at again to say why. A JSON object naming a key twice keeps the
    last value, as JSON parsers do (RFC 8259 allows it). The renderer's block path
    (Renderer.render_jsonl) reads lines the same way, with the same helpers."""
    index = 0
    with open_jsonl(path) as f:
        for n, raw in enumerate(f, 1):
            value = parse_row(raw, path, n)
            if value is not None:
                yield Row(index, value, f"line {n}")
                index += 1


def parse_row(raw: bytes, path: Path, n: int) -> dict[str, Any] | None:
    """Line `n` of a JSONL rows file as a row; None for a blank line; a DataError naming the
    line for anything else."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        value = refused_line(raw, path, n)
        if value is None:
            return None
    if type(value) is not dict:
        raise not_an_object(value, path, n)
    return value


def refused_line(raw: bytes, path: Path, n: int) -> Any:
    """A JSONL line orjson refused: None if it is blank (skipped, not a row), its value if it
    parses after all (a BOM on line 1), or a DataError saying why not."""
    if blank(raw, n):
        return None
    return _explain_jsonl(raw[3:] if n == 1 and raw.startswith(_BOM) else raw, path, n)


def not_an_object(value: Any, path: Path, n: int) -> DataError:
    return DataError(f"each line must be a JSON object, not {_kind(value)}", path=path,
                     where=f"{n}")


_BOM = b"\xef\xbb\xbf"


def blank(raw: bytes, n: int) -> bool:
    """Whitespace only (a BOM included, on line 1): such a line is skipped and is no row."""
    return not (raw[3:] if n == 1 and raw.startswith(_BOM) else raw).strip()


def _explain_jsonl(raw: bytes, path: Path, n: int) -> Any:
    """Parses a line orjson refused (a BOM is fine), or raises the reason as a DataError."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(_not_utf8(raw, e.start), path=path, where=f"{n}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise DataError(f"invalid JSON at column {e.colno}: {e.msg}", path=path,
                        where=f"{n}") from None
    except RecursionError:      # orjson stopped at 1,024 levels, json near Python's limit
        raise DataError(TOO_DEEP, path=path, where=f"{n}") from None


TOO_DEEP = "nested too deeply to read (keep rows under 1,000 levels of nesting)"


def _csv(path: Path) -> Iterator[Row]:
    numbered = _lines(path)
    current = [0]   # the last line read; a quoted field may span several

    def texts() -> Iterator[str]:
        for n, text in numbered:
            current[0] = n
            yield text

    reader = csv.reader(texts(), strict=True)

    def record() -> list[str] | None:
        start = current[0] + 1
        try:
            return next(reader, None)
        except csv.Error as e:
            if "end of data" in str(e):   # a quote opened and never closed: say where
                raise DataError("invalid CSV: a quoted field starting on this line is never "
                                "closed", path=path, where=str(start)) from None
            if "new-line character seen in unquoted field" in str(e):
                raise DataError("invalid CSV: a carriage return (\\r) inside a field that is "
                                "not quoted; quote the field, or save the file with \\n or "
                                "\\r\\n line endings", path=path, where=str(current[0])) from None
            raise DataError(f"invalid CSV: {e}", path=path, where=str(current[0])) from None

    header = record()
    if header is None:
        raise DataError("empty CSV file: the first line must be a header row", path=path,
                        where="1")
    for i, name in enumerate(header):
        if not name.strip():
            raise DataError(f"CSV header: column {i + 1} has no name", path=path, where="1")
        if name in header[:i]:
            raise DataError(f"CSV header: column {excerpt(name)} appears twice", path=path,
                            where="1")
    index = 0
    while (fields := record()) is not None:
        if not fields:
            continue
        if len(fields) != len(header):
            raise DataError(f"expected {len(header)} fields, found {len(fields)}",
                            path=path, where=f"{current[0]}")
        yield Row(index, dict(zip(header, fields)), f"line {current[0]}")
        index += 1


def _whole(path: Path) -> Iterator[Row]:
    """.json and .yaml rows files hold one list; they are parsed whole by nature of the format."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError("rows file not found", path=path) from None
    except OSError as e:
        raise DataError(f"cannot read rows file: {e.strerror}", path=path) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataError(_not_utf8(raw, e.start), path=path,
                        where=str(raw.count(b"\n", 0, e.start) + 1)) from None
    first_line = text.count("\n", 0, len(text) - len(text.lstrip())) + 1
    try:
        if path.suffix == ".json":
            value = json.loads(text, object_pairs_hook=_object)
        else:
            docs = load_documents(text, path)
            if len(docs) > 1:
                raise DataError("holds several YAML documents; put all rows in one list",
                                path=path, where=str(docs[1].line_of([])))
            value = docs[0].data if docs else None
            first_line = docs[0].line_of([]) if docs else first_line
    except json.JSONDecodeError as e:
        raise DataError(f"invalid JSON at column {e.colno}: {e.msg}", path=path,
                        where=f"{e.lineno}") from None
    except RecursionError:
        raise DataError(TOO_DEEP, path=path, where=_too_deep_line(raw)) from None
    except yaml.YAMLError as e:
        line, msg = describe_yaml_error(e, text)
        raise DataError(msg, path=path, where=str(line) if line else None) from None
    if not isinstance(value, list):
        raise DataError(f"must hold a list of rows, not {_kind(value)}", path=path,
                        where=str(first_line))
    yield from inline(value, path)


def _too_deep_line(raw: bytes) -> str | None:
    """The line where a JSON file passes orjson's 1,024 levels (None if it does not: the json
    module, which read it, stops near Python's recursion limit, a little lower)."""
    try:
        orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        return str(e.lineno)
    return None


def inline(items: list[Any], path: Path, prefix: str = "item") -> Iterator[Row]:
    for i, value in enumerate(items):
        if not isinstance(value, dict):
            raise DataError(f"{prefix} {i + 1} must be a mapping, not {_kind(value)}", path=path)
        repeated = _repeated_key(value)
        if repeated is not None:
            raise DataError(f"{prefix} {i + 1}: key {excerpt(repeated)} appears twice in one "
                            "object", path=path)
        yield Row(i, value, f"{prefix} {i + 1}")


def _parquet(path: Path) -> Iterator[Row]:
    """Read a record batch at a time (runner.parquet, where pyarrow is kept)."""
    for index, (where, data) in enumerate(parquet.read(path)):
        yield Row(index, data, where)


_READERS = {".jsonl": _jsonl, ".csv": _csv, ".json": _whole, ".yaml": _whole, ".yml": _whole,
            ".parquet": _parquet}


def read_rows(path: Path) -> Iterator[Row]:
    """Rows of a data file, by its extension; an empty file yields none (the caller decides)."""
    reader = _READERS.get(path.suffix.lower())
    if reader is None:
        raise DataError("unsupported rows file type (use .jsonl, .csv, .json, .yaml or "
                        ".parquet)", path=path)
    return reader(path)
