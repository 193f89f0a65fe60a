"""Shared helpers for the benchmarks: datasets, peak memory, and running a step in a fresh
process so that each figure's peak RSS is its own."""

from __future__ import annotations

import json
import os
import random
import resource
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

MANIFEST = """\
apiVersion: batch-runner/v1
kind: Batch
metadata: {{name: {name}}}
spec:
  provider: gemini
  model: gemini-2.5-flash
  rows: data/{name}.jsonl
  key: "{{{{ row.id }}}}"
  request:
    systemInstruction: {{parts: [{{text: "You label support tickets."}}]}}
    contents:
      - role: user
        parts: [{{text: "Ticket {{{{ row.id }}}} from {{{{ row.customer }}}}: {{{{ row.body }}}}"}}]
    generationConfig: {{temperature: 0}}
  outputs:
    - path: out/{name}.jsonl
"""

WORDS = ("order refund late parcel broken screen charger invoice account password login "
         "delivery address colour size exchange warranty battery").split()


def make_dataset(directory: Path, name: str, rows: int, seed: int = 0, words: int = 40
                 ) -> Path:
    """A manifest with `rows` rows, two templated fields, about 400 bytes a request (with
    the default 40 words of body; each word more adds about 6.5)."""
    (directory / "data").mkdir(parents=True, exist_ok=True)
    (directory / f"{name}.yaml").write_text(MANIFEST.format(name=name))
    rng = random.Random(seed)
    with open(directory / "data" / f"{name}.jsonl", "w") as f:
        for i in range(rows):
            body = " ".join(rng.choice(WORDS) for _ in range(words))
            f.write(json.dumps({"id": f"t{i:08d}", "customer": f"c{rng.randrange(10**6)}",
                                "body": body}) + "\n")
    return directory


def peak_rss_mb() -> float:
    """Peak resident set size of this process, in MB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class TreeRss:
    """Samples the RSS of this process plus every process under it (worker processes, the fork
    server) and keeps the peak of the sum. Shared pages count once per process, so the figure
    overstates the memory used; a peak between two samples is missed. Linux only."""

    def __init__(self, every: float = 0.25):
        self.peak_mb = 0.0
        self._every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> TreeRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while True:
            self.peak_mb = max(self.peak_mb, _tree_rss_mb(os.getpid()))
            if self._stop.wait(self._every):
                return


def _tree_rss_mb(root: int) -> float:
    return sum(int(fields[21]) for fields in proc_tree(root)) \
        * os.sysconf("SC_PAGE_SIZE") / 2**20     # resident pages


def proc_tree(root: int) -> list[list[str]]:
    """The /proc/PID/stat fields (after the command's name) of `root` and every process
    under it, as they are now (a process that ends meanwhile is left out)."""
    children: dict[int, list[int]] = {}
    stats: dict[int, list[str]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:     # the process ended meanwhile
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
        stats[int(entry)] = fields
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        if pid in stats:
            found.append(stats[pid])
        todo.extend(children.get(pid, []))
    return found


def in_fresh_process(module: str, *args: str) -> dict[str, float]:
    """Runs `python -m module args` and returns the JSON figures it prints on its last line."""
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent))
    out = subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True,
                         env=env, check=True).stdout
    figures: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    return figures


@contextmanager
def standalone_emulator(state: Path, env: dict[str, str]) -> Iterator[tuple[str, int]]:
    """`runner emulator` with no latency in a process of its own: its base URL and pid. Not
    in the benchmark's process, whose memory would count as its children's: Linux carries a
    process's peak RSS over fork and exec, so a child of a process holding an emulator's
    state reports at least that much (a plan of a million rows read 432 MB that way, against
    about 65 MB of its own)."""
    server = subprocess.Popen(
        [sys.executable, "-m", "runner.cli", "emulator", "--port", "0", "--latency", "0",
         "--state-dir", str(state)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert server.stdout is not None
        yield server.stdout.readline().split(" on ", 1)[1].split(" ", 1)[0], server.pid
    finally:
        server.terminate()
        server.wait()
