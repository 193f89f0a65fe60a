"""What the result store costs apply, and what rebuilding outputs from it takes.

    python -m bench.restore              # 200,000 results
    python -m bench.restore 1000000

Each step in a fresh process, on a directory store: the join alone (outputs from a results
file, as before the store was wired in), the join keeping every line in the store (what apply
does now), and the outputs rebuilt from the store's packs (a fresh clone, a deleted output).
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

from bench._common import in_fresh_process, make_dataset, peak_rss_mb
from bench.join import write_shuffled_results


def _one(step: str, directory: str) -> None:
    from runner.apply.keep import rebuild, write_keeping
    from runner.manifest import load_directory
    from runner.outputs import Keep, Written, write_outputs
    from runner.store import open_store

    d = Path(directory)
    [m] = load_directory(d)
    store = open_store(d / "store")
    packs_file = d / "packs.json"

    def write(results: list[Path], keep: Keep | None, stored: int | None = None) -> Written:
        return write_outputs(m, results, d / ".work", keep=keep, stored=stored)

    start = time.perf_counter()
    if step == "join":
        written = write([d / "results.jsonl"], None)
    elif step == "keep":
        written, packs = write_keeping(store, lambda r, k: write(list(r), k),
                                       [d / "results.jsonl"])
        packs_file.write_text(json.dumps(packs))
    else:
        packs = json.loads(packs_file.read_text())
        found = rebuild(store, packs, lambda r, k: write(list(r), k, 0), d / ".work", print)
        assert found is not None
        written = found
    elapsed = time.perf_counter() - start
    n = written.succeeded + written.failed
    print(json.dumps({"lines": n, "seconds": elapsed, "peak_rss_mb": peak_rss_mb()}))


def main(argv: list[str]) -> None:
    if argv and argv[0] == "--one":
        _one(argv[1], argv[2])
        return
    sizes = [int(a) for a in argv] or [200_000]
    print(f"{'results':>10} {'step':<28} {'seconds':>8} {'lines/s':>10} {'peak RSS MB':>12}")
    for rows in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            d = make_dataset(Path(tmp), "bench", rows)
            write_shuffled_results(d, rows)
            for step, what in (("join", "join (no store)"), ("keep", "join, kept in the store"),
                               ("rebuild", "rebuilt from the store")):
                f = in_fresh_process("bench.restore", "--one", step, str(d))
                print(f"{rows:>10,} {what:<28} {f['seconds']:>8.1f} "
                      f"{f['lines'] / f['seconds']:>10,.0f} {f['peak_rss_mb']:>12.1f}",
                      flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
