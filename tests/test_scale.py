"""Memory does not grow with the number of requests (render, hash, write, join, outputs).

Each size runs in a fresh process so that its peak RSS is its own. The full-size figures come
from the benchmarks in bench/; this checks the property on sizes the suite can afford.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from conftest import ROWS_MANIFEST, write_manifest, write_rows

SCRIPT = textwrap.dedent("""
    import json, random, resource, sys
    from pathlib import Path
    from runner.desired import render_into
    from runner.manifest import load_directory
    from runner.outputs import write_outputs
    d = Path(sys.argv[1])
    n = int(sys.argv[2])
    [m] = load_directory(d)
    with open(d / "input.jsonl", "wb") as sink:
        rendered = render_into(m, sink)
    order = list(range(n))
    random.Random(1).shuffle(order)
    with open(d / "results.jsonl", "w") as f:
        for i in order:
            f.write(json.dumps({"key": f"r{i}", "response": {"candidates": [{"content": {
                "parts": [{"text": f"answer {i}"}]}, "finishReason": "STOP"}]}}) + "\\n")
    written = write_outputs(m, [d / "results.jsonl"], d / ".work")
    print(json.dumps({"requests": rendered.requests, "succeeded": written.succeeded,
                      "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
""")


def peak(tmp_path: Path, rows: int) -> dict[str, float]:
    d = tmp_path / f"p{rows}"
    write_manifest(d, ROWS_MANIFEST)
    write_rows(d, rows, "lorem ipsum dolor sit amet " * 12)
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(d), str(rows)], check=True,
                         capture_output=True, text=True).stdout
    figures: dict[str, float] = json.loads(out)
    assert figures["requests"] == figures["succeeded"] == rows
    return figures


def test_memory_is_flat_from_ten_to_a_hundred_thousand_requests(tmp_path: Path) -> None:
    small, large = peak(tmp_path, 10_000), peak(tmp_path, 100_000)
    # ten times the requests: at most 8 bytes a request (the key check) and noise
    assert large["rss_mb"] - small["rss_mb"] < 8, (small, large)
