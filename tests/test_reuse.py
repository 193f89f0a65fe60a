"""Request-level reuse (issue 11, item 3): a request whose success the result store holds is
never sent again, in any batch of the directory. Edit one row and one request is sent; append
rows and only they are; remove rows or revert an edit and nothing is; shards are cut from the
requests to send. Over real HTTP, against the emulator; the outputs are compared with those
of a project that reuses nothing, byte for byte."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest
from conftest import ROWS_MANIFEST, remote_jobs, write_manifest, write_rows
from providers_matrix import GEMINI, PROVIDERS, Flavour, serve

from runner import api, lockfile
from runner.actions import Kind
from runner.cli import main
from runner.emulator import Emulator
from runner.errors import LockfileError
from runner.providers.base import RemoteJob
from runner.store import local_store
from runner.store.project import STORE_ENV

ROWS = 40


@pytest.fixture
def emu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    with serve(GEMINI, tmp_path / "emu", monkeypatch, 0.0) as e:
        yield e


def project(d: Path, rows: int = ROWS, extra: str = "") -> Path:
    write_manifest(d, ROWS_MANIFEST.replace("  rows: data/rows.jsonl\n",
                                            f"  rows: data/rows.jsonl\n{extra}"))
    write_rows(d, rows, "hello")
    return d


def edit_rows(d: Path, change: dict[int, str] | None = None, rows: int | None = None) -> None:
    """The rows file with the bodies of some rows changed, or `rows` rows in all."""
    lines = (d / "data/rows.jsonl").read_text().splitlines()
    body = json.loads(lines[0])["body"]
    count = rows if rows is not None else len(lines)
    with open(d / "data/rows.jsonl", "w") as f:
        for n in range(count):
            f.write(json.dumps({"n": n, "body": (change or {}).get(n, body)}) + "\n")


def new_jobs(emu: Emulator, before: list[RemoteJob]) -> list[RemoteJob]:
    seen = {j.name for j in before}
    return [j for j in remote_jobs(emu) if j.name not in seen]


def outputs(d: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((d / "out").iterdir())}


def plan_line(d: Path, capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    assert main(["plan", str(d)]) in (0, 2)
    out = capsys.readouterr().out
    return next(line for line in out.splitlines() if " big " in line)


def fresh(tmp_path: Path, d: Path, name: str) -> bytes:
    """What `d`'s outputs are when nothing is reused: the same files applied in a project of
    their own, with a store of its own."""
    other = tmp_path / name
    shutil.copytree(d, other, ignore=shutil.ignore_patterns(".runner", "out", "batches.lock"))
    assert api.apply(other).exit_code == 0
    return json.dumps({k: v.decode() for k, v in outputs(other).items()}).encode()


def same_as_fresh(tmp_path: Path, d: Path, name: str) -> None:
    assert json.dumps({k: v.decode() for k, v in outputs(d).items()}).encode() == \
        fresh(tmp_path, d, name)


def test_one_edited_row_sends_one_request(emu: Emulator, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    d = project(tmp_path / "p")
    assert api.apply(d).exit_code == 0
    edit_rows(d, {7: "edited"})
    line = plan_line(d, capsys)
    assert "1 to send, 39 reused" in line and "replace" in line, line
    [action] = api.plan(d).actions              # the library's plan says the same
    assert (action.kind, action.requests, action.reused) == (Kind.REPLACE, 1, 39)
    capsys.readouterr()
    before = remote_jobs(emu)
    assert api.apply(d).exit_code == 0
    [job] = new_jobs(emu, before)
    assert job.total == 1
    entry = lockfile.load(d / "batches.lock").batches["big"]
    assert entry.reused == 39 and [s.requests for s in entry.shards] == [1]
    assert entry.counts["succeeded"] == 40 and not entry.counts.get("failed")
    same_as_fresh(tmp_path, d, "one-row")
    assert plan_line_or_none(d, capsys) is None     # up to date


def plan_line_or_none(d: Path, capsys: pytest.CaptureFixture[str]) -> str | None:
    capsys.readouterr()
    assert main(["plan", str(d), "--detailed-exitcode"]) == 0
    return None


def test_appended_rows_alone_are_sent_and_shards_are_cut_from_them(
        emu: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """max_requests 10: 40 rows are 4 shards; 25 rows appended are 3 shards of their own,
    not 7 shards again."""
    d = project(tmp_path / "p", extra="  max_requests: 10\n")
    assert api.apply(d).exit_code == 0
    assert len(remote_jobs(emu)) == 4
    edit_rows(d, rows=65)
    assert "25 to send, 40 reused" in plan_line(d, capsys)
    before = remote_jobs(emu)
    assert api.apply(d).exit_code == 0
    assert sorted(j.total for j in new_jobs(emu, before)) == [5, 10, 10]
    same_as_fresh(tmp_path, d, "appended")


@pytest.mark.parametrize("split", [False, True])
def test_removed_rows_and_a_reverted_edit_send_nothing(
        split: bool, emu: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = project(tmp_path / "p", extra="  max_requests: 10\n" if split else "")
    assert api.apply(d).exit_code == 0
    edit_rows(d, {3: "edited"})
    assert api.apply(d).exit_code == 0
    before = remote_jobs(emu)
    edit_rows(d, {})                        # the edit reverted: row 3 was answered before
    line = plan_line(d, capsys)
    assert "0 to send, 40 reused" in line and "every result is in the result store" in line
    assert api.apply(d).exit_code == 0
    assert new_jobs(emu, before) == []
    same_as_fresh(tmp_path, d, "reverted")
    edit_rows(d, rows=25)                   # rows removed from the end
    assert api.apply(d).exit_code == 0
    assert new_jobs(emu, before) == []
    assert len((d / "out/big.jsonl").read_text().splitlines()) == 25
    entry = lockfile.load(d / "batches.lock").batches["big"]
    # no job: its record names the packs it reused, and no pack of its own (the store's
    # lines are not written again)
    assert entry.reused == 25 and entry.shards == [] and entry.packs == [] and entry.reuse_packs
    same_as_fresh(tmp_path, d, "removed")
    capsys.readouterr()
    assert main(["status", str(d), "--json"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert (row["sync"], row["health"]) == ("Synced", "Healthy")


def test_a_request_another_manifest_had_answered_is_not_sent(
        emu: Emulator, tmp_path: Path) -> None:
    """The same request under another key, in another manifest: its answer is taken from the
    store, written under the new key."""
    d = project(tmp_path / "p")
    assert api.apply(d).exit_code == 0
    twin = ROWS_MANIFEST.replace("{name: big}", "{name: twin}").replace(
        'key: "r{{ row.n }}"', 'key: "t{{ row.n }}"').replace("out/big", "out/twin")
    write_manifest(d, twin, "twin.yaml")
    before = remote_jobs(emu)
    assert api.apply(d).exit_code == 0
    assert new_jobs(emu, before) == []
    first = [json.loads(line) for line in (d / "out/twin.jsonl").read_text().splitlines()]
    assert [r["key"] for r in first[:2]] == ["t0", "t1"]
    big = [json.loads(line) for line in (d / "out/big.jsonl").read_text().splitlines()]
    assert [r["text"] for r in first] == [r["text"] for r in big]


def test_failed_requests_are_sent_again_not_reused(emu: Emulator, tmp_path: Path) -> None:
    d = project(tmp_path / "p")
    edit_rows(d, {5: "EMULATOR_FAIL please"})
    assert api.apply(d).exit_code == 1         # one failure, none allowed
    before = remote_jobs(emu)
    edit_rows(d, {5: "EMULATOR_FAIL please", 9: "edited"})
    api.apply(d)
    [job] = new_jobs(emu, before)
    assert job.total == 2                       # the edited row and the failed one


def test_a_manifest_can_ask_for_fresh_answers(emu: Emulator, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    d = project(tmp_path / "p", extra="  reuse: false\n")
    assert api.apply(d).exit_code == 0
    edit_rows(d, {7: "edited"})
    assert "40 requests" in plan_line(d, capsys)
    before = remote_jobs(emu)
    assert api.apply(d).exit_code == 0
    [job] = new_jobs(emu, before)
    assert job.total == 40


def test_a_fresh_clone_sharing_the_store_finishes_a_batch_that_reused(
        emu: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The job of the edited row is submitted by one machine and collected by another, which
    has the lockfile and the shared store, no outputs and no local state."""
    monkeypatch.setenv(STORE_ENV, str(tmp_path / "shared"))
    d = project(tmp_path / "p")
    assert api.apply(d).exit_code == 0
    edit_rows(d, {11: "edited"})
    assert main(["apply", str(d), "--no-wait", "--quiet"]) == 0
    ci = tmp_path / "ci"
    shutil.copytree(d, ci, ignore=shutil.ignore_patterns(".runner", "out"))
    before = remote_jobs(emu)
    assert api.apply(ci).exit_code == 0
    assert new_jobs(emu, before) == []
    monkeypatch.delenv(STORE_ENV)
    same_as_fresh(tmp_path, ci, "ci-fresh")


