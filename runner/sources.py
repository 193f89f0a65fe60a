"""Row readers: each yields rows one at a time, with the place each came from.

Rows are streamed so that a rows file of any size is read in constant memory. Every malformed
row is reported with its file and line, never skipped.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import yaml

from .errors import DataError
from .yamlsrc import describe_yaml_error


@dataclass(frozen=True)
class Row:
    index: int
    data: Any
    where: str  # "line 3", "row 3", "items[2]": for messages


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
            except UnicodeDecodeError:
                raise DataError("not valid UTF-8", path=path, where=f"{n}") from None
            yield n, text


def _jsonl(path: Path) -> Iterator[Row]:
    index = 0
    for n, text in _lines(path):
        if not text.strip():
            continue
        try:
            value = json.loads(text)
        except json.JSONDecodeError as e:
            raise DataError(f"invalid JSON: {e.msg}", path=path, where=f"{n}") from None
        if not isinstance(value, dict):
            raise DataError("each line must be a JSON object", path=path, where=f"{n}")
        yield Row(index, value, f"line {n}")
        index += 1


def _csv(path: Path) -> Iterator[Row]:
    numbered = _lines(path)
    current = [0]

    def texts() -> Iterator[str]:
        for n, text in numbered:
            current[0] = n
            yield text

    try:
        reader = csv.reader(texts(), strict=True)
        header = next(reader, None)
        if header is None:
            raise DataError("empty CSV file: a header row is required", path=path)
        if len(set(header)) != len(header) or any(not h.strip() for h in header):
            raise DataError("CSV header has empty or repeated column names", path=path, where="1")
        index = 0
        for fields in reader:
            if not fields:
                continue
            if len(fields) != len(header):
                raise DataError(f"expected {len(header)} fields, found {len(fields)}",
                                path=path, where=f"{current[0]}")
            yield Row(index, dict(zip(header, fields)), f"line {current[0]}")
            index += 1
    except csv.Error as e:
        raise DataError(f"invalid CSV: {e}", path=path, where=f"{current[0]}") from None


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
        line = raw[: e.start].count(b"\n") + 1
        raise DataError("not valid UTF-8", path=path, where=f"{line}") from None
    try:
        if path.suffix == ".json":
            value = json.loads(text)
        else:
            value = yaml.safe_load(text)
    except json.JSONDecodeError as e:
        raise DataError(f"invalid JSON: {e.msg}", path=path, where=f"{e.lineno}") from None
    except yaml.YAMLError as e:
        line, msg = describe_yaml_error(e)
        raise DataError(msg, path=path, where=str(line) if line else None) from None
    if not isinstance(value, list):
        raise DataError("must hold a list of rows", path=path)
    yield from inline(value, path)


def inline(items: list[Any], path: Path, prefix: str = "item") -> Iterator[Row]:
    for i, value in enumerate(items):
        if not isinstance(value, dict):
            raise DataError(f"{prefix} {i + 1} must be a mapping", path=path)
        yield Row(i, value, f"{prefix} {i + 1}")


_READERS = {".jsonl": _jsonl, ".csv": _csv, ".json": _whole, ".yaml": _whole, ".yml": _whole}


def read_rows(path: Path) -> Iterator[Row]:
    """Rows of a data file, by its extension. An empty file is an error: a batch needs rows."""
    reader = _READERS.get(path.suffix.lower())
    if reader is None:
        raise DataError("unsupported rows file type (use .jsonl, .csv, .json or .yaml)", path=path)
    empty = True
    for row in reader(path):
        empty = False
        yield row
    if empty:
        raise DataError("rows file has no rows", path=path)
