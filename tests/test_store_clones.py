"""Two clones of one project applying the same change at once (issue 11, item 4): one store,
one emulator, and in each round both clones' manifests edited alike and `apply --no-wait`
run in both at the same moment (two threads calling the CLI's entry point): one job per
content hash, which both lockfiles name. Over real HTTP: the emulator, and for one case
moto's S3 server as the store."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import s3server
from conftest import MINIMAL, write_manifest
from providers_matrix import ANTHROPIC, GEMINI, Flavour, serve

from runner import lockfile
from runner.cli import main
from runner.emulator import Emulator
from runner.store.project import STORE_ENV

ROUNDS = 10             # on a path store; 3 on S3, where each run's first lease costs ~0.5 s


def manifest(flavour: Flavour, round_: int) -> str:
    """MINIMAL for `flavour`, its first question changed each round."""
    return flavour.adapt(MINIMAL.replace("What is 1+1?", f"What is {round_}+1?"))


def at_once(*directories: Path) -> list[int]:
    """`runner apply --no-wait` in every directory at the same moment: their exit codes."""
    start = threading.Barrier(len(directories))
    codes = [-1] * len(directories)

    def run(i: int, d: Path) -> None:
        start.wait()
        codes[i] = main(["apply", str(d), "--no-wait", "--quiet"])

    threads = [threading.Thread(target=run, args=(i, d)) for i, d in enumerate(directories)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return codes


@pytest.fixture
def emulated(request: pytest.FixtureRequest, tmp_path: Path,
             monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Flavour, Emulator]]:
    """The flavour's emulator, whose jobs run for a minute: each round's job is still
    running when the next round replaces it."""
    flavour: Flavour = request.param
    with serve(flavour, tmp_path / "emu", monkeypatch, 60.0) as emu:
        yield flavour, emu


@pytest.mark.parametrize(("emulated", "where"), [(GEMINI, "path"), (ANTHROPIC, "path"),
                                                 (ANTHROPIC, "s3")],
                         ids=["gemini-path", "anthropic-path", "anthropic-s3"],
                         indirect=["emulated"])
def test_two_clones_applying_the_same_change_at_once_create_one_job_per_hash(
        emulated: tuple[Flavour, Emulator], where: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest,
        capsys: pytest.CaptureFixture[str]) -> None:
    flavour, emu = emulated
    if where == "path":
        monkeypatch.setenv(STORE_ENV, str(tmp_path / "shared"))
    else:
        monkeypatch.setenv(STORE_ENV, s3server.fresh_prefix(
            request.getfixturevalue("s3_endpoint"), "clone-tests", monkeypatch.setenv))
    clones = tmp_path / "a", tmp_path / "b"
    jobs: dict[str, str] = {}       # content hash: the one job made for it
    for n in range(ROUNDS if where == "path" else 3):     # S3: slower, fewer

        for d in clones:
            write_manifest(d, manifest(flavour, n))
        assert at_once(*clones) == [0, 0], capsys.readouterr()
        a, b = (lockfile.load(d / "batches.lock").batches["tiny"] for d in clones)
        assert a.content_hash == b.content_hash and a.content_hash not in jobs
        assert a.job is not None and a.job == b.job, (n, a.job, b.job)
        jobs[a.content_hash] = a.job
        made = flavour.jobs(emu)
        assert sorted(j.name for j in made) == sorted(jobs.values()), n
    said = capsys.readouterr()
    assert "Traceback" not in said.out + said.err
