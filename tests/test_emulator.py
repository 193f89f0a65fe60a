"""The emulator over raw HTTP: wire shapes, persistence, faults, uploads, downloads, expiry."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from runner.emulator import Emulator, Faults

LATENCY = 60.0
KEY = {"x-goog-api-key": "test-key"}
CREATE = "/v1beta/models/gemini-2.5-flash:batchGenerateContent"
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z")


@pytest.fixture
def emu(tmp_path: Path) -> Iterator[Emulator]:
    with Emulator(tmp_path / "state", latency=LATENCY) as emulator:
        yield emulator


@pytest.fixture
def http(emu: Emulator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=emu.base_url, headers=KEY) as client:
        yield client


def inline_body(*prompts: str, **batch: Any) -> dict[str, Any]:
    requests = [
        {
            "request": {"contents": [{"parts": [{"text": p}], "role": "user"}]},
            "metadata": {"key": f"k{i}"},
        }
        for i, p in enumerate(prompts)
    ]
    return {
        "batch": {
            "displayName": "job",
            "inputConfig": {"requests": {"requests": requests}},
            **batch,
        }
    }


def create(http: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    reply = http.post(CREATE, json=body)
    assert reply.status_code == 200, reply.text
    result: dict[str, Any] = reply.json()
    return result


def advance(http: httpx.Client, seconds: float) -> None:
    http.post("/_emulator/clock", json={"advance": seconds}).raise_for_status()


def get(http: httpx.Client, name: str) -> dict[str, Any]:
    reply = http.get(f"/v1beta/{name}")
    assert reply.status_code == 200, reply.text
    result: dict[str, Any] = reply.json()
    return result


def set_faults(http: httpx.Client, **changes: Any) -> None:
    http.post("/_emulator/faults", json=changes).raise_for_status()


def upload(http: httpx.Client, data: bytes, **file: Any) -> dict[str, Any]:
    """The resumable protocol in one chunk, as a client without the SDK would do it."""
    start = http.post(
        "/upload/v1beta/files",
        headers={
            "X-Goog-Upload-Protocol": "resumable",
            "X-Goog-Upload-Command": "start",
            "X-Goog-Upload-Header-Content-Length": str(len(data)),
            "X-Goog-Upload-Header-Content-Type": "application/jsonl",
        },
        json={"file": file or {"displayName": "input"}},
    )
    assert start.status_code == 200, start.text
    final = httpx.post(
        start.headers["x-goog-upload-url"],
        headers={"X-Goog-Upload-Command": "upload, finalize", "X-Goog-Upload-Offset": "0"},
        content=data,
    )
    assert final.status_code == 200 and final.headers["x-goog-upload-status"] == "final"
    result: dict[str, Any] = final.json()["file"]
    return result


def jsonl(*lines: Any) -> bytes:
    return b"".join(json.dumps(line).encode() + b"\n" for line in lines)


def line(key: str, prompt: str) -> dict[str, Any]:
    return {"key": key, "request": {"contents": [{"parts": [{"text": prompt}]}]}}


def finished_file_results(http: httpx.Client, data: bytes) -> tuple[dict[str, Any], list[Any]]:
    file = upload(http, data)
    job = create(http, {"batch": {"displayName": "f", "inputConfig": {"fileName": file["name"]}}})
    advance(http, LATENCY)
    done = get(http, job["name"])
    if done["metadata"]["state"] != "BATCH_STATE_SUCCEEDED":
        return done, []
    results = http.get(f"/v1beta/{done['response']['responsesFile']}:download?alt=media")
    return done, [json.loads(x) for x in results.text.splitlines()]


def test_public_interface() -> None:
    import runner.emulator

    assert runner.emulator.__all__ == ["Emulator", "Faults"]


# Wire shape.


def test_operation_shape_through_the_life_of_a_job(http: httpx.Client) -> None:
    created = create(http, inline_body("hello", "EMULATOR_FAIL here", priority="5"))
    name = created["name"]
    assert re.fullmatch(r"batches/[a-z0-9]{36}", name)
    metadata = created["metadata"]
    assert "done" not in created and "response" not in created and "error" not in created
    assert metadata["@type"].endswith("v1main.GenerateContentBatch")
    assert metadata["state"] == "BATCH_STATE_PENDING" and metadata["name"] == name
    assert metadata["model"] == "models/gemini-2.5-flash" and metadata["priority"] == "5"
    assert metadata["batchStats"] == {"requestCount": "2", "pendingRequestCount": "2"}
    assert TIMESTAMP.fullmatch(metadata["createTime"]) and "endTime" not in metadata
    assert "inputConfig" not in metadata and "output" not in metadata

    advance(http, LATENCY / 2)
    running = get(http, name)
    assert running["metadata"]["state"] == "BATCH_STATE_RUNNING" and "done" not in running
    assert running["metadata"]["updateTime"] > metadata["updateTime"]

    advance(http, LATENCY)
    done = get(http, name)
    assert done["done"] is True and "error" not in done
    assert done["metadata"]["state"] == "BATCH_STATE_SUCCEEDED"
    assert done["metadata"]["batchStats"] == {
        "requestCount": "2",
        "successfulRequestCount": "1",
        "failedRequestCount": "1",
    }
    assert done["response"]["@type"].endswith("v1main.GenerateContentBatchOutput")
    inlined = done["response"]["inlinedResponses"]["inlinedResponses"]
    assert done["metadata"]["output"]["inlinedResponses"]["inlinedResponses"] == inlined
    assert inlined[0]["metadata"] == {"key": "k0"}
    assert inlined[0]["response"]["candidates"][0]["content"]["parts"][0]["text"] == "echo: hello"
    assert inlined[0]["response"]["usageMetadata"] == {
        "promptTokenCount": 2,
        "candidatesTokenCount": 3,
        "totalTokenCount": 5,
    }
    assert inlined[1]["metadata"] == {"key": "k1"} and "response" not in inlined[1]
    assert inlined[1]["error"]["code"] == 3 and inlined[1]["error"]["status"] == "INVALID_ARGUMENT"
    assert get(http, name) == done  # settled once, stable afterwards


def test_cancel_delete_and_not_found(http: httpx.Client) -> None:
    name = create(http, inline_body("x"))["name"]
    assert http.post(f"/v1beta/{name}:cancel").json() == {}
    cancelled = get(http, name)
    assert cancelled["done"] is True and cancelled["metadata"]["state"] == "BATCH_STATE_CANCELLED"
    assert cancelled["error"]["code"] == 1 and "output" not in cancelled["metadata"]
    assert http.post(f"/v1beta/{name}:cancel").status_code == 200  # already ended: no change
    assert get(http, name)["metadata"]["state"] == "BATCH_STATE_CANCELLED"

    assert http.delete(f"/v1beta/{name}").json() == {}
    missing = http.get(f"/v1beta/{name}")
    assert missing.status_code == 404
    assert missing.json()["error"] == {
        "code": 404,
        "message": f"Batch {name} not found.",
        "status": "NOT_FOUND",
    }
    assert http.delete(f"/v1beta/{name}").status_code == 404
    assert http.get("/v1beta/batches").json() == {"operations": []}


def test_list_pages_newest_first(http: httpx.Client) -> None:
    names = [create(http, inline_body(f"n{i}"))["name"] for i in range(13)]
    first = http.get("/v1/batches").json()
    assert len(first["operations"]) == 10 and first["nextPageToken"]
    walked = []
    token = None
    while True:
        params = {"pageSize": "4", **({"pageToken": token} if token else {})}
        page = http.get("/v1/batches", params=params).json()
        walked += [op["name"] for op in page["operations"]]
        token = page.get("nextPageToken")
        if not token:
            break
    assert walked == names[::-1]
    assert len(http.get("/v1/batches", params={"pageSize": "1000"}).json()["operations"]) == 13
    assert http.get("/v1/batches", params={"pageToken": "garbage"}).status_code == 400


def test_camel_and_snake_case_requests(http: httpx.Client) -> None:
    file = upload(http, jsonl(line("a", "hi")), display_name="snake", mime_type="jsonl")
    assert file["displayName"] == "snake" and file["sizeBytes"] == str(len(jsonl(line("a", "hi"))))
    by_file = create(
        http, {"batch": {"display_name": "s1", "input_config": {"file_name": file["name"]}}}
    )
    assert by_file["metadata"]["displayName"] == "s1"
    assert by_file["metadata"]["inputConfig"] == {"fileName": file["name"]}
    requests = {"requests": [{"request": {"contents": [{"parts": [{"text": "x"}]}]}}]}
    inline = create(http, {"batch": {"display_name": "s2", "input_config": {"requests": requests}}})
    assert inline["metadata"]["displayName"] == "s2"
    assert inline["metadata"]["batchStats"]["requestCount"] == "1"


def test_bad_create_requests(http: httpx.Client) -> None:
    assert http.post(CREATE, content=b"{not json").status_code == 400
    assert http.post(CREATE, json={"batch": {"inputConfig": {}}}).status_code == 400
    missing_file = http.post(CREATE, json={"batch": {"inputConfig": {"fileName": "files/nope"}}})
    assert missing_file.status_code == 400
    assert missing_file.json()["error"]["status"] == "INVALID_ARGUMENT"
    huge = inline_body("x" * (21 * 1024 * 1024))
    too_big = http.post(CREATE, json=huge)
    assert too_big.status_code == 400 and "exceeds" in too_big.json()["error"]["message"]
    assert http.get("/_emulator/stats").json()["batches"] == 0


# Auth.


def test_api_key_required_and_never_logged(
    emu: Emulator, http: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="runner.emulator")
    bare = httpx.get(f"{emu.base_url}/v1beta/batches")
    assert bare.status_code == 403
    assert bare.json()["error"]["status"] == "PERMISSION_DENIED"
    empty = httpx.post(
        f"{emu.base_url}{CREATE}", headers={"x-goog-api-key": ""}, json=inline_body("x")
    )
    assert empty.status_code == 403
    secret = "s3cret-value-42"
    by_query = httpx.get(f"{emu.base_url}/v1beta/batches/nothere", params={"key": secret})
    assert by_query.status_code == 404 and secret not in by_query.text
    assert secret not in caplog.text and "key=REDACTED" in caplog.text
    assert httpx.get(f"{emu.base_url}/_emulator/stats").status_code == 200  # admin: no key


# Persistence.


def test_a_second_emulator_sees_what_the_first_did(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with (
        Emulator(state, latency=LATENCY) as first,
        httpx.Client(base_url=first.base_url, headers=KEY) as http,
    ):
        inline = create(http, inline_body("persist me"))["name"]
        file = upload(http, jsonl(line("a", "from a file")))
        by_file = create(http, {"batch": {"inputConfig": {"fileName": file["name"]}}})["name"]
        advance(http, LATENCY / 2)
        stopped_url = first.base_url
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{stopped_url}/_emulator/stats")

    with (
        Emulator(state, latency=0) as second,
        httpx.Client(base_url=second.base_url, headers=KEY) as http,
    ):
        # The clock offset and each job's own latency survive the restart.
        assert get(http, inline)["metadata"]["state"] == "BATCH_STATE_RUNNING"
        assert {op["name"] for op in http.get("/v1beta/batches").json()["operations"]} == {
            inline,
            by_file,
        }
        assert http.get(f"/v1beta/{file['name']}").json()["sha256Hash"] == file["sha256Hash"]
        advance(http, LATENCY)
        done = get(http, by_file)
        assert done["metadata"]["state"] == "BATCH_STATE_SUCCEEDED"
        results_name = done["metadata"]["output"]["responsesFile"]
        results = http.get(f"/v1beta/{results_name}:download", params={"alt": "media"})
        assert json.loads(results.content)["key"] == "a"
    with Emulator(state) as third, httpx.Client(base_url=third.base_url, headers=KEY) as http:
        assert get(http, by_file) == done
        assert http.get(f"/v1beta/{results_name}").json()["source"] == "GENERATED"


# Per-request results.


def test_results_follow_the_echo_rule_and_fail_marked_requests(http: httpx.Client) -> None:
    data = (
        jsonl(
            line("ok", "first line"),
            {
                "key": "extra",
                "custom": {"keep": True},
                "request": {"contents": [{"parts": [{"text": "x"}]}]},
            },
            line("bad", "EMULATOR_FAIL"),
            {"contents": [{"parts": [{"text": "bare"}, {"text": "request"}]}]},
        )
        + b"\n  \n"
    )
    done, results = finished_file_results(http, data)
    assert done["metadata"]["batchStats"] == {
        "requestCount": "4",
        "successfulRequestCount": "3",
        "failedRequestCount": "1",
    }
    assert [r.get("key") for r in results] == ["ok", "extra", "bad", None]
    assert (
        results[0]["response"]["candidates"][0]["content"]["parts"][0]["text"] == "echo: first line"
    )
    assert results[1]["custom"] == {"keep": True} and "request" not in results[1]
    assert results[2] == {
        "key": "bad",
        "error": {
            "code": 3,
            "message": "The request contains EMULATOR_FAIL, so the emulator fails it.",
            "status": "INVALID_ARGUMENT",
        },
    }
    assert results[3]["response"]["candidates"][0]["content"]["parts"][0]["text"] == (
        "echo: bare\nrequest"
    )
    assert results[3]["response"]["responseId"] != results[0]["response"]["responseId"]


def test_request_error_rate_is_deterministic(http: httpx.Client) -> None:
    data = jsonl(*(line(f"k{i}", f"p{i}") for i in range(40)))
    set_faults(http, request_error_rate=0.5, seed=7)
    runs = []
    for _ in range(2):
        _, results = finished_file_results(http, data)
        runs.append({r["key"] for r in results if "error" in r})
    assert runs[0] == runs[1] and 5 < len(runs[0]) < 35
    set_faults(http, request_error_rate=0.0)
    _, results = finished_file_results(http, data)
    assert not [r for r in results if "error" in r]


def test_shuffled_results_keep_every_key(http: httpx.Client) -> None:
    set_faults(http, shuffle_results=True)
    keys = [f"k{i:02}" for i in range(50)]
    _, results = finished_file_results(http, jsonl(*(line(k, k) for k in keys)))
    got = [r["key"] for r in results]
    assert got != keys and sorted(got) == keys


def test_an_invalid_json_line_fails_the_job(http: httpx.Client) -> None:
    done, _ = finished_file_results(http, jsonl(line("a", "x")) + b'{"key": "b", oops\n')
    assert done["metadata"]["state"] == "BATCH_STATE_FAILED" and done["done"] is True
    assert done["error"]["message"] == "Error on line 2: invalid JSON"
    assert "output" not in done["metadata"] and "response" not in done


# Clock: expiry and latency.


def test_expiry_after_48_hours(tmp_path: Path) -> None:
    with (
        Emulator(tmp_path / "s", latency=100 * 3600) as emu,
        httpx.Client(base_url=emu.base_url, headers=KEY) as http,
    ):
        name = create(http, inline_body("slow"))["name"]
        advance(http, 47 * 3600)
        assert get(http, name)["metadata"]["state"] == "BATCH_STATE_RUNNING"
        advance(http, 2 * 3600)
        expired = get(http, name)
        assert expired["metadata"]["state"] == "BATCH_STATE_EXPIRED" and expired["done"] is True
        assert expired["error"]["code"] == 4 and "output" not in expired["metadata"]


def test_zero_latency_finishes_at_first_read(tmp_path: Path) -> None:
    with (
        Emulator(tmp_path / "s", latency=0) as emu,
        httpx.Client(base_url=emu.base_url, headers=KEY) as http,
    ):
        created = create(http, inline_body("now"))
        assert created["metadata"]["state"] == "BATCH_STATE_PENDING"
        assert get(http, created["name"])["metadata"]["state"] == "BATCH_STATE_SUCCEEDED"


def test_expire_and_fail_faults_are_fixed_at_create(http: httpx.Client) -> None:
    set_faults(http, expire=True)
    expiring = create(http, inline_body("a"))["name"]
    set_faults(http, expire=False, fail=True)
    failing = create(http, inline_body("b"))["name"]
    set_faults(http, fail=False)
    advance(http, LATENCY)
    assert get(http, expiring)["metadata"]["state"] == "BATCH_STATE_EXPIRED"
    failed = get(http, failing)
    assert failed["metadata"]["state"] == "BATCH_STATE_FAILED" and failed["error"]["code"] == 13


# Faults.


def test_faults_admin_route(emu: Emulator, http: httpx.Client) -> None:
    assert http.get("/_emulator/faults").json() == Faults().to_json()
    changed = http.post("/_emulator/faults", json={"rate_503": 0.25, "seed": 3}).json()
    assert changed["rate_503"] == 0.25 and changed["seed"] == 3 and changed["rate_429"] == 0.0
    assert emu.faults.rate_503 == 0.25
    assert http.post("/_emulator/faults", json={"nonsense": 1}).status_code == 400
    assert http.post("/_emulator/faults", json={"rate_429": 2}).status_code == 400
    emu.faults = Faults()
    assert http.get("/_emulator/faults").json()["rate_503"] == 0.0


def test_429_carries_retry_after_and_changes_nothing(http: httpx.Client) -> None:
    set_faults(http, rate_429=1.0, retry_after=2.5)
    limited = http.post(CREATE, json=inline_body("x"))
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "2.5"
    assert limited.json()["error"]["status"] == "RESOURCE_EXHAUSTED"
    assert limited.json()["error"]["details"][0]["retryDelay"] == "2.5s"
    stats = http.get("/_emulator/stats").json()
    assert stats["batches"] == 0 and stats["creates"] == 0 and stats["faults_429"] == 1
    set_faults(http, rate_429=0.0)
    assert http.post(CREATE, json=inline_body("x")).status_code == 200


def test_503_changes_nothing(http: httpx.Client) -> None:
    set_faults(http, rate_503=1.0)
    unavailable = http.post(CREATE, json=inline_body("x"))
    assert unavailable.status_code == 503
    assert unavailable.json()["error"]["status"] == "UNAVAILABLE"
    assert http.get("/_emulator/stats").json()["batches"] == 0


def test_reset_closes_without_answer_and_changes_nothing(http: httpx.Client) -> None:
    set_faults(http, rate_reset=1.0)
    with pytest.raises(httpx.TransportError):
        http.post(CREATE, json=inline_body("x"))
    set_faults(http, rate_reset=0.0)
    assert http.get("/_emulator/stats").json()["batches"] == 0
    assert http.get("/v1beta/batches").status_code == 200  # the client recovers


def test_drop_after_create_really_creates(http: httpx.Client) -> None:
    set_faults(http, drop_after_create=1.0)
    with pytest.raises(httpx.TransportError):
        http.post(CREATE, json=inline_body("x", displayName="orphan"))
    set_faults(http, drop_after_create=0.0)
    operations = http.get("/v1beta/batches").json()["operations"]
    assert [op["metadata"]["displayName"] for op in operations] == ["orphan"]
    assert http.get("/_emulator/stats").json()["drops_after_create"] == 1


def test_slow_delays_answers(http: httpx.Client) -> None:
    set_faults(http, slow=0.3)
    started = time.monotonic()
    assert http.get("/v1beta/batches").status_code == 200
    assert time.monotonic() - started >= 0.3


# Uploads.


def start_upload(http: httpx.Client, size: int) -> str:
    start = http.post(
        "/upload/v1beta/files",
        headers={
            "X-Goog-Upload-Protocol": "resumable",
            "X-Goog-Upload-Command": "start",
            "X-Goog-Upload-Header-Content-Length": str(size),
            "X-Goog-Upload-Header-Content-Type": "jsonl",
        },
        json={"file": {"displayName": "resumed"}},
    )
    assert start.headers["x-goog-upload-chunk-granularity"] == "8388608"
    url = start.headers["x-goog-upload-url"]
    assert url.startswith(str(http.base_url).rstrip("/") + "/upload/v1beta/files?upload_id=")
    return url


def command(url: str, name: str, offset: int | None = None, data: Any = b"") -> httpx.Response:
    headers = {"X-Goog-Upload-Command": name}
    if offset is not None:
        headers["X-Goog-Upload-Offset"] = str(offset)
    return httpx.post(url, headers=headers, content=data)


def test_resumable_upload_query_and_resume(http: httpx.Client) -> None:
    data = bytes(range(256)) * 40
    url = start_upload(http, len(data))
    first = command(url, "upload", 0, data[:1000])
    assert first.status_code == 200 and first.headers["x-goog-upload-status"] == "active"

    stale = command(url, "upload", 0, data[:1000])  # a retry of a chunk that did arrive
    assert stale.status_code == 400 and stale.headers["x-goog-upload-status"] == "active"
    assert stale.headers["x-goog-upload-size-received"] == "1000"

    query = command(url, "query")
    assert query.headers["x-goog-upload-size-received"] == "1000"
    middle = (piece for piece in (data[1000:3000], data[3000:5000]))  # sent chunked
    assert command(url, "upload", 1000, middle).status_code == 200
    assert command(url, "upload", 5000, data[5000:]).headers["x-goog-upload-status"] == "active"
    final = command(url, "finalize", len(data))
    assert final.headers["x-goog-upload-status"] == "final"
    file = final.json()["file"]
    assert file["sizeBytes"] == str(len(data)) and file["mimeType"] == "jsonl"
    assert file["sha256Hash"] == base64.b64encode(hashlib.sha256(data).digest()).decode()
    assert command(url, "query").headers["x-goog-upload-status"] == "final"
    assert http.get(f"/v1beta/{file['name']}:download?alt=media").content == data


def test_an_interrupted_chunk_keeps_what_arrived(emu: Emulator, http: httpx.Client) -> None:
    url = start_upload(http, 1000)
    path = url.split(str(http.base_url).rstrip("/"), 1)[1]
    host, port = str(http.base_url.host), http.base_url.port
    assert port is not None
    with socket.create_connection((host, port)) as raw:
        raw.sendall(
            f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nX-Goog-Upload-Command: upload\r\n"
            "X-Goog-Upload-Offset: 0\r\nContent-Length: 1000\r\n\r\n".encode()
            + b"a" * 300
        )
    received = ""
    for _ in range(100):
        received = command(url, "query").headers["x-goog-upload-size-received"]
        if received == "300":
            break
        time.sleep(0.01)
    assert received == "300"
    done = command(url, "upload, finalize", 300, b"b" * 700)
    assert done.json()["file"]["sizeBytes"] == "1000"


def test_upload_cancel_and_size_mismatch(http: httpx.Client) -> None:
    url = start_upload(http, 10)
    assert command(url, "upload, finalize", 0, b"short").status_code == 400
    assert command(url, "upload", 0, b"0123456789abc").status_code == 400  # beyond declared size
    assert command(url, "query").headers["x-goog-upload-size-received"] == "5"
    assert command(url, "cancel").headers["x-goog-upload-status"] == "cancelled"
    assert command(url, "query").status_code == 404
    unknown = httpx.post(
        url.replace("upload_id=", "upload_id=zz"), headers={"X-Goog-Upload-Command": "query"}
    )
    assert unknown.status_code == 404 and unknown.headers["x-goog-upload-status"] == "final"


# Downloads.


def test_range_downloads_on_both_paths(http: httpx.Client) -> None:
    _, results = finished_file_results(http, jsonl(*(line(f"k{i}", "p" * 50) for i in range(20))))
    name = http.get("/v1beta/files").json()["files"][0]["name"]
    assert name.startswith("files/batch-")
    full = http.get(f"/v1beta/{name}:download?alt=media")
    assert full.status_code == 200 and full.headers["Accept-Ranges"] == "bytes"
    assert [json.loads(x) for x in full.text.splitlines()] == results
    size = len(full.content)
    for path in (f"/v1beta/{name}:download", f"/download/v1/{name}:download"):
        tail = http.get(path, params={"alt": "media"}, headers={"Range": "bytes=100-"})
        assert tail.status_code == 206 and tail.content == full.content[100:]
        assert tail.headers["Content-Range"] == f"bytes 100-{size - 1}/{size}"
        middle = http.get(path, params={"alt": "media"}, headers={"Range": "bytes=5-9"})
        assert middle.status_code == 206 and middle.content == full.content[5:10]
        beyond = http.get(path, params={"alt": "media"}, headers={"Range": f"bytes={size}-"})
        assert beyond.status_code == 416
    assert http.get("/v1beta/files/nope:download?alt=media").status_code == 404


def test_big_inputs_are_produced_in_the_background(
    http: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("runner.emulator.gemini.settle.SYNC_LIMIT", 100)
    data = jsonl(*(line(f"k{i}", f"p{i}") for i in range(200)))
    file = upload(http, data)
    job = create(http, {"batch": {"inputConfig": {"fileName": file["name"]}}})
    advance(http, LATENCY)
    first = get(http, job["name"])  # due, but its results are still being written
    assert first["metadata"]["state"] == "BATCH_STATE_RUNNING" and "done" not in first
    for _ in range(200):
        done = get(http, job["name"])
        if done.get("done"):
            break
        time.sleep(0.01)
    assert done["metadata"]["state"] == "BATCH_STATE_SUCCEEDED"
    assert done["metadata"]["batchStats"]["successfulRequestCount"] == "200"
    results = http.get(f"/v1beta/{done['response']['responsesFile']}:download?alt=media")
    assert sorted(json.loads(x)["key"] for x in results.text.splitlines()) == sorted(
        f"k{i}" for i in range(200)
    )


def test_a_big_job_is_answered_across_cores_to_the_same_bytes(
    emu: Emulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Above cores.APART_BYTES a job's lines are answered by worker processes, chunk by chunk
    (shrunk here so that a small file takes the path): the same results in the same order as
    one process gives, failures and blank lines included, and a bad line is named by its
    number in the whole file."""
    from runner.emulator.gemini import cores

    # starting the workers (a fork server, then each worker) can outlast a read's 5 s
    http = httpx.Client(base_url=emu.base_url, headers=KEY, timeout=120)
    keys = [f"k{i:03}" for i in range(300)]
    data = b"".join(
        jsonl(line(k, "EMULATOR_FAIL" if i % 37 == 0 else f"prompt {i} " + "x" * (i % 50)))
        + (b"\n" if i % 101 == 0 else b"")
        for i, k in enumerate(keys)
    )
    set_faults(http, request_error_rate=0.2, seed=3)
    one = finished_file_results(http, data)
    monkeypatch.setattr(cores, "APART_BYTES", 0)
    monkeypatch.setattr(cores, "CHUNK_BYTES", 2048)
    (tmp_path / "in.jsonl").write_bytes(data)
    assert len(list(cores._chunks(tmp_path / "in.jsonl"))) > 5
    many = finished_file_results(http, data)
    assert many[1] == one[1] and len(one[1]) == 300
    assert many[0]["metadata"]["batchStats"] == one[0]["metadata"]["batchStats"]
    set_faults(http, shuffle_results=True)
    shuffled = finished_file_results(http, data)[1]
    assert shuffled != one[1] and sorted(shuffled, key=str) == sorted(one[1], key=str)
    bad = data + jsonl(line("a", "x")) + b'{"key": "b", oops\n'
    done, _ = finished_file_results(http, bad)
    lines = bad.count(b"\n")
    assert done["error"]["message"] == f"Error on line {lines}: invalid JSON"
    http.close()


