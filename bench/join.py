"""Join results delivered in shuffled order back to input order and write the outputs.

    python -m bench.join              # 1M results
    python -m bench.join 100000

"peak RSS" is this process's; "all procs" adds the worker processes that render a large rows
file and the fork server (sampled, shared pages counted in each process, so an upper bound).
"""

from __future__ import annotations

import json
import random
import sys
import tempfile
import time
from pathlib import Path

from bench._common import TreeRss, in_fresh_process, make_dataset, peak_rss_mb


def write_shuffled_results(directory: Path, rows: int, seed: int = 1) -> Path:
    """One result line per request, in a random order, shaped like the Gemini responses file."""
    order = list(range(rows))
    random.Random(seed).shuffle(order)
    path = directory / "results.jsonl"
    with open(path, "w", encoding="utf-8", buffering=1 << 20) as f:
        for i in order:
            response = {"candidates": [{"content": {"parts": [{"text": f"label {i % 7}"}],
                                                    "role": "model"}, "finishReason": "STOP"}],
                        "usageMetadata": {"promptTokenCount": 100, "candidatesTokenCount": 2,
                                          "totalTokenCount": 102}}
            f.write(json.dumps({"key": f"t{i:08d}", "response": response}) + "\n")
    return path


def _one(directory: str) -> None:
    from runner.manifest import load_directory
    from runner.outputs import write_outputs

    d = Path(directory)
    [m] = load_directory(d)
    with TreeRss() as tree:
        start = time.perf_counter()
        written = write_outputs(m, [d / "results.jsonl"], d / ".work")
        elapsed = time.perf_counter() - start
    n = written.succeeded + written.failed
    print(json.dumps({"lines": n, "seconds": elapsed, "lps": n / elapsed,
                      "peak_rss_mb": peak_rss_mb(), "tree_rss_mb": tree.peak_mb}))


def main(argv: list[str]) -> None:
    if argv and argv[0] == "--one":
        _one(argv[1])
        return
    sizes = [int(a) for a in argv] or [1_000_000]
    print(f"{'results':>10} {'lines/s':>10} {'seconds':>8} {'peak RSS MB':>12} "
          f"{'all procs MB':>12}")
    for rows in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            d = make_dataset(Path(tmp), "bench", rows)
            write_shuffled_results(d, rows)
            f = in_fresh_process("bench.join", "--one", str(d))
        print(f"{rows:>10,} {f['lps']:>10,.0f} {f['seconds']:>8.1f} {f['peak_rss_mb']:>12.1f} "
              f"{f['tree_rss_mb']:>12.1f}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
