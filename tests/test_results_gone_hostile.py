"""OpenAI result files that only look gone are not taken for gone: a 404 is confirmed by a
second one a moment later, a download's 404 for a file still there is tried again, and a batch
with one of its files gone keeps the other's results. Found by an attacker's review of the
first version, which paid for such batches twice. The emulator's file routes are switched
by each test to answer 404s, or a wrong-typed file object."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import MINIMAL, write_manifest
from providers_matrix import FAIL, OPENAI, advance, serve

from runner import lockfile
from runner.cli import main
from runner.emulator import Emulator
from runner.emulator.openai import files as emu_files
from runner.emulator.openai.errors import not_found

# What the emulator's file routes do, switched by each test (the routes are bound when the
# emulator starts, so the switch is installed before it).
FAULT: dict[str, Any] = {"get": 0, "content": 0, "odd": False, "hits": []}


@pytest.fixture
def emu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    FAULT.update(get=0, content=0, odd=False, hits=[])
    for method in ("get", "content"):
        real = getattr(emu_files.Files, method)

        def switched(self, request, params, real=real, method=method):  # type: ignore
            record = self._disk.files.get(params["id"])
            if record is not None and record.purpose == "batch_output" and FAULT[method] > 0:
                FAULT[method] -= 1
                FAULT["hits"].append((method, params["id"]))
                raise not_found("File", params["id"])
            if method == "get" and FAULT["odd"]:
                from runner.emulator.messages import Reply
                from runner.emulator.openai import views
                body = views.file_object(self.record(params["id"]))
                body["bytes"] = "many"
                return Reply.json(body)
            return real(self, request, params)

        monkeypatch.setattr(emu_files.Files, method, switched)
    with serve(OPENAI, tmp_path / "emu", monkeypatch, 0.3) as e:
        yield e


def _batch(emu: Emulator, job: str) -> dict[str, Any]:
    r = httpx.get(f"{OPENAI.base_url(emu)}/batches/{job}",
                  headers={"Authorization": "Bearer k"})
    r.raise_for_status()
    answer: dict[str, Any] = r.json()
    return answer


def _submitted(d: Path, emu: Emulator, manifest: str = MINIMAL) -> str:
    write_manifest(d, OPENAI.adapt(manifest))
    assert main(["apply", str(d), "--no-wait", "--quiet"]) == 0
    advance(emu, 120)
    job = lockfile.load(d / "batches.lock").batches["tiny"].job
    assert job is not None
    return job


def _flaky(monkeypatch: pytest.MonkeyPatch, method: str, times: int = 1
           ) -> list[tuple[str, str]]:
    """The emulator answers `times` 404s to `method` for a batch's result file, then serves
    it again: a file store that lags or blips (eventual consistency, a bad replica)."""
    FAULT[method] = times
    hits: list[tuple[str, str]] = FAULT["hits"]
    return hits


def test_one_404_on_the_output_files_metadata_does_not_pay_twice(
        tmp_path: Path, emu: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    d = tmp_path / "proj"
    _submitted(d, emu)
    hits = _flaky(monkeypatch, "get")
    assert main(["apply", str(d), "--quiet"]) == 0
    assert hits, "the fault never struck"
    assert len(OPENAI.jobs(emu)) == 1, "one blip of the files API had the batch paid twice"


def test_one_404_on_the_output_files_content_does_not_pay_twice(
        tmp_path: Path, emu: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    d = tmp_path / "proj"
    _submitted(d, emu)
    hits = _flaky(monkeypatch, "content")
    assert main(["apply", str(d), "--quiet"]) == 0
    assert hits, "the fault never struck"
    assert len(OPENAI.jobs(emu)) == 1, "one blip of the download had the batch paid twice"


FAILING = MINIMAL.replace('q: "What is 2+2?"', f'q: "What is 2+2? {FAIL}"')


def test_only_the_error_file_deleted_does_not_resend_the_answered_requests(
        tmp_path: Path, emu: Emulator) -> None:
    """The output file (request a's answer) is still there; only the error file (request
    b's failure) was deleted. The batch is sent again whole: a's answer, on the provider
    all along, is paid for twice."""
    d = tmp_path / "proj"
    job = _submitted(d, emu, FAILING)
    batch = _batch(emu, job)
    assert batch["output_file_id"] and batch["error_file_id"], batch
    httpx.delete(f"{OPENAI.base_url(emu)}/files/{batch['error_file_id']}",
                 headers={"Authorization": "Bearer k"}).raise_for_status()
    main(["apply", str(d), "--quiet"])
    sent_again = [j for j in OPENAI.jobs(emu) if j.name != job]
    assert sum(j.total for j in sent_again) <= 1, \
        f"requests whose answers the provider still kept were sent again: {sent_again}"


def test_a_wrong_typed_file_object_does_not_stop_a_completed_batch(
        tmp_path: Path, emu: Emulator, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """get_job's new existence probe parses the whole file object: one odd field in the file
    metadata (which the runner never needs) makes every plan/apply of a completed batch fail,
    though its results download fine."""
    d = tmp_path / "proj"
    _submitted(d, emu)
    FAULT["odd"] = True
    capsys.readouterr()
    code = main(["apply", str(d), "--quiet"])
    said = capsys.readouterr()
    assert code == 0, said.out + said.err
    assert len(OPENAI.jobs(emu)) == 1


OTHER = MINIMAL.replace("name: tiny", "name: other").replace("out/tiny", "out/other")


def _delete_files(emu: Emulator, job: str) -> None:
    """The batch's result files deleted (by a user, or 30 days on); the batch stays."""
    batch = _batch(emu, job)
    for key in ("output_file_id", "error_file_id"):
        if batch.get(key):
            httpx.delete(f"{OPENAI.base_url(emu)}/files/{batch[key]}",
                         headers={"Authorization": "Bearer k"}).raise_for_status()


def test_one_shards_results_gone_mid_collection_resends_that_shard_alone(
        tmp_path: Path, emu: Emulator, capsys: pytest.CaptureFixture[str]) -> None:
    d = tmp_path / "proj"
    write_manifest(d, OPENAI.adapt(MINIMAL.replace("  items:", "  max_requests: 1\n  items:")))
    (d / "other.yaml").write_text(OPENAI.adapt(OTHER))     # so that the plan lists the jobs
    assert main(["apply", str(d), "--no-wait", "--quiet"]) == 0
    advance(emu, 120)
    shards = lockfile.load(d / "batches.lock").batches["tiny"].shards
    assert len(shards) == 2 and all(s.job for s in shards)
    assert shards[1].job is not None
    _delete_files(emu, shards[1].job)
    before = {j.name for j in OPENAI.jobs(emu)}
    capsys.readouterr()
    code = main(["apply", str(d)])
    said = capsys.readouterr()
    assert code == 0, said.out + said.err
    new = [j for j in OPENAI.jobs(emu) if j.name not in before]
    assert [j.total for j in new] == [1], new
    after = lockfile.load(d / "batches.lock").batches["tiny"].shards
    assert after[0].job == shards[0].job and after[1].job == new[0].name
    assert (d / "out/tiny.jsonl").read_text().count('"key"') == 2


RETRYING = FAILING.replace("  items:", "  retry_failed: 1\n  items:")


@pytest.mark.parametrize("others", [False, True], ids=["get", "listed"])
def test_a_follow_ups_results_gone_is_one_line_not_a_crash(
        tmp_path: Path, emu: Emulator, capsys: pytest.CaptureFixture[str],
        others: bool) -> None:
    d = tmp_path / "proj"
    write_manifest(d, OPENAI.adapt(RETRYING))
    if others:
        (d / "other.yaml").write_text(OPENAI.adapt(OTHER))
    assert main(["apply", str(d), "--no-wait", "--quiet"]) == 0
    advance(emu, 120)
    main(["apply", str(d), "--no-wait", "--quiet"])     # job collected, follow-up sent
    entry = lockfile.load(d / "batches.lock").batches["tiny"]
    assert len(entry.retries) == 1 and entry.retries[0].job, entry
    retry_job = entry.retries[0].job
    advance(emu, 120)
    _delete_files(emu, retry_job)
    before = len(OPENAI.jobs(emu))
    capsys.readouterr()
    try:
        code = main(["apply", str(d)])
    except Exception as e:  # noqa: BLE001
        pytest.fail(f"apply crashed: {e!r}")
    said = capsys.readouterr()
    print(said.out, said.err)
    assert code in (0, 1)
    # the follow-up's one request was never received: sent again at most once
    assert len(OPENAI.jobs(emu)) <= before + 1
    assert (d / "out/tiny.jsonl").exists()


def test_a_follow_up_whose_download_404s_is_sent_again_not_closed_as_cancelled(
        tmp_path: Path, emu: Emulator, capsys: pytest.CaptureFixture[str]) -> None:
    """The follow-up's results were never received (its download answered 404): the table
    in docs/providers.md says such results are sent again. The follow-up is instead closed
    as 'ended cancelled' (it had succeeded), and its requests stay failed for good."""
    d = tmp_path / "proj"
    write_manifest(d, OPENAI.adapt(RETRYING))
    assert main(["apply", str(d), "--no-wait", "--quiet"]) == 0
    advance(emu, 120)
    main(["apply", str(d), "--no-wait", "--quiet"])
    entry = lockfile.load(d / "batches.lock").batches["tiny"]
    assert len(entry.retries) == 1 and entry.retries[0].job
    advance(emu, 120)
    FAULT["content"] = 1
    capsys.readouterr()
    main(["apply", str(d)])
    said = capsys.readouterr()
    assert FAULT["hits"], "the fault never struck"
    entry = lockfile.load(d / "batches.lock").batches["tiny"]
    assert entry.retries[-1].state.value != "CANCELLED", said.out + said.err
