"""Files the runner writes: the permissions any other file would get, and, when the disk
refuses, one line naming the file and the step, with nothing half-written left behind."""

from __future__ import annotations

import errno
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import remote_jobs

from runner import fsutil, shards
from runner.cli import main
from runner.emulator import Emulator
from runner.errors import OutputError
from runner.limits import Limits

REPO = Path(__file__).resolve().parent.parent


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def cli(args: list[str], emu: Emulator, umask: int = 0o022) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, GEMINI_API_KEY="k", GEMINI_BASE_URL=emu.base_url,
               RUNNER_POLL_SECONDS="0.05", PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "runner.cli", *args], env=env, text=True,
                          capture_output=True, timeout=120, preexec_fn=lambda: os.umask(umask))


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_outputs_and_the_lockfile_get_the_mode_the_umask_gives(umask: int, proj: Path,
                                                               emu: Emulator) -> None:
    result = cli(["apply", str(proj)], emu, umask)
    assert result.returncode == 0, result.stderr
    written = [proj / "batches.lock", proj / "out/tiny.jsonl", proj / "out/tiny.errors.jsonl"]
    assert {p.name: mode(p) for p in written} == {p.name: 0o666 & ~umask for p in written}


def test_a_file_replaced_keeps_its_mode(proj: Path, emu: Emulator) -> None:
    assert cli(["apply", str(proj)], emu).returncode == 0
    output, lock = proj / "out/tiny.jsonl", proj / "batches.lock"
    output.write_text("edited by hand\n")           # plan: download again, rewriting it
    output.chmod(0o664)
    lock.chmod(0o660)
    result = cli(["apply", str(proj)], emu, umask=0o077)
    assert result.returncode == 0, result.stderr
    assert output.read_text() != "edited by hand\n"
    assert (mode(output), mode(lock)) == (0o664, 0o660)


def test_atomic_writer_mode_for_new_and_replaced_files(tmp_path: Path) -> None:
    old = os.umask(0o027)
    try:
        fsutil.write_text(tmp_path / "new.txt", "x")
        (tmp_path / "kept.txt").write_text("old")
        (tmp_path / "kept.txt").chmod(0o604)
        fsutil.write_text(tmp_path / "kept.txt", "new")
    finally:
        os.umask(old)
    assert mode(tmp_path / "new.txt") == 0o640
    assert mode(tmp_path / "kept.txt") == 0o604 and (tmp_path / "kept.txt").read_text() == "new"


