"""`runner plan` on unchanged directories: 1,000 small manifests, and one manifest of 1M rows.

    python -m bench.plan                  # 1000 manifests and 1,000,000 rows
    python -m bench.plan 1000 100000

Each directory is applied once against an emulator (the timed part is only the plan after),
then `runner plan` runs as a user runs it, a fresh process each time: the first plan, which
parses every manifest and the lockfile and fills the caches under .runner/, then the best of
three more.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench._common import make_dataset

SMALL = """\
apiVersion: batch-runner/v1
kind: Batch
metadata: {{name: m{i:04d}}}
spec:
  provider: gemini
  model: gemini-2.5-flash
  items:
    - {{id: a, q: "first question of {i}"}}
    - {{id: b, q: "second question of {i}"}}
    - {{id: c, q: "third question of {i}"}}
  key: "{{{{ row.id }}}}"
  request:
    contents: [{{role: user, parts: [{{text: "{{{{ row.q }}}}"}}]}}]
    generationConfig: {{maxOutputTokens: 64}}
  outputs:
    - path: out/m{i:04d}.jsonl
"""


def _apply(d: Path, base_url: str) -> float:
    from runner.apply import Options, apply_directory
    from runner.providers.clients import Clients
    from runner.providers.gemini import GeminiProvider

    provider = GeminiProvider("bench-key", base_url)
    start = time.perf_counter()
    outcome = apply_directory(d, Clients.of(provider), Options(poll_base=0.2, poll_cap=2.0))
    provider.close()
    assert outcome.exit_code == 0 and not outcome.pending
    return time.perf_counter() - start


def _plan_seconds(d: Path, base_url: str) -> tuple[float, float]:
    """The first plan's seconds, and the best of the three after it."""
    env = dict(os.environ, GEMINI_API_KEY="bench-key", GEMINI_BASE_URL=base_url,
               PYTHONPATH=str(Path(__file__).resolve().parent.parent))
    seconds = []
    for _ in range(4):
        start = time.perf_counter()
        out = subprocess.run([sys.executable, "-m", "runner.cli", "plan", str(d),
                              "--detailed-exitcode"], env=env, capture_output=True, text=True)
        seconds.append(time.perf_counter() - start)
        assert out.returncode == 0, out.stdout + out.stderr     # 0: nothing to change
    return seconds[0], min(seconds[1:])


def main(argv: list[str]) -> None:
    from runner.emulator import Emulator

    manifests = int(argv[0]) if argv else 1000
    rows = int(argv[1]) if len(argv) > 1 else 1_000_000
    print(f"{'directory':<28} {'apply (once)':>12} {'first plan':>11} {'plan, unchanged':>16}")
    with tempfile.TemporaryDirectory() as tmp, Emulator(Path(tmp) / "emu", latency=0) as emu:
        small = Path(tmp) / "small"
        small.mkdir()
        for i in range(manifests):
            (small / f"m{i:04d}.yaml").write_text(SMALL.format(i=i))
        applied = _apply(small, emu.base_url)
        first, unchanged = _plan_seconds(small, emu.base_url)
        print(f"{f'{manifests:,} small manifests':<28} {applied:>11.1f}s {first:>10.2f}s "
              f"{unchanged:>15.2f}s", flush=True)
        big = make_dataset(Path(tmp) / "big", "big", rows)
        applied = _apply(big, emu.base_url)
        first, unchanged = _plan_seconds(big, emu.base_url)
        print(f"{f'1 manifest, {rows:,} rows':<28} {applied:>11.1f}s {first:>10.2f}s "
              f"{unchanged:>15.2f}s", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
