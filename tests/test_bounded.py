"""Bounded whatever the provider does: a list that pages for ever, an answer that trickles in
a byte every few seconds, a huge Retry-After, a long upload at a steady error rate. Each ends
in one line and exit 1 (or succeeds), in seconds, against the emulator over real HTTP."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import httpx
import pytest

from runner import api
from runner.cli import main
from runner.emulator import Emulator, Faults
from runner.errors import ProviderError
from runner.providers.gemini import GeminiProvider
from runner.retry import Backoff


def stats(emu: Emulator) -> dict[str, int]:
    answer: dict[str, int] = httpx.get(f"{emu.base_url}/_emulator/stats").json()
    return answer


def served_after_the_model_list(proj: Path, emu: Emulator) -> int:
    """Requests served so far, once plan's check of the model has fetched the model list and
    kept it (a day): what follows counts only the calls the test is about."""
    assert main(["plan", str(proj)]) == 0
    return stats(emu)["requests_served"]


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    """What the CLI printed on stderr, which must be one `error:` line."""
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("error: "), err
    return err


def test_a_page_token_that_comes_back_stops_the_walk(proj: Path, emu: Emulator,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    before = served_after_the_model_list(proj, emu)
    capsys.readouterr()
    emu.faults = Faults(repeat_page_token=True)
    assert main(["plan", str(proj)]) == 1
    assert one_error_line(capsys) == (
        "error: list batches: the provider sent the same page token again on page 2; stopping "
        "(its paging would never end)")
    assert stats(emu)["requests_served"] - before == 2


def test_a_list_that_never_ends_stops_at_the_page_cap(proj: Path, emu: Emulator,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """Every page names a new next page: the walk stops after 1,000 pages (100,000 jobs)."""
    before = served_after_the_model_list(proj, emu)
    capsys.readouterr()
    emu.faults = Faults(endless_pages=True)
    started = time.monotonic()
    assert main(["plan", str(proj)]) == 1
    elapsed = time.monotonic() - started
    assert one_error_line(capsys) == (
        "error: list batches: still more after 1000 pages; stopping (the provider's paging "
        "does not end)")
    assert stats(emu)["requests_served"] - before == 1000
    assert elapsed < 30


def test_a_trickling_answer_is_cut_at_the_call_deadline(proj: Path, emu: Emulator) -> None:
    """One byte every half second never trips a read timeout; the call's own deadline ends
    it (120 s by default, 1.5 s here)."""
    emu.faults = Faults(trickle=0.5)
    provider = GeminiProvider("k", emu.base_url, call_timeout=1.5)
    started = time.monotonic()
    with pytest.raises(ProviderError, match=r"^list batches \(page 1\): no complete answer in "
                                            r"time \(the provider is too slow or stalled\)"):
        api.plan(proj, provider=provider)
    provider.close()
    assert 1.5 <= time.monotonic() - started < 4


def test_apply_timeout_stops_a_trickle_within_seconds(proj: Path, emu: Emulator,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """--timeout bounds the provider's calls too: a byte every 5 s, cut at 2 s."""
    emu.faults = Faults(trickle=5)
    started = time.monotonic()
    assert main(["apply", str(proj), "--timeout", "2"]) == 1
    elapsed = time.monotonic() - started
    assert one_error_line(capsys) == (
        "error: list batches (page 1): timed out at the run's time limit; run apply again to "
        "resume")
    assert 2 <= elapsed < 5


def test_apply_timeout_cuts_a_stalled_poll_and_the_next_apply_collects(
        proj: Path, emu: Emulator, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["apply", str(proj), "--no-wait"]) == 0
    emu.faults = Faults(trickle=5)
    started = time.monotonic()
    assert main(["apply", str(proj), "--timeout", "2"]) == 1
    assert time.monotonic() - started < 5
    assert capsys.readouterr().err.strip().endswith(
        ": timed out at the run's time limit; run apply again to resume")
    emu.faults = Faults()
    assert main(["apply", str(proj)]) == 0
    assert len((proj / "out/tiny.jsonl").read_text().splitlines()) == 2


