"""The benchmarks' own measures: what they count is what their tables say."""

from __future__ import annotations

import subprocess
import sys

# a process that, as the emulator's forkserver does, starts a worker, waits for it and lives on
_SERVER = """
import subprocess, sys
subprocess.run([sys.executable, "-c", "import time; t = time.process_time(); "
                "all(iter(lambda: time.process_time() - t < 0.6, False))"], check=True)
print("done", flush=True)
sys.stdin.read()
"""
_EMULATOR = f"""
import subprocess, sys
server = subprocess.Popen([sys.executable, "-c", {_SERVER!r}])
server.wait()
"""


def test_the_emulators_cpu_counts_its_workers() -> None:
    """bench.e2e's "emu CPU": the emulator answers a big job in workers under a forkserver
    of its own, whose time is the emulator's as much as its own process's."""
    from bench.e2e import _cpu_seconds

    with subprocess.Popen([sys.executable, "-c", _EMULATOR], stdout=subprocess.PIPE,
                          stdin=subprocess.PIPE) as emulator:
        assert emulator.stdout is not None and emulator.stdin is not None
        try:
            assert emulator.stdout.readline() == b"done\n"
            assert _cpu_seconds(emulator.pid) >= 0.5
        finally:
            emulator.stdin.close()      # the server reads to the end, and both end
            emulator.wait(timeout=30)
