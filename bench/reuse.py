"""What one edited row costs a big batch, with request-level reuse (runner/reuse.py).

    python -m bench.reuse               # 200,000 rows
    python -m bench.reuse 1000000

A batch applied to the end against the emulator (no latency; a process of its own, as is
the runner), then one row edited: `runner plan` and `runner apply` timed, each a fresh process
with its peak RSS, and the jobs the apply created counted with their requests. The issue's
goal at 1,000,000 rows: plan within 10 s; apply sends 1 request and rewrites the outputs
within 30 s. `plan` runs twice: the first merges the index of the packs the store holds,
the second (and the apply) reads it back from the machine's .runner/index/. The apply's line
says what it added to the store (a batch that reused keeps its jobs' lines alone).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench._common import make_dataset, standalone_emulator


def _run(args: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Seconds and peak RSS (MB, of the runner's own process: its render workers are not
    counted) of one runner command in a fresh process."""
    start = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-m", "runner.cli", *args], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert child.stderr is not None
    err = child.stderr.read()
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    elapsed = time.perf_counter() - start
    if child.returncode not in (0, 2):
        raise SystemExit(f"runner {' '.join(args)} exited {child.returncode}:\n"
                         f"{err.decode(errors='replace')}")
    return elapsed, usage.ru_maxrss / 1024


def _edit_one_row(rows: Path, n: int) -> None:
    """Row `n`'s body changed, every other byte of the file as it was; a line at a time, as
    this process's peak RSS is its children's too (see standalone_emulator)."""
    edited = rows.with_suffix(".edited")
    with open(rows, "rb") as f, open(edited, "wb") as out:
        for number, line in enumerate(f):
            if number == n:
                row = json.loads(line)
                row["body"] = "edited " + row["body"]
                line = json.dumps(row).encode() + b"\n"
            out.write(line)
    edited.replace(rows)


def main(argv: list[str]) -> None:
    from runner.providers.gemini import GeminiProvider

    sizes = [int(a) for a in argv] or [200_000]
    print(f"{'rows':>10} {'step':<34} {'seconds':>8} {'peak RSS MB':>12}")
    for rows in sizes:
        env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent))
        env.pop("RUNNER_STORE", None)
        with tempfile.TemporaryDirectory() as tmp, \
                standalone_emulator(Path(tmp) / "emu", env) as (base, _):
            d = make_dataset(Path(tmp) / "p", "bench", rows)
            env.update(GEMINI_API_KEY="k", GEMINI_BASE_URL=base, RUNNER_POLL_SECONDS="0.2")
            # the first plan merges the reuse index of the packs, the second reads it back
            # from .runner/index/ (runner.indexcache), as the plan before an apply does
            for step, args in (("first apply (everything sent)", ["apply", str(d), "--quiet"]),
                               ("edit one row: plan", ["plan", str(d)]),
                               ("edit one row: plan again", ["plan", str(d)])):
                if step == "edit one row: plan":
                    _edit_one_row(d / "data/bench.jsonl", rows // 2)
                    provider = GeminiProvider("k", base)
                    before = {j.name for j in provider.list_jobs()}
                seconds, peak = _run(args, env)
                print(f"{rows:>10,} {step:<34} {seconds:>8.1f} {peak:>12.1f}", flush=True)
            stored = _stored(d)
            seconds, peak = _run(["apply", str(d), "--quiet"], env)
            sent = [j.total for j in provider.list_jobs() if j.name not in before]
            provider.close()
            grew = _stored(d) - stored
            print(f"{rows:>10,} {'edit one row: apply':<34} {seconds:>8.1f} {peak:>12.1f}"
                  f"   jobs created: {len(sent)}, requests sent: {sum(sent)}, store grew by "
                  f"{grew:,} bytes", flush=True)


def _stored(d: Path) -> int:
    """The bytes of the packs in the project's local store."""
    return sum(p.stat().st_size for p in (d / ".runner/store/packs").glob("*.pack"))


if __name__ == "__main__":
    main(sys.argv[1:])
