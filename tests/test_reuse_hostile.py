"""Request-level reuse, read as an attacker and a careful user would: each test is a way a
request could be paid for twice, or a result lost or made wrong. Real, over HTTP, against the
emulator (as tests/test_reuse.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ROWS_MANIFEST, finish_all, remote_jobs, write_manifest
from providers_matrix import GEMINI, PROVIDERS, Flavour, serve

from runner import api, lockfile
from runner.cli import main
from runner.emulator import Emulator
from runner.emulator.faults import Faults
from runner.failpoints import POINTS
from runner.providers.base import RemoteJob
from runner.records import LockEntry

ROWS = 12


@pytest.fixture
def emu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    with serve(GEMINI, tmp_path / "emu", monkeypatch, 0.0) as e:
        yield e


def rows(d: Path, body: str, change: dict[int, str] | None = None, count: int = ROWS) -> None:
    (d / "data").mkdir(parents=True, exist_ok=True)
    with open(d / "data/rows.jsonl", "w") as f:
        for n in range(count):
            f.write(json.dumps({"n": n, "body": (change or {}).get(n, body)}) + "\n")


def project(d: Path, body: str, extra: str = "") -> Path:
    write_manifest(d, ROWS_MANIFEST.replace("  rows: data/rows.jsonl\n",
                                            f"  rows: data/rows.jsonl\n{extra}"))
    rows(d, body)
    return d


def answers(d: Path, name: str = "big") -> list[dict[str, object]]:
    return [json.loads(x) for x in (d / f"out/{name}.jsonl").read_text().splitlines()]


def entry(d: Path, name: str = "big") -> LockEntry:
    return lockfile.load(d / "batches.lock").batches[name]


def new_jobs(emu: Emulator, before: list[RemoteJob]) -> list[RemoteJob]:
    seen = {j.name for j in before}
    return [j for j in remote_jobs(emu) if j.name not in seen]


# --- a success given back as a failure -------------------------------------------------------

def test_a_reused_success_is_not_replaced_by_an_older_failure_of_the_same_request(
        emu: Emulator, tmp_path: Path) -> None:
    """Run 1 fails row k (the pack P1 holds its error); run 2 (an edit, faults gone) sends row
    k again and it succeeds (the pack P2 holds the success). Revert the edit: every request is
    reused, row k from P2, the reverted row from P1, so the batch reuses from both. The
    store's lines of both packs are joined by request hash, a later line winning: when P1 is
    read after P2, row k's old error replaced its success, and a batch that had every answer
    ended with a failure (exit 1), though nothing was sent."""
    # a body whose packs sort P2 before P1 (the order the bug needs): which one does depends
    # on the packs' bytes, so on the codec, and so is looked for
    for attempt in range(12):
        body = f"hello {attempt}"
        d = project(tmp_path / f"p{attempt}", body)
        emu.faults = Faults(request_error_rate=0.3, seed=5)
        assert api.apply(d).exit_code == 1
        failed = {json.loads(x)["key"] for x in
                  (d / "out/big.errors.jsonl").read_text().splitlines()} \
            if (d / "out/big.errors.jsonl").exists() else set()
        p1 = list(entry(d).packs)
        emu.faults = Faults()
        edited = next(n for n in range(ROWS) if f"r{n}" not in failed)
        rows(d, body, {edited: "edited"})
        assert api.apply(d).exit_code == 0
        p2 = list(entry(d).packs)
        assert entry(d).reuse_packs == p1
        if max(p1) > max(p2):
            break
    else:
        pytest.fail("no body gave the pack order this test needs")
    rows(d, body)                               # the edit reverted
    before = remote_jobs(emu)
    result = api.apply(d)
    assert new_jobs(emu, before) == []
    assert sorted(entry(d).reuse_packs) == sorted(p1 + p2)
    assert result.exit_code == 0, [str(a) for a in answers(d)]
    assert len(answers(d)) == ROWS


# --- store gc ----------------------------------------------------------------------------------

def test_store_gc_keeps_the_packs_a_running_batch_reuses(
        emu: Emulator, tmp_path: Path) -> None:
    """A batch edited and submitted (--no-wait) names the packs it reuses in reuse_packs only:
    its new record has no packs of its own yet, and no other entry names the old ones. gc
    must count them as named, or the batch's reused results are deleted under it: its job's
    answer arrives, the outputs cannot be written, and the batch is lost (sent whole again)."""
    d = project(tmp_path / "p", "hello")
    assert api.apply(d).exit_code == 0
    p1 = list(entry(d).packs)
    rows(d, "hello", {7: "edited"})
    assert main(["apply", str(d), "--no-wait", "--quiet"]) == 0
    assert entry(d).reuse_packs == p1 and entry(d).reused == ROWS - 1
    assert main(["store", "gc", str(d), "--yes", "--min-age", "0"]) == 0
    before = remote_jobs(emu)
    assert api.apply(d).exit_code == 0
    assert new_jobs(emu, before) == []
    assert len(answers(d)) == ROWS and "edited" in str(answers(d)[7]["text"])


# --- crash safety ------------------------------------------------------------------------------

def _killed_apply(d: Path, env: dict[str, str], point: str) -> int:
    import os
    import subprocess
    import sys

    from conftest import OUTSIDE
    run_env = {k: v for k, v in os.environ.items() if k not in OUTSIDE}
    run_env.update(env, RUNNER_POLL_SECONDS="0.05", RUNNER_FAILPOINT=point)
    return subprocess.run([sys.executable, "-m", "runner.cli", "apply", str(d), "--quiet"],
                          env=run_env, capture_output=True, text=True, timeout=120).returncode


KILLS = [pytest.param(revert, point, id=f"{'all-reused' if revert else 'one-edited'}-{point}")
         for point in POINTS if point != "during-upload"
         for revert in (False, True)
         if not revert or point in ("after-intent", "after-outputs")]


@pytest.mark.parametrize("revert, point", KILLS)
@PROVIDERS
def test_a_kill_at_any_step_of_a_batch_that_reuses_converges(
        flavour: Flavour, revert: bool, point: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A row edited (one request sent, the rest reused), or the edit reverted (nothing sent):
    apply is killed at `point`, then run again. The edited request is sent once at most,
    and the outputs are those of a project that reused nothing."""
    if point in dict(flavour.no_step):
        pytest.skip(dict(flavour.no_step)[point])
    with serve(flavour, tmp_path / "emu", monkeypatch, 0.0) as emu:
        d = tmp_path / "p"
        write_manifest(d, flavour.adapt(ROWS_MANIFEST))
        rows(d, "hello")
        assert api.apply(d).exit_code == 0
        rows(d, "hello", {4: "edited"})
        if revert:
            assert api.apply(d).exit_code == 0
            rows(d, "hello")
        before = {j.name for j in flavour.jobs(emu)}
        env = flavour.env(emu, "k")
        _killed_apply(d, env, point)
        assert api.apply(d).exit_code == 0
        sent = [j.total for j in flavour.jobs(emu) if j.name not in before]
        assert sent == ([] if revert else [1]), sent
        got = answers(d)
        assert [r["key"] for r in got] == [f"r{n}" for n in range(ROWS)]
        assert [("edited" in str(r["text"])) for r in got] == \
            [n == 4 and not revert for n in range(ROWS)]
        assert main(["plan", str(d), "--detailed-exitcode"]) == 0


