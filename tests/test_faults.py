"""Provider faults at high rates, all at once: apply still converges, with no duplicate job
and no lost result, for each provider (tests/providers_matrix.py)."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import httpx
from conftest import write_manifest
from providers_matrix import PROVIDERS, Flavour

from runner import lockfile
from runner.apply import Options, apply_directory
from runner.emulator import Emulator, Faults
from runner.providers.base import Provider
from runner.providers.clients import Clients
from runner.providers.gemini import GeminiProvider
from runner.retry import Backoff

MANIFEST = """\
apiVersion: batch-runner/v1
kind: Batch
metadata: {name: NAME}
spec:
  provider: gemini
  model: gemini-2.5-flash
  rows: data/NAME.jsonl
  key: "{{ row.id }}"
  request:
    contents: [{role: user, parts: [{text: "Question {{ row.id }}: {{ row.q }}"}]}]
  outputs:
    - path: out/NAME.jsonl
"""


def project(root: Path, sizes: dict[str, int], flavour: Flavour,
            split: dict[str, int] | None = None) -> Path:
    """A batch of `n` rows for each name in `sizes`, those in `split` cut into jobs of at
    most that many requests."""
    d = root / "proj"
    (d / "data").mkdir(parents=True)
    for name, n in sizes.items():
        manifest = MANIFEST.replace("NAME", name)
        if split and name in split:
            manifest = manifest.replace("  rows:", f"  max_requests: {split[name]}\n  rows:")
        write_manifest(d, flavour.adapt(manifest), f"{name}.yaml")
        with open(d / f"data/{name}.jsonl", "w") as f:
            for i in range(n):
                f.write(json.dumps({"id": f"{name}-{i}", "q": "x" * (i % 50)}) + "\n")
    return d


def fast_provider(emu: Emulator, flavour: Flavour, **kw: object) -> Provider:
    """The provider's client, retrying at once; Gemini's sends its biggest batch through a
    resumable upload in small chunks (OpenAI uploads every batch, Anthropic none)."""
    if flavour.name == "gemini":
        kw = {"inline_limit": 12_000, "chunk_size": 8192, **kw}
    return flavour.client(emu, "fault-key", max_attempts=30,
                          backoff=Backoff(0.01, 0.05, rng=random.Random(1)), **kw)


@PROVIDERS
def test_apply_converges_under_every_fault_at_once(flavour: Flavour, tmp_path: Path) -> None:
    sizes = {"alpha": 300, "beta": 40, "gamma": 5}
    # alpha in three jobs of 100: Anthropic's jobs carry no tag, and are told apart by size
    d = project(tmp_path, sizes, flavour, split={"alpha": 100})
    faults = Faults(rate_429=0.2, retry_after=0.01, rate_503=0.15, rate_reset=0.1,
                    drop_after_create=0.5, slow=0.01, request_error_rate=0.1,
                    shuffle_results=True, seed=7)
    with Emulator(tmp_path / "emu", latency=0.3, faults=faults) as emu:
        provider = fast_provider(emu, flavour)
        # waits cut short: the emulator lists a job as soon as it exists, so the looks for
        # a create whose answer was lost need not wait the seconds a real provider may take
        options = Options(poll_base=0.02, poll_cap=0.1, timeout=120,
                          sleep=lambda seconds: time.sleep(min(seconds, 0.05)))
        # an apply may give up on a create it could not confirm (half the creates' answers are
        # dropped); how many do depends on every call a run makes, which draws on the seeded
        # dice: 5 applies in a row have been seen to
        for _ in range(10):
            try:
                outcome = apply_directory(d, Clients.of(provider), options)
            except Exception:   # noqa: BLE001 - the next run must pick up where this one died
                continue
            if not outcome.pending and not outcome.failed:
                break
        emu.faults = Faults()
        tags = flavour.tags(emu, d)
        provider.close()
    assert len(tags) == 5 and set(tags.values()) == {1}, tags
    lock = lockfile.load(d / "batches.lock")
    for name, n in sizes.items():
        entry = lock.batches[name]
        assert entry.state == "SUCCEEDED"
        ok = [json.loads(x)["key"] for x in (d / f"out/{name}.jsonl").read_text().splitlines()]
        failed = [json.loads(x)["key"]
                  for x in (d / f"out/{name}.errors.jsonl").read_text().splitlines()]
        assert sorted(ok + failed) == sorted(f"{name}-{i}" for i in range(n))
        assert ok == sorted(ok, key=lambda k: int(k.rsplit("-", 1)[1])), "not in input order"
        assert entry.counts == {"succeeded": len(ok), "failed": len(failed)}
    total_failed = sum(lock.batches[n].counts["failed"] for n in sizes)
    assert 0 < total_failed < 0.25 * sum(sizes.values())


def test_upload_resumes_from_the_server_offset_and_download_retries(tmp_path: Path) -> None:
    """Chunks lost to resets and 503s are re-sent from the offset the server reports (one
    upload session, never restarted); an interrupted download resumes to identical bytes."""
    data = tmp_path / "input.jsonl"
    data.write_bytes(b"".join(json.dumps({"key": f"k{i}", "request": {"n": i}}).encode() + b"\n"
                             for i in range(6000)))
    with Emulator(tmp_path / "emu", latency=0.1) as emu:
        provider = GeminiProvider("fault-key", emu.base_url, max_attempts=30, chunk_size=16384,
                                  backoff=Backoff(0.01, 0.05, rng=random.Random(1)))
        emu.faults = Faults(rate_reset=0.25, rate_503=0.2, seed=11)
        name = provider.upload_file(data, "resumed")
        back = tmp_path / "back.jsonl"
        provider.download_file(name, back)
        emu.faults = Faults()
        stats = httpx.get(f"{emu.base_url}/_emulator/stats").json()
        provider.close()
    assert back.read_bytes() == data.read_bytes()
    assert stats["uploads_started"] == 1
    assert stats["faults_reset"] + stats["faults_503"] > 5


@PROVIDERS
def test_retries_honour_retry_after_and_back_off_with_a_cap(flavour: Flavour,
                                                            tmp_path: Path) -> None:
    with Emulator(tmp_path / "emu", latency=0.1) as emu:
        slept: list[float] = []

        def sleep(seconds: float) -> None:      # recorded, not slept; the fault ends after 4
            slept.append(seconds)
            if len(slept) == 4:
                emu.faults = Faults()

        # 5 s: the most Anthropic's emulator says (its SDK waits whatever it is told)
        emu.faults = Faults(rate_429=1.0, retry_after=5)
        provider = flavour.client(emu, sleep=sleep,
                                  backoff=Backoff(0.5, 4.0, rng=random.Random(2)))
        assert list(provider.list_jobs()) == []
        assert len(slept) == 4 and all(s >= 5 for s in slept)     # Retry-After wins
        slept.clear()
        emu.faults = Faults(rate_503=1.0)
        assert list(provider.list_jobs()) == []
        provider.close()
    # capped exponential with jitter: within [ceiling/2, ceiling], ceiling 0.5, 1, 2, 4, 4...
    ceilings = [0.5, 1.0, 2.0, 4.0]
    assert all(c / 2 <= s <= c for s, c in zip(slept, ceilings))
