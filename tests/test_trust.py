"""What comes from outside the runner's own journal is checked: files edited while apply waits,
a lockfile that names the wrong job, a results file that does not parse, a copied project,
two machines applying at once. Each ends in one clear line, never wrong data or a second job."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from conftest import MINIMAL, ROWS_MANIFEST, finish_all, remote_jobs, write_manifest, write_rows

from runner import api, lockfile
from runner.apply import apply_directory, prepare
from runner.cli import main
from runner.emulator import Emulator
from runner.errors import ProviderError
from runner.providers.base import Provider, RemoteJob


def rows_project(tmp_path: Path, rows: int = 5, extra: str = "") -> Path:
    d = tmp_path / "proj"
    write_manifest(d, ROWS_MANIFEST + extra)
    write_rows(d, rows, "body")
    return d


def edit_row(d: Path, n: int, body: str) -> None:
    lines = (d / "data/rows.jsonl").read_text().splitlines()
    lines[n] = json.dumps({"n": n, "body": body})
    (d / "data/rows.jsonl").write_text("\n".join(lines) + "\n")


# -- outputs come from what was sent --------------------------------------------------------

@pytest.mark.parametrize("change", ["edit", "append"])
def test_rows_changed_while_waiting_write_no_outputs(tmp_path: Path, emu: Emulator,
                                                      change: str) -> None:
    d = rows_project(tmp_path)
    assert api.apply(d, options=api.Options(wait=False)).exit_code == 0
    job = lockfile.load(d / "batches.lock").batches["big"].job
    prepared = prepare(d)                   # the plan: wait for the job, then write
    if change == "edit":
        edit_row(d, 2, "edited while apply waited")
    else:
        with open(d / "data/rows.jsonl", "a") as f:
            f.write(json.dumps({"n": 5, "body": "added while apply waited"}) + "\n")
    with api.connect(d) as provider, pytest.raises(api.RunnerError,
                                                   match="changed while apply ran"):
        apply_directory(d, provider, prepared=prepared)
    # no output pairs the new rows with the old answers, and no follow-up job was sent
    assert not (d / "out").exists() or not any((d / "out").iterdir())
    assert [j.name for j in remote_jobs(emu)] == [job]
    assert lockfile.load(d / "batches.lock").batches["big"].job == job
    assert api.apply(d).exit_code == 0      # planned anew: the change replaces the batch
    csv = (d / "out/big.csv").read_text()
    wanted = "edited while apply waited" if change == "edit" else "added while apply waited"
    assert wanted in (d / "out/big.jsonl").read_text()
    assert csv.count("\n") == (7 if change == "append" else 6)


def test_follow_up_resends_what_was_sent(tmp_path: Path, emu: Emulator) -> None:
    d = tmp_path / "proj"
    write_manifest(d, ROWS_MANIFEST + "  allowed_failures: 1\n")
    write_rows(d, 4, "body")
    edit_row(d, 1, "EMULATOR_FAIL please")
    assert api.apply(d).exit_code == 0
    jobs = len(remote_jobs(emu))
    (d / "m.yaml").write_text(ROWS_MANIFEST + "  retry_failed: 1\n  allowed_failures: 1\n")
    prepared = prepare(d)                   # the plan: a follow-up of the failed request
    assert [a.kind.value for a in api.plan(d).actions] == ["retry"]
    edit_row(d, 1, "EMULATOR_FAIL edited meanwhile")
    with api.connect(d) as provider, pytest.raises(api.RunnerError,
                                                   match="changed while apply ran"):
        apply_directory(d, provider, prepared=prepared)
    assert len(remote_jobs(emu)) == jobs


# -- a recorded job must be the batch's job --------------------------------------------------

OTHER = MINIMAL.replace("name: tiny", "name: other").replace("out/tiny", "out/other") \
    .replace("What is", "Name")


def elsewhere(tmp_path: Path, *, wait: bool = True) -> str:
    """The job of batch `other`, applied from another project on the same provider: a
    record naming a job its own lockfile also names is refused when the lockfile is read
    (test_lockfile_edits), so a job of another lockfile is what a bad merge can slip in."""
    d = tmp_path / "elsewhere"
    write_manifest(d, OTHER, "other.yaml")
    assert main(["apply", str(d), "--quiet", *([] if wait else ["--no-wait"])]) == 0
    job = lockfile.load(d / "batches.lock").batches["other"].job
    assert job is not None
    return job


def one_batch(tmp_path: Path) -> Path:
    d = tmp_path / "proj"
    write_manifest(d, MINIMAL)
    assert api.apply(d).exit_code == 0
    return d


def point_job(d: Path, name: str, job: str) -> None:
    """A hand edit (or a bad merge) of the lockfile: `name` records `job`."""
    lock = lockfile.load(d / "batches.lock")
    lock.batches[name].job = job
    lockfile.save(d / "batches.lock", lock)


def test_a_lockfile_naming_another_batchs_job_is_not_trusted(tmp_path: Path,
                                                             emu: Emulator) -> None:
    d = one_batch(tmp_path)
    mine, theirs = lockfile.load(d / "batches.lock").batches["tiny"].job, elsewhere(tmp_path)
    good = (d / "out/tiny.jsonl").read_bytes()
    point_job(d, "tiny", theirs)
    (d / "out/tiny.jsonl").unlink()
    # restored from the result store, the batch needs no job and the provider is not asked
    # (runner.freshness.restorable): without the packs, its job is, and checked
    shutil.rmtree(d / ".runner/store/packs")
    [action] = [a for a in api.plan(d).actions if a.name == "tiny"]
    assert action.kind.value == "adopt" and action.job is not None and action.job.name == mine
    assert f"names job {theirs}, which is not this batch's" in action.reason
    [row] = [s for s in api.status(d) if s.name == "tiny"]
    assert row.sync.value == "OutOfSync"
    jobs = len(remote_jobs(emu))
    assert api.apply(d).exit_code == 0
    assert (d / "out/tiny.jsonl").read_bytes() == good      # its own answers, not other's
    assert lockfile.load(d / "batches.lock").batches["tiny"].job == mine
    assert len(remote_jobs(emu)) == jobs


def test_a_follow_ups_recorded_job_is_checked_when_its_results_are_read(
        tmp_path: Path, emu: Emulator) -> None:
    """A follow-up that ended is not planned again, so its job is checked where its results
    are read for the outputs."""
    d = tmp_path / "proj"
    write_manifest(d, MINIMAL.replace("What is 2+2?", "EMULATOR_FAIL 2+2")
                   + "  retry_failed: 1\n  allowed_failures: 1\n")
    assert api.apply(d).exit_code == 0
    lock = lockfile.load(d / "batches.lock")
    [retry] = lock.batches["tiny"].retries
    good = (d / "out/tiny.errors.jsonl").read_bytes()
    theirs = elsewhere(tmp_path)
    retry.job = theirs
    lockfile.save(d / "batches.lock", lock)
    (d / "out/tiny.errors.jsonl").unlink()
    shutil.rmtree(d / ".runner/store")      # so that the results are read from the provider
    assert main(["apply", str(d)]) == 0
    assert (d / "out/tiny.errors.jsonl").read_bytes() == good
    [retry] = lockfile.load(d / "batches.lock").batches["tiny"].retries
    assert retry.job != theirs


class _Misanswering:
    """A provider (or something in between) that answers a create with another job."""

    def __init__(self, real: Provider, other: str):
        self._real, self._other = real, other

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def create_job(self, *args: Any, **kwargs: Any) -> RemoteJob:
        self._real.create_job(*args, **kwargs)
        job = self._real.get_job(self._other)
        assert job is not None
        return job


def test_a_create_answered_with_another_job_binds_the_tagged_one(tmp_path: Path,
                                                                emu: Emulator) -> None:
    d = tmp_path / "proj"
    write_manifest(d, OTHER, "other.yaml")
    assert api.apply(d).exit_code == 0
    theirs = lockfile.load(d / "batches.lock").batches["other"].job
    assert theirs is not None
    write_manifest(d, MINIMAL)
    with api.connect(d) as real:
        assert api.apply(d, provider=_Misanswering(real["gemini"], theirs)).exit_code == 0
    entry = lockfile.load(d / "batches.lock").batches["tiny"]
    assert entry.job != theirs
    assert "What is 1+1" in (d / "out/tiny.jsonl").read_text()
    assert [j.display_name for j in remote_jobs(emu)].count(entry.display_name) == 1


# -- a results file that does not parse is fetched again ---------------------------------------

class _GarbledOnce:
    """A provider (or a proxy) that serves a damaged results file once."""

    def __init__(self, real: Provider):
        self._real, self.garbled = real, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def download_results(self, job: RemoteJob, dest: Path, **kwargs: Any) -> None:
        self._real.download_results(job, dest, **kwargs)
        if not self.garbled:
            self.garbled += 1
            with open(dest, "ab") as f:
                f.write(b'{"key": "a", "resp')


def test_a_results_file_that_does_not_parse_is_fetched_again(tmp_path: Path,
                                                             emu: Emulator) -> None:
    d = tmp_path / "proj"
    write_manifest(d, MINIMAL)
    assert api.apply(d, options=api.Options(wait=False)).exit_code == 0
    job = lockfile.load(d / "batches.lock").batches["tiny"].job
    with api.connect(d) as real:
        with pytest.raises(ProviderError) as e:
            api.apply(d, provider=_GarbledOnce(real["gemini"]))
    assert f"tiny: the results of job {job} do not parse" in str(e.value)
    assert "line 3" in str(e.value) and "next apply downloads them again" in str(e.value)
    assert not (d / "out").exists() or not any((d / "out").iterdir())
    assert main(["apply", str(d)]) == 0       # the provider's good file this time
    assert "What is 2+2" in (d / "out/tiny.jsonl").read_text()


def test_a_damaged_copy_of_results_is_not_used(tmp_path: Path) -> None:
    from runner.downloads import cached, discard, keep
    got = tmp_path / "dl.part"
    got.write_bytes(b'{"key": "a"}\n')
    path = tmp_path / "job.jsonl"
    keep(got, path, "tiny-0123456789ab")
    assert cached(path) == "tiny-0123456789ab"      # with the tag it was checked for
    with open(path, "ab") as f:         # cut short, edited or damaged on disk after
        f.write(b"x")
    assert cached(path) is None
    path.write_bytes(b'{"key": "a"}\n')
    assert cached(path) == "tiny-0123456789ab"
    discard(path)
    assert not path.exists() and cached(path) is None
    path.write_bytes(b'{"key": "a"}\n')     # no digest beside it: from before, or a crash
    assert cached(path) is None


# -- two machines apply the same change at once ------------------------------------------------

def test_two_clones_applying_at_once_keep_one_job_per_hash(tmp_path: Path, emu: Emulator) -> None:
    """10 rounds: two `runner apply` processes on two clones of one project, started together
    against one provider. Both may create (neither can see the other's create under way); each
    run lists again after creating, and of two jobs with one tag every run keeps the first
    created and cancels the other. Printed: how often both created, and what was left."""
    clones = [tmp_path / "laptop", tmp_path / "ci"]
    env = {**os.environ, "GEMINI_API_KEY": "k", "GEMINI_BASE_URL": emu.base_url,
           "RUNNER_POLL_SECONDS": "0.05"}
    both_created = 0
    for n in range(10):
        for d in clones:
            write_manifest(d, MINIMAL.replace("What is 1+1?", f"Round {n}: what is 1+1?"))
        runs = [subprocess.Popen([sys.executable, "-m", "runner.cli", "apply", str(d),
                                  "--quiet"], env=env, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True) for d in clones]
        outs = [r.communicate(timeout=60)[0] for r in runs]
        assert [r.returncode for r in runs] == [0, 0], outs
        # the job of the edited row alone: the other's result is reused from the store
        [part] = lockfile.load(clones[0] / "batches.lock").batches["tiny"].parts()
        tag = part.display_name
        jobs = [j for j in remote_jobs(emu) if j.display_name == tag]
        kept = [j for j in jobs if j.state.value != "CANCELLED"]
        both_created += len(jobs) > 1
        assert len(kept) == 1, jobs                     # one job left per hash
        recorded = {lockfile.load(d / "batches.lock").batches["tiny"].parts()[0].job
                    for d in clones}
        assert recorded == {kept[0].name}               # both lockfiles converge on it
        outputs = {(d / "out/tiny.jsonl").read_bytes() for d in clones}
        assert len(outputs) == 1
    print(f"\n10 rounds of two applies at once: both created a job in {both_created}; "
          "jobs left per hash: 1 in every round")


# -- results received once are not paid for again silently -------------------------------------

def fresh_clone(d: Path, dest: Path) -> Path:
    """What a CI checkout holds: the committed files, without .runner/ or the outputs."""
    shutil.copytree(d, dest, ignore=shutil.ignore_patterns(".runner", "out"))
    return dest


def test_results_lost_on_the_provider_are_not_paid_for_again(tmp_path: Path, emu: Emulator,
                                                             capsys: Any) -> None:
    d = tmp_path / "proj"
    write_manifest(d, MINIMAL)
    assert api.apply(d).exit_code == 0
    job = lockfile.load(d / "batches.lock").batches["tiny"].job
    assert job is not None
    with api.connect(d) as clients:
        clients["gemini"].delete_job(job)
    clone = fresh_clone(d, tmp_path / "clone")
    [action] = api.plan(clone).actions
    assert action.kind.value == "lost" and action.symbol == "!"
    assert "apply --resubmit tiny pays for it again" in action.reason
    [row] = api.status(clone)
    assert (row.sync.value, row.health.value) == ("OutOfSync", "Missing")
    capsys.readouterr()
    assert main(["apply", str(clone), "--quiet"]) == 1
    said = capsys.readouterr()
    lines = (said.out + said.err).strip().splitlines()
    assert len(lines) == 1 and "results are gone from the provider" in lines[0], lines
    assert remote_jobs(emu) == []                      # nothing submitted
    assert main(["apply", str(clone), "--resubmit", "tiny"]) == 0
    assert len(remote_jobs(emu)) == 1
    assert (clone / "out/tiny.jsonl").read_bytes() == (d / "out/tiny.jsonl").read_bytes()


# -- a copy is not the original --------------------------------------------------------------

def test_a_copied_project_leaves_the_originals_jobs_alone(tmp_path: Path, slow: Emulator,
                                                          capsys: Any) -> None:
    d = tmp_path / "proj"
    write_manifest(d, MINIMAL)
    assert main(["apply", str(d), "--no-wait", "--quiet"]) == 0
    job = lockfile.load(d / "batches.lock").batches["tiny"].job
    assert job is not None
    copies = [tmp_path / f"copy{i}" for i in range(3)]
    for c in copies:
        shutil.copytree(d, c)                               # cp -r, .runner/ included
    (copies[0] / "m.yaml").unlink()                         # pruned in the copy
    assert main(["apply", str(copies[0]), "--prune", "--no-wait"]) == 0
    assert f"pass --take-over {d}" in capsys.readouterr().out
    assert "tiny" not in lockfile.load(copies[0] / "batches.lock").batches
    write_manifest(copies[1], MINIMAL.replace("1+1", "3+3"))   # replaced in the copy
    assert main(["apply", str(copies[1]), "--no-wait", "--quiet"]) == 0
    assert main(["cancel", str(copies[2]), "tiny"]) == 1      # cancelled in the copy
    assert f"copy; it is left alone (pass --take-over {d}" in capsys.readouterr().err
    assert main(["cancel", str(copies[2]), "tiny", "--take-over", str(copies[1])]) == 1
    assert "is not a copy of it" in capsys.readouterr().err
    states = {j.name: j.state.value for j in remote_jobs(slow)}
    assert states[job] in ("PENDING", "RUNNING") and len(states) == 2
    finish_all(slow)
    assert main(["apply", str(d), "--quiet"]) == 0           # the original is not paid again
    assert len(remote_jobs(slow)) == 2
    (copies[2] / "m.yaml").unlink()                         # asked by naming the original
    assert main(["apply", str(copies[2]), "--prune", "--take-over", str(d), "--quiet"]) == 0
    assert job not in {j.name for j in remote_jobs(slow)}


def test_a_moved_project_is_still_itself(tmp_path: Path) -> None:
    from runner.identity import establish
    d = tmp_path / "proj"
    write_manifest(d, MINIMAL)
    lock = lockfile.Lock({})
    assert establish(d, lock).original is None
    moved = d.rename(tmp_path / "moved")
    assert establish(moved, lock).original is None
    copy = tmp_path / "copy"
    shutil.copytree(moved, copy)
    assert establish(copy, lock).original == str(moved.resolve())
    assert establish(copy, lock).original == str(moved.resolve())   # stays a copy
    assert establish(copy, lock, take_over=moved).original is None
    assert establish(copy, lock).original is None                   # taken over for good


@pytest.mark.parametrize("flag", ["--max-jobs=-1", "--max-jobs=0", "--max-cost=-1",
                                  "--timeout=-5", "--max-attempts=0", "--lock-timeout=-1",
                                  "--max-cost=nan"])
def test_meaningless_numbers_are_refused(proj: Path, flag: str, capsys: Any) -> None:
    with pytest.raises(SystemExit) as e:
        main(["apply", str(proj), flag])
    assert e.value.code == 2
    assert flag.split("=")[0] in capsys.readouterr().err
    assert not (proj / ".runner").exists()


def test_re_adopting_a_split_batch_writes_its_outputs_once(tmp_path: Path, emu: Emulator) -> None:
    from test_shards import SPLIT

    from runner.progress import Progress
    d = tmp_path / "proj"
    write_manifest(d, SPLIT, "split.yaml")
    write_rows(d, 36, "lorem")                     # 9 shards of 4
    assert api.apply(d).exit_code == 0
    good = (d / "out/split.csv").read_bytes()
    (d / "batches.lock").unlink()                  # a lost lockfile: every shard re-adopted
    said = io.StringIO()
    assert api.apply(d, progress=Progress(said, tty=False)).exit_code == 0
    assert said.getvalue().count("adopted") == 9
    assert said.getvalue().count("wrote out/split.jsonl") == 1, said.getvalue()
    assert (d / "out/split.csv").read_bytes() == good


def test_leftovers_of_killed_runs_are_swept(tmp_path: Path, emu: Emulator,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """The input files rendered by a run killed before its create (in the temporary
    directory), a partial download, a join's temp files, results no record names, a
    half-written output: the next apply removes them."""
    d = tmp_path / "proj"
    write_manifest(d, MINIMAL)
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = {**os.environ, "GEMINI_API_KEY": "k", "GEMINI_BASE_URL": emu.base_url,
           "RUNNER_POLL_SECONDS": "0.05", "RUNNER_FAILPOINT": "after-intent",
           "TMPDIR": str(temp)}
    killed = subprocess.run([sys.executable, "-m", "runner.cli", "apply", str(d), "--quiet"],
                            env=env, capture_output=True, timeout=60)
    assert killed.returncode == -9
    [spool] = temp.iterdir()                            # the input rendered for the create
    assert any(spool.rglob("*.jsonl"))
    state = d / ".runner"
    (state / "results").mkdir(exist_ok=True)
    leftovers = [state / "results/x1.part", state / "results/gone.jsonl",
                 state / "results/gone.jsonl.sha256", d / "out/.tiny.jsonl.k3j.tmp",
                 state / "inputs/sha256:retry-tiny.jsonl"]
    (state / "results/join-abc").mkdir()
    (state / "results/join-abc/requests-0").write_text("x")
    for path in leftovers:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    assert main(["apply", str(d), "--quiet"]) == 0
    assert not any(p.exists() for p in leftovers)
    assert not (state / "results/join-abc").exists()
    assert list((state / "inputs").iterdir()) == []
    assert list(temp.iterdir()) == []


def test_timeout_is_honoured_between_polls(proj: Path, slow: Emulator, monkeypatch: Any,
                                           capsys: Any) -> None:
    """A poll interval longer than the time limit does not outlast it."""
    import time
    monkeypatch.setenv("RUNNER_POLL_SECONDS", "30")
    start = time.monotonic()
    assert main(["apply", str(proj), "--timeout", "1", "--quiet"]) == 1
    assert time.monotonic() - start < 5
    assert "timed out after 1s with 1 batch(es) still running (tiny)" in capsys.readouterr().err


# -- found by reading it as an attacker would ------------------------------------------------

def test_cancel_refuses_a_job_that_is_not_the_batchs(tmp_path: Path, slow: Emulator,
                                                     capsys: Any) -> None:
    d = tmp_path / "proj"
    write_manifest(d, MINIMAL)
    assert main(["apply", str(d), "--no-wait", "--quiet"]) == 0
    theirs = elsewhere(tmp_path, wait=False)
    point_job(d, "tiny", theirs)                    # a bad merge
    assert main(["cancel", str(d), "tiny"]) == 1
    assert f"names job {theirs}, which is not this batch's" in capsys.readouterr().err
    assert {j.state.value for j in remote_jobs(slow)} <= {"PENDING", "RUNNING"}


def test_prune_deletes_only_the_batchs_own_jobs(tmp_path: Path, slow: Emulator) -> None:
    d = tmp_path / "proj"
    write_manifest(d, MINIMAL)
    assert main(["apply", str(d), "--no-wait", "--quiet"]) == 0
    lock = lockfile.load(d / "batches.lock")
    mine, theirs = lock.batches["tiny"].job, elsewhere(tmp_path, wait=False)
    assert mine is not None
    upload = tmp_path / "x.jsonl"
    upload.write_text('{"key": "a"}\n')
    with api.connect(d) as clients:
        file_name = clients["gemini"].upload_file(upload, "not-a-batch")
    lock.batches["tiny"].job = theirs               # a bad merge, then the manifest removed
    orphan = lockfile.entry_from({**lock.batches["tiny"].to_dict(), "job": file_name})
    lock.batches["gone"] = orphan                   # a lockfile line naming another resource
    lockfile.save(d / "batches.lock", lock)
    (d / "m.yaml").unlink()
    assert main(["apply", str(d), "--prune", "--no-wait", "--quiet"]) == 0
    left = {j.name: j.state.value for j in remote_jobs(slow)}
    assert left[theirs] in ("PENDING", "RUNNING")   # the other batch's job is untouched
    with api.connect(d) as clients:
        assert clients["gemini"].find_file("not-a-batch") == file_name


def test_a_job_cancelled_as_a_twin_is_followed_to_the_one_kept(tmp_path: Path,
                                                               slow: Emulator) -> None:
    """A run killed after recording its job, whose twin another run kept: the plan adopts
    the job kept, whatever else the directory holds."""
    d = tmp_path / "proj"
    write_manifest(d, MINIMAL)
    assert main(["apply", str(d), "--no-wait", "--quiet"]) == 0
    entry = lockfile.load(d / "batches.lock").batches["tiny"]
    kept = entry.job
    lines = tmp_path / "lines.jsonl"
    lines.write_text('{"key": "a", "request": {"contents": [{"parts": [{"text": "x"}]}]}}\n')
    with api.connect(d) as clients:
        p = clients["gemini"]
        twin = p.create_job("gemini-2.5-flash", entry.display_name, inline_lines=lines)
        p.cancel_job(twin.name)
    point_job(d, "tiny", twin.name)
    [action] = api.plan(d).actions
    assert action.kind.value == "adopt" and action.job is not None and action.job.name == kept


def test_an_output_that_would_be_read_as_a_manifest_is_refused(tmp_path: Path,
                                                                capsys: Any) -> None:
    d = tmp_path / "proj"
    write_manifest(d, MINIMAL.replace("out/tiny.jsonl", "tiny.yaml"))
    assert main(["validate", str(d)]) == 1
    assert "would be read as a manifest" in capsys.readouterr().err
