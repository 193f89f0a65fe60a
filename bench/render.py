"""Render + hash + write the provider input for 10k, 100k and 1M requests: as apply does it
(render_shards: across cores for a large rows file, cut into shards that fit a job), in one
process, and against a naive baseline that builds every request in a list before writing.

    python -m bench.render            # all sizes
    python -m bench.render 10000      # one size

"peak RSS" is this process's; "all procs" adds the worker processes and the fork server
(sampled, shared pages counted in each process, so an upper bound).
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

from bench._common import TreeRss, in_fresh_process, make_dataset, peak_rss_mb

SIZES = (10_000, 100_000, 1_000_000)


def _one(mode: str, rows: int) -> None:
    from runner.desired import render_shards
    from runner.hashing import ContentHasher
    from runner.manifest import load_directory
    from runner.parallel import PARALLEL, Parallel
    from runner.render import Renderer

    with tempfile.TemporaryDirectory() as tmp:
        d = make_dataset(Path(tmp), "bench", rows)
        [m] = load_directory(d)
        base_rss = peak_rss_mb()
        out = d / "input.jsonl"
        with TreeRss() as tree:
            start = time.perf_counter()
            if mode in ("stream", "single"):
                parallel = PARALLEL if mode == "stream" else Parallel(workers=1)
                result = render_shards(m, d / "inputs", parallel=parallel)
                [out] = result.paths
                count = result.requests
            else:  # naive: everything in memory first, as most scripts do
                renderer = Renderer(m)
                requests = [renderer.line(r) + b"\n" for r in renderer.requests()]
                hasher = ContentHasher(m.provider, m.model)
                for line in requests:
                    hasher.add(line)
                with open(out, "wb") as sink:
                    sink.write(b"".join(requests))
                count = len(requests)
            elapsed = time.perf_counter() - start
        size = out.stat().st_size
    print(json.dumps({"requests": count, "seconds": elapsed, "rps": count / elapsed,
                      "bytes_per_request": size / count, "peak_rss_mb": peak_rss_mb(),
                      "tree_rss_mb": tree.peak_mb, "base_rss_mb": base_rss}))


def main(argv: list[str]) -> None:
    if argv and argv[0] == "--one":
        _one(argv[1], int(argv[2]))
        return
    sizes = [int(a) for a in argv] or list(SIZES)
    print(f"{'mode':<8} {'requests':>10} {'req/s':>10} {'B/req':>6} {'peak RSS MB':>12} "
          f"{'all procs MB':>12}")
    for rows in sizes:
        for mode in ("stream", "single", "naive"):
            f = in_fresh_process("bench.render", "--one", mode, str(rows))
            print(f"{mode:<8} {rows:>10,} {f['rps']:>10,.0f} {f['bytes_per_request']:>6.0f} "
                  f"{f['peak_rss_mb']:>12.1f} {f['tree_rss_mb']:>12.1f}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
