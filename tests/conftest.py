from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import s3server

from runner.emulator import Emulator
from runner.providers.base import RemoteJob
from runner.providers.gemini import GeminiProvider

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "batches.d"


# What a developer's shell may hold that would reach a test: real keys and endpoints, proxies,
# the runner's own knobs. Every test starts without them (a test sets what it needs).
OUTSIDE = ("GEMINI_API_KEY", "GOOGLE_API_KEY", "GEMINI_BASE_URL", "OPENAI_API_KEY",
            "OPENAI_BASE_URL", "OPENAI_ORG_ID", "OPENAI_PROJECT_ID", "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "RUNNER_PRICES",
            "RUNNER_FAILPOINT", "RUNNER_STORE", "RUNNER_POLL_SECONDS", "RUNNER_EMULATOR_LATENCY",
            "RUNNER_INLINE_LIMIT", "RUNNER_UPLOAD_CHUNK", "HTTP_PROXY", "HTTPS_PROXY",
            "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy", "NO_PROXY", "no_proxy",
            "SSL_CERT_FILE", "SSL_CERT_DIR", "NO_COLOR")


# The cloud credential chains a store URL reaches (runner.store.remote): every variable of
# theirs goes, and the instance metadata services they would ask next are not asked, so a
# test of the store reaches only the S3 server it started (tests/s3server.py)
CLOUD = ("AWS_", "AZURE_", "GOOGLE_", "GCLOUD", "CLOUDSDK_", "GCE_", "BOTO_", "MSI_",
         "IDENTITY_ENDPOINT", "IDENTITY_HEADER")
NO_METADATA = {"AWS_EC2_METADATA_DISABLED": "true", "NO_GCE_CHECK": "True"}


@pytest.fixture(autouse=True)
def _no_outside(tmp_path_factory: pytest.TempPathFactory,
                monkeypatch: pytest.MonkeyPatch) -> None:
    """Keeps the real environment's keys, endpoints and home directory out of every test: a
    test never reaches a real provider with someone's key, nor a real bucket with their
    cloud credentials, nor reads or writes their home."""
    for name in OUTSIDE:
        monkeypatch.delenv(name, raising=False)
    for name in [n for n in os.environ if n.startswith(CLOUD)]:
        monkeypatch.delenv(name)
    for name, value in NO_METADATA.items():
        monkeypatch.setenv(name, value)
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))


@pytest.fixture
def examples(tmp_path: Path) -> Path:
    """A copy of the example manifest directory, without any local state or results."""
    dest = tmp_path / "batches.d"
    shutil.copytree(EXAMPLES, dest, ignore=shutil.ignore_patterns(
        ".runner", "results", "batches.lock"))
    return dest


def write_manifest(directory: Path, text: str, name: str = "m.yaml") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(text)
    return path


# The head of a Gemini batch named tickets, for a test's manifest to go on from `spec:`
TICKETS_HEAD = """\
apiVersion: batch-runner/v1
kind: Batch
metadata: {name: tickets}
spec:
  provider: gemini
  model: gemini-2.5-flash
"""

MINIMAL = """\
apiVersion: batch-runner/v1
kind: Batch
metadata: {name: tiny}
spec:
  provider: gemini
  model: gemini-2.5-flash
  items:
    - {id: a, q: "What is 1+1?"}
    - {id: b, q: "What is 2+2?"}
  key: "{{ row.id }}"
  request:
    contents: [{role: user, parts: [{text: "{{ row.q }}"}]}]
  outputs:
    - path: out/tiny.jsonl
"""

ROWS_MANIFEST = """\
apiVersion: batch-runner/v1
kind: Batch
metadata: {name: big}
spec:
  provider: gemini
  model: gemini-2.5-flash
  rows: data/rows.jsonl
  key: "r{{ row.n }}"
  request:
    contents: [{role: user, parts: [{text: "Item {{ row.n }}: {{ row.body }}"}]}]
  outputs:
    - path: out/big.jsonl
    - path: out/big.csv
      columns: {n: "{{ row.n }}", answer: "{{ text }}"}
"""


def write_rows(directory: Path, rows: int, body: str) -> None:
    """ROWS_MANIFEST's data file: `rows` rows {"n", "body"}."""
    (directory / "data").mkdir(parents=True, exist_ok=True)
    with open(directory / "data/rows.jsonl", "w") as f:
        for n in range(rows):
            f.write(json.dumps({"n": n, "body": body}) + "\n")


def _serve(directory: Path, monkeypatch: pytest.MonkeyPatch, latency: float
           ) -> Iterator[Emulator]:
    """An emulator that the runner reaches through the documented environment."""
    with Emulator(directory, latency=latency) as e:
        monkeypatch.setenv("GEMINI_API_KEY", "k")
        monkeypatch.setenv("GEMINI_BASE_URL", e.base_url)
        monkeypatch.setenv("RUNNER_POLL_SECONDS", "0.05")
        yield e


@pytest.fixture
def emu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    """An emulator whose jobs take 0.3 s."""
    yield from _serve(tmp_path / "emu", monkeypatch, 0.3)


@pytest.fixture
def slow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    """An emulator whose jobs run for a minute of its clock (advanced by `finish_all`)."""
    yield from _serve(tmp_path / "slow", monkeypatch, 60.0)


def finish_all(emu: Emulator) -> None:
    """Moves the emulator's clock past every job's latency."""
    httpx.post(f"{emu.base_url}/_emulator/clock", json={"advance": 120}).raise_for_status()


@pytest.fixture
def proj(tmp_path: Path) -> Path:
    """A manifest directory holding MINIMAL."""
    d = tmp_path / "proj"
    write_manifest(d, MINIMAL)
    return d


def remote_jobs(emu: Emulator) -> list[RemoteJob]:
    """Every job on the emulator, as the provider lists them."""
    p = GeminiProvider("k", emu.base_url)
    try:
        return list(p.list_jobs())
    finally:
        p.close()


# -- the result store's tests: a directory, or moto's S3 server ------------------------------

@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server in a process of its own, one for a test module's tests."""
    with s3server.running() as endpoint:
        yield endpoint


@pytest.fixture(params=["path", "s3"])
def location(request: pytest.FixtureRequest, tmp_path: Path,
             monkeypatch: pytest.MonkeyPatch) -> str:
    """Where an empty store is: a directory, or a fresh prefix of a bucket on the server
    (the AWS_* variables set for this process and those it starts)."""
    if request.param == "path":
        return str(tmp_path / "store")
    return s3server.fresh_prefix(request.getfixturevalue("s3_endpoint"), "store-tests",
                                 monkeypatch.setenv)
