"""Kill-point matrix: `runner apply` is SIGKILLed at every step boundary, then run again.

For every kill point: exactly one job per content hash on the provider, every output
byte-identical to an uninterrupted run, and a valid lockfile. Three manifests run at once: one
small enough to go inline, one sent through a resumable file upload in several chunks, and the
same rows split into three jobs (shards).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import MINIMAL, ROWS_MANIFEST, write_manifest, write_rows

from runner import lockfile
from runner.emulator import Emulator
from runner.failpoints import POINTS
from runner.providers.gemini import GeminiProvider

# the same rows again, split into three jobs of at most 150 requests
SPLIT = ROWS_MANIFEST.replace("{name: big}", "{name: split}").replace(
    "out/big", "out/split").replace("  rows: data/rows.jsonl",
                                    "  rows: data/rows.jsonl\n  max_requests: 150")
JOBS = 2 + 3


def make_project(root: Path) -> Path:
    d = root / "proj"
    write_manifest(d, MINIMAL, "tiny.yaml")
    write_manifest(d, ROWS_MANIFEST, "big.yaml")
    write_manifest(d, SPLIT, "split.yaml")
    write_rows(d, 400, "lorem ipsum " * 40)
    return d


def run(d: Path, emu: Emulator, failpoint: str | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, GEMINI_API_KEY="crash-test-key", GEMINI_BASE_URL=emu.base_url,
               RUNNER_POLL_SECONDS="0.05", RUNNER_INLINE_LIMIT="100000",
               RUNNER_UPLOAD_CHUNK="65536")
    env.pop("RUNNER_FAILPOINT", None)
    if failpoint:
        env["RUNNER_FAILPOINT"] = failpoint
    return subprocess.run([sys.executable, "-m", "runner.cli", "apply", str(d), "--quiet"],
                          env=env, capture_output=True, text=True, timeout=120)


def job_tags(emu: Emulator) -> Counter[str]:
    provider = GeminiProvider("crash-test-key", emu.base_url)
    try:
        return Counter(j.display_name for j in provider.list_jobs())
    finally:
        provider.close()


def outputs(d: Path) -> dict[str, bytes]:
    return {p.relative_to(d).as_posix(): p.read_bytes() for p in sorted((d / "out").rglob("*"))
            if p.is_file()}


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    root = tmp_path_factory.mktemp("reference")
    d = make_project(root)
    with Emulator(root / "emu", latency=0.3) as emu:
        done = run(d, emu)
    assert done.returncode == 0, done.stderr
    return outputs(d)


@pytest.fixture
def emu(tmp_path: Path) -> Iterator[Emulator]:
    with Emulator(tmp_path / "emu", latency=0.5) as e:
        yield e


@pytest.mark.parametrize("point", POINTS)
def test_kill_at_every_step_then_converge(point: str, tmp_path: Path, emu: Emulator,
                                          reference: dict[str, bytes]) -> None:
    d = make_project(tmp_path)
    killed = run(d, emu, point)
    assert killed.returncode == -signal.SIGKILL, (
        f"{point} was never reached: exit {killed.returncode}\n{killed.stdout}{killed.stderr}")
    again = run(d, emu)
    assert again.returncode == 0, again.stdout + again.stderr
    tags = job_tags(emu)
    assert len(tags) == JOBS and set(tags.values()) == {1}, tags
    assert outputs(d) == reference
    lock = lockfile.load(d / "batches.lock")
    assert {e.state for e in lock.batches.values()} == {"SUCCEEDED"}
    assert set(lock.batches) == {"tiny", "big", "split"}
    assert [s.state for s in lock.batches["split"].shards] == ["SUCCEEDED"] * 3
    assert not list(d.glob("out/.*.tmp")), "a temp file was left behind"


def test_repeated_kills_never_duplicate(tmp_path: Path, emu: Emulator,
                                        reference: dict[str, bytes]) -> None:
    """Every kill point in one sequence on the same directory, as a flaky CI runner would."""
    d = make_project(tmp_path)
    for point in POINTS:
        run(d, emu, point)
    assert run(d, emu).returncode == 0
    tags = job_tags(emu)
    assert len(tags) == JOBS and set(tags.values()) == {1}, tags
    assert outputs(d) == reference
    shutil.rmtree(d / ".runner", ignore_errors=True)


# its shards are small enough to go inline, so no upload or download kill point is reached
SPLIT_POINTS = ("after-intent", "after-job-recorded", "while-polling", "after-outputs")


@pytest.mark.parametrize("point", SPLIT_POINTS)
def test_kill_a_split_batch_then_converge(point: str, tmp_path: Path, emu: Emulator,
                                          reference: dict[str, bytes]) -> None:
    """The split batch alone, so that the kill lands inside it: between its shards' creates,
    after some shards' results are in, while its outputs are written."""
    d = tmp_path / "proj"
    write_manifest(d, SPLIT, "split.yaml")
    write_rows(d, 400, "lorem ipsum " * 40)
    killed = run(d, emu, point)
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
    again = run(d, emu)
    assert again.returncode == 0, again.stdout + again.stderr
    tags = job_tags(emu)
    assert len(tags) == 3 and set(tags.values()) == {1}, tags
    assert outputs(d) == {k: v for k, v in reference.items() if k.startswith("out/split")}
