"""Kill-point matrix: `runner apply`, in a process of its own, is SIGKILLed at every step
boundary, then run again, for each provider (tests/providers_matrix.py).

For every kill point: exactly one job per content hash on the provider, every output
byte-identical to an uninterrupted run (but for the time OpenAI says each answer was made at,
its `created`, which no two runs share), and a valid lockfile. Three manifests run at once: one
small enough to go inline, one sent through a resumable file upload in several chunks (for
Gemini; OpenAI uploads every batch in one call, Anthropic none), and the same rows split into
three jobs (shards). Anthropic's batches carry no tag, so its jobs are counted by the lockfile
records that name them, and a job no record names counts on its own (providers_matrix.tags).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import MINIMAL, OUTSIDE, ROWS_MANIFEST, write_manifest, write_rows
from providers_matrix import PROVIDERS, Flavour, with_points

from runner import lockfile
from runner.cli import main
from runner.emulator import Emulator
from runner.failpoints import POINTS

# the same rows again, split into three jobs of at most 150 requests
SPLIT = ROWS_MANIFEST.replace("{name: big}", "{name: split}").replace(
    "out/big", "out/split").replace("  rows: data/rows.jsonl",
                                    "  rows: data/rows.jsonl\n  max_requests: 150")
JOBS = 2 + 3


def make_project(root: Path, flavour: Flavour) -> Path:
    d = root / "proj"
    write_manifest(d, flavour.adapt(MINIMAL), "tiny.yaml")
    write_manifest(d, flavour.adapt(ROWS_MANIFEST), "big.yaml")
    write_manifest(d, flavour.adapt(SPLIT), "split.yaml")
    write_rows(d, 400, "lorem ipsum " * 40)
    return d


def settings(emu: Emulator, flavour: Flavour) -> dict[str, str]:
    """The environment of every run: the provider's emulator, quick polls, and for Gemini the
    bigger batch uploaded in 64 KiB chunks."""
    return dict(flavour.env(emu, "crash-test-key"), RUNNER_POLL_SECONDS="0.05",
                RUNNER_INLINE_LIMIT="100000", RUNNER_UPLOAD_CHUNK="65536")


def kill(d: Path, emu: Emulator, flavour: Flavour, failpoint: str
         ) -> subprocess.CompletedProcess[str]:
    """`runner apply` in a process of its own, which kills itself at `failpoint`."""
    env = {k: v for k, v in os.environ.items() if k not in OUTSIDE}
    env.update(settings(emu, flavour), RUNNER_FAILPOINT=failpoint)
    return subprocess.run([sys.executable, "-m", "runner.cli", "apply", str(d), "--quiet"],
                          env=env, capture_output=True, text=True, timeout=120)


def apply_here(d: Path, emu: Emulator, flavour: Flavour,
               monkeypatch: pytest.MonkeyPatch) -> None:
    """`runner apply` in this process, uninterrupted: the run after a kill (all it knows of
    the killed run is on disk and on the provider, so a process of its own would only cost
    the start), and the reference run."""
    for name, value in settings(emu, flavour).items():
        monkeypatch.setenv(name, value)
    assert main(["apply", str(d), "--quiet"]) == 0


def one_job_per_hash(emu: Emulator, flavour: Flavour, d: Path, jobs: int) -> None:
    tags = flavour.tags(emu, d)
    assert len(tags) == jobs and set(tags.values()) == {1}, tags


def outputs(d: Path, flavour: Flavour) -> dict[str, bytes]:
    """Every output's bytes, but the times the provider says its answers were made at."""
    return {p.relative_to(d).as_posix(): flavour.steady(p.read_bytes())
            for p in sorted((d / "out").rglob("*")) if p.is_file()}


References = dict[str, dict[str, bytes]]


@pytest.fixture(scope="module")
def references(tmp_path_factory: pytest.TempPathFactory) -> References:
    """Each provider's outputs of an uninterrupted run, made when first needed."""
    return {}


@pytest.fixture
def reference(flavour: Flavour, references: References,
              tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    if flavour.name not in references:
        root = tmp_path_factory.mktemp(f"reference-{flavour}")
        d = make_project(root, flavour)
        with Emulator(root / "emu", latency=0.3) as emu, pytest.MonkeyPatch.context() as mp:
            apply_here(d, emu, flavour, mp)
        references[flavour.name] = outputs(d, flavour)
    return references[flavour.name]


@pytest.fixture
def emu(tmp_path: Path) -> Iterator[Emulator]:
    with Emulator(tmp_path / "emu", latency=0.3) as e:
        yield e


@pytest.mark.parametrize("flavour, point", with_points(POINTS))
def test_kill_at_every_step_then_converge(flavour: Flavour, point: str, tmp_path: Path,
                                          emu: Emulator, reference: dict[str, bytes],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    d = make_project(tmp_path, flavour)
    killed = kill(d, emu, flavour, point)
    assert killed.returncode == -signal.SIGKILL, (
        f"{point} was never reached: exit {killed.returncode}\n{killed.stdout}{killed.stderr}")
    apply_here(d, emu, flavour, monkeypatch)
    one_job_per_hash(emu, flavour, d, JOBS)
    assert outputs(d, flavour) == reference
    lock = lockfile.load(d / "batches.lock")
    assert {e.state for e in lock.batches.values()} == {"SUCCEEDED"}
    assert set(lock.batches) == {"tiny", "big", "split"}
    assert [s.state for s in lock.batches["split"].shards] == ["SUCCEEDED"] * 3
    assert not list(d.glob("out/.*.tmp")), "a temp file was left behind"


@PROVIDERS
def test_repeated_kills_never_duplicate(flavour: Flavour, tmp_path: Path, emu: Emulator,
                                        reference: dict[str, bytes],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Every kill point in one sequence on the same directory, as a flaky CI runner would."""
    d = make_project(tmp_path, flavour)
    for point in POINTS:
        if point not in dict(flavour.no_step):
            kill(d, emu, flavour, point)
    apply_here(d, emu, flavour, monkeypatch)
    one_job_per_hash(emu, flavour, d, JOBS)
    assert outputs(d, flavour) == reference
    shutil.rmtree(d / ".runner", ignore_errors=True)


# the points between and after its shards' jobs (for Gemini its shards go inline, so no upload
# or download point is reached: the matrix above reaches those for every provider); a create
# killed before its answer leaves a job of the same size as the next shard's, which Anthropic's
# untagged jobs must not confuse
SPLIT_POINTS = ("after-intent", "after-create-sent", "after-job-recorded", "while-polling",
                "after-outputs")


@pytest.mark.parametrize("flavour, point", with_points(SPLIT_POINTS))
def test_kill_a_split_batch_then_converge(flavour: Flavour, point: str, tmp_path: Path,
                                          emu: Emulator, reference: dict[str, bytes],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The split batch alone, so that the kill lands inside it: between its shards' creates,
    after some shards' results are in, while its outputs are written."""
    d = tmp_path / "proj"
    write_manifest(d, flavour.adapt(SPLIT), "split.yaml")
    write_rows(d, 400, "lorem ipsum " * 40)
    killed = kill(d, emu, flavour, point)
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
    apply_here(d, emu, flavour, monkeypatch)
    one_job_per_hash(emu, flavour, d, 3)
    assert outputs(d, flavour) == {k: v for k, v in reference.items() if k.startswith("out/split")}
