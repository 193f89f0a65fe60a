"""What comes from outside the runner's own journal is checked: files edited while apply waits,
a lockfile that names the wrong job, a results file that does not parse, a copied project,
two machines applying at once. Each ends in one clear line, never wrong data or a second job."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import ROWS_MANIFEST, remote_jobs, write_manifest, write_rows
from runner import api, lockfile
from runner.apply import apply_directory, prepare
from runner.emulator import Emulator


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
    write_manifest(d, ROWS_MANIFEST)
    write_rows(d, 4, "body")
    edit_row(d, 1, "EMULATOR_FAIL please")
    assert api.apply(d).exit_code == 0
    jobs = len(remote_jobs(emu))
    (d / "m.yaml").write_text(ROWS_MANIFEST + "  retry_failed: 1\n")
    prepared = prepare(d)                   # the plan: a follow-up of the failed request
    assert [a.kind.value for a in api.plan(d).actions] == ["retry"]
    edit_row(d, 1, "EMULATOR_FAIL edited meanwhile")
    with api.connect(d) as provider, pytest.raises(api.RunnerError,
                                                   match="changed while apply ran"):
        apply_directory(d, provider, prepared=prepared)
    assert len(remote_jobs(emu)) == jobs
