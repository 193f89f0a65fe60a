"""An attacker's read of "a batch that reused keeps only its jobs' lines in packs of its own":
follow-ups, reverts, gc between steps and fresh clones rebuilding from the shared store
without the provider. Real, over HTTP, against the emulator."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ROWS_MANIFEST, remote_jobs, write_manifest, write_rows
from providers_matrix import FAIL, GEMINI, PROVIDERS, Flavour, serve
from test_reuse import edit_rows, new_jobs, project, same_as_fresh
from test_reuse_stored_once import JSONL_ONLY, drop_jobs, edited_once, entry, kept
from test_store_apply import clone
from test_store_no_calls import served

import runner.outputs
from runner import api, lockfile
from runner.cli import main
from runner.emulator import Emulator
from runner.emulator.faults import Faults
from runner.records import LockEntry
from runner.store.project import STORE_ENV

OUTPUTS = ("big.jsonl", "big.csv", "big.errors.jsonl")


@pytest.fixture
def emu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    with serve(GEMINI, tmp_path / "emu", monkeypatch, 0.0) as e:
        yield e


def gc(d: Path) -> None:
    assert main(["store", "gc", str(d), "--min-age", "0", "--yes"]) == 0


def edited_with_a_follow_up_sent(emu: Emulator, tmp_path: Path) -> tuple[Path, LockEntry]:
    """A project applied, a row in three edited, sent with half its requests failing
    (retry_failed: 1), and the follow-up sent (--no-wait): the project and its record."""
    d = project(tmp_path / "p", extra="  retry_failed: 1\n")
    assert api.apply(d).exit_code == 0
    edit_rows(d, {n: f"edited {n}" for n in range(0, 40, 3)})
    emu.faults = Faults(request_error_rate=0.5, seed=11)
    assert main(["apply", str(d), "--no-wait", "--quiet"]) == 0
    emu.faults = Faults()
    assert main(["apply", str(d), "--no-wait", "--quiet"]) == 0
    return d, entry(d)


def rebuilt_alike(emu: Emulator, d: Path, to: Path) -> None:
    """A clone of `d` (no outputs, no state) writes `d`'s outputs byte for byte from the
    store alone: the provider's jobs are gone and nothing is asked of it."""
    drop_jobs(emu)
    ci = clone(d, to)
    before = served(emu)
    [action] = api.plan(ci).actions
    assert "restored from the result store" in action.reason, action.reason
    assert main(["apply", str(ci), "--quiet"]) == 0
    assert served(emu) == before
    names = sorted(p.name for p in (d / "out").iterdir())
    assert names == sorted(p.name for p in (ci / "out").iterdir())
    for name in names:
        assert (ci / "out" / name).read_bytes() == (d / "out" / name).read_bytes(), name


