"""Parquet rows files and outputs (runner.parquet): end to end against the emulator, the values
a row carries, the column types an output gets, and the one-line errors."""

from __future__ import annotations

import datetime
import decimal
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import TICKETS_HEAD, write_manifest

from runner import parquet
from runner.cli import main
from runner.errors import DataError
from runner.sources import read_rows

MANIFEST = TICKETS_HEAD + """\
  rows: data/tickets.parquet
  key: "t{{ row.n }}"
  request:
    contents: [{role: user, parts: [{text: "{{ row.n }} {{ row.when }} {{ row.price }} {{ row.body }}"}]}]
    generationConfig:
      responseMimeType: application/json
      responseSchema:
        type: OBJECT
        properties: {score: {type: INTEGER}, urgent: {type: BOOLEAN}, label: {type: STRING}}
        required: [score, urgent, label]
  outputs:
    - path: out/tickets.parquet
      columns:
        n: "{{ row.n }}"
        half: "{{ row.n / 2 }}"
        even: "{{ row.n % 2 == 0 }}"
        sometimes: "{{ row.n if row.n % 3 else '' }}"
        zip: "{{ row.zip }}"
        score: "{{ json.score }}"
        urgent: "{{ json.urgent }}"
        answer: "{{ text }}"
    - path: out/tickets.jsonl
"""

ROWS = 25


