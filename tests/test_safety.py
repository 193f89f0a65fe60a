"""Two runs at once, and the API key never leaking anywhere (for each provider,
tests/providers_matrix.py)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import MINIMAL, finish_all, write_manifest
from providers_matrix import PROVIDERS, Flavour

from runner.emulator import Emulator, Faults

SECRET = "AIzaSy-SECRET-d41d8cd98f00b204e9800998ecf8427e"


@pytest.fixture
def emu(tmp_path: Path) -> Iterator[Emulator]:
    with Emulator(tmp_path / "emu", latency=1.5) as e:
        yield e


def env_for(emu: Emulator, **extra: str) -> dict[str, str]:
    env = dict(os.environ, GEMINI_API_KEY=SECRET, GEMINI_BASE_URL=emu.base_url,
               RUNNER_POLL_SECONDS="0.05", **extra)
    env.pop("RUNNER_FAILPOINT", None)
    return env


def start(d: Path, emu: Emulator, *args: str, **extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "runner.cli", "apply", str(d), *args],
                            env=env_for(emu, **extra), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_for_lock(d: Path) -> None:
    deadline = time.monotonic() + 20
    while not (d / ".runner/run.lock").exists() or not (d / "batches.lock").exists():
        assert time.monotonic() < deadline, "first run never took the lock"
        time.sleep(0.05)


@pytest.fixture
def proj(tmp_path: Path) -> Path:
    d = tmp_path / "proj"
    write_manifest(d, MINIMAL)
    return d


def test_second_run_fails_fast_naming_the_holder(proj: Path, slow: Emulator) -> None:
    """The first run's job runs until the emulator's clock is moved, so the first run holds
    the lock however slow the machine."""
    first = start(proj, slow)
    wait_for_lock(proj)
    second = subprocess.run([sys.executable, "-m", "runner.cli", "apply", str(proj)],
                            env=env_for(slow), capture_output=True, text=True, timeout=30)
    finish_all(slow)
    assert second.returncode == 1
    line = second.stderr.strip()
    assert "\n" not in line
    assert re.search(rf"another run holds the lock \(pid {first.pid} on \S+ since "
                     r"\d{4}-\d\d-\d\dT", line), line
    first.communicate(timeout=60)
    assert first.returncode == 0


def test_second_run_waits_with_lock_timeout(proj: Path, emu: Emulator) -> None:
    first = start(proj, emu)
    wait_for_lock(proj)
    second = subprocess.run([sys.executable, "-m", "runner.cli", "apply", str(proj),
                             "--lock-timeout", "60"], env=env_for(emu), capture_output=True,
                            text=True, timeout=90)
    first.communicate(timeout=60)
    assert first.returncode == 0
    assert second.returncode == 0, second.stderr
    assert "No changes" in second.stdout


def test_killed_holder_leaves_no_stale_lock(proj: Path, emu: Emulator) -> None:
    first = start(proj, emu)
    wait_for_lock(proj)
    first.send_signal(signal.SIGKILL)
    first.communicate()
    again = subprocess.run([sys.executable, "-m", "runner.cli", "apply", str(proj)],
                           env=env_for(emu), capture_output=True, text=True, timeout=60)
    assert again.returncode == 0, again.stderr


@PROVIDERS
def test_api_key_never_written_printed_or_on_the_command_line(
        flavour: Flavour, tmp_path: Path) -> None:
    """A full apply, then a failing job, with faults that make the runner retry and report,
    and a server that quotes the key back in every error it sends: the key is searched in
    every file written (the project, the home and temp folders the runs had), everything
    printed, and the command line of each run while it runs."""
    proj = tmp_path / "proj"
    write_manifest(proj, flavour.adapt(MINIMAL))
    home, temp = Path.home(), tmp_path / "tmp"
    temp.mkdir()
    secret = flavour.secret
    seen_cmdlines: list[bytes] = []
    printed: list[str] = []
    with Emulator(tmp_path / "emu", latency=0.3) as emu:
        env = dict(os.environ, RUNNER_POLL_SECONDS="0.05", TMPDIR=str(temp),
                   **flavour.env(emu, secret))

        def run(*args: str) -> tuple[int, str, str]:
            child = subprocess.Popen([sys.executable, "-m", "runner.cli", "apply", str(proj),
                                      *args], env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
            while child.poll() is None:
                try:
                    seen_cmdlines.append(Path(f"/proc/{child.pid}/cmdline").read_bytes())
                except OSError:
                    break
                time.sleep(0.05)
            out, err = child.communicate(timeout=60)
            printed.extend((out, err))
            return child.returncode, out, err

        emu.faults = Faults(rate_429=0.25, retry_after=0.01, rate_503=0.1, echo_key=True,
                            seed=3)
        for _ in range(4):      # a create whose answer was a 503 is left for the next run
            code, _, err = run("--verbose")
            if code == 0:
                break
        assert code == 0, err
        stats = httpx.get(f"{emu.base_url}/_emulator/stats").json()
        assert stats["faults_429"] + stats["faults_503"] > 0, "nothing was retried"
        emu.faults = Faults(fail=True, echo_key=True)
        (proj / "m.yaml").write_text(flavour.adapt(MINIMAL.replace("2+2", "3+3")))
        code, _, _ = run("--verbose")
        assert code == 1
    assert seen_cmdlines and not any(secret.encode() in c for c in seen_cmdlines)
    for text in printed:
        assert secret not in text
    written = [p for root in (proj, home, temp) for p in root.rglob("*") if p.is_file()]
    assert any(p.name == "batches.lock" for p in written)
    for p in written:
        assert secret.encode() not in p.read_bytes(), p


def test_no_test_sees_the_real_environment(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The autouse guard in conftest: keys, endpoints and proxies gone, home a temp folder."""
    from conftest import OUTSIDE
    assert all(name not in os.environ for name in OUTSIDE)
    assert Path.home().is_relative_to(tmp_path_factory.getbasetemp())
