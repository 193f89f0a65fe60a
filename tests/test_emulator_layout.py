"""The emulator's structure: what it may import, how providers mount, what it keeps on disk.

The emulator is shared machinery plus one package per provider (runner/emulator/gemini/ at the
root, runner/emulator/openai/ under /openai/v1, runner/emulator/anthropic/ under /anthropic),
each mounted under a path prefix. These tests hold the lines that structure depends on: the
emulator imports nothing from the runner core, the shared machinery imports no provider, a
provider under a prefix gets the same keys-faults-admin treatment as Gemini at the root, and
a state directory in the persisted format loads as it always has.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

import runner.emulator
import runner.emulator.openai
from runner.emulator import Emulator
from runner.emulator.anthropic.hostile import WRONG as ANTHROPIC_WRONG
from runner.emulator.anthropic.hostile import WRONG_IN_RESULTS as ANTHROPIC_WRONG_IN_RESULTS
from runner.emulator.emulator import MOUNTS
from runner.emulator.faults import WRONG_TYPES
from runner.emulator.gemini.hostile import WRONG
from runner.emulator.hostile import Shapes
from runner.emulator.messages import Reply, Request
from runner.emulator.openai.hostile import WRONG as OPENAI_WRONG
from runner.emulator.openai.hostile import WRONG_IN_RESULTS
from runner.emulator.provider import Provider, Route, Shared, route
from runner.emulator.store import Record
from runner.emulator.wire import ApiError

EMULATOR = Path(runner.emulator.__file__).parent
KEY = {"x-goog-api-key": "test-key"}


def imported_modules(path: Path) -> set[str]:
    """The absolute names of the `runner` modules a source file imports, anywhere in it."""
    package = "runner." + ".".join(path.relative_to(EMULATOR.parent).with_suffix("").parts[:-1])
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return {name for name in names if name == "runner" or name.startswith("runner.")}


def test_the_emulator_imports_nothing_from_the_runner_core() -> None:
    """Statically: no module of the emulator names a runner module outside it."""
    for path in sorted(EMULATOR.rglob("*.py")):
        outside = {
            name for name in imported_modules(path) if not name.startswith("runner.emulator")
        }
        assert not outside, f"{path.relative_to(EMULATOR.parent)} imports {sorted(outside)}"


def test_the_emulator_runs_with_no_runner_core_loaded(tmp_path: Path) -> None:
    """At run time, in a fresh interpreter whose `runner` package is an empty shell (so that
    runner/__init__.py, which loads the core, never runs): import every emulator module,
    serve a job's life, and find no core module loaded."""
    script = textwrap.dedent(
        """
        import importlib, importlib.util, json, pkgutil, sys, types
        from pathlib import Path
        spec = importlib.util.find_spec("runner")
        shell = types.ModuleType("runner")
        shell.__path__ = list(spec.submodule_search_locations)
        sys.modules["runner"] = shell
        import httpx
        import runner.emulator
        for info in pkgutil.walk_packages(runner.emulator.__path__, "runner.emulator."):
            importlib.import_module(info.name)
        from runner.emulator import Emulator
        body = {"batch": {"inputConfig": {"requests": {"requests": [
            {"request": {"contents": [{"parts": [{"text": "hi"}]}]}}]}}}}
        line = {"custom_id": "a", "method": "POST", "url": "/v1/chat/completions",
                "body": {"model": "m", "messages": [{"role": "user", "content": "hi"}]}}
        claude = {"requests": [{"custom_id": "a", "params": {
            "model": "m", "max_tokens": 9, "messages": [{"role": "user", "content": "hi"}]}}]}
        with Emulator(Path(sys.argv[1]), latency=0) as emu:
            with httpx.Client(base_url=emu.base_url, headers={"x-goog-api-key": "k"}) as http:
                job = http.post("/v1beta/models/m:batchGenerateContent", json=body).json()
                assert http.get(f"/v1beta/{job['name']}").json()["done"]
                assert http.get("/_emulator/stats").json()["batches"] == 1
            with httpx.Client(base_url=emu.base_url + "/openai/v1",
                              headers={"Authorization": "Bearer k"}) as http:
                file = http.post("/files", data={"purpose": "batch"},
                                 files={"file": ("in.jsonl", json.dumps(line))}).json()
                batch = http.post("/batches", json={"input_file_id": file["id"],
                    "endpoint": "/v1/chat/completions", "completion_window": "24h"}).json()
                assert http.get(f"/batches/{batch['id']}").json()["status"] == "completed"
            headers = {"x-api-key": "k", "anthropic-version": "2023-06-01"}
            with httpx.Client(base_url=emu.base_url + "/anthropic", headers=headers) as http:
                made = http.post("/v1/messages/batches", json=claude).json()
                ended = http.get(f"/v1/messages/batches/{made['id']}").json()
                assert http.get(ended["results_url"]).text.count("succeeded") == 1
        print(json.dumps(sorted(m for m in sys.modules if m.startswith("runner."))))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "state")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    loaded = json.loads(done.stdout)
    assert {"runner.emulator.gemini.api", "runner.emulator.openai.api",
            "runner.emulator.anthropic.api"} <= set(loaded)
    assert [name for name in loaded if not name.startswith("runner.emulator")] == []


def test_the_shared_machinery_imports_no_provider() -> None:
    """Only the composition root (emulator.py, which mounts the providers) names one."""
    for path in sorted(EMULATOR.glob("*.py")):
        if path.name == "emulator.py":
            continue
        providers = {name for name in imported_modules(path) if name.startswith(
            ("runner.emulator.gemini", "runner.emulator.openai", "runner.emulator.anthropic"))}
        assert not providers, f"{path.name} imports {sorted(providers)}"


def test_gemini_gives_every_wrong_type_a_field() -> None:
    assert sorted(WRONG) == sorted(WRONG_TYPES)


def test_openai_gives_every_wrong_type_a_field_in_an_answer_or_a_result() -> None:
    assert not set(OPENAI_WRONG) & set(WRONG_IN_RESULTS)
    assert sorted([*OPENAI_WRONG, *WRONG_IN_RESULTS]) == sorted(WRONG_TYPES)


def test_openai_is_mounted_where_its_sdk_base_url_points() -> None:
    assert MOUNTS["/openai/v1"] is runner.emulator.openai.provider


def test_anthropic_gives_every_wrong_type_but_file_a_field() -> None:
    assert not set(ANTHROPIC_WRONG) & set(ANTHROPIC_WRONG_IN_RESULTS)
    assert sorted([*ANTHROPIC_WRONG, *ANTHROPIC_WRONG_IN_RESULTS, "file"]) == \
        sorted(WRONG_TYPES)


def test_every_provider_package_is_mounted_and_shipped() -> None:
    """A provider package that is not mounted serves nothing; one missing from pyproject's
    package list is left out of an installed runner."""
    packages = [path.name for path in EMULATOR.iterdir() if (path / "__init__.py").is_file()]
    mounted = {factory.__module__.split(".")[2] for factory in MOUNTS.values()}
    assert set(packages) == mounted
    pyproject = (EMULATOR.parent.parent / "pyproject.toml").read_text()
    for name in packages:
        assert f'"runner.emulator.{name}"' in pyproject


# A provider under a prefix.


@dataclasses.dataclass(frozen=True)
class Thing(Record):
    id: str


class Toy:
    """The least a provider can be: keyed routes, its own error shape, its own records."""

    def __init__(self, shared: Shared) -> None:
        self._things = shared.store.table("toy/things", Thing.from_json)
        self._routes = (
            route("GET", "/things", self._where),
            route("POST", "/things", self._create),
        )

    @property
    def routes(self) -> Sequence[Route]:
        return self._routes

    @property
    def shapes(self) -> Shapes:
        return Shapes(
            is_page=lambda body: False,
            next_page=lambda body, token: None,
            page_token="after",
            api_key=lambda request: request.headers.get("x-toy-key", ""),
            messages=lambda body: iter(()),
            wrong_types={},
        )

    def authorize(self, request: Request) -> None:
        if not request.headers.get("x-toy-key"):
            raise ApiError("PERMISSION_DENIED", "no toy key")

    def error_reply(self, error: ApiError) -> Reply:
        return Reply.json({"toy_error": error.message}, error.http_status, error.headers)

    def rate_limited(self, retry_after: float) -> ApiError:
        return ApiError("RESOURCE_EXHAUSTED", "toy 429")

    def unavailable(self) -> ApiError:
        return ApiError("UNAVAILABLE", "toy 503")

    def holdings(self) -> dict[str, int]:
        return {"toy_things": len(self._things.all())}

    def close(self) -> None:
        pass

    @staticmethod
    def _where(request: Request, params: dict[str, str]) -> Reply:
        return Reply.json({"path": request.path, "base_url": request.base_url})

    def _create(self, request: Request, params: dict[str, str]) -> Reply:
        thing = Thing(self._things.new_id(8))
        self._things.put(thing)
        return Reply.json(thing.to_json())


def toy(shared: Shared) -> Provider:
    return Toy(shared)


@pytest.fixture
def mounted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    monkeypatch.setitem(MOUNTS, "/toy/v1", toy)
    with Emulator(tmp_path / "state", latency=60) as emulator:
        yield emulator


def test_a_provider_under_a_prefix_sees_itself_at_the_root(
    mounted: Emulator, tmp_path: Path
) -> None:
    base, state = mounted.base_url, tmp_path / "state"
    things = httpx.get(f"{base}/toy/v1/things", headers={"x-toy-key": "k"})
    assert things.json() == {"path": "/things", "base_url": f"{base}/toy/v1"}
    unkeyed = httpx.get(f"{base}/toy/v1/things")
    assert unkeyed.status_code == 403 and unkeyed.json() == {"toy_error": "no toy key"}
    missing = httpx.get(f"{base}/toy/v1/nothing", headers={"x-toy-key": "k"})
    assert missing.status_code == 404 and "toy_error" in missing.json()
    # Gemini still answers at the root, and a path that only looks like the prefix is its.
    assert httpx.get(f"{base}/v1beta/batches", headers=KEY).json() == {"operations": []}
    lookalike = httpx.get(f"{base}/toy/v1things", headers=KEY)
    assert lookalike.status_code == 404 and lookalike.json()["error"]["status"] == "NOT_FOUND"
    # Its records live in the shared store, beside Gemini's, and count in the shared stats.
    made = httpx.post(f"{base}/toy/v1/things", headers={"x-toy-key": "k"}).json()
    assert (state / "toy/things" / f"{made['id']}.json").is_file()
    stats = httpx.get(f"{base}/_emulator/stats").json()
    assert stats["toy_things"] == 1 and stats["batches"] == 0


def test_a_provider_under_a_prefix_suffers_the_shared_faults(mounted: Emulator) -> None:
    base = mounted.base_url
    admin = httpx.Client(base_url=base)
    admin.post("/_emulator/faults", json={"rate_503": 1.0})
    down = httpx.get(f"{base}/toy/v1/things", headers={"x-toy-key": "k"})
    assert down.status_code == 503 and down.json() == {"toy_error": "toy 503"}
    admin.post("/_emulator/faults", json={"rate_503": 0.0, "rate_429": 1.0, "retry_after": 2})
    limited = httpx.get(f"{base}/toy/v1/things", headers={"x-toy-key": "k"})
    assert limited.status_code == 429 and limited.json() == {"toy_error": "toy 429"}
    admin.post("/_emulator/faults", json={"rate_429": 0.0, "trickle": 0.001})
    slow = httpx.get(f"{base}/toy/v1/things", headers={"x-toy-key": "k"})
    assert slow.json()["path"] == "/things"
    stats = admin.get("/_emulator/stats").json()
    assert stats["faults_503"] == 1 and stats["faults_429"] == 1
    assert stats["requests_served"] == 3
    admin.close()


# The persisted format.


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_a_state_directory_in_the_persisted_format_loads(tmp_path: Path) -> None:
    """A state directory as the emulator has always written it (these files are copied from
    one) loads unchanged: records, inline results, blobs, an upload under way, the clock."""
    state = tmp_path / "state"
    now = time.time()
    settled: dict[str, Any] = {
        "create_time": now - 100, "display_name": "j", "end_time": now - 40, "error": None,
        "error_rate": 0.0, "failed": 1, "id": "b1", "input_file": None, "latency": 60.0,
        "model": "gemini-2.5-flash", "outcome": "BATCH_STATE_SUCCEEDED", "output_file": None,
        "priority": 0, "request_count": 2, "seed": 0, "shuffle": False,
        "state": "BATCH_STATE_SUCCEEDED", "succeeded": 1,
    }
    pending = {**settled, "id": "b2", "create_time": now, "end_time": None, "state": None,
               "failed": 0, "succeeded": 0}
    write(state / "batches/b1.json", json.dumps(settled, indent=1, sort_keys=True))
    write(state / "batches/b2.json", json.dumps(pending, indent=1, sort_keys=True))
    inline = [{"response": {"candidates": []}, "metadata": {"key": "k0"}},
              {"error": {"code": 3, "message": "no", "status": "INVALID_ARGUMENT"},
               "metadata": {"key": "k1"}}]
    write(state / "inline/b1.responses.jsonl", "".join(json.dumps(x) + "\n" for x in inline))
    file = {"create_time": now - 200, "display_name": "in", "id": "f1",
            "mime_type": "application/jsonl", "sha256": "abc=", "size_bytes": 5,
            "source": "UPLOADED"}
    write(state / "files/f1.json", json.dumps(file, indent=1, sort_keys=True))
    write(state / "blobs/f1", "hello")
    session = {"create_time": now - 10, "display_name": "", "file_id": "f2", "id": "u1",
               "mime_type": "application/jsonl", "state": "active", "total": 10}
    write(state / "uploads/u1.json", json.dumps(session, indent=1, sort_keys=True))
    write(state / "uploads/u1.part", "12345")
    write(state / "clock.json", json.dumps({"offset": 0.0}))
    with Emulator(state, latency=60) as emu, httpx.Client(base_url=emu.base_url,
                                                          headers=KEY) as http:
        done = http.get("/v1beta/batches/b1").json()
        assert done["metadata"]["state"] == "BATCH_STATE_SUCCEEDED"
        assert done["response"]["inlinedResponses"]["inlinedResponses"] == inline
        assert done["metadata"]["batchStats"] == {
            "requestCount": "2", "successfulRequestCount": "1", "failedRequestCount": "1"}
        assert http.get("/v1beta/batches/b2").json()["metadata"]["state"] == \
            "BATCH_STATE_PENDING"
        assert http.get("/v1beta/files/f1").json()["sizeBytes"] == "5"
        assert http.get("/v1beta/files/f1:download", params={"alt": "media"}).text == "hello"
        query = httpx.post(f"{emu.base_url}/upload/v1beta/files?upload_id=u1",
                           headers={"X-Goog-Upload-Command": "query"})
        assert query.headers["x-goog-upload-size-received"] == "5"
        stats = http.get("/_emulator/stats").json()
        assert (stats["batches"], stats["files"]) == (2, 1)


def test_an_openai_state_directory_in_the_persisted_format_loads(tmp_path: Path) -> None:
    """OpenAI's records under openai/ (as the emulator writes them) load unchanged: a settled
    batch and its result file, a batch still running on its own input, an upload's part."""
    state = tmp_path / "state"
    base = float(int(time.time()) - 1000)
    done_id, running_id = f"batch_{int(base):08x}00000{'a' * 19}", \
        f"batch_{int(base) + 1:08x}00000{'b' * 19}"
    input_id, output_id = "file-0" + "1" * 21, "file-0" + "2" * 21
    line = {"custom_id": "c1", "method": "POST", "url": "/v1/chat/completions",
            "body": {"model": "gpt-x", "messages": [{"role": "user", "content": "hi"}]}}
    settled: dict[str, Any] = {
        "cancelling_at": None, "completed": 1, "completion_window": "24h", "created_at": base,
        "endpoint": "/v1/chat/completions", "ended_at": base + 60, "error_file_id": None,
        "error_rate": 0.0, "errors": None, "failed": 0, "id": done_id,
        "input_file_id": input_id, "latency": 60.0, "metadata": {"k": "v"}, "model": "gpt-x",
        "outcome": "completed", "output_expires_after": None, "output_file_id": output_id,
        "planned_failures": 0, "request_count": 1, "seed": 0, "shuffle": False,
        "status": "completed", "usage": None,
    }
    running = {**settled, "id": running_id, "created_at": base + 1, "latency": 2000.0,
               "status": None, "ended_at": None, "completed": 0, "output_file_id": None,
               "metadata": None}
    write(state / f"openai/batches/{done_id}.json", json.dumps(settled, indent=1, sort_keys=True))
    write(state / f"openai/batches/{running_id}.json", json.dumps(running, indent=1,
                                                                  sort_keys=True))
    write(state / f"openai/inputs/{running_id}.jsonl", json.dumps(line) + "\n")
    for file_id, purpose, text in ((input_id, "batch", json.dumps(line) + "\n"),
                                   (output_id, "batch_output", '{"custom_id": "c1"}\n')):
        record = {"created_at": base, "expires_at": None, "filename": f"{file_id}.jsonl",
                  "id": file_id, "purpose": purpose, "size": len(text)}
        write(state / f"openai/files/{file_id}.json", json.dumps(record, indent=1,
                                                                 sort_keys=True))
        write(state / f"openai/blobs/{file_id}", text)
    upload = {"created_at": base + 999, "expires_at": base + 999 + 3600,
              "file_expires_after": None, "file_id": None, "filename": "u.jsonl", "id": "upload_1",
              "mime_type": "application/jsonl", "purpose": "batch", "size": 5, "status": "pending"}
    write(state / "openai/uploads/upload_1.json", json.dumps(upload, indent=1, sort_keys=True))
    part = {"created_at": base + 999, "id": "part_1", "size": 5, "upload_id": "upload_1"}
    write(state / "openai/parts/part_1.json", json.dumps(part, indent=1, sort_keys=True))
    write(state / "openai/parts/part_1.part", "12345")
    with Emulator(state, latency=60) as emu, httpx.Client(
            base_url=emu.base_url + "/openai/v1", headers={"Authorization": "Bearer k"}) as http:
        done = http.get(f"/batches/{done_id}").json()
        assert (done["status"], done["metadata"], done["output_file_id"]) == \
            ("completed", {"k": "v"}, output_id)
        assert done["request_counts"] == {"total": 1, "completed": 1, "failed": 0}
        assert http.get(f"/files/{output_id}/content").text == '{"custom_id": "c1"}\n'
        assert http.get(f"/batches/{running_id}").json()["status"] == "in_progress"
        assert [b["id"] for b in http.get("/batches").json()["data"]] == [running_id, done_id]
        completed = http.post("/uploads/upload_1/complete", json={"part_ids": ["part_1"]})
        assert completed.json()["file"]["bytes"] == 5
        stats = http.get(emu.base_url + "/_emulator/stats").json()
        assert (stats["openai_batches"], stats["openai_files"]) == (2, 3)


def test_an_anthropic_state_directory_in_the_persisted_format_loads(tmp_path: Path) -> None:
    """Anthropic's folder as the emulator writes it (runner.emulator.anthropic.disk): a
    settled batch with its results file, and one still in progress."""
    state, now = tmp_path / "state", time.time()
    settled: dict[str, Any] = {
        "cancel_time": None, "canceled": 0, "create_time": now - 100, "duration": 60.0,
        "end_time": now - 40, "error_rate": 0.0, "errored": 1, "expired": 0, "fail": False,
        "id": "msgbatch_0000000001abc", "request_count": 2, "seed": 0, "shuffle": False,
        "succeeded": 1, "version": "2026-10-21",
    }
    running = {**settled, "id": "msgbatch_0000000002abc", "create_time": now,
               "end_time": None, "errored": 0, "succeeded": 0}
    for record in (settled, running):
        write(state / f"anthropic/batches/{record['id']}.json",
              json.dumps(record, indent=1, sort_keys=True))
        write(state / f"anthropic/requests/{record['id']}.jsonl",
              '{"custom_id":"a","params":{}}\n{"custom_id":"b","params":{}}\n')
    lines = '{"custom_id":"a","result":{"type":"succeeded"}}\n'
    write(state / f"anthropic/results/{settled['id']}.jsonl", lines)
    headers = {"x-api-key": "k", "anthropic-version": "2026-10-21"}
    with Emulator(state, latency=60) as emu, httpx.Client(
            base_url=emu.base_url + "/anthropic/v1/messages", headers=headers) as http:
        done = http.get(f"/batches/{settled['id']}").json()
        assert done["processing_status"] == "ended"
        assert done["request_counts"] == {"processing": 0, "succeeded": 1, "errored": 1,
                                          "canceled": 0, "expired": 0}
        assert http.get(done["results_url"]).text == lines
        assert http.get(f"/batches/{running['id']}").json()["processing_status"] == \
            "in_progress"
        listed = http.get("/batches").json()["data"]
        assert [b["id"] for b in listed] == [running["id"], settled["id"]]
        assert http.get(f"{emu.base_url}/_emulator/stats").json()["anthropic_batches"] == 2
