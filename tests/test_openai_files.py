"""The OpenAI client's file calls against httpx.MockTransport: the upload's multipart form, the
search for a file uploaded before, the results (output file, then error file), a batch's
delete (its files: OpenAI deletes no batch) and cancel."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fake_server import Answer, ok
from test_openai_client import Wire, batch, page, script

from runner.errors import ProviderError
from runner.providers.base import JobState, RemoteJob


def file_object(file_id: str, filename: str, purpose: str = "batch", size: int = 10,
                status: str = "processed") -> dict[str, object]:
    return {"id": file_id, "object": "file", "bytes": size, "created_at": 1_767_225_600,
            "filename": filename, "purpose": purpose, "status": status}


def test_upload_sends_a_multipart_form_named_by_the_tag(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes(b'{"custom_id":"a"}\n' * 5000)
    size = path.stat().st_size
    wire = script(ok(file_object("file-up1", "tag-1.jsonl", size=size)))
    progress: list[tuple[int, int]] = []
    file_id = wire.provider().upload_file(
        path, "tag-1", on_progress=lambda sent, total: progress.append((sent, total)))
    assert file_id == "file-up1"
    (request,) = wire.requests
    assert (request.method, request.url.path) == ("POST", "/v1/files")
    assert request.headers["content-type"].startswith("multipart/form-data; boundary=")
    form = request.content
    assert b'name="purpose"\r\n\r\nbatch\r\n' in form
    assert b'name="file"; filename="tag-1.jsonl"\r\nContent-Type: application/jsonl' in form
    assert path.read_bytes() in form
    assert int(request.headers["content-length"]) == len(form)
    assert progress[-1] == (size, size) and len(progress) > 1


def test_an_upload_the_provider_stored_short_is_not_used(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"x" * 100)
    wire = script(ok(file_object("file-up1", "tag-1.jsonl", size=40)))
    with pytest.raises(ProviderError, match="stored 40 bytes of 100"):
        wire.provider().upload_file(path, "tag-1")


def test_find_file_looks_for_the_tag_among_batch_files() -> None:
    pages = {"": page(file_object("file-a", "other.jsonl"),
                      file_object("file-b", "tag-1.jsonl", status="error"), more=True),
             "file-b": page(file_object("file-c", "tag-1.jsonl"))}
    wire = Wire(lambda r: ok(pages[r.url.params.get("after", "")]))
    assert wire.provider().find_file("tag-1") == "file-c"
    assert [dict(r.url.params) for r in wire.requests] == [
        {"purpose": "batch", "order": "desc", "limit": "10000"},
        {"purpose": "batch", "order": "desc", "limit": "10000", "after": "file-b"}]
    assert script(ok(page())).provider().find_file("tag-1") is None


def test_a_file_item_that_is_a_string_names_the_field() -> None:
    wire = script(ok({"object": "list", "data": ["file-a"], "has_more": False}))
    with pytest.raises(ProviderError, match="list files page 1, item 1: the provider sent the "
                                            "file as a string, expected an object"):
        wire.provider().find_file("tag-1")


class Dropped(httpx.SyncByteStream):
    """A body that stops after `head` as a dropped connection does."""

    def __init__(self, head: bytes):
        self.head = head

    def __iter__(self) -> Iterator[bytes]:
        yield self.head
        raise httpx.ReadError("connection dropped")


def test_results_are_the_output_file_then_the_error_file(tmp_path: Path) -> None:
    tries = {"file-out": 0}

    def server(request: httpx.Request) -> Answer:
        if request.url.path == "/v1/batches/batch_1":
            return ok(batch("batch_1", "expired", output_file_id="file-out",
                            error_file_id="file-err"))
        if request.url.path == "/v1/files/file-out/content":
            tries["file-out"] += 1
            if tries["file-out"] == 1:
                return httpx.Response(200, stream=Dropped(b'{"custom_id":"a"'))
            return httpx.Response(200, content=b'{"custom_id":"a"}')     # no last newline
        assert request.url.path == "/v1/files/file-err/content"
        return httpx.Response(200, content=b'{"custom_id":"b","error":{"code":"batch_expired"}}\n')

    wire = Wire(server)
    dest = tmp_path / "results.jsonl"
    job = RemoteJob("batch_1", "tag-batch_1", JobState.SUCCEEDED)
    wire.provider().download_results(job, dest)
    assert dest.read_bytes() == (b'{"custom_id":"a"}\n'
                                 b'{"custom_id":"b","error":{"code":"batch_expired"}}\n')
    assert len(wire.sleeps) == 1      # the dropped transfer, started again


def test_results_of_a_batch_without_files_are_an_error(tmp_path: Path) -> None:
    wire = script(ok(batch("batch_1", "completed")))
    with pytest.raises(ProviderError, match="no output or error file"):
        wire.provider().download_results(RemoteJob("batch_1", "t", JobState.SUCCEEDED),
                                         tmp_path / "r.jsonl")


def test_delete_job_deletes_the_batchs_files_and_tolerates_gone_ones() -> None:
    def server(request: httpx.Request) -> Answer:
        if request.method == "GET":
            return ok(batch("batch_1", "completed", output_file_id="file-out",
                            error_file_id="file-err"))
        if request.url.path.endswith("file-err"):
            return httpx.Response(404, json={"error": {"message": "No such File"}})
        return ok({"id": request.url.path.rsplit("/", 1)[1], "object": "file", "deleted": True})

    wire = Wire(server)
    wire.provider().delete_job("batch_1")
    assert [(r.method, r.url.path) for r in wire.requests] == [
        ("GET", "/v1/batches/batch_1"), ("DELETE", "/v1/files/file-in"),
        ("DELETE", "/v1/files/file-out"), ("DELETE", "/v1/files/file-err")]
    gone = script(httpx.Response(404))
    gone.provider().delete_job("batch_1")
    assert len(gone.requests) == 1


def test_cancel_of_an_ended_batch_is_quiet_and_of_a_live_one_reports() -> None:
    refused = httpx.Response(400, json={"error": {"message": "Cannot cancel"}})
    wire = script(refused, ok(batch("batch_1", "completed")))
    wire.provider().cancel_job("batch_1")
    assert [(r.method, r.url.path) for r in wire.requests] == [
        ("POST", "/v1/batches/batch_1/cancel"), ("GET", "/v1/batches/batch_1")]
    live = script(refused, ok(batch("batch_1", "in_progress")))
    with pytest.raises(ProviderError, match="HTTP 400: Cannot cancel"):
        live.provider().cancel_job("batch_1")
    script(httpx.Response(404)).provider().cancel_job("batch_1")