def test_every_request_reused_then_outputs_gone_rebuilds_from_the_store(
        emu: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(STORE_ENV, str(tmp_path / "shared"))
    d = project(tmp_path / "p")
    assert api.apply(d).exit_code == 0
    edit_rows(d, {7: "edited"})
    assert api.apply(d).exit_code == 0
    edit_rows(d, {})        # reverted: every request reused, none sent
    before = remote_jobs(emu)
    assert api.apply(d).exit_code == 0
    assert new_jobs(emu, before) == []
    e = entry(d)
    assert e.reused == e.requests == 40 and e.packs == []
    gc(d)
    rebuilt_alike(emu, d, tmp_path / "ci")


def test_a_follow_up_of_a_batch_that_reused_then_a_clone_rebuilds(
        emu: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows edited; some of their requests fail and a follow-up sends them again, collected
    by another clone with the first job deleted; gc between each step."""
    monkeypatch.setenv(STORE_ENV, str(tmp_path / "shared"))
    d, sent = edited_with_a_follow_up_sent(emu, tmp_path)
    assert sent.reused and sent.packs and sent.counts["failed"] > 0 and len(sent.retries) == 1
    gc(d)
    drop_jobs(emu, [part.job for part in sent.parts()])
    ci = clone(d, tmp_path / "ci")
    assert main(["apply", str(ci), "--quiet"]) == 0
    assert entry(ci).counts == {"succeeded": 40, "failed": 0}
    gc(ci)
    rebuilt_alike(emu, ci, tmp_path / "ci2")


def test_results_over_fresh_bytes_keep_every_line_and_a_clone_rebuilds(
        emu: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(STORE_ENV, str(tmp_path / "shared"))
    monkeypatch.setattr(runner.outputs, "FRESH_BYTES", 10)
    d = project(tmp_path / "p")
    assert api.apply(d).exit_code == 0
    edit_rows(d, {7: "edited"})
    assert api.apply(d).exit_code == 0
    gc(d)
    rebuilt_alike(emu, d, tmp_path / "ci")


def test_a_rebuild_says_nothing_of_the_reused_packs_other_lines(
        emu: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv(STORE_ENV, str(tmp_path / "shared"))
    d = project(tmp_path / "p")
    assert api.apply(d).exit_code == 0
    edit_rows(d, {7: "edited"})
    assert api.apply(d).exit_code == 0
    drop_jobs(emu)
    ci = clone(d, tmp_path / "ci")
    capsys.readouterr()
    assert main(["apply", str(ci)]) == 0
    said = capsys.readouterr().out
    assert "rebuilt from the result store" in said, said
    assert "no request has" not in said and "repeated" not in said, said


@PROVIDERS
def test_keys_of_every_shape_across_shards_with_a_follow_up_rebuild_in_a_clone(
        flavour: Flavour, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keys with quotes, backslashes and non-ASCII (OpenAI and Anthropic send them as
    custom_ids of their own), the sent requests cut into shards, one of them failing twice
    (retry_failed 1): the store keeps their lines under the keys the join reads, and a
    clone rebuilds every output without the provider."""
    monkeypatch.setenv(STORE_ENV, str(tmp_path / "shared"))
    with serve(flavour, tmp_path / "emu", monkeypatch, 0.0) as emu:
        d = tmp_path / "p"
        manifest = ROWS_MANIFEST.replace(
            'key: "r{{ row.n }}"', 'key: "clé \\\\ \\"{{ row.n }}\\" ☃ \\u00e9/é"').replace(
            "  rows: data/rows.jsonl\n",
            "  rows: data/rows.jsonl\n  max_requests: 3\n  retry_failed: 1\n")
        write_manifest(d, flavour.adapt(manifest))
        write_rows(d, 20, "hello")
        assert api.apply(d).exit_code == 0
        edit_rows(d, {2: "edited", 5: f"{FAIL} edited", 9: "edited", 13: "edited",
                      17: "edited"})
        api.apply(d)
        e = entry(d)
        assert e.reused == 15 and len(e.shards) == 2 and e.retries, e
        ci = clone(d, tmp_path / "ci")
        before = served(emu)
        [action] = api.plan(ci).actions
        assert "restored from the result store" in action.reason, action.reason
        main(["apply", str(ci), "--quiet"])
        assert served(emu) == before
        for name in OUTPUTS:
            assert flavour.steady((ci / "out" / name).read_bytes()) == \
                flavour.steady((d / "out" / name).read_bytes()), name


def twin(d: Path) -> None:
    """A second manifest asking what big asks, under other keys."""
    write_manifest(d, ROWS_MANIFEST.replace("{name: big}", "{name: twin}").replace(
        'key: "r{{ row.n }}"', 'key: "t{{ row.n }}"').replace("out/big", "out/twin"),
        "twin.yaml")


def test_two_manifests_reusing_each_others_packs_rebuild_after_forget_and_gc(
        emu: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(STORE_ENV, str(tmp_path / "shared"))
    d = project(tmp_path / "p")
    assert api.apply(d).exit_code == 0
    twin(d)
    edit_rows(d, {3: "edited"})
    assert api.apply(d).exit_code == 0      # big sends row 3, twin reuses it from big's pack
    edit_rows(d, {3: "edited", 8: "edited"})
    assert api.apply(d).exit_code == 0      # (both send row 8: planned together)
    assert lockfile.load(d / "batches.lock").batches["twin"].reused == 39
    (d / "m.yaml").unlink()
    assert main(["forget", str(d), "big"]) == 0
    gc(d)
    drop_jobs(emu)
    ci = clone(d, tmp_path / "ci")
    before = served(emu)
    assert main(["apply", str(ci), "--quiet"]) == 0
    assert served(emu) == before
    for name in ("twin.jsonl", "twin.csv", "twin.errors.jsonl"):
        assert (ci / "out" / name).read_bytes() == (d / "out" / name).read_bytes(), name


def test_an_older_lockfile_whose_packs_hold_every_line_then_edits_and_a_clone(
        emu: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The first edit kept every line in its own packs (as before the change: FRESH_BYTES
    0 keeps them all); edits after it keep their jobs' lines alone; each step's outputs
    are a fresh project's, and a clone rebuilds the last."""
    monkeypatch.setenv(STORE_ENV, str(tmp_path / "shared"))
    d = project(tmp_path / "p")
    assert api.apply(d).exit_code == 0
    monkeypatch.setattr(runner.outputs, "FRESH_BYTES", 0)
    edit_rows(d, {7: "edited"})
    assert api.apply(d).exit_code == 0
    assert len(kept(tmp_path / "shared", entry(d).packs)) == 40
    monkeypatch.setattr(runner.outputs, "FRESH_BYTES", 8 << 20)
    for step, change in enumerate(({7: "edited", 21: "x"}, {21: "x"}, {21: "x", 30: "y"},
                                   {}, {7: "edited"})):
        edit_rows(d, change)
        assert api.apply(d).exit_code == 0
        gc(d)
        same_as_fresh(tmp_path, d, f"step-{step}")
    rebuilt_alike(emu, d, tmp_path / "ci")


@pytest.mark.parametrize("how", ["other", "dropped", "doubled"])
def test_hand_edited_reuse_packs_never_write_reused_requests_as_failures(
        how: str, emu: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """reuse_packs edited by hand to name a pack that lacks the reused lines (another
    batch's), or one of two dropped: the outputs are not written again with the reused
    requests as failures (a follow-up would pay for them twice)."""
    monkeypatch.setenv(STORE_ENV, str(tmp_path / "shared"))
    d = project(tmp_path / "p", extra="  retry_failed: 1\n")
    assert api.apply(d).exit_code == 0
    edit_rows(d, {7: "edited"})
    assert api.apply(d).exit_code == 0
    edit_rows(d, {7: "edited", 21: "x"})
    assert api.apply(d).exit_code == 0
    e = entry(d)
    assert len(e.reuse_packs) == 2 and len(e.packs) == 1, e
    good = (d / "out/big.jsonl").read_bytes()
    text = (d / "batches.lock").read_text()
    first, second = e.reuse_packs
    if how == "other":
        text = text.replace(first, e.packs[0])
    elif how == "dropped":
        text = text.replace(f"    - {first}\n", "", 1)
    else:
        text = text.replace(f"    - {first}\n", f"    - {first}\n    - {first}\n", 1)
    (d / "batches.lock").write_text(text)
    (d / "out/big.jsonl").unlink()
    before = remote_jobs(emu)
    capsys.readouterr()
    code = main(["apply", str(d)])
    said = capsys.readouterr()
    assert "Traceback" not in said.out + said.err
    assert new_jobs(emu, before) == [], said.out + said.err
    if code == 0:
        assert (d / "out/big.jsonl").read_bytes() == good
    else:       # one line, the outputs and the lockfile as they were
        assert code == 1 and not (d / "out/big.jsonl").exists()
        assert (d / "batches.lock").read_text() == text
        why = "lockfile is invalid" if how == "doubled" else "lack results it reused"
        assert len([x for x in (said.out + said.err).splitlines() if why in x]) == 1, said


def test_many_small_packs_duplicate_rows_and_reverts_walk_or_join_alike(
        emu: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Edit after edit, each keeping the ones before (a pack of one or two lines each, more
    than the walk reads at once), two rows made alike (one request hash, two keys), and
    reverts: each step's outputs are a fresh project's; `store` shows each step."""
    monkeypatch.setenv(STORE_ENV, str(tmp_path / "shared"))
    d = project(tmp_path / "p")
    write_manifest(d, JSONL_ONLY)
    assert api.apply(d).exit_code == 0
    change: dict[int, str] = {}
    steps = [{n: f"e{n}"} for n in range(0, 40, 2)] + [{5: "same", 6: "same"}, {5: "same"}]
    for step, edit in enumerate(steps):
        change.update(edit)
        if step == len(steps) - 1:
            change = {n: b for n, b in change.items() if n % 4}   # half reverted
        edit_rows(d, change)
        assert api.apply(d).exit_code == 0
        if step % 5 == 4 or step >= len(steps) - 2:
            gc(d)
            same_as_fresh(tmp_path, d, f"step-{step}")
        capsys.readouterr()
        assert main(["store", str(d)]) == 0
    rebuilt_alike(emu, d, tmp_path / "ci")


def test_every_request_reused_and_reuse_packs_edited_to_a_pack_lacking_them(
        emu: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A batch that sent nothing has no packs of its own: written again, every line comes
    from its reuse_packs, and a line they lack is not written as a failure for a follow-up
    to pay for again."""
    monkeypatch.setenv(STORE_ENV, str(tmp_path / "shared"))
    d = project(tmp_path / "p", extra="  retry_failed: 1\n")
    assert api.apply(d).exit_code == 0
    edit_rows(d, {7: "edited"})
    assert api.apply(d).exit_code == 0
    small = entry(d).packs[0]
    edit_rows(d, {})
    assert api.apply(d).exit_code == 0
    [first] = entry(d).reuse_packs
    lock = d / "batches.lock"
    text = lock.read_text().replace(first, small)
    lock.write_text(text)
    (d / "out/big.jsonl").unlink()
    before = remote_jobs(emu)
    capsys.readouterr()
    assert main(["apply", str(d)]) == 1
    said = capsys.readouterr()
    assert new_jobs(emu, before) == [], said
    assert not (d / "out/big.jsonl").exists() and lock.read_text() == text
    assert len([x for x in (said.out + said.err).splitlines()
                if "lack results it reused" in x]) == 1, said


def test_a_follow_up_with_reuse_packs_edited_to_a_pack_lacking_them_pays_nothing_again(
        emu: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv(STORE_ENV, str(tmp_path / "shared"))
    d, sent = edited_with_a_follow_up_sent(emu, tmp_path)
    assert sent.reused and len(sent.retries) == 1 and len(sent.reuse_packs) == 1
    lock = d / "batches.lock"
    lock.write_text(lock.read_text().replace(sent.reuse_packs[0], sent.packs[0]))
    good = (d / "out/big.jsonl").read_bytes()
    before = remote_jobs(emu)
    capsys.readouterr()
    assert main(["apply", str(d)]) == 1
    said = capsys.readouterr()
    assert new_jobs(emu, before) == [], said
    assert (d / "out/big.jsonl").read_bytes() == good
    assert len([x for x in (said.out + said.err).splitlines()
                if "lack results it reused" in x]) == 1, said
    assert entry(d).packs == sent.packs


def test_a_damaged_reused_pack_in_a_clone_whose_jobs_are_gone_says_so_in_one_line(
        emu: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    d, shared = edited_once(tmp_path, monkeypatch)
    [reused] = entry(d).reuse_packs
    pack = shared / "packs" / f"{reused.split(':')[1]}.pack"
    data = bytearray(pack.read_bytes())
    data[-5] ^= 0xFF
    pack.chmod(0o644)
    pack.write_bytes(bytes(data))
    drop_jobs(emu)
    ci = clone(d, tmp_path / "ci")
    before = remote_jobs(emu)
    capsys.readouterr()
    code = main(["apply", str(ci)])
    said = capsys.readouterr()
    text = said.out + said.err
    assert "Traceback" not in text
    assert new_jobs(emu, before) == []
    assert code == 1 and not (ci / "out/big.jsonl").exists(), text
    assert (ci / "batches.lock").read_bytes() == (d / "batches.lock").read_bytes()
    # the provider never answered the requests it reused: not sent there to look for them
    assert "which holds results it reuses; point RUNNER_STORE" in text, text
    assert "no longer on the provider" not in text, text


def test_a_follow_up_in_a_clone_with_a_damaged_reused_pack_says_so_in_one_line(
        emu: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    shared = tmp_path / "shared"
    monkeypatch.setenv(STORE_ENV, str(shared))
    d, sent = edited_with_a_follow_up_sent(emu, tmp_path)
    assert sent.reused and len(sent.retries) == 1
    [reused] = sent.reuse_packs
    pack = shared / "packs" / f"{reused.split(':')[1]}.pack"
    data = bytearray(pack.read_bytes())
    data[-5] ^= 0xFF
    pack.chmod(0o644)
    pack.write_bytes(bytes(data))
    drop_jobs(emu, [part.job for part in sent.parts()])
    ci = clone(d, tmp_path / "ci")
    before = remote_jobs(emu)
    capsys.readouterr()
    assert main(["apply", str(ci)]) == 1
    text = "".join(capsys.readouterr())
    assert new_jobs(emu, before) == [] and not (ci / "out/big.jsonl").exists()
    assert "which holds results it reuses; point RUNNER_STORE" in text, text
    assert "no longer on the provider" not in text, text