def write_rows(path: Path, rows: int = ROWS, group: int = 10, first: int = 0) -> None:
    """`rows` rows in row groups of `group`: three groups for the default 25."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ns = range(first, first + rows)
    table = pa.table({
        "n": list(ns),
        "when": pa.array([datetime.datetime(2024, 1, 1, n % 24) for n in ns],
                         pa.timestamp("us")),
        "price": pa.array([decimal.Decimal(f"{n}.50") for n in ns], pa.decimal128(10, 2)),
        "zip": [f"{n:05d}" for n in ns],
        "body": [f"ticket {n}" for n in ns],
    })
    pq.write_table(table, path, row_group_size=group)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("RUNNER_POLL_SECONDS", "0.05")
    monkeypatch.setenv("RUNNER_EMULATOR_LATENCY", "0.3")
    d = tmp_path / "proj"
    write_manifest(d, MANIFEST)
    write_rows(d / "data/tickets.parquet")
    return d


def test_rows_and_output_end_to_end(project: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert pq.ParquetFile(project / "data/tickets.parquet").num_row_groups == 3
    assert main(["apply", str(project), "--emulator"]) == 0
    table = pq.read_table(project / "out/tickets.parquet")
    assert {f.name: str(f.type) for f in table.schema} == {
        "n": "int64", "half": "double", "even": "bool", "sometimes": "int64",
        "zip": "string", "score": "int64", "urgent": "bool", "answer": "string"}
    rows = table.to_pylist()
    assert [r["n"] for r in rows] == list(range(ROWS))         # input order
    assert {k: rows[3][k] for k in ("half", "even", "sometimes", "zip")} == {
        "half": 1.5, "even": False, "sometimes": None, "zip": "00003"}
    assert rows[4]["sometimes"] == 4 and rows[0]["even"] is True
    assert all(isinstance(r["score"], int) and isinstance(r["urgent"], bool) for r in rows)
    # the rows reached the requests as JSON values: the timestamp in ISO 8601, the decimal
    # as its exact digits
    capsys.readouterr()
    assert main(["render", str(project), "--name", "tickets", "--limit", "1"]) == 0
    assert "0 2024-01-01T00:00:00 0.50 ticket 0" in capsys.readouterr().out
    assert main(["plan", str(project), "--emulator", "--detailed-exitcode"]) == 0


def test_rows_hash_covers_the_parquet_bytes(project: Path) -> None:
    assert main(["apply", str(project), "--emulator"]) == 0
    write_rows(project / "data/tickets.parquet", first=1)
    assert main(["plan", str(project), "--emulator", "--detailed-exitcode"]) == 2


def test_row_values_as_json_holds_them(tmp_path: Path) -> None:
    path = tmp_path / "x.parquet"
    pq.write_table(pa.table({
        "at": pa.array([datetime.datetime(2024, 5, 6, 7, 8, 9, 123456)], pa.timestamp("ns")),
        "utc": pa.array([datetime.datetime(2024, 5, 6, tzinfo=datetime.timezone.utc)],
                        pa.timestamp("ms", tz="UTC")),
        "day": pa.array([datetime.date(2024, 5, 6)], pa.date32()),
        "price": pa.array([decimal.Decimal("12.30")], pa.decimal128(5, 2)),
        "ratio": pa.array([float("nan")], pa.float64()),
        "tags": pa.array([["a", "b"]]),
        "who": pa.array([{"name": "Ada", "born": datetime.date(1815, 12, 10)}]),
        "attrs": pa.array([[("k", 1)]], pa.map_(pa.string(), pa.int64())),
        "none": pa.array([None], pa.null()),
        "label": pa.array(["x"]).dictionary_encode(),
    }), path)
    [row] = read_rows(path)
    assert row.where == "row 1"
    assert row.data == {
        "at": "2024-05-06T07:08:09.123456", "utc": "2024-05-06T00:00:00+00:00",
        "day": "2024-05-06", "price": "12.30", "ratio": None, "tags": ["a", "b"],
        "who": {"name": "Ada", "born": "1815-12-10"}, "attrs": {"k": 1}, "none": None,
        "label": "x"}


@pytest.mark.parametrize("column", [pa.array([b"\x00"]), pa.array([[b"\x00"]]),
                                    pa.array([b"\x00"]).dictionary_encode()])
def test_a_binary_column_is_refused_by_name(tmp_path: Path, column: pa.Array) -> None:
    path = tmp_path / "x.parquet"
    pq.write_table(pa.table({"n": [1], "blob": column}), path)
    with pytest.raises(DataError, match="column 'blob' holds binary data"):
        list(read_rows(path))


def test_a_value_python_cannot_hold_is_one_error(tmp_path: Path) -> None:
    path = tmp_path / "x.parquet"
    nested = pa.struct([("at", pa.timestamp("ns"))])     # a nanosecond a datetime cannot hold
    pq.write_table(pa.table({"s": pa.array([{"at": 1}], nested)}), path)
    with pytest.raises(DataError, match="rows 1 to 1: a value cannot be read into Python"):
        list(read_rows(path))


def test_rows_come_batch_by_batch(tmp_path: Path) -> None:
    path = tmp_path / "x.parquet"
    write_rows(path, rows=2 * parquet.BATCH_ROWS + 5, group=3000)
    rows = read_rows(path)
    assert [next(rows).data["n"] for _ in range(3)] == [0, 1, 2]
    assert sum(1 for _ in rows) == 2 * parquet.BATCH_ROWS + 2


@pytest.mark.parametrize(("damage", "said"), [
    ("not parquet", "not a readable Parquet file"),
    ("truncated", "not a readable Parquet file"),
    ("a page overwritten", "damaged Parquet file, after row 8192: Corrupt snappy"),
])
def test_a_damaged_file_is_one_line_and_exit_1(project: Path, damage: str, said: str,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    path = project / "data/tickets.parquet"
    write_rows(path, rows=3 * parquet.BATCH_ROWS, group=parquet.BATCH_ROWS)
    data = bytearray(path.read_bytes())
    if damage == "not parquet":
        data = bytearray(b"n,body\n1,hello\n")
    elif damage == "truncated":
        del data[len(data) // 2:]
    else:   # the footer intact, the second row group's pages not
        middle = len(data) // 2
        data[middle:middle + 200] = b"\xff" * 200
    path.write_bytes(data)
    assert main(["plan", str(project), "--emulator"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "data/tickets.parquet" in err and said in err


def test_a_typo_in_a_parquet_column_fails_validate(project: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    (project / "m.yaml").write_text(MANIFEST.replace('"{{ text }}"', '"{{ txt }}"'))
    assert main(["validate", str(project)]) == 1
    err = capsys.readouterr().err
    assert "m.yaml:" in err and "txt" in err and "checked before sending" in err


def test_without_pyarrow_each_says_what_to_install(project: Path,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("pyarrow", "pyarrow.parquet"):
        monkeypatch.setitem(sys.modules, name, None)    # import fails, find_spec finds none
    assert main(["validate", str(project)]) == 1
    err = capsys.readouterr().err.strip()
    assert "m.yaml:" in err and "a parquet output needs pyarrow" in err
    assert "pip install 'batch-runner[parquet]'" in err
    with pytest.raises(DataError, match=r"reading Parquet needs pyarrow: pip install"):
        list(read_rows(project / "data/tickets.parquet"))


@pytest.mark.parametrize(("values", "kind"), [
    (["1", "-2", "0"], "int64"),
    (["1", "2.5", "1e3"], "float64"),
    (["true", "False", ""], "bool"),
    (["", ""], "string"),
    (["1", "", "2"], "int64"),
    (["007"], "string"),                    # a code, not the number 7
    (["1", "x"], "string"),
    (["1", "true"], "string"),
    ([str(1 << 63)], "string"),             # past int64
    (["nan"], "string"),
    ([" 1"], "string"),
])
def test_a_column_type_holds_every_value(values: list[str], kind: str) -> None:
    found = parquet.EMPTY
    for value in values:
        found = parquet.wider(found, parquet.kind_of(value))
    assert (parquet.STRING if found == parquet.EMPTY else found) == kind