@pytest.fixture
def full_disk(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every temp file atomic_writer creates is, underneath, /dev/full: its writes fail with
    the kernel's own ENOSPC, as on a full disk."""
    create = fsutil._create_beside

    def on_full_disk(path: Path) -> tuple[int, str]:
        fd, tmp = create(path)
        full = os.open("/dev/full", os.O_WRONLY)
        os.dup2(full, fd)
        os.close(full)
        return fd, tmp
    monkeypatch.setattr(fsutil, "_create_beside", on_full_disk)


def test_a_full_disk_names_the_file_and_the_step(tmp_path: Path, full_disk: None) -> None:
    target = tmp_path / "results/out.jsonl"
    target.parent.mkdir()
    target.write_text("the old results\n")
    with pytest.raises(OutputError) as e:
        with fsutil.atomic_writer(target, "wb") as f:
            f.write(b"x" * 100_000)
    assert str(e.value) == f"{target}: cannot write this file (writing it): No space left on " \
                           "device"
    assert target.read_text() == "the old results\n"
    assert os.listdir(target.parent) == ["out.jsonl"], "the temp file is removed"


@pytest.mark.parametrize("failing, step", [("fsync", "flushing it to disk"),
                                           ("replace", "putting it in place")])
def test_each_step_that_fails_is_named(failing: str, step: str, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any) -> None:
        raise OSError(errno.EDQUOT, os.strerror(errno.EDQUOT))
    monkeypatch.setattr(f"runner.fsutil.os.{failing}", refuse)
    with pytest.raises(OutputError, match=rf"batches\.lock: cannot write this file \({step}\): "
                       "Disk quota exceeded$"):
        fsutil.write_text(tmp_path / "batches.lock", "x")
    assert os.listdir(tmp_path) == []


def test_where_a_folder_is_a_file_the_folder_step_is_named(tmp_path: Path) -> None:
    (tmp_path / ".runner").write_text("not a folder")
    with pytest.raises(OutputError, match=r"\.runner/digests\.json: cannot write this file "
                       r"\(creating its folder\): File exists$"):
        fsutil.write_text(tmp_path / ".runner/digests.json", "{}")


def test_an_error_that_is_not_the_disks_is_left_as_it_is(tmp_path: Path) -> None:
    """The caller's body may read other files while it writes: a failed read is not this
    file's fault, and keeps its own file name."""
    with pytest.raises(FileNotFoundError):
        with fsutil.atomic_writer(tmp_path / "out.jsonl") as f:
            f.write("x")
            open(tmp_path / "missing.jsonl").close()
    assert os.listdir(tmp_path) == []


def on_full_disk(path: Path, mode: str) -> Any:
    """`open`, for a file whose writes fail as on a full disk."""
    f = open(path, mode)
    full = os.open("/dev/full", os.O_WRONLY)
    os.dup2(full, f.fileno())
    os.close(full)
    return f


def test_a_full_disk_while_writing_a_jobs_requests_names_the_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shards, "open", on_full_disk, raising=False)
    splitter = shards.Splitter("gemini", "m", Limits(20_000_000, 2_000_000_000),
                               tmp_path / "inputs")
    try:
        with pytest.raises(OutputError, match=r"inputs/\.shard-0\.part: cannot write this "
                           r"file \(writing the requests of a job\): No space left on device$"):
            splitter.add(b'{"key":"a"}\n' * 100_000)
            splitter.finish()
    finally:
        splitter.abort()
    assert os.listdir(tmp_path / "inputs") == []



@pytest.mark.parametrize("size", [100_000, 10])     # written through, or at the last flush
def test_a_full_disk_while_writing_a_batchs_keys_names_the_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, size: int) -> None:
    """The keys and hashes of a batch's requests (runner.held.KeysFile) are written beside
    its input files as it renders: a full disk names that file, as for the input files, and
    the part written is removed."""
    from runner import held

    monkeypatch.setattr(held, "open", on_full_disk, raising=False)
    keys = held.KeysFile(tmp_path / "inputs")
    try:
        with pytest.raises(OutputError, match=r"inputs/\.keys\.part: cannot write this "
                           r"file \(writing the keys of a batch\): No space left on device$"):
            keys.write(b'"a"\tsha256:00\n' * (size // 15 + 1))
            keys.finish("sha256:" + "0" * 64)
    finally:
        keys.abort()
    assert os.listdir(tmp_path / "inputs") == []

def test_apply_names_the_folder_it_cannot_render_into_and_submits_nothing(
        proj: Path, emu: Emulator, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The rendered requests of the run's jobs go to a folder of its own in the temporary
    directory (runner.stream): one that cannot be made stops apply before anything is
    recorded or created, naming where and what to do."""
    def refuse(*args: Any, **kwargs: Any) -> str:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr("runner.stream.tempfile.mkdtemp", refuse)
    monkeypatch.setenv("GEMINI_API_KEY", "k")
    monkeypatch.setenv("GEMINI_BASE_URL", emu.base_url)

    assert main(["apply", str(proj)]) == 1

    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert "cannot write this file (creating a folder in it for the requests of the run's " \
        "jobs; TMPDIR may name another): No space left on device" in err
    assert remote_jobs(emu) == []
    assert not (proj / "out").exists() and not (proj / "batches.lock").exists()


def test_caches_that_cannot_be_written_do_not_stop_a_plan(proj: Path, emu: Emulator) -> None:
    for name in ("digests.json", "manifests.cache", "lockfile.cache"):
        (proj / ".runner" / name).mkdir(parents=True)
    result = cli(["plan", str(proj)], emu)
    assert result.returncode == 0, result.stderr
    assert "tiny" in result.stdout

