"""The result store wired into plan and apply (issue 11, item 1): every result line goes into
the store as the outputs are written, the lockfile names the packs that hold them, and a
fresh clone sharing the store rebuilds the outputs byte for byte with no job created, even
after the provider deleted the job. Over real HTTP: the emulator, and moto's S3 server."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
import s3server
from conftest import MINIMAL, OUTSIDE, ROWS_MANIFEST, write_manifest, write_rows
from providers_matrix import GEMINI, serve

from runner import api, lockfile
from runner.cli import main
from runner.emulator import Emulator
from runner.errors import LockfileError
from runner.providers.base import JobState
from runner.records import LockEntry
from runner.store import open_store
from runner.store.names import pack_object
from runner.store.project import STORE_ENV, STORE_FILE

BUCKET = "apply-tests"


@pytest.fixture
def emu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    with serve(GEMINI, tmp_path / "emu", monkeypatch, 0.2) as e:
        yield e


def finished(d: Path, emu: Emulator) -> str:
    """Applies the project to the end; its one job, deleted on the provider since."""
    assert main(["apply", str(d), "--quiet"]) == 0
    entry = lockfile.load(d / "batches.lock").batches["tiny"]
    assert entry.packs and entry.job is not None
    client = GEMINI.client(emu)
    try:
        client.delete_job(entry.job)
    finally:
        client.close()
    return entry.job


def one_line(capsys: pytest.CaptureFixture[str]) -> str:
    """What a command said, which must be one line."""
    said = capsys.readouterr()
    lines = (said.out + said.err).strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def clone(d: Path, to: Path) -> Path:
    """What a CI checkout holds: the committed files, no .runner/, no outputs."""
    shutil.copytree(d, to, ignore=shutil.ignore_patterns(".runner", "out"))
    return to


@pytest.mark.parametrize("where", ["path", "s3"])
def test_a_fresh_clone_sharing_the_store_rebuilds_the_outputs_without_the_provider(
        where: str, emu: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        request: pytest.FixtureRequest) -> None:
    d = tmp_path / "proj"
    write_manifest(d, MINIMAL)
    if where == "path":
        monkeypatch.setenv(STORE_ENV, str(tmp_path / "shared"))
    else:       # declared in the directory, versioned with it
        url = s3server.fresh_prefix(request.getfixturevalue("s3_endpoint"), BUCKET,
                                    monkeypatch.setenv)
        (d / STORE_FILE).write_text(f"kind: Store\nurl: {url}\n")
    finished(d, emu)
    before = GEMINI.jobs(emu)
    ci = clone(d, tmp_path / "ci")
    [action] = api.plan(ci).actions
    assert action.kind.value == "download" and "result store" in action.reason, action.reason
    assert main(["apply", str(ci), "--quiet"]) == 0
    assert (ci / "out/tiny.jsonl").read_bytes() == (d / "out/tiny.jsonl").read_bytes()
    assert GEMINI.jobs(emu) == before                       # no job created
    assert (ci / "batches.lock").read_bytes() == (d / "batches.lock").read_bytes()
    [action] = api.plan(ci).actions
    assert action.kind.value == "nothing", action.reason



def test_without_a_shared_store_a_fresh_clone_pays_for_nothing(
        emu: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = tmp_path / "proj"
    write_manifest(d, MINIMAL)
    finished(d, emu)
    before = GEMINI.jobs(emu)
    ci = clone(d, tmp_path / "ci")      # the default store, under .runner/, stayed behind
    capsys.readouterr()
    assert main(["apply", str(ci), "--quiet"]) == 1
    line = one_line(capsys)
    assert "apply --resubmit tiny" in line, line
    assert GEMINI.jobs(emu) == before


def test_the_local_store_rebuilds_deleted_outputs_on_the_same_machine(
        emu: Emulator, tmp_path: Path) -> None:
    d = tmp_path / "proj"
    write_manifest(d, MINIMAL)
    finished(d, emu)
    first = (d / "out/tiny.jsonl").read_bytes()
    (d / "out/tiny.jsonl").unlink()
    assert main(["apply", str(d), "--quiet"]) == 0
    assert (d / "out/tiny.jsonl").read_bytes() == first


def test_a_damaged_pack_is_fetched_again_from_the_provider_and_written_again(
        emu: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    d, shared = tmp_path / "proj", tmp_path / "shared"
    monkeypatch.setenv(STORE_ENV, str(shared))
    write_rows(d, 300, "some text")
    write_manifest(d, ROWS_MANIFEST)
    assert main(["apply", str(d), "--quiet"]) == 0
    entry = lockfile.load(d / "batches.lock").batches["big"]
    [pack] = entry.packs
    first = {p: (d / p).read_bytes() for p in ("out/big.jsonl", "out/big.csv")}
    data = bytearray((shared / pack_object(pack)).read_bytes())
    data[-5] ^= 0xFF                    # a flipped bit in the last block
    (shared / pack_object(pack)).write_bytes(bytes(data))
    ci = clone(d, tmp_path / "ci")
    assert main(["apply", str(ci), "--quiet"]) == 0       # the job is still on the provider
    assert {p: (ci / p).read_bytes() for p in first} == first
    assert lockfile.load(ci / "batches.lock").batches["big"].packs == [pack]
    open_store(shared).verify(pack)     # written again whole
    assert len(GEMINI.jobs(emu)) == 1


def test_a_damaged_pack_and_no_job_is_one_line_and_exit_1(
        emu: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    d, shared = tmp_path / "proj", tmp_path / "shared"
    monkeypatch.setenv(STORE_ENV, str(shared))
    write_manifest(d, MINIMAL)
    finished(d, emu)
    [pack] = lockfile.load(d / "batches.lock").batches["tiny"].packs
    (shared / pack_object(pack)).write_bytes(b"not a pack")
    ci = clone(d, tmp_path / "ci")
    capsys.readouterr()
    assert main(["apply", str(ci), "--quiet"]) == 1
    line = one_line(capsys)
    assert "provider" in line, line
    assert len(GEMINI.jobs(emu)) == 0
    assert not (ci / "out/tiny.jsonl").exists()


@pytest.mark.parametrize(("location", "said"), [
    ("s3:bucket", "scheme://bucket/prefix"),
    ("s3://user:pw@bucket/x", "must not carry credentials"),
    ("ftp://bucket/x", "not ftp://"),
])
def test_a_wrong_store_location_is_one_line_and_exit_1(
        location: str, said: str, emu: Emulator, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    d = tmp_path / "proj"
    write_manifest(d, MINIMAL)
    monkeypatch.setenv(STORE_ENV, location)
    assert main(["apply", str(d), "--quiet"]) == 1
    line = one_line(capsys)
    assert said in line and "pw" not in line, line
    assert len(GEMINI.jobs(emu)) == 0


def test_a_store_file_that_is_not_right_is_one_line_and_exit_1(
        emu: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = tmp_path / "proj"
    write_manifest(d, MINIMAL)
    (d / STORE_FILE).write_text("kind: Store\nurl: s3://b/p\nkey: AKIA...\n")
    assert main(["plan", str(d)]) == 1
    line = one_line(capsys)
    assert "unknown key 'key'" in line and STORE_FILE in line, line


def test_two_rows_asking_the_same_share_the_line_the_store_keeps(
        emu: Emulator, tmp_path: Path) -> None:
    d = tmp_path / "proj"
    write_manifest(d, MINIMAL.replace("What is 2+2?", "What is 1+1?"))
    finished(d, emu)
    (d / "out/tiny.jsonl").unlink()
    assert main(["apply", str(d), "--quiet"]) == 0
    lines = (d / "out/tiny.jsonl").read_bytes().splitlines()
    assert [orjson.loads(x)["key"] for x in lines] == ["a", "b"]
    assert not (d / "out/tiny.errors.jsonl").exists() or \
        not (d / "out/tiny.errors.jsonl").read_bytes()


def test_the_lockfile_names_packs_in_order_and_refuses_a_bad_one(tmp_path: Path) -> None:
    entry = LockEntry("m.yaml", "sha256:" + "1" * 64, "sha256:" + "2" * 64, "gemini", "m", 1,
                      "tiny-222222222222", JobState.SUCCEEDED,
                      packs=["sha256:" + "b" * 64, "sha256:" + "a" * 64])
    path = tmp_path / "batches.lock"
    lockfile.save(path, lockfile.Lock({"tiny": entry}))
    text = path.read_text()
    assert text.index("b" * 64) < text.index("a" * 64)     # as written: the packs' order
    assert lockfile.load(path).batches["tiny"].packs == entry.packs
    path.write_text(text.replace("b" * 64, "B" * 64))
    with pytest.raises(LockfileError, match="packs"):
        lockfile.load(path)


def test_a_store_that_cannot_be_reached_stops_apply_before_anything_is_sent(
        emu: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    d = tmp_path / "proj"
    write_manifest(d, MINIMAL)
    for name, value in s3server.environment("http://127.0.0.1:9").items():
        monkeypatch.setenv(name, value)
    (d / STORE_FILE).write_text("kind: Store\nurl: s3://nowhere/results\noptions:\n"
                                "  config_kwargs: {retries: {max_attempts: 1}, "
                                "connect_timeout: 2}\n")
    capsys.readouterr()
    assert main(["apply", str(d), "--quiet"]) == 1
    line = one_line(capsys)
    assert "s3://nowhere/results" in line, line
    assert len(GEMINI.jobs(emu)) == 0


def test_killed_after_the_packs_and_outputs_before_the_lockfile_then_converges(
        emu: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The packs are written before the lockfile names them: a run killed in between leaves
    a lockfile naming none, and the next run names packs that are all there, whole."""
    d, shared = tmp_path / "proj", tmp_path / "shared"
    monkeypatch.setenv(STORE_ENV, str(shared))
    write_manifest(d, MINIMAL)
    env = {k: v for k, v in os.environ.items() if k not in OUTSIDE}
    env.update(GEMINI.env(emu, "k"), RUNNER_POLL_SECONDS="0.05",
               RUNNER_FAILPOINT="after-outputs")
    killed = subprocess.run([sys.executable, "-m", "runner.cli", "apply", str(d), "--quiet"],
                            env=env, capture_output=True, text=True, timeout=120)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert not lockfile.load(d / "batches.lock").batches["tiny"].packs
    assert main(["apply", str(d), "--quiet"]) == 0
    packs = lockfile.load(d / "batches.lock").batches["tiny"].packs
    assert packs
    for pack in packs:
        open_store(shared).verify(pack)
    assert len(GEMINI.jobs(emu)) == 1


def test_packs_edited_to_name_another_batchs_are_not_written_from(
        emu: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = tmp_path / "proj"
    write_manifest(d, MINIMAL)
    assert main(["apply", str(d), "--quiet"]) == 0
    first = (d / "out/tiny.jsonl").read_bytes()
    with open_store(d / ".runner/store").writer() as w:     # someone else's results
        w.add("sha256:" + "0" * 64, b'{"key":"a","response":{}}', True)
    lock = lockfile.load(d / "batches.lock")
    lock.batches["tiny"].packs = list(w.packs)
    lockfile.save(d / "batches.lock", lock)
    (d / "out/tiny.jsonl").unlink()
    capsys.readouterr()
    assert main(["apply", str(d)]) == 0
    assert "lack some of its results; fetching them from the provider" in capsys.readouterr().out
    assert (d / "out/tiny.jsonl").read_bytes() == first
    assert lockfile.load(d / "batches.lock").batches["tiny"].packs != w.packs
    assert len(GEMINI.jobs(emu)) == 1