# --- follow-ups and edits while a job runs -----------------------------------------------------

def test_a_follow_up_of_a_batch_that_reused_sends_its_failures_alone(
        emu: Emulator, tmp_path: Path) -> None:
    """Four rows edited, sent with failures (retry_failed: 1): the follow-up sends the
    failed ones, not the reused ones, and every row ends answered under its own key."""
    d = project(tmp_path / "p", "hello", "  retry_failed: 1\n")
    assert api.apply(d).exit_code == 0
    edits = {n: f"edited {n}" for n in (1, 4, 7, 10)}
    rows(d, "hello", edits)
    emu.faults = Faults(request_error_rate=0.5, seed=11)
    before = remote_jobs(emu)
    assert main(["apply", str(d), "--no-wait", "--quiet"]) == 0
    emu.faults = Faults()       # the job keeps the faults it was created with; not the retry
    assert api.apply(d).exit_code == 0
    totals = sorted(j.total for j in new_jobs(emu, before))
    assert len(totals) == 2 and totals[1] == 4 and 0 < totals[0] < 4, totals
    got = answers(d)
    assert [r["key"] for r in got] == [f"r{n}" for n in range(ROWS)]
    assert [("edited" in str(r["text"])) for r in got] == [n in edits for n in range(ROWS)]
    assert not (d / "out/big.errors.jsonl").read_text().strip()
    assert entry(d).reused == ROWS - 4


def test_an_edit_reverted_while_its_job_runs_cancels_it_and_reuses(
        slow: Emulator, tmp_path: Path) -> None:
    """Row 3 edited and submitted (--no-wait); reverted before the job ends: the batch's every
    answer is in the store again, so nothing is sent, the running job is cancelled, and the
    outputs are the original answers."""
    emu = slow
    d = project(tmp_path / "p", "hello")
    assert main(["apply", str(d), "--no-wait", "--quiet"]) == 0
    finish_all(emu)
    assert api.apply(d).exit_code == 0
    first = answers(d)
    rows(d, "hello", {3: "edited"})
    before = remote_jobs(emu)
    assert main(["apply", str(d), "--no-wait", "--quiet"]) == 0
    [running] = new_jobs(emu, before)
    rows(d, "hello")
    assert api.apply(d).exit_code == 0
    assert answers(d) == first
    [after] = new_jobs(emu, before)
    assert after.name == running.name and after.state.value == "CANCELLED", after
    assert entry(d).reused == ROWS and not entry(d).shards
    assert main(["plan", str(d), "--detailed-exitcode"]) == 0


# --- the store damaged -------------------------------------------------------------------------