def test_reused_results_gone_from_the_store_are_lost_not_paid_again(
        emu: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = project(tmp_path / "p")
    assert api.apply(d).exit_code == 0
    edit_rows(d, rows=30)
    assert api.apply(d).exit_code == 0
    shutil.rmtree(d / ".runner")
    shutil.rmtree(d / "out")
    before = remote_jobs(emu)
    capsys.readouterr()
    assert main(["apply", str(d), "--quiet"]) == 1
    said = "".join(capsys.readouterr())
    assert "reused from the result store are gone from it" in said
    assert new_jobs(emu, before) == []


def test_a_hand_edited_reuse_count_is_refused_at_its_line(emu: Emulator, tmp_path: Path) -> None:
    d = project(tmp_path / "p")
    assert api.apply(d).exit_code == 0
    edit_rows(d, {2: "edited"})
    assert api.apply(d).exit_code == 0
    lock = d / "batches.lock"
    text = lock.read_text()
    assert "    reused: 39\n" in text
    lock.write_text(text.replace("    reused: 39\n", "    reused: 38\n"))
    with pytest.raises(LockfileError) as e:
        lockfile.load(lock)
    line = text.splitlines().index("    reused: 39") + 1
    assert e.value.where == str(line)
    assert "1 requests in its shards and 38 reused, not 40" in str(e.value)


@PROVIDERS
def test_every_provider_sends_only_the_edited_request(
        flavour: Flavour, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """OpenAI and Anthropic answer under their own keys (custom_id); a result reused from
    another key is written under the key of the request that reuses it."""
    with serve(flavour, tmp_path / "emu", monkeypatch, 0.0) as emu:
        d = tmp_path / "p"
        write_manifest(d, flavour.adapt(ROWS_MANIFEST))
        write_rows(d, 12, "hello")
        assert api.apply(d).exit_code == 0
        twin = ROWS_MANIFEST.replace("{name: big}", "{name: twin}").replace(
            'key: "r{{ row.n }}"', 'key: "t{{ row.n }}"').replace("out/big", "out/twin")
        write_manifest(d, flavour.adapt(twin), "twin.yaml")
        edit_rows(d, {4: "edited"})
        before = {j.name for j in flavour.jobs(emu)}
        assert api.apply(d).exit_code == 0
        # the edited row is sent once for each manifest; nothing else is
        assert sorted(j.total for j in flavour.jobs(emu) if j.name not in before) == [1, 1]
        big = [json.loads(x) for x in (d / "out/big.jsonl").read_text().splitlines()]
        twins = [json.loads(x) for x in (d / "out/twin.jsonl").read_text().splitlines()]
        assert [r["key"] for r in twins] == [f"t{n}" for n in range(12)]
        assert [r["text"] for r in twins] == [r["text"] for r in big]
        assert "edited" in big[4]["text"]


def test_the_index_holds_the_successes_of_every_pack_and_says_which(tmp_path: Path) -> None:
    """Two packs, a success in each, a failure, and a pack gone: looked up by request hash,
    each success names its own pack; the failure and the gone pack's lines are not there."""
    from runner.hashing import digest
    from runner.reuse import Reusable
    from runner.store import open_store

    store = open_store(tmp_path / "store")
    hashes = [digest(str(n).encode()) for n in range(400)]
    packs = []
    for part in (hashes[:200], hashes[200:]):
        with store.writer() as w:
            for n, h in enumerate(part):
                w.add(h, b'{"n": %d}' % n, ok=n % 7 != 0)
        packs += list(w.packs)
    with store.writer() as w:
        w.add(digest(b"elsewhere"), b"{}", ok=True)
    gone = list(w.packs)
    (tmp_path / "store/packs" / (gone[0].split(":")[1] + ".pack")).unlink()
    said: list[str] = []
    index = Reusable.load(store, packs + gone, said.append)
    assert len(index) == 400 - 2 * 29
    assert index.packs == tuple(sorted(packs))
    for group, part in enumerate((hashes[:200], hashes[200:])):
        for n, h in enumerate(part):
            found = index.pack_of(h)
            assert (found is None) == (n % 7 == 0)
            assert found is None or index.packs[found] == packs[group]
    assert index.pack_of(digest(b"elsewhere")) is None and "not reused" in said[0]
    assert index.pack_of(digest(b"never")) is None


def test_the_reuse_join_is_right_over_many_temp_files(
        emu: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A big batch's join spreads requests and results over many temp files; the requests
    answered by no job and the store's lines must land in the same one."""
    import runner.join
    monkeypatch.setattr(runner.join, "BUCKET_BYTES", 256)
    d = project(tmp_path / "p")
    assert api.apply(d).exit_code == 0
    edit_rows(d, {7: "edited", 30: "edited too"})
    assert api.apply(d).exit_code == 0
    entry = lockfile.load(d / "batches.lock").batches["big"]
    assert entry.reused == 38 and entry.counts["succeeded"] == 40
    same_as_fresh(tmp_path, d, "many-files")


@pytest.mark.parametrize("walked", ["yes", "no", "fails-late"],
                         ids=["packs-in-order", "join-by-hash", "walk-fails-late"])
def test_the_reuse_join_runs_across_cores_from_the_keys_rendered_once(
        emu: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, walked: str) -> None:
    """A batch that reused is joined from the keys and hashes its render wrote (it is not
    rendered again: the input files hold only the requests sent) and formatted range by
    range across cores, as a batch that reused nothing is: its packs walked beside the
    requests in input order (runner.aligned), or, when the jobs' results are too many to
    hold, joined by hash (runner.rejoin); the outputs are the same either way, and when
    the walk finds late that it cannot go on, with chunks formatted and packs kept
    already, the outputs and the store's lines are written again by the join by hash."""
    import runner.aligned
    import runner.inorder
    import runner.join
    import runner.joinlines
    import runner.parallel
    import runner.spill
    monkeypatch.setattr(runner.join, "BUCKET_BYTES", 2048)      # several ranges
    monkeypatch.setattr(runner.inorder, "CHUNK_LINES", 7)       # several chunks
    monkeypatch.setattr(runner.joinlines, "MIN_REQUESTS", 1)
    if walked == "no":
        monkeypatch.setattr(runner.aligned, "RESULTS_BYTES", 0)
    aligned: list[object] = []
    real_align = runner.aligned.align

    def spy_align(*args: object, **kwargs: object) -> object:
        aligned.append(real_align(*args, **kwargs))  # type: ignore[arg-type]
        return aligned[-1]

    monkeypatch.setattr("runner.outputs.align", spy_align)
    ranges: list[int] = []      # the parts each format_ranges took
    real = runner.joinlines.format_ranges

    def spy(parts: Iterable[object], *args: object, **kwargs: object) -> object:
        ranges.append(0)

        def counted() -> Iterator[object]:
            for part in parts:
                ranges[-1] += 1
                yield part
        return real(counted(), *args, **kwargs)      # type: ignore[arg-type]

    monkeypatch.setattr("runner.outputs.format_ranges", spy)
    d = project(tmp_path / "p")
    write_manifest(d, ROWS_MANIFEST.replace(      # JSONL outputs only: runner.joinlines
        '    - path: out/big.csv\n      columns: {n: "{{ row.n }}", answer: "{{ text }}"}\n', ""))
    assert api.apply(d).exit_code == 0
    assert ranges and ranges[0] > 1, "the join was not formatted across cores"
    edit_rows(d, {3: "edited", 21: "edited too"})
    rendering = runner.parallel.render_jsonl
    monkeypatch.setattr(runner.spill, "render_jsonl", None)    # the join may not render
    ranges.clear()
    took = runner.aligned._Packs.take
    taken: list[bytes] = []

    def take(self: runner.aligned._Packs, request: bytes) -> bytes | None:
        taken.append(request)
        return None if walked == "fails-late" and len(taken) == 30 else took(self, request)

    monkeypatch.setattr(runner.aligned._Packs, "take", take)
    assert api.apply(d).exit_code == 0
    assert ranges and ranges[0] > 1, "the reuse join was not formatted across cores"
    assert len(aligned) == 1 and (aligned[0] is not None) == (walked != "no")
    assert len(taken) == {"yes": 38, "no": 0, "fails-late": 30}[walked]
    if walked == "fails-late":      # chunks formatted, then all again by the join by hash
        assert len(ranges) == 2 and ranges[0] >= 2, ranges
    entry = lockfile.load(d / "batches.lock").batches["big"]
    assert entry.reused == 38 and entry.counts["succeeded"] == 40
    # the batch's own packs: the lines of its jobs alone, once each (fails-late: the join by
    # hash started again, those kept by the walk forgotten); the reused lines are in the
    # packs it reused, not written again
    kept = [r.request_hash for r in local_store(d).results(entry.packs)]
    assert len(kept) == len(set(kept)) == 2
    reused = {r.request_hash for r in local_store(d).results(entry.reuse_packs) if r.ok}
    written = {json.loads(line)["request_hash"]
               for line in (d / "out/big.jsonl").read_text().splitlines()}
    assert len(written) == 40 and written <= reused | set(kept) and not reused & set(kept)
    monkeypatch.setattr(runner.spill, "render_jsonl", rendering)
    same_as_fresh(tmp_path, d, "across-cores")
