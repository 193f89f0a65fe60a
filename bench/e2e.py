"""Apply of N requests end to end (render, upload, create, wait, download, join, write the
outputs) against a standalone `runner emulator` with no latency: `runner apply` (which sends
requests inline under 20 MB, as a file above), beside a plain
script doing the same with the official google-genai SDK, in the same run.

    python -m bench.e2e                       # 20,000 (sent inline) and 1,000,000
    python -m bench.e2e 100000 500000         # other sizes
    python -m bench.e2e --rounds 1 20000      # rounds per size (default 2)
    python -m bench.e2e --words 93 20000      # longer rows: 18 MB, just under the inline limit

Each side runs as a subprocess in a fresh copy of the project, against the same emulator (a
process apart, whose memory counts for neither), in alternating order round by round: the disk
cache and the emulator's own state favour whoever runs second. "peak RSS" is the largest
process of the side (the kernel's figure, from wait4); "all procs" samples the side's process
tree (the runner's render workers and fork server), shared pages counted in each process, so
an upper bound. "CPU s" is the side's own user and system time (its processes together),
"emu CPU" the emulator's while the side ran (its workers' too, which answer a big job
across cores): on a busy machine they move less than the wall
time. Both poll the job every POLL seconds at first (the runner backs off from there,
as it does against Google).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench._common import _tree_rss_mb, make_dataset, proc_tree, standalone_emulator

SIZES = (20_000, 1_000_000)
KEY = "bench-key"
POLL = 0.25
PROMPT = "Ticket {{ row.id }} from {{ row.customer }}: {{ row.body }}"
SYSTEM = "You label support tickets."


def _script(directory: str, base: str) -> None:
    """What a user writes with the SDK's documentation at hand: every request rendered into a
    list and written as a JSONL file, uploaded, the job polled, the results downloaded and
    joined to the rows by key, the outputs written as JSONL in input order. (The SDK's inline
    requests go through pydantic models, at about 2.5 ms a request: the file is its fast way
    at every size.)"""
    from google import genai
    from google.genai import types
    from jinja2 import Template

    d = Path(directory)
    client = genai.Client(api_key=KEY, http_options=types.HttpOptions(
        base_url=base, api_version="v1beta"))
    template = Template(PROMPT)
    rows = [json.loads(line) for line in open(d / "data" / "bench.jsonl", encoding="utf-8")]
    requests = [{"key": row["id"], "request": {
        "systemInstruction": {"parts": [{"text": SYSTEM}]},
        "contents": [{"role": "user", "parts": [{"text": template.render(row=row)}]}],
        "generationConfig": {"temperature": 0}}} for row in rows]
    lines = [json.dumps(r) + "\n" for r in requests]
    path = d / "input.jsonl"
    path.write_text("".join(lines), encoding="utf-8")
    uploaded = client.files.upload(file=str(path), config=types.UploadFileConfig(
        mime_type="jsonl", display_name="bench-input"))
    job = client.batches.create(model="gemini-2.5-flash", src=str(uploaded.name))
    done = {"JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED",
            "JOB_STATE_EXPIRED"}
    while (state := str(getattr(job.state, "value", job.state))) not in done:
        time.sleep(POLL)
        job = client.batches.get(name=str(job.name))
    assert state == "JOB_STATE_SUCCEEDED", state
    assert job.dest is not None
    results: dict[str, Any] = {}
    data = client.files.download(file=str(job.dest.file_name))
    for line in data.splitlines():
        result = json.loads(line)
        results[result["key"]] = result.get("response")
    (d / "out").mkdir(exist_ok=True)
    with open(d / "out" / "bench.jsonl", "w", encoding="utf-8") as f:
        for r in requests:
            response = results[r["key"]]
            candidate = response["candidates"][0]
            f.write(json.dumps({"key": r["key"], "text": candidate["content"]["parts"][0]["text"],
                                "finish_reason": candidate.get("finishReason"),
                                "usage": response.get("usageMetadata"),
                                "response": response}) + "\n")


def _cpu_seconds(root: int) -> float:
    """User and system time a process and every process under it have used so far, the
    ended ones they waited for included: the emulator answers a big job in worker processes
    (runner.emulator.gemini.cores), children of a forkserver of its own."""
    return sum(sum(int(t) for t in fields[11:15])       # utime stime cutime cstime
               for fields in proc_tree(root)) / os.sysconf("SC_CLK_TCK")


def _run(command: list[str], env: dict[str, str], emulator: int) -> dict[str, float]:
    """Runs `command`, returning its wall time, its largest process's peak RSS, the sampled
    peak of its process tree, and the CPU time it and the emulator used meanwhile."""
    tree = 0.0
    served = _cpu_seconds(emulator)
    start = time.perf_counter()
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
    stop = threading.Event()

    def sample() -> None:
        nonlocal tree
        while not stop.wait(0.1):
            tree = max(tree, _tree_rss_mb(proc.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    served = _cpu_seconds(emulator) - served
    proc.returncode = os.waitstatus_to_exitcode(status)
    stop.set()
    sampler.join()
    if proc.returncode != 0:
        raise SystemExit(f"{command[:4]} exited {proc.returncode}")
    return {"seconds": elapsed, "peak_rss_mb": usage.ru_maxrss / 1024, "tree_rss_mb": tree,
            "cpu": usage.ru_utime + usage.ru_stime, "emulator_cpu": served}


def _fresh(source: Path, target: Path) -> Path:
    """A fresh project: the manifest copied, the rows file linked."""
    (target / "data").mkdir(parents=True)
    shutil.copy(source / "bench.yaml", target / "bench.yaml")
    os.link(source / "data" / "bench.jsonl", target / "data" / "bench.jsonl")
    return target


def _count_lines(path: Path) -> int:
    with open(path, "rb") as f:
        return sum(block.count(b"\n") for block in iter(lambda: f.read(1 << 20), b""))


def _size(t: Path, rows: int, rounds: int, base: str, env: dict[str, str], emulator: int,
          words: int) -> None:
    source = make_dataset(t / "source", "bench", rows, words=words)
    runner = [sys.executable, "-m", "runner.cli", "apply", "--quiet"]
    script = [sys.executable, "-m", "bench.e2e", "--script"]
    best: dict[str, dict[str, float]] = {}
    for number in range(rounds):
        for who in ("runner", "script")[::1 if number % 2 == 0 else -1]:
            d = _fresh(source, t / f"{who}-{number}")
            f = _run([*(runner if who == "runner" else script), str(d)]
                     + ([] if who == "runner" else [base]), env, emulator)
            lines = _count_lines(d / "out" / "bench.jsonl")
            assert lines == rows, (who, lines)
            shutil.rmtree(d)
            name = "batch-runner" if who == "runner" else "google-genai script"
            print(f"{rows:>10,} {number + 1:>5} {name:<20} {f['seconds']:>8.1f} "
                  f"{f['peak_rss_mb']:>12.1f} {f['tree_rss_mb']:>12.1f} {f['cpu']:>8.1f} "
                  f"{f['emulator_cpu']:>8.1f}", flush=True)
            if f["seconds"] < best.get(who, {"seconds": float("inf")})["seconds"]:
                best[who] = f
    ratio = best["script"]["seconds"] / best["runner"]["seconds"]
    print(f"{rows:>10,} best of {rounds}: batch-runner {best['runner']['seconds']:.1f} s, "
          f"script {best['script']['seconds']:.1f} s: {ratio:.2f}x", flush=True)


def main(argv: list[str]) -> None:
    if argv and argv[0] == "--script":
        _script(argv[1], argv[2])
        return
    rounds, words = 2, 40
    while argv and argv[0] in ("--rounds", "--words"):
        if argv[0] == "--rounds":
            rounds = int(argv[1])
        else:
            words = int(argv[1])
        argv = argv[2:]
    sizes = [int(a) for a in argv] or list(SIZES)
    print(f"{'requests':>10} {'round':>5} {'who':<20} {'seconds':>8} {'peak RSS MB':>12} "
          f"{'all procs MB':>12} {'CPU s':>8} {'emu CPU':>8}")
    for rows in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            t = Path(tmp)
            env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent))
            with standalone_emulator(t / "emu", env) as (base, pid):
                env.update(GEMINI_BASE_URL=base, GEMINI_API_KEY=KEY,
                           RUNNER_POLL_SECONDS=str(POLL))
                _size(t, rows, rounds, base, env, pid, words)


if __name__ == "__main__":
    main(sys.argv[1:])