def test_a_damaged_reused_pack_says_what_to_do_and_that_leads_somewhere(
        emu: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The pack a running batch reuses from is damaged (its blocks, not its head) before the
    outputs are written. Apply cannot write them. It said "run plan to see what to do", but
    plan reads only whether packs exist, and showed a download that failed the same way at
    every apply: now apply says what to do, and doing it converges."""
    d = project(tmp_path / "p", "hello")
    assert api.apply(d).exit_code == 0
    [p1] = entry(d).packs
    rows(d, "hello", {7: "edited"})
    assert main(["apply", str(d), "--no-wait", "--quiet"]) == 0
    pack = d / ".runner/store/packs" / (p1.split(":")[1] + ".pack")
    data = bytearray(pack.read_bytes())
    data[-5] ^= 0xFF                        # a byte of its last block
    pack.write_bytes(bytes(data))
    capsys.readouterr()
    assert main(["apply", str(d), "--quiet"]) != 0
    said = "".join(capsys.readouterr())
    assert "runner forget big" in said and "run plan" not in said, said
    assert main(["forget", str(d), "big"]) == 0
    assert api.apply(d).exit_code == 0
    assert len(answers(d)) == ROWS and "edited" in str(answers(d)[7]["text"])


# --- what names a request ----------------------------------------------------------------------

ENDPOINT_MANIFEST = """\
apiVersion: batch-runner/v1
kind: Batch
metadata: {{name: {name}}}
spec:
  provider: openai
  model: gpt-4.1-mini
  endpoint: {endpoint}
  items:
    - {{id: cat, text: "a cat"}}
    - {{id: dog, text: "a dog"}}
  key: "{{{{ row.id }}}}"
  request:
    input: "{{{{ row.text }}}}"
  outputs:
    - path: out/{name}.jsonl
"""


@pytest.mark.xfail(strict=True, reason="the request hash is (provider, model, body): OpenAI's "
                   "endpoint is not in it, so a body sent to /v1/responses is reused for the "
                   "same body sent to /v1/embeddings; fixing it changes request hashes, which "
                   "the result store is keyed by")
def test_a_request_to_another_endpoint_is_not_reused(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """OpenAI's Responses and Embeddings requests may both be `{model, input}`: the same
    body sent to another endpoint is another request, with another kind of answer."""
    from providers_matrix import OPENAI
    with serve(OPENAI, tmp_path / "emu", monkeypatch, 0.0) as emu:
        d = tmp_path / "p"
        write_manifest(d, ENDPOINT_MANIFEST.format(name="said", endpoint="/v1/responses"),
                       "said.yaml")
        api.apply(d)
        write_manifest(d, ENDPOINT_MANIFEST.format(name="vec", endpoint="/v1/embeddings"),
                       "vec.yaml")
        before = {j.name for j in OPENAI.jobs(emu)}
        api.apply(d)
        assert [j.total for j in OPENAI.jobs(emu) if j.name not in before] == [2]


# --- what counts as a success ------------------------------------------------------------------

def test_an_answer_that_failed_its_declared_schema_is_sent_again_not_reused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Claude's answers stop at max_tokens, mid-document: each request fails (the answer is
    not the JSON its request declares). They were kept in the store as successes (the
    provider's word), so the next change reused them: a failed request never sent again, as
    `failed requests are never reused` promises."""
    from providers_matrix import ANTHROPIC
    from test_structured import TEXTS, request_of
    from test_structured import project as structured
    d = structured(tmp_path, ANTHROPIC, request_of(ANTHROPIC, max_tokens=5),
                   extra='  allowed_failures: "100%"\n')
    with serve(ANTHROPIC, tmp_path / "emu", monkeypatch, 0.0) as emu:
        assert api.apply(d).exit_code == 0
        assert len((d / "out/big.errors.jsonl").read_text().splitlines()) == len(TEXTS)
        with open(d / "data/rows.jsonl", "a") as f:      # one row appended: a change
            f.write(json.dumps({"n": len(TEXTS) + 1, "body": "Lost"}) + "\n")
        before = {j.name for j in ANTHROPIC.jobs(emu)}
        assert api.apply(d).exit_code == 0
        assert [j.total for j in ANTHROPIC.jobs(emu) if j.name not in before] == \
            [len(TEXTS) + 1]


# --- reuse: false ------------------------------------------------------------------------------

def test_reuse_turned_off_while_a_batch_that_reused_waits_to_be_sent(
        emu: Emulator, tmp_path: Path) -> None:
    """An apply killed after recording its intent (one edited request to send, the rest
    reused); the manifest then says `reuse: false`. The next apply must converge: it sends
    the recorded request, or the whole batch afresh, and writes every answer."""
    d = project(tmp_path / "p", "hello")
    assert api.apply(d).exit_code == 0
    rows(d, "hello", {7: "edited"})
    env = GEMINI.env(emu, "k")
    assert _killed_apply(d, env, "after-intent") < 0
    manifest = d / "m.yaml"
    manifest.write_text(manifest.read_text().replace(
        "  rows: data/rows.jsonl\n", "  rows: data/rows.jsonl\n  reuse: false\n"))
    assert api.apply(d).exit_code == 0
    got = answers(d)
    assert [("edited" in str(r["text"])) for r in got] == [n == 7 for n in range(ROWS)]
    assert main(["plan", str(d), "--detailed-exitcode"]) == 0
