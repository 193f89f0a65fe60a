"""Splitting: a batch over a job's limits runs as shards, each its own job, hash and record,
and still writes one output in input order."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from conftest import ROWS_MANIFEST, finish_all, remote_jobs, write_manifest, write_rows

from runner import api, lockfile
from runner.actions import Action, Kind, Plan
from runner.cli import main
from runner.desired import render_into, render_shards
from runner.emulator import Emulator
from runner.errors import DataError
from runner.hashing import ContentHasher
from runner.limits import Limits
from runner.manifest import load_directory
from runner.providers.base import JobState, RemoteJob
from runner.providers.registry import dialect
from runner.records import LockEntry, Retry, Shard
from runner.shards import Splitter
from runner.status import statuses


def lines_of(n: int, width: int = 10) -> list[bytes]:
    return [json.dumps({"key": f"k{i}", "body": "x" * width}).encode() + b"\n"
            for i in range(n)]


def split(lines: list[bytes], limits: Limits, feed: int) -> Splitter:
    """The lines through a Splitter, `feed` lines at a time."""
    s = Splitter("gemini", "m", limits)
    for i in range(0, len(lines), feed):
        s.add(b"".join(lines[i:i + feed]))
    s.finish()
    return s


def test_cuts_at_the_request_cap_whatever_the_feeding() -> None:
    lines = lines_of(10)
    results = [split(lines, Limits(1 << 20, 1 << 30, requests=4), feed)
               for feed in (1, 3, 4, 10)]
    assert [s.requests for s in results[0].shards] == [4, 4, 2]
    assert all(r.shards == results[0].shards for r in results)
    h = ContentHasher("gemini", "m")
    h.add(b"".join(lines[4:8]))
    assert results[0].shards[1].content_hash == h.hexdigest()


def test_cuts_at_the_file_size_limit() -> None:
    lines = lines_of(10)
    size = len(lines[0])
    s = split(lines, Limits(1 << 20, file_bytes=3 * size + 5), feed=7)
    assert [x.requests for x in s.shards] == [3, 3, 3, 1]
    assert split(lines, Limits(1 << 20, file_bytes=3 * size), feed=10).shards == s.shards


def test_one_shard_is_the_whole_batch() -> None:
    s = split(lines_of(5), Limits(1 << 20, 1 << 30), feed=2)
    assert len(s.shards) == 1 and s.shards[0].content_hash == s.content_hash
    assert s.shards[0].requests == 5


def test_a_request_bigger_than_a_file_is_refused() -> None:
    with pytest.raises(DataError, match="more than one job's input file may hold"):
        split(lines_of(3, width=100), Limits(1 << 20, file_bytes=50), feed=1)


def test_gemini_limits_live_in_one_place() -> None:
    gemini = dialect("gemini").limits
    assert gemini.file_bytes == 2_000_000_000 and gemini.requests is None
    assert gemini.capped(500).requests == 500


SPLIT = ROWS_MANIFEST.replace("metadata: {name: big}", "metadata: {name: split}").replace(
    "out/big", "out/split").replace("  rows: data/rows.jsonl",
                                    "  rows: data/rows.jsonl\n  max_requests: 4")
WHOLE = ROWS_MANIFEST.replace("metadata: {name: big}", "metadata: {name: whole}").replace(
    "out/big", "out/whole")
# Shards as they are cut when nothing is reused (`reuse: false`): the two manifests render the
# same requests, and with reuse one would answer the other's (tests/test_reuse.py covers that)
SPLIT, WHOLE = (m.replace("  rows: data/rows.jsonl\n", "  rows: data/rows.jsonl\n  reuse: false\n")
                for m in (SPLIT, WHOLE))


def project(root: Path, rows: int = 10) -> Path:
    d = root / "proj"
    write_manifest(d, SPLIT, "split.yaml")
    write_manifest(d, WHOLE, "whole.yaml")
    write_rows(d, rows, "lorem")
    return d


def test_render_shards_writes_each_shard_and_can_cut_as_recorded(tmp_path: Path) -> None:
    d = project(tmp_path)
    m = next(m for m in load_directory(d) if m.name == "split")
    r = render_shards(m, tmp_path / "inputs")
    assert [s.requests for s in r.shards] == [4, 4, 2]
    assert b"".join(p.read_bytes() for p in r.paths) == _whole_input(m, tmp_path)
    assert r.content_hash == render_into(m).content_hash
    again = render_shards(m, cuts=[5, 5])
    assert [s.requests for s in again.shards] == [5, 5]


def _whole_input(m, tmp_path: Path) -> bytes:  # type: ignore[no-untyped-def]
    path = tmp_path / "whole.jsonl"
    with open(path, "wb") as f:
        render_into(m, f)
    return path.read_bytes()


def test_split_batch_writes_the_same_outputs_as_an_unsplit_one(tmp_path: Path,
                                                               emu: Emulator) -> None:
    d = project(tmp_path)
    outcome = api.apply(d)
    assert outcome.exit_code == 0 and sorted(outcome.completed) == ["split", "whole"]
    for ext in ("jsonl", "csv", "errors.jsonl"):
        split_out = (d / f"out/split.{ext}").read_bytes()
        assert split_out == (d / f"out/whole.{ext}").read_bytes(), ext
    keys = [json.loads(x)["key"] for x in (d / "out/split.jsonl").read_text().splitlines()]
    assert keys == [f"r{n}" for n in range(10)]
    tags = Counter(j.display_name.rsplit("-", 1)[0] for j in remote_jobs(emu))
    assert tags == {"split": 3, "whole": 1}
    entry = lockfile.load(d / "batches.lock").batches["split"]
    assert [s.requests for s in entry.shards] == [4, 4, 2]
    assert all(s.state == "SUCCEEDED" and s.job for s in entry.shards)
    assert entry.state == "SUCCEEDED" and entry.job is None
    assert entry.counts == {"succeeded": 10, "failed": 0}
    # a second apply plans nothing and submits nothing
    assert {a.kind for a in api.plan(d).actions} == {Kind.NOTHING}
    assert api.apply(d).submitted == []
    assert len(remote_jobs(emu)) == 4


def test_changed_row_resubmits_its_shard_alone(tmp_path: Path, emu: Emulator,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    d = project(tmp_path)
    assert api.apply(d).exit_code == 0
    before = lockfile.load(d / "batches.lock").batches["split"].shards
    rows = (d / "data/rows.jsonl").read_text().splitlines()
    rows[5] = json.dumps({"n": 5, "body": "changed"})
    (d / "data/rows.jsonl").write_text("\n".join(rows) + "\n")

    plan = api.plan(d)
    [split_action] = [a for a in plan.actions if a.name == "split"]
    assert split_action.kind == Kind.REPLACE and split_action.requests == 4
    costs = api.costs(d, plan)      # priced for the shard submitted, not the whole batch
    assert costs["split"] is not None and costs["split"].requests == 4
    assert costs["whole"] is not None and costs["whole"].requests == 10
    assert [(p.part, p.kind) for p in split_action.parts] == [(1, Kind.REPLACE)]
    assert "shard 2 of 3: row data changed" in split_action.reason
    assert main(["plan", str(d), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    [parts] = [a["parts"] for a in doc["actions"] if a["name"] == "split"]
    assert [(p["part"], p["kind"]) for p in parts] == [(1, "replace")]     # the library's
    assert [{k: v for k, v in a.items() if k != "estimated_cost"} for a in doc["actions"]] \
        == [a.to_dict() for a in plan.actions]          # the same names, the same values

    jobs_before = len(remote_jobs(emu))
    assert api.apply(d).exit_code == 0
    assert len(remote_jobs(emu)) == jobs_before + 2     # shard 2 of split, and whole
    after = lockfile.load(d / "batches.lock").batches["split"].shards
    assert [after[0], after[2]] == [before[0], before[2]]
    assert after[1].job != before[1].job
    assert (d / "out/split.jsonl").read_bytes() == (d / "out/whole.jsonl").read_bytes()
    assert "changed" in (d / "out/split.jsonl").read_text()


def test_rows_removed_from_the_end_drop_a_shard_without_submitting(tmp_path: Path,
                                                                   emu: Emulator) -> None:
    d = project(tmp_path)
    assert api.apply(d).exit_code == 0
    jobs = len(remote_jobs(emu))
    write_rows(d, 8, "lorem")       # 10 -> 8 rows: shards [4, 4, 2] -> [4, 4]
    [action] = [a for a in api.plan(d).actions if a.name == "split"]
    assert action.kind == Kind.DOWNLOAD and not action.parts
    outcome = api.apply(d)
    assert outcome.exit_code == 0
    assert len(remote_jobs(emu)) == jobs + 1            # whole only
    entry = lockfile.load(d / "batches.lock").batches["split"]
    assert [s.requests for s in entry.shards] == [4, 4] and entry.requests == 8
    assert (d / "out/split.csv").read_bytes() == (d / "out/whole.csv").read_bytes()
    assert {a.kind for a in api.plan(d).actions} == {Kind.NOTHING}


def test_a_new_cap_does_not_resubmit_finished_work(tmp_path: Path, emu: Emulator) -> None:
    d = project(tmp_path)
    assert api.apply(d).exit_code == 0
    (d / "split.yaml").write_text(SPLIT.replace("max_requests: 4", "max_requests: 3"))
    assert {a.kind for a in api.plan(d).actions} == {Kind.RECORD, Kind.NOTHING}
    jobs = len(remote_jobs(emu))
    assert api.apply(d).submitted == []
    assert len(remote_jobs(emu)) == jobs


def test_a_failed_shard_fails_the_batch_and_is_resubmitted_alone(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # jobs that run for a minute of emulator time: still running when they are cancelled
    slow = Emulator(tmp_path / "slow", latency=60.0)
    emu = slow.__enter__()
    monkeypatch.setenv("GEMINI_API_KEY", "k")
    monkeypatch.setenv("GEMINI_BASE_URL", emu.base_url)
    monkeypatch.setenv("RUNNER_POLL_SECONDS", "0.05")
    try:
        _cancel_then_resubmit(tmp_path, emu)
    finally:
        slow.__exit__(None, None, None)


def _cancel_then_resubmit(tmp_path: Path, emu: Emulator) -> None:
    import httpx
    d = project(tmp_path)
    assert api.apply(d, options=api.Options(wait=False)).exit_code == 0
    entry = lockfile.load(d / "batches.lock").batches["split"]
    cancelled = api.cancel(d, ["split"])
    assert sorted(cancelled) == sorted(s.job or "" for s in entry.shards)
    plan = api.plan(d)
    [action] = [a for a in plan.actions if a.name == "split"]
    assert action.kind == Kind.FAILED and len(action.parts) == 3
    advance = {"advance": 120}      # past every job's latency
    httpx.post(f"{emu.base_url}/_emulator/clock", json=advance).raise_for_status()
    assert api.apply(d).exit_code == 1     # whole is collected, split fails
    jobs = len(remote_jobs(emu))
    outcome = api.apply(d, options=api.Options(resubmit=frozenset({"split"}), wait=False))
    assert outcome.exit_code == 0
    httpx.post(f"{emu.base_url}/_emulator/clock", json=advance).raise_for_status()
    outcome = api.apply(d)
    assert outcome.exit_code == 0
    assert len(remote_jobs(emu)) == jobs + 3
    assert (d / "out/split.jsonl").read_bytes() == (d / "out/whole.jsonl").read_bytes()


def test_status_shows_a_split_batch_as_one_line(tmp_path: Path, emu: Emulator) -> None:
    d = project(tmp_path)
    assert api.apply(d).exit_code == 0
    [row] = [s for s in api.status(d) if s.name == "split"]
    assert row.health.value == "Healthy" and row.job == "3 shards"
    assert row.remote == "SUCCEEDED 3" and row.succeeded == 10
    # for machines: numbers and a list of shards, not the table's summaries
    doc = row.to_dict()
    assert doc["job"] is None and doc["remote"] is None and doc["succeeded"] == 10
    shards = doc["shards"]
    assert isinstance(shards, list) and len(shards) == 3
    assert [s["requests"] for s in shards] == [p.requests for p in
                                                lockfile.load(d / "batches.lock").batches[
                                                    "split"].shards]
    assert {s["remote"] for s in shards} == {"SUCCEEDED"} and all(s["job"] for s in shards)


def test_adopt_refuses_a_split_batch(tmp_path: Path, emu: Emulator) -> None:
    d = project(tmp_path)
    with pytest.raises(api.RunnerError, match="split into 3 shards"):
        api.adopt(d, "split", "batches/whatever")


def test_failures_of_every_shard_are_retried_together_and_merged(tmp_path: Path,
                                                                 emu: Emulator) -> None:
    from test_terminal import RETRYING

    from runner.emulator.faults import Faults
    d = tmp_path / "flaky"
    write_manifest(d, RETRYING.replace("retry_failed: 2", "retry_failed: 2\n  max_requests: 15"))
    (d / "data").mkdir()
    (d / "data/rows.jsonl").write_text("".join(f'{{"n": {i}}}\n' for i in range(40)))
    emu.faults = Faults(request_error_rate=0.3, seed=5)
    assert api.apply(d, options=api.Options(wait=False)).exit_code == 0
    emu.faults = Faults()   # the shards keep the fault they were created with; the retry not
    assert api.apply(d).exit_code == 0
    entry = lockfile.load(d / "batches.lock").batches["flaky"]
    assert [s.requests for s in entry.shards] == [15, 15, 10]
    assert entry.counts == {"succeeded": 40, "failed": 0}
    assert [r.state for r in entry.retries] == ["SUCCEEDED"]
    assert 0 < entry.retries[0].requests < 40
    keys = [json.loads(x)["key"] for x in (d / "out/flaky.jsonl").read_text().splitlines()]
    assert keys == [f"r{i}" for i in range(40)]
    tags = [j.display_name for j in remote_jobs(emu)]
    assert len(tags) == 4 and sum(t.endswith("-retry1") for t in tags) == 1
    assert {a.kind for a in api.plan(d).actions} == {Kind.NOTHING}


def test_expired_shards_are_resubmitted_under_their_next_attempt(tmp_path: Path,
                                                                 emu: Emulator) -> None:
    from runner.emulator.faults import Faults
    d = project(tmp_path)
    emu.faults = Faults(expire=True)
    assert api.apply(d, options=api.Options(wait=False)).exit_code == 0
    emu.faults = Faults()
    assert api.apply(d).exit_code == 0
    entry = lockfile.load(d / "batches.lock").batches["split"]
    assert [(s.attempts, s.state) for s in entry.shards] == [(2, "SUCCEEDED")] * 3
    assert all(s.display_name.endswith("-2") for s in entry.shards)
    assert (d / "out/split.jsonl").read_bytes() == (d / "out/whole.jsonl").read_bytes()
    assert len(remote_jobs(emu)) == 8       # 3 + 1 expired, 3 + 1 resubmitted


def test_at_most_max_jobs_in_flight_the_rest_as_they_finish(tmp_path: Path, emu: Emulator,
                                                           capsys: pytest.CaptureFixture[str]
                                                           ) -> None:
    d = tmp_path / "proj"
    write_manifest(d, SPLIT, "split.yaml")
    write_rows(d, 10, "lorem")
    assert main(["apply", str(d), "--max-jobs", "2"]) == 0
    out = capsys.readouterr().out
    assert "2 jobs in flight on gemini, the most at once" in out
    assert "split [shard 3/3]: waiting for a job slot" in out
    jobs = remote_jobs(emu)
    assert len(jobs) == 3
    # no moment when more than two ran: the third was created after one had ended
    spans = sorted((j.create_time or "", j.end_time or "") for j in jobs)
    assert spans[2][0] >= min(spans[0][1], spans[1][1])
    entry = lockfile.load(d / "batches.lock").batches["split"]
    assert entry.state == "SUCCEEDED" and entry.counts == {"succeeded": 10, "failed": 0}


def test_no_wait_leaves_the_queued_shards_to_the_next_apply(tmp_path: Path,
                                                            emu: Emulator) -> None:
    d = tmp_path / "proj"
    write_manifest(d, SPLIT, "split.yaml")
    write_rows(d, 10, "lorem")
    outcome = api.apply(d, options=api.Options(wait=False, max_jobs=1))
    assert outcome.pending == ["split"] and len(remote_jobs(emu)) == 1
    [action] = api.plan(d).actions
    kinds = [p.kind for p in action.parts]
    assert kinds.count(Kind.CREATE) == 2 and len(kinds) == 3    # the third waits or is done
    assert api.apply(d).exit_code == 0
    assert len(remote_jobs(emu)) == 3


# -- found in review: each of these went wrong once --------------------------------------


def _delete(d: Path, job: str | None) -> None:
    assert job is not None
    with api.connect(d) as clients:
        clients["gemini"].delete_job(job)


def test_rows_dropped_from_a_shard_whose_job_is_gone(tmp_path: Path, emu: Emulator) -> None:
    d = project(tmp_path)
    assert api.apply(d).exit_code == 0
    _delete(d, lockfile.load(d / "batches.lock").batches["split"].shards[-1].job)
    for rows, shards in ((8, [4, 4]), (4, [])):     # still split, then one job (flat)
        write_rows(d, rows, "lorem")
        [action] = [a for a in api.plan(d).actions if a.name == "split"]
        assert action.kind == Kind.DOWNLOAD
        jobs = len(remote_jobs(emu))
        assert api.apply(d).exit_code == 0
        assert len(remote_jobs(emu)) == jobs + 1    # whole only
        entry = lockfile.load(d / "batches.lock").batches["split"]
        assert [s.requests for s in entry.shards] == shards and entry.requests == rows
        assert (d / "out/split.jsonl").read_bytes() == (d / "out/whole.jsonl").read_bytes()


def test_an_unchanged_shard_whose_job_is_gone_is_resubmitted_when_asked(
        tmp_path: Path, emu: Emulator) -> None:
    d = project(tmp_path)
    assert api.apply(d).exit_code == 0
    _delete(d, lockfile.load(d / "batches.lock").batches["split"].shards[0].job)
    rows = (d / "data/rows.jsonl").read_text().splitlines()
    rows[5] = json.dumps({"n": 5, "body": "changed"})
    (d / "data/rows.jsonl").write_text("\n".join(rows) + "\n")
    [action] = [a for a in api.plan(d).actions if a.name == "split"]
    assert sorted((p.part, p.kind) for p in action.parts) == [(0, Kind.LOST),
                                                              (1, Kind.REPLACE)]
    again = frozenset({"split"})            # its results were paid for once: only if asked
    [action] = [a for a in api.plan(d, resubmit=again).actions if a.name == "split"]
    assert sorted((p.part, p.kind) for p in action.parts) == [(0, Kind.RESUBMIT),
                                                              (1, Kind.REPLACE)]
    assert api.apply(d, options=api.Options(resubmit=again)).exit_code == 0
    assert (d / "out/split.jsonl").read_bytes() == (d / "out/whole.jsonl").read_bytes()
    assert {a.kind for a in api.plan(d).actions} == {Kind.NOTHING}


def test_cancel_stops_shards_still_waiting_for_a_slot(tmp_path: Path, slow: Emulator) -> None:
    d = tmp_path / "proj"
    write_manifest(d, SPLIT, "split.yaml")
    write_rows(d, 10, "lorem")
    api.apply(d, options=api.Options(wait=False, max_jobs=1))
    assert len(api.cancel(d, ["split"])) == 1
    [action] = api.plan(d).actions
    assert action.kind == Kind.FAILED
    assert api.apply(d, options=api.Options(wait=False)).exit_code == 1
    assert len(remote_jobs(slow)) == 1
    assert api.apply(d, options=api.Options(wait=False, resubmit=frozenset({"split"}))
                     ).exit_code == 0
    finish_all(slow)
    assert api.apply(d).exit_code == 0
    assert len(remote_jobs(slow)) == 4          # the cancelled one, and all three again
    assert lockfile.load(d / "batches.lock").batches["split"].counts["succeeded"] == 10


def test_rows_dropped_while_the_shards_run(tmp_path: Path, slow: Emulator) -> None:
    d = project(tmp_path)
    assert api.apply(d, options=api.Options(wait=False)).exit_code == 0
    dropped = lockfile.load(d / "batches.lock").batches["split"].shards[-1].job
    assert dropped is not None
    write_rows(d, 8, "lorem")
    [action] = [a for a in api.plan(d).actions if a.name == "split"]
    assert action.old_jobs == (dropped,)
    assert api.apply(d, options=api.Options(wait=False)).exit_code == 0
    states = {j.name: j.state.value for j in remote_jobs(slow)}
    assert states[dropped] == "CANCELLED"
    finish_all(slow)
    outcome = api.apply(d)
    assert outcome.exit_code == 0 and "split" in outcome.completed
    assert (d / "out/split.jsonl").read_bytes() == (d / "out/whole.jsonl").read_bytes()


def test_max_jobs_counts_jobs_still_running_from_an_earlier_run(tmp_path: Path,
                                                                slow: Emulator) -> None:
    d = tmp_path / "proj"
    five = WHOLE.replace("{name: whole}", "{name: bbb}").replace("out/whole", "out/bbb") \
        .replace("  rows: data/rows.jsonl", "  rows: data/rows.jsonl\n  max_requests: 5")
    write_manifest(d, five, "b.yaml")
    write_rows(d, 10, "lorem")
    api.apply(d, options=api.Options(wait=False, max_jobs=3))
    write_manifest(d, SPLIT, "a.yaml")          # planned before the running bbb
    api.apply(d, options=api.Options(wait=False, max_jobs=3))
    assert sum(not j.state.terminal for j in remote_jobs(slow)) == 3


def test_an_edit_keeps_what_a_follow_up_fixed_in_the_other_shards(tmp_path: Path,
                                                                 emu: Emulator) -> None:
    from test_terminal import RETRYING

    from runner.emulator.faults import Faults
    d = tmp_path / "flaky"
    write_manifest(d, RETRYING.replace("retry_failed: 2", "retry_failed: 1\n  max_requests: 15"))
    (d / "data").mkdir()
    rows = [{"n": i} for i in range(40)]
    (d / "data/rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    emu.faults = Faults(request_error_rate=0.3, seed=5)
    assert api.apply(d, options=api.Options(wait=False)).exit_code == 0
    emu.faults = Faults()
    assert api.apply(d).exit_code == 0
    assert lockfile.load(d / "batches.lock").batches["flaky"].retries[0].state == "SUCCEEDED"
    rows[39] = {"n": 139}                   # in the last shard only
    (d / "data/rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    before = {j.name for j in remote_jobs(emu)}
    assert api.apply(d).exit_code == 0
    new = [j for j in remote_jobs(emu) if j.name not in before]
    assert len(new) == 1 and new[0].total == 1      # the edited request; no failure again
    entry = lockfile.load(d / "batches.lock").batches["flaky"]
    # what the follow-up fixed is reused from the store: the new record needs no follow-up
    assert entry.counts == {"succeeded": 40, "failed": 0} and entry.reused == 39
    keys = [json.loads(x)["key"] for x in (d / "out/flaky.jsonl").read_text().splitlines()]
    assert keys == [f"r{i}" for i in range(39)] + ["r139"]
    assert (d / "out/flaky.errors.jsonl").read_text() == ""


def test_a_shard_resubmitted_after_a_follow_up_wins_over_it(tmp_path: Path,
                                                            emu: Emulator) -> None:
    from test_terminal import RETRYING

    from runner.emulator.faults import Faults
    d = tmp_path / "flaky"
    write_manifest(d, RETRYING.replace("retry_failed: 2", "retry_failed: 1\n  max_requests: 15")
                   .replace("question {{ row.n }}", "question {{ row.n }}{{ row.x }}"))
    (d / "data").mkdir()
    rows = [{"n": i, "x": ""} for i in range(40)]
    (d / "data/rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    emu.faults = Faults(request_error_rate=0.3, seed=5)
    assert api.apply(d, options=api.Options(wait=False)).exit_code == 0
    emu.faults = Faults()
    assert api.apply(d).exit_code == 0
    fixed = [json.loads(x) for x in (d / "out/flaky.jsonl").read_text().splitlines()]
    # a request of the last shard that failed at first, so that the follow-up answered it
    entry = lockfile.load(d / "batches.lock").batches["flaky"]
    assert entry.retries[0].state == "SUCCEEDED"
    n = next(int(r["key"][1:]) for r in fixed if int(r["key"][1:]) >= 30
             and r["text"] != "" and _answered_by_retry(emu, entry.retries[0].job, r["key"]))
    rows[n] = {"n": n, "x": "!"}            # same key, new request
    (d / "data/rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert api.apply(d).exit_code == 0
    out = {json.loads(x)["key"]: json.loads(x)["text"]
           for x in (d / "out/flaky.jsonl").read_text().splitlines()}
    assert f"question {n}!" in out[f"r{n}"]


def _answered_by_retry(emu: Emulator, job: str | None, key: str) -> bool:
    import tempfile

    from runner.providers.gemini import GeminiProvider
    p = GeminiProvider("k", emu.base_url)
    try:
        remote = p.get_job(job or "")
        assert remote is not None
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "r.jsonl"
            p.download_results(remote, out)
            return any(json.loads(line)["key"] == key for line in out.read_text().splitlines())
    finally:
        p.close()


def test_rows_edited_while_apply_runs_are_not_sent(tmp_path: Path, emu: Emulator) -> None:
    from runner.apply import apply_directory, prepare
    from runner.emulator.faults import Faults
    d = project(tmp_path)
    emu.faults = Faults(expire=True)
    assert api.apply(d, options=api.Options(wait=False)).exit_code == 0
    emu.faults = Faults()
    prepared = prepare(d)                   # the plan: resubmit the three expired shards
    rows = (d / "data/rows.jsonl").read_text().splitlines()
    rows[5] = json.dumps({"n": 5, "body": "edited while apply ran"})
    (d / "data/rows.jsonl").write_text("\n".join(rows) + "\n")
    recorded = [s.job for s in lockfile.load(d / "batches.lock").batches["split"].shards]
    jobs = len(remote_jobs(emu))
    with api.connect(d) as provider, pytest.raises(api.RunnerError,
                                                   match="changed while apply ran"):
        apply_directory(d, provider, prepared=prepared)
    # nothing sent, and every shard still names its job (none dropped from the record)
    assert len(remote_jobs(emu)) == jobs
    entry = lockfile.load(d / "batches.lock").batches["split"]
    assert [s.job for s in entry.shards] == recorded
    assert api.apply(d).exit_code == 0     # planned anew, the edit included
    assert "edited while apply ran" in (d / "out/split.jsonl").read_text()


def test_status_json_lists_a_split_batchs_shards_while_a_follow_up_runs() -> None:
    h = "sha256:" + "0" * 64
    shards = [Shard(h, 5, f"b-{i}", JobState.SUCCEEDED, job=f"batches/{i}") for i in (1, 2)]
    entry = LockEntry("b.yaml", h, h, "gemini", "m", 10, "b", JobState.SUCCEEDED,
                      shards=shards, counts={"succeeded": 9, "failed": 1},
                      retries=[Retry(h, 1, "b-retry1", JobState.RUNNING, job="batches/r")])
    plan = Plan((Action(Kind.WAIT, "b", "retry 1 running", 1, retry=True),))
    remote = {name: RemoteJob(name, "", state) for name, state in (
        ("batches/1", JobState.SUCCEEDED), ("batches/2", JobState.SUCCEEDED),
        ("batches/r", JobState.RUNNING))}
    [row] = statuses(plan, lockfile.Lock({"b": entry}), remote)
    assert [s.job for s in row.shards] == ["batches/1", "batches/2"]