def test_a_trickling_download_is_cut_by_its_minimum_rate(tmp_path: Path, emu: Emulator) -> None:
    """A transfer may take as long as it keeps moving; a trickle is cut once it falls behind
    `call_timeout` plus its bytes at `min_rate`."""
    data = tmp_path / "in.jsonl"
    data.write_bytes(b'{"key": "a", "request": {}}\n' * 200)
    provider = GeminiProvider("k", emu.base_url, call_timeout=1, min_rate=1000)
    name = provider.upload_file(data, "file-to-fetch")
    provider.download_file(name, tmp_path / "whole.jsonl")     # healthy: any speed will do
    assert (tmp_path / "whole.jsonl").read_bytes() == data.read_bytes()
    emu.faults = Faults(trickle=0.2)
    started = time.monotonic()
    with pytest.raises(ProviderError, match=rf"^download of {name}: no complete answer in time"):
        provider.download_file(name, tmp_path / "back.jsonl")
    provider.close()
    assert time.monotonic() - started < 3


def test_retry_after_is_honoured_up_to_five_minutes(tmp_path: Path, emu: Emulator) -> None:
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        if len(slept) == 2:
            emu.faults = Faults()

    emu.faults = Faults(rate_429=1.0, retry_after=86_400)
    provider = GeminiProvider("k", emu.base_url, sleep=sleep)
    assert list(provider.list_jobs()) == []
    provider.close()
    assert slept == [300.0, 300.0]


def test_upload_counts_failures_per_chunk_not_per_file(tmp_path: Path, emu: Emulator) -> None:
    """200 chunks at a 6 % error rate fail far more than 8 times in all, yet never 8 times in
    a row: the upload completes, in one session, byte for byte."""
    data = tmp_path / "input.jsonl"
    data.write_bytes(b"".join(json.dumps({"key": f"k{i}", "request": {"n": i}}).encode() + b"\n"
                             for i in range(5000)))
    provider = GeminiProvider("k", emu.base_url, chunk_size=1024,
                              backoff=Backoff(0.001, 0.002, rng=random.Random(1)))
    assert 190 < data.stat().st_size / 1024 < 210
    emu.faults = Faults(rate_503=0.06, seed=5)
    name = provider.upload_file(data, "big-0123456789ab")
    emu.faults = Faults()
    provider.download_file(name, tmp_path / "back.jsonl")
    provider.close()
    assert (tmp_path / "back.jsonl").read_bytes() == data.read_bytes()
    counts = stats(emu)
    assert counts["faults_503"] > 8 and counts["uploads_started"] == 1


def test_an_upload_stuck_on_one_chunk_names_the_batch(tmp_path: Path, emu: Emulator) -> None:
    data = tmp_path / "input.jsonl"
    data.write_bytes(b"x" * 5000)
    provider = GeminiProvider("k", emu.base_url, chunk_size=1024,
                              backoff=Backoff(0.001, 0.002, rng=random.Random(1)))

    def fail_from_now(sent: int, total: int) -> None:
        emu.faults = Faults(rate_503=1.0)

    with pytest.raises(ProviderError, match=r"^upload of tiny-0123456789ab failed: 8 attempts "
                                            r"in a row without progress at byte 1,024 of 5,000$"):
        provider.upload_file(data, "tiny-0123456789ab", on_progress=fail_from_now)
    provider.close()


def test_an_answer_is_read_decoded_within_a_size_limit() -> None:
    """A small compressed answer that decodes to gigabytes (or an endless one) stops at the
    limit instead of filling memory; an ordinary compressed answer reads as httpx would."""
    import gzip

    from runner.providers.transport import TooLarge, read_within, receive

    bomb = gzip.compress(b" " * (8 << 20))             # 8 MiB of spaces in about 8 KB
    ok = gzip.compress(b'{"name": "batches/x"}')

    def handler(request: httpx.Request) -> httpx.Response:
        body = bomb if request.url.path == "/bomb" else ok
        return httpx.Response(200, headers={"content-encoding": "gzip"}, content=body)

    client = httpx.Client(transport=httpx.MockTransport(handler), base_url="http://127.0.0.1")
    deadline = time.monotonic() + 30
    with client.stream("GET", "/bomb") as resp, pytest.raises(TooLarge):
        read_within(resp, deadline, limit=1 << 20)
    assert receive(client, "GET", "/ok", deadline=deadline, read=5).json() == {
        "name": "batches/x"}
