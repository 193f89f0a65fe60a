"""Push and pull the results of many requests through the result store: into a directory, and
into a bucket on a local S3 API server (moto's, in its own process, as the tests use).

    python -m bench.store                 # 200,000 and 1,000,000 results
    python -m bench.store 200000

Results are shaped like Gemini's (about 550 B a line, one in a hundred a per-request error),
written once to a file of `request hash, ok, line` records. Each step runs in a fresh process,
so each peak RSS is its own: "push" reads that file and writes the packs, "pull" reads every
result back (each block checked against its pack's hash), "lookup" reads 100 results
chosen at random among all (every head, and the blocks that hold them). The smaller size
already fills a few packs, so that the two sizes' peaks compare steady states. MB/s counts
the result lines' own bytes, uncompressed.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import select
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

from bench._common import WORDS, in_fresh_process, peak_rss_mb

REPO = Path(__file__).resolve().parent.parent
BUCKET = "bench"


def rhash(i: int) -> str:
    return "sha256:" + hashlib.sha256(b"bench request %d" % i).hexdigest()


def write_results(path: Path, n: int, seed: int = 0) -> int:
    """`n` records `hash\\tok\\tline\\n`; returns the bytes of the lines."""
    rng = random.Random(seed)
    total = 0
    with open(path, "wb", buffering=1 << 20) as f:
        for i in range(n):
            if i % 100 == 7:
                result: dict[str, object] = {"key": f"t{i:08d}", "error": {
                    "code": 500, "message": "Internal error encountered.", "status": "INTERNAL"}}
            else:
                text = " ".join(rng.choice(WORDS) for _ in range(rng.randrange(20, 60)))
                result = {"key": f"t{i:08d}", "response": {
                    "candidates": [{"content": {"parts": [{"text": text}], "role": "model"},
                                    "finishReason": "STOP", "avgLogprobs": -rng.random()}],
                    "usageMetadata": {"promptTokenCount": rng.randrange(50, 300),
                                      "candidatesTokenCount": rng.randrange(20, 80),
                                      "totalTokenCount": rng.randrange(100, 400)},
                    "modelVersion": "gemini-2.5-flash",
                    "responseId": f"{rng.getrandbits(64):016x}"}}
            line = orjson.dumps(result)
            total += len(line) + 1
            f.write(b"%s\t%d\t%s\n" % (rhash(i).encode(), i % 100 != 7, line))
    return total


def _push(location: str, source: str, packs_file: str) -> None:
    from runner.store import open_store

    store = open_store(location)
    start = time.perf_counter()
    size = 0
    with store.writer() as w, open(source, "rb", buffering=1 << 20) as f:
        for record in f:
            h, ok, line = record.split(b"\t", 2)
            size += len(line)
            w.add(h.decode(), line, ok == b"1")
    elapsed = time.perf_counter() - start
    Path(packs_file).write_text(json.dumps(w.packs))
    stored = sum(p.size for p in store.packs())
    print(json.dumps({"seconds": elapsed, "mbps": size / elapsed / 1e6, "packs": len(w.packs),
                      "stored_mb": stored / 1e6, "peak_rss_mb": peak_rss_mb()}))


def _pull(location: str, packs_file: str, n: str) -> None:
    from runner.store import open_store

    store = open_store(location)
    packs = json.loads(Path(packs_file).read_text())
    start = time.perf_counter()
    size = count = 0
    for r in store.results(packs):
        size += len(r.line) + 1
        count += 1
    elapsed = time.perf_counter() - start
    assert count == int(n), (count, n)
    wanted = [rhash(i) for i in random.Random(2).sample(range(int(n)), 100)]
    begin = time.perf_counter()
    found = sum(1 for _ in store.results(packs, wanted))
    lookup = time.perf_counter() - begin
    assert found == 100, found
    print(json.dumps({"seconds": elapsed, "mbps": size / elapsed / 1e6, "lookup_s": lookup,
                      "peak_rss_mb": peak_rss_mb()}))


def _s3_server() -> tuple[subprocess.Popen[str], str]:
    """moto's server in its own process (tests/s3server.py), and its endpoint."""
    proc = subprocess.Popen([sys.executable, str(REPO / "tests" / "s3server.py")],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], 60)
    line = proc.stdout.readline() if ready else ""
    if not line.startswith("port "):
        proc.kill()
        raise SystemExit(f"the S3 server did not start: {line!r}")
    return proc, f"http://127.0.0.1:{int(line.split()[1])}"


def main(argv: list[str]) -> None:
    if argv and argv[0] == "--one":
        {"push": _push, "pull": _pull}[argv[1]](*argv[2:])
        return
    sizes = [int(a) for a in argv] or [200_000, 1_000_000]
    server, endpoint = _s3_server()
    os.environ.update({"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
                       "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL_S3": endpoint})
    try:
        from runner.store import open_store

        open_store(f"s3://{BUCKET}").backend.fs.mkdir(BUCKET)  # type: ignore[attr-defined]
        print(f"{'store':<6} {'results':>10} {'raw MB':>8} {'stored MB':>9} {'packs':>6} "
              f"{'push MB/s':>9} {'RSS MB':>7} {'pull MB/s':>9} {'RSS MB':>7} "
              f"{'100 lookups s':>13}")
        for n in sizes:
            with tempfile.TemporaryDirectory() as tmp:
                t = Path(tmp)
                raw = write_results(t / "results.tsv", n)
                for kind, location in (("path", str(t / "store")),
                                       ("s3", f"s3://{BUCKET}/{n}")):
                    packs = str(t / f"{kind}.packs.json")
                    push = in_fresh_process("bench.store", "--one", "push", location,
                                            str(t / "results.tsv"), packs)
                    pull = in_fresh_process("bench.store", "--one", "pull", location, packs,
                                            str(n))
                    print(f"{kind:<6} {n:>10,} {raw / 1e6:>8.0f} {push['stored_mb']:>9.0f} "
                          f"{push['packs']:>6.0f} {push['mbps']:>9.1f} "
                          f"{push['peak_rss_mb']:>7.0f} {pull['mbps']:>9.1f} "
                          f"{pull['peak_rss_mb']:>7.0f} {pull['lookup_s']:>13.2f}", flush=True)
    finally:
        server.terminate()
        server.wait()
        assert server.stdout is not None
        server.stdout.close()


if __name__ == "__main__":
    main(sys.argv[1:])
