"""Parquet rows and outputs, through pyarrow: the one module that touches it.

pyarrow is an optional extra (`pip install 'batch-runner[parquet]'`), imported only when a
manifest names a .parquet file; it has no complete type stubs, so it is held as `Any` here and
nothing else in the runner sees its types.

Both directions stream by row group, in constant memory. A rows file is read a record batch at
a time, each row a dict of JSON-able values, as a JSONL row would be. An output's column types
depend on every value a template renders, so its rows are spooled to a temp file as rendered,
each column's type narrowed as they come, and the file is written once the last has come, from
the spool, ROW_GROUP rows at a time.
"""

from __future__ import annotations

import contextlib
import datetime
import decimal
import importlib
import importlib.util
import itertools
import math
import re
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import orjson

from .errors import DataError, OutputError, RunnerError, clipped, excerpt

EXTRA = "pip install 'batch-runner[parquet]'"
BATCH_ROWS = 8192           # rows read from a rows file at a time
ROW_GROUP = 10_000          # rows written to an output at a time: one row group each


def available() -> bool:
    """Whether pyarrow is installed (without importing it, which takes a while)."""
    return importlib.util.find_spec("pyarrow") is not None


def _pyarrow(path: Path, error: type[RunnerError], doing: str) -> tuple[Any, Any]:
    """pyarrow and pyarrow.parquet, or `error` naming `path` and the extra to install."""
    try:
        return importlib.import_module("pyarrow"), importlib.import_module("pyarrow.parquet")
    except ImportError:
        raise error(f"{doing} Parquet needs pyarrow: {EXTRA}", path=path) from None


# --- rows ---------------------------------------------------------------------------------