def test_across_cores_writes_one_processs_bytes(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The workers hand back their chunk's lines written, and skip the search for floats in a
    chunk that holds none: the results file is still one process's, byte for byte, shuffled
    or not, with floats that orjson and Python write otherwise (1e-05) in some chunks only
    (a response's id is a hash of its request as Python writes it)."""
    import io
    import random

    from runner.emulator.gemini import cores
    from runner.emulator.gemini.results import Producer
    from runner.emulator.model import FailurePolicy

    rows = []
    for i in range(400):
        row = line(f"k{i:03}", "EMULATOR_FAIL" if i % 37 == 0 else f"prompt {i} " + "x" * (i % 50))
        if i % 150 == 7:
            row["request"]["generationConfig"] = {"temperature": 0.7, "topP": 1e-05,
                                                  "seed": 10**17}
        rows.append(row["request"] if i % 41 == 0 else row)     # bare requests too
    source = tmp_path / "in.jsonl"
    source.write_bytes(b"\n".join(jsonl(r) for r in rows))     # blank lines

    def run(shuffle: bool, apart: int) -> tuple[bytes, object]:
        monkeypatch.setattr(cores, "APART_BYTES", apart)
        monkeypatch.setattr(cores, "CHUNK_BYTES", 2048)
        producer = Producer("gemini-2.5-flash", FailurePolicy(0.2, 3),
                            random.Random("seed") if shuffle else None)
        out = io.BytesIO()
        tally = producer.run_file(source, out)
        return out.getvalue(), tally

    for shuffle in (False, True):
        one, many = run(shuffle, 1 << 40), run(shuffle, 0)
        assert many == one
    assert run(True, 1 << 40)[0] != run(False, 1 << 40)[0]


_CTRL_C = """
import sys, time
from pathlib import Path
from runner.emulator.gemini import cores
from runner.emulator.gemini.results import Producer
from runner.emulator.model import FailurePolicy

if __name__ == "__main__":
    cores.CHUNK_BYTES = 2048
    answers = cores.across_cores(Producer("gemini-2.0-flash", FailurePolicy(), None),
                                 Path(sys.argv[1]))
    next(answers)       # the workers are up
    print("ready", flush=True)
    try:        # short sleeps: a SIGINT that lands on one of the pool's threads does not
        for _ in range(600):    # wake this one, whose handler then runs only as it wakes
            time.sleep(0.1)
    except KeyboardInterrupt:
        answers.close()
        sys.exit(130)
"""


def test_ctrl_c_leaves_the_emulators_workers_quiet(tmp_path: Path) -> None:
    """Ctrl-C reaches every process of the terminal's group: the workers answering a big job
    leave it to the emulator (which stops the job and closes the pool), as the runner's own
    workers do, instead of each dying with a KeyboardInterrupt traceback on stderr."""
    import os
    import signal
    import subprocess
    import sys

    source = tmp_path / "in.jsonl"
    source.write_bytes(b"".join(jsonl(line(f"k{i}", f"prompt {i}")) for i in range(2000)))
    script = tmp_path / "ctrl_c.py"
    script.write_text(_CTRL_C)
    proc = subprocess.Popen([sys.executable, str(script), str(source)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"ready\n"
        time.sleep(0.5)
        os.killpg(proc.pid, signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert b"Traceback" not in stderr, stderr.decode()
    assert proc.returncode == 130
