"""The emulator's OpenAI API over plain HTTP: what the SDK hides or smooths over.

Request ids and the error body on every answer, forms with their fields in any order, cursors
that survive a delete, uploads assembled in the order the client names, every field of a
Batch at every phase, and the hostile faults in OpenAI's fields.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from runner.emulator import Emulator

LATENCY = 60.0
BASE = "/openai/v1"
KEY = {"Authorization": "Bearer wire-key"}
CHAT = "/v1/chat/completions"
BATCH_FIELDS = {
    "id", "object", "endpoint", "model", "errors", "input_file_id", "completion_window",
    "status", "output_file_id", "error_file_id", "created_at", "in_progress_at", "expires_at",
    "finalizing_at", "completed_at", "failed_at", "expired_at", "cancelling_at",
    "cancelled_at", "request_counts", "usage", "metadata",
}


@pytest.fixture
def emu(tmp_path: Path) -> Iterator[Emulator]:
    with Emulator(tmp_path / "state", latency=LATENCY) as emulator:
        yield emulator


@pytest.fixture
def http(emu: Emulator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=emu.base_url + BASE, headers=KEY) as client:
        yield client


def admin(http: httpx.Client, route: str, **body: Any) -> Any:
    answer = httpx.post(f"{str(http.base_url).removesuffix(BASE + '/')}/_emulator/{route}",
                        json=body)
    answer.raise_for_status()
    return answer.json()


def requests_file(count: int) -> bytes:
    lines = [{"custom_id": f"k{i}", "method": "POST", "url": CHAT,
              "body": {"model": "m", "messages": [{"role": "user", "content": f"p{i}"}]}}
             for i in range(count)]
    return "".join(json.dumps(line) + "\n" for line in lines).encode()


def upload(http: httpx.Client, data: bytes, name: str = "in.jsonl",
           purpose: str = "batch") -> dict[str, Any]:
    answer = http.post("/files", data={"purpose": purpose}, files={"file": (name, data)})
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


def create(http: httpx.Client, file_id: str, **extra: Any) -> dict[str, Any]:
    answer = http.post("/batches", json={"input_file_id": file_id, "endpoint": CHAT,
                                         "completion_window": "24h", **extra})
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


def test_request_ids_and_the_error_body_everywhere(http: httpx.Client) -> None:
    listed = http.get("/batches")
    assert listed.json() == {"object": "list", "data": [], "first_id": None, "last_id": None,
                             "has_more": False}
    assert listed.headers["x-request-id"].startswith("req_")
    for answer, status in ((http.get("/batches/batch_missing"), 404),
                           (http.get("/nowhere"), 404),
                           (http.post("/batches", content=b"{oops"), 400),
                           (http.get("/files", params={"limit": "0"}), 400),
                           (http.get("/files", params={"order": "sideways"}), 400),
                           (httpx.get(str(http.base_url) + "batches"), 401)):
        assert answer.status_code == status
        assert set(answer.json()["error"]) == {"message", "type", "param", "code"}
        assert answer.headers["x-request-id"].startswith("req_")
    assert http.get("/batches/batch_missing").json()["error"]["type"] == "invalid_request_error"


def test_a_form_in_any_order_and_its_checks(http: httpx.Client, tmp_path: Path) -> None:
    boundary = "b0undary"
    form = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
            f"filename=\"first.jsonl\"\r\nContent-Type: application/jsonl\r\n\r\n").encode() \
        + b"{}\r\n--not-the-boundary\r\n" + (
            f"\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nbatch"
            f"\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"expires_after[anchor]\""
            f"\r\n\r\ncreated_at\r\n--{boundary}\r\nContent-Disposition: form-data; "
            f"name=\"expires_after[seconds]\"\r\n\r\n3600\r\n--{boundary}--\r\n").encode()
    made = http.post("/files", content=form,
                     headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert made.status_code == 200, made.text
    file = made.json()
    assert file["filename"] == "first.jsonl" and file["expires_at"] == file["created_at"] + 3600
    assert http.get(f"/files/{file['id']}/content").content == b"{}\r\n--not-the-boundary\r\n"

    for data, files, param in (
        ({}, {"file": ("a.jsonl", b"{}")}, "purpose"),
        ({"purpose": "homework"}, {"file": ("a.jsonl", b"{}")}, "purpose"),
        ({"purpose": "batch"}, {"other": ("a.jsonl", b"{}")}, "file"),
        ({"purpose": "batch", "expires_after[anchor]": "created_at",
          "expires_after[seconds]": "10"}, {"file": ("a.jsonl", b"{}")}, "expires_after.seconds"),
    ):
        refused = http.post("/files", data=data, files=files)
        assert refused.status_code == 400 and refused.json()["error"]["param"] == param
    assert http.post("/files", json={"purpose": "batch"}).status_code == 400
    # A refused file leaves nothing behind.
    assert [f["id"] for f in http.get("/files").json()["data"]] == [file["id"]]
    assert [p.name for p in (tmp_path / "state/openai/blobs").iterdir()] == [file["id"]]


def test_files_list_filters_orders_and_walks_past_a_deleted_file(http: httpx.Client) -> None:
    made = [upload(http, b"{}\n", f"f{i}.jsonl", "batch" if i % 2 else "user_data")["id"]
            for i in range(4)]
    newest = [f["id"] for f in http.get("/files").json()["data"]]
    assert newest == made[::-1]
    oldest = http.get("/files", params={"order": "asc", "limit": 2}).json()
    assert [f["id"] for f in oldest["data"]] == made[:2] and oldest["has_more"]
    assert (oldest["first_id"], oldest["last_id"]) == (made[0], made[1])
    batch_files = http.get("/files", params={"purpose": "batch"}).json()["data"]
    assert [f["id"] for f in batch_files] == [made[3], made[1]]

    assert http.delete(f"/files/{made[2]}").json() == {"id": made[2], "object": "file",
                                                       "deleted": True}
    assert http.get(f"/files/{made[2]}/content").status_code == 404
    assert http.delete(f"/files/{made[2]}").status_code == 404
    after_deleted = http.get("/files", params={"after": made[2]}).json()
    assert [f["id"] for f in after_deleted["data"]] == [made[1], made[0]]
    assert http.get("/files", params={"after": "file-unheard-of"}).status_code == 400


def test_uploads_assemble_parts_in_the_order_named(http: httpx.Client, tmp_path: Path) -> None:
    pieces = [b"alpha-", b"beta-", b"gamma"]
    whole = b"".join(pieces)
    made = http.post("/uploads", json={"bytes": len(whole), "filename": "u.jsonl",
                                       "mime_type": "application/jsonl", "purpose": "batch"})
    upload_id = made.json()["id"]
    part_ids = {}
    for piece in reversed(pieces):  # sent in any order; `part_ids` says the file's
        part = http.post(f"/uploads/{upload_id}/parts", files={"data": ("upload", piece)})
        assert part.json()["object"] == "upload.part" and part.json()["upload_id"] == upload_id
        part_ids[piece] = part.json()["id"]
    ordered = [part_ids[piece] for piece in pieces]
    wrong = http.post(f"/uploads/{upload_id}/complete",
                      json={"part_ids": ordered, "md5": "0" * 32})
    assert wrong.status_code == 400 and wrong.json()["error"]["param"] == "md5"
    short = http.post(f"/uploads/{upload_id}/complete", json={"part_ids": ordered[:2]})
    assert short.status_code == 400
    done = http.post(f"/uploads/{upload_id}/complete",
                     json={"part_ids": ordered, "md5": hashlib.md5(whole).hexdigest()}).json()
    assert done["status"] == "completed" and done["file"]["bytes"] == len(whole)
    assert http.get(f"/files/{done['file']['id']}/content").content == whole
    assert http.post(f"/uploads/{upload_id}/complete", json={"part_ids": ordered}).status_code \
        == 400
    assert not list((tmp_path / "state/openai/parts").iterdir())  # parts are gone

    late = http.post("/uploads", json={"bytes": 5, "filename": "l.jsonl",
                                       "mime_type": "text/jsonl", "purpose": "batch"}).json()
    admin(http, "clock", advance=3601)
    refused = http.post(f"/uploads/{late['id']}/parts", files={"data": ("upload", b"12345")})
    assert refused.status_code == 400 and "expired" in refused.json()["error"]["message"]
    assert http.post("/uploads", json={"bytes": 5, "filename": "x.txt", "mime_type": "t",
                                       "purpose": "batch"}).status_code == 400


def test_every_batch_field_at_every_phase(http: httpx.Client) -> None:
    file_id = upload(http, requests_file(8))["id"]
    made = create(http, file_id)
    assert set(made) == BATCH_FIELDS and made["object"] == "batch"
    assert made["request_counts"] == {"total": 0, "completed": 0, "failed": 0}
    assert made["metadata"] is None and made["errors"] is None
    phases = []
    for step in (LATENCY / 4, LATENCY / 4, LATENCY / 4, LATENCY / 4):
        admin(http, "clock", advance=step)
        seen = http.get(f"/batches/{made['id']}").json()
        assert set(seen) == BATCH_FIELDS
        assert all(isinstance(seen[k], int) for k in BATCH_FIELDS if k.endswith("_at")
                   and seen[k] is not None)
        phases.append((seen["status"], seen["request_counts"]["completed"]))
    assert phases == [("in_progress", 0), ("in_progress", 4), ("finalizing", 8),
                      ("completed", 8)]

    early = create(http, file_id)
    cancelled = http.post(f"/batches/{early['id']}/cancel")
    assert cancelled.json()["status"] == "cancelling"
    admin(http, "clock", advance=LATENCY)
    seen = http.get(f"/batches/{early['id']}").json()
    assert seen["status"] == "cancelled" and seen["in_progress_at"] is None
    assert (seen["output_file_id"], seen["error_file_id"]) == (None, None)
    assert seen["request_counts"] == {"total": 8, "completed": 0, "failed": 0}


def test_zero_latency_finishes_at_the_first_read(tmp_path: Path) -> None:
    with Emulator(tmp_path / "state", latency=0) as emu, \
            httpx.Client(base_url=emu.base_url + BASE, headers=KEY) as http:
        made = create(http, upload(http, requests_file(3))["id"])
        assert made["status"] == "validating"
        done = http.get(f"/batches/{made['id']}").json()
        assert done["status"] == "completed" and done["request_counts"]["completed"] == 3
        stats = httpx.get(f"{emu.base_url}/_emulator/stats").json()
        assert (stats["openai_batches"], stats["openai_files"], stats["batches"]) == (1, 2, 0)


def test_hostile_faults_reach_openai_fields(http: httpx.Client) -> None:
    file_id = upload(http, requests_file(2))["id"]
    batch_id = create(http, file_id)["id"]
    create(http, file_id)
    admin(http, "faults", echo_key=True)
    missing = http.get("/batches/batch_nothing").json()["error"]["message"]
    assert missing.endswith("[API key: wire-key]")
    admin(http, "faults", echo_key=False, wrong_types="state")
    assert http.get(f"/batches/{batch_id}").json()["status"] == 3
    admin(http, "faults", wrong_types="request-count")
    assert http.get("/batches").json()["data"][0]["request_counts"]["total"] == "many"
    admin(http, "faults", wrong_types="page")
    assert isinstance(http.get("/batches").json(), list)
    admin(http, "faults", wrong_types="operation")
    listed = http.get("/batches").json()["data"]
    assert all(isinstance(item, str) for item in listed) and batch_id in listed
    admin(http, "faults", wrong_types="file")
    assert http.get(f"/files/{file_id}").json() == file_id
    admin(http, "faults", wrong_types="")
    admin(http, "clock", advance=LATENCY)
    output = http.get(f"/batches/{batch_id}").json()["output_file_id"]
    admin(http, "faults", wrong_types="candidates")  # reaches results, in their files
    assert http.get(f"/batches/{batch_id}").json()["id"] == batch_id
    lines = [json.loads(line) for line in http.get(f"/files/{output}/content").iter_lines()]
    assert [line["response"]["body"]["choices"] for line in lines] == ["many", "many"]
    admin(http, "faults", wrong_types="parts")
    lines = [json.loads(line) for line in http.get(f"/files/{output}/content").iter_lines()]
    assert [line["response"]["body"]["choices"][0]["message"] for line in lines] == \
        ["text", "text"]
    admin(http, "faults", wrong_types="", repeat_page_token=True)
    first = http.get("/batches", params={"limit": 1}).json()
    again = http.get("/batches", params={"limit": 1, "after": first["data"][0]["id"]}).json()
    assert first["has_more"] and again["data"] == first["data"]
    assert first["last_id"] == again["last_id"]
    admin(http, "faults", repeat_page_token=False, endless_pages=True)
    pages = [http.get("/batches", params={"after": after}).json()["last_id"]
             for after in (None, "page-2", "page-3")]
    assert pages == ["page-2", "page-3", "page-4"]


def test_ids_from_the_client_never_reach_outside_the_store(http: httpx.Client) -> None:
    upload(http, b"{}\n")
    assert http.get("/files", params={"after": "../batches/x"}).status_code == 400
    assert http.get("/batches", params={"after": "a/b"}).status_code == 400
    assert http.get("/files/..%2Ffiles").status_code == 404
    made = create(http, "../files/whatever")
    admin(http, "clock", advance=LATENCY)
    failed = http.get(f"/batches/{made['id']}").json()
    assert failed["status"] == "failed"
    assert failed["errors"]["data"][0]["param"] == "input_file_id"


def test_a_bad_input_cancelled_while_validating_ends_cancelled(http: httpx.Client) -> None:
    made = create(http, upload(http, b"{broken\n")["id"])
    assert http.post(f"/batches/{made['id']}/cancel").json()["status"] == "cancelling"
    admin(http, "clock", advance=LATENCY)
    ended = http.get(f"/batches/{made['id']}").json()
    assert ended["status"] == "cancelled" and ended["errors"] is None
    assert (ended["output_file_id"], ended["error_file_id"]) == (None, None)