def read(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """The rows of a Parquet file as (place, row), read a record batch at a time."""
    pa, pq = _pyarrow(path, DataError, "reading")
    try:
        f = pq.ParquetFile(path)
    except FileNotFoundError:
        raise DataError("rows file not found", path=path) from None
    except (pa.ArrowException, OSError) as e:
        raise DataError(f"not a readable Parquet file: {clipped(str(e))}", path=path) from None
    with contextlib.closing(f):
        schema = f.schema_arrow
        names: list[str] = list(schema.names)
        converts = [_converter(pa, field, path) for field in schema]
        batches = f.iter_batches(batch_size=BATCH_ROWS)
        n = 0
        while True:
            try:
                batch = next(batches, None)
            except (pa.ArrowException, OSError) as e:
                raise DataError(f"damaged Parquet file, after row {n}: {clipped(str(e))}",
                                path=path) from None
            if batch is None:
                return
            try:
                columns = [convert(batch.column(i)) for i, convert in enumerate(converts)]
            except (pa.ArrowException, ValueError, OverflowError) as e:
                # a value Python has no type for: nanoseconds nested in a struct, a year 0
                raise DataError(f"rows {n + 1} to {n + batch.num_rows}: a value cannot be read "
                                f"into Python: {clipped(str(e))}", path=path) from None
            for values in zip(*columns):
                n += 1
                yield f"row {n}", dict(zip(names, values))


_Convert = Callable[[Any], list[Any]]


def _converter(pa: Any, field: Any, path: Path) -> _Convert:
    """How a column of `field`'s type becomes JSON-able Python values: a plain one as pyarrow
    gives it, others through `_jsonable`; a binary or duration one is refused, naming the
    column."""
    types = pa.types
    kind = field.type
    if _holds(types, kind, lambda t: types.is_binary(t) or types.is_large_binary(t)
              or types.is_fixed_size_binary(t)):
        raise DataError(f"column {excerpt(field.name)} holds binary data, which a template "
                        "cannot use; store it as a string (base64, or the text it holds)",
                        path=path)
    if _holds(types, kind, lambda t: types.is_duration(t) or types.is_interval(t)):
        raise DataError(f"column {excerpt(field.name)} holds durations, which JSON has no "
                        "type for; store them as numbers (of seconds, say)", path=path)
    if types.is_floating(kind):
        return lambda column: [None if v is not None and math.isnan(v) else v
                               for v in column.to_pylist()]
    if (types.is_integer(kind) or types.is_boolean(kind) or types.is_string(kind)
            or types.is_large_string(kind) or types.is_null(kind)):
        return lambda column: column.to_pylist()
    if types.is_timestamp(kind) and kind.unit == "ns":     # Python's datetime stops at µs
        return lambda column: [_jsonable(v) for v in
                               column.cast(pa.timestamp("us", kind.tz), safe=False).to_pylist()]
    return lambda column: [_jsonable(v) for v in column.to_pylist()]


def _holds(types: Any, kind: Any, test: Callable[[Any], bool]) -> bool:
    """Whether a type, or a type nested in it (list items, struct fields, map entries, the
    values of a dictionary-encoded column) passes."""
    if test(kind):
        return True
    if types.is_dictionary(kind):
        return _holds(types, kind.value_type, test)
    return any(_holds(types, kind.field(i).type, test) for i in range(kind.num_fields))


def _jsonable(value: Any) -> Any:
    """A value pyarrow gave, as JSON holds it: dates and times as ISO 8601 strings, decimals
    as strings (exact), a map as an object, NaN as null; lists and structs kept."""
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        if value and all(isinstance(p, tuple) and len(p) == 2 for p in value):   # a map
            return {str(k): _jsonable(v) for k, v in value}
        return [_jsonable(v) for v in value]
    return value


# --- outputs ------------------------------------------------------------------------------

# A column's type, narrowed by each value rendered for it: a column with no value yet, then
# int64 while all are integers, float64 while all are numbers, bool while all are true/false,
# else string. An empty value is null in a typed column.
EMPTY, INT, FLOAT, BOOL, STRING = "empty", "int64", "float64", "bool", "string"
_INT = re.compile(r"-?(?:0|[1-9][0-9]*)")         # "007" stays a string: a code, not 7
_FLOAT = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_TRUE, _FALSE = ("true", "True"), ("false", "False")     # JSON's, and Jinja's for a Python bool
_INT64 = 1 << 63


def kind_of(value: str) -> str:
    """The narrowest type that holds a rendered value."""
    if value == "":
        return EMPTY
    if value in _TRUE or value in _FALSE:
        return BOOL
    if _INT.fullmatch(value):
        return INT if -_INT64 <= int(value) < _INT64 else STRING
    if _FLOAT.fullmatch(value) and math.isfinite(float(value)):
        return FLOAT
    return STRING


def wider(a: str, b: str) -> str:
    """The narrowest type that holds values of both types."""
    if a == b or b == EMPTY:
        return a
    if a == EMPTY:
        return b
    return FLOAT if {a, b} == {INT, FLOAT} else STRING


_TYPED: dict[str, Callable[[str], Any]] = {INT: int, FLOAT: float, BOOL: lambda v: v in _TRUE}


class Table:
    """A Parquet output being built: `writerow` as csv.writer has it, then `finish`."""

    def __init__(self, f: IO[bytes], path: Path, names: list[str], directory: Path):
        self._pa, self._pq = _pyarrow(path, OutputError, "writing")
        self._f, self._names = f, names
        self._kinds = [EMPTY] * len(names)
        self._spool = tempfile.TemporaryFile(dir=directory)

    def writerow(self, values: list[str]) -> None:
        self._spool.write(orjson.dumps(values) + b"\n")
        kinds = self._kinds
        for i, value in enumerate(values):
            if kinds[i] != STRING:
                kinds[i] = wider(kinds[i], kind_of(value))

    def finish(self) -> None:
        """Writes the file from the spool, ROW_GROUP rows to a row group."""
        pa, kinds = self._pa, [STRING if k == EMPTY else k for k in self._kinds]
        arrow = {INT: pa.int64(), FLOAT: pa.float64(), BOOL: pa.bool_(), STRING: pa.string()}
        schema = pa.schema([pa.field(name, arrow[kind], nullable=True)
                            for name, kind in zip(self._names, kinds)])
        typed = [_TYPED.get(kind) for kind in kinds]
        writer = self._pq.ParquetWriter(self._f, schema)
        self._spool.seek(0)
        while lines := list(itertools.islice(self._spool, ROW_GROUP)):
            rows = [orjson.loads(line) for line in lines]
            columns = [[v if convert is None else None if v == "" else convert(v)
                        for v in (row[i] for row in rows)]
                       for i, convert in enumerate(typed)]
            writer.write_table(pa.Table.from_arrays(
                [pa.array(c, type=field.type) for c, field in zip(columns, schema)],
                schema=schema))
        writer.close()

    def close(self) -> None:
        self._spool.close()


@contextlib.contextmanager
def table(f: IO[bytes], path: Path, names: list[str], directory: Path) -> Iterator[Table]:
    """A Table writing into `f` (an output's atomic writer), its spool in `directory`; the
    file is written when the block ends without an error."""
    t = Table(f, path, names, directory)
    try:
        yield t
        t.finish()
    finally:
        t.close()
