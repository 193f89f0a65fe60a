"""Parquet rows read and a Parquet output written, at two sizes: the peak RSS should not grow
with the number of rows (runner.parquet reads a record batch at a time and writes from a spool
a row group at a time).

    python -m bench.parquet                   # 100k and 1M rows
    python -m bench.parquet 100000 2000000

Each step runs in a fresh process, so each peak RSS is its own (the kernel's high-water mark
of the process's memory, VmHWM: getrusage's ru_maxrss would carry the parent's over exec);
"baseline" is a process that only imports pyarrow and the runner, the floor under both.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from bench._common import WORDS, in_fresh_process

CHUNK = 50_000      # rows the dataset is written with at a time, so that making it is small too


def make_rows(path: Path, rows: int) -> None:
    """A rows file of `rows` tickets (id, customer, a 40-word body, a score, a date)."""
    schema = pa.schema([("id", pa.string()), ("customer", pa.int64()), ("body", pa.string()),
                        ("score", pa.float64()), ("day", pa.date32())])
    with pq.ParquetWriter(path, schema) as writer:
        for start in range(0, rows, CHUNK):
            ns = range(start, min(rows, start + CHUNK))
            writer.write_table(pa.table({
                "id": [f"t{i:08d}" for i in ns],
                "customer": [i * 7919 % 1_000_003 for i in ns],
                "body": [" ".join(WORDS[(i + k) % len(WORDS)] for k in range(40)) for i in ns],
                "score": [i / 3 for i in ns],
                "day": pa.array([i % 20_000 for i in ns], pa.int32()).cast(pa.date32()),
            }, schema=schema), row_group_size=10_000)


def peak_rss_mb() -> float:
    """This process's peak resident set size, in MB (Linux)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def _read(path: str) -> dict[str, float]:
    from runner.sources import read_rows
    rows = sum(1 for _ in read_rows(Path(path)))
    return {"rows": rows}


def _write(path: str) -> dict[str, float]:
    """An output of four columns (int, float, bool, string) for as many rows as `path` holds."""
    from runner import parquet
    from runner.fsutil import atomic_writer
    rows = pq.ParquetFile(path).metadata.num_rows
    out = Path(path).with_name("out.parquet")
    with atomic_writer(out, "wb") as f, parquet.table(f, out, ["n", "half", "even", "label"],
                                                      out.parent) as table:
        for n in range(rows):
            table.writerow([str(n), str(n / 2), str(n % 2 == 0), f"label {n % 7}"])
    return {"rows": pq.ParquetFile(out).metadata.num_rows}


def _one(step: str, path: str, rows: int = 0) -> None:
    """One step in this process: "make" the rows file, "read" or "write", or only import
    ("baseline")."""
    import runner.sources  # noqa: F401  (the baseline holds what the steps import)
    if step == "make":
        make_rows(Path(path), rows)
    start = time.perf_counter()
    figures = {"read": _read, "write": _write}[step](path) if step in ("read", "write") else {}
    print(json.dumps({**figures, "seconds": time.perf_counter() - start,
                      "peak_rss_mb": peak_rss_mb()}))


def main(argv: list[str]) -> None:
    if argv and argv[0] == "--one":
        _one(argv[1], argv[2], *map(int, argv[3:]))
        return
    sizes = [int(a) for a in argv] or [100_000, 1_000_000]
    print(f"{'rows':>10} {'step':>9} {'seconds':>8} {'peak RSS MB':>12}")
    for rows in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "rows.parquet"
            in_fresh_process("bench.parquet", "--one", "make", str(path), str(rows))
            for step in ("baseline", "read", "write"):
                f = in_fresh_process("bench.parquet", "--one", step, str(path))
                print(f"{rows:>10,} {step:>9} {f['seconds']:>8.1f} {f['peak_rss_mb']:>12.1f}",
                      flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
