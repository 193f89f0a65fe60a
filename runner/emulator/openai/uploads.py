"""OpenAI's Uploads API: a file sent in parts, for files too big for one request.

`POST /uploads` declares the file (its size, name, MIME type and purpose); each
`POST /uploads/{id}/parts` stores one part (a multipart form's `data`, at most 64 MB), and
parts may arrive in parallel; `complete` names the parts in the order they make the file,
checks the total size (and the MD5 if given) and turns them into a File; `cancel` abandons
the upload. An upload not completed within the hour reads `expired`. Parts are streamed to
disk and the file is assembled by streaming them, never held whole in memory.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping
from typing import Any

from runner.emulator.admin import Stats
from runner.emulator.clock import Clock
from runner.emulator.messages import Reply, Request
from runner.emulator.openai import views
from runner.emulator.openai.disk import Disk
from runner.emulator.openai.errors import invalid, not_found
from runner.emulator.openai.files import Files, check_purpose, lifetime
from runner.emulator.openai.multipart import FormReader, boundary_of
from runner.emulator.openai.records import (
    FileRecord,
    PartRecord,
    UploadRecord,
    is_id,
    random_id,
)
from runner.emulator.store import atomic_file, remove

MAX_UPLOAD_BYTES = 8 * 1024**3
MAX_PART_BYTES = 64 * 1024 * 1024
UPLOAD_LIFETIME = 3600.0
PENDING, COMPLETED, CANCELLED, EXPIRED = "pending", "completed", "cancelled", "expired"


class Uploads:
    """The handlers of the upload routes (mounted by openai.api)."""

    def __init__(self, disk: Disk, clock: Clock, stats: Stats, files: Files) -> None:
        self._disk = disk
        self._clock = clock
        self._stats = stats
        self._files = files

    def create(self, request: Request, params: dict[str, str]) -> Reply:
        body = request.json()
        size = body.get("bytes")
        if not isinstance(size, int) or isinstance(size, bool) or not 0 < size <= MAX_UPLOAD_BYTES:
            raise invalid(f"Invalid 'bytes': expected an integer from 1 to {MAX_UPLOAD_BYTES}.",
                          "bytes", "invalid_value")
        filename = _string(body, "filename")
        mime_type = _string(body, "mime_type")
        purpose = check_purpose(_string(body, "purpose"), filename)
        expiry = body.get("expires_after")
        expiry = expiry if isinstance(expiry, dict) else {}
        keep = lifetime(purpose, expiry.get("anchor"), expiry.get("seconds"))
        now = self._clock.now()
        record = UploadRecord(id=random_id("upload_"), filename=filename, purpose=purpose,
                              mime_type=mime_type, size=size, created_at=now,
                              expires_at=now + UPLOAD_LIFETIME, file_expires_after=keep)
        self._disk.uploads.put(record)
        self._stats.count("uploads_started")
        return Reply.json(views.upload_object(record, PENDING, None))

    def add_part(self, request: Request, params: dict[str, str]) -> Reply:
        upload = self._pending(params["id"], "add parts to")
        reader = FormReader(request.body.chunks(), boundary_of(request.headers))
        part_id = random_id("part_")
        size: int | None = None
        for part in reader.parts():
            if part.field != "data" or size is not None:
                continue
            size = 0
            with atomic_file(self._disk.part_bytes(part_id)) as out:
                for data in part.chunks():
                    size += len(data)
                    if size > MAX_PART_BYTES:
                        raise invalid(f"A part may hold at most {MAX_PART_BYTES} bytes.", "data")
                    out.write(data)
        if size is None:
            raise invalid("Missing required parameter: 'data'.", "data",
                          "missing_required_parameter")
        record = PartRecord(id=part_id, upload_id=upload.id, size=size,
                            created_at=self._clock.now())
        self._disk.parts.put(record)
        return Reply.json({"id": record.id, "object": "upload.part",
                           "created_at": int(record.created_at), "upload_id": upload.id})

    def complete(self, request: Request, params: dict[str, str]) -> Reply:
        body = request.json()
        part_ids = body.get("part_ids")
        if not isinstance(part_ids, list) or not part_ids or \
                not all(isinstance(p, str) for p in part_ids):
            raise invalid("Missing required parameter: 'part_ids'.", "part_ids",
                          "missing_required_parameter")
        md5 = body.get("md5")
        with self._disk.lock(f"uploads/{params['id']}"):
            upload = self._pending(params["id"], "complete")
            parts = self._parts(upload, part_ids)
            total = sum(part.size for part in parts)
            if total != upload.size:
                raise invalid(f"The parts hold {total} bytes, but the upload was created for"
                              f" {upload.size} bytes.", "part_ids")
            file = self._assemble(upload, parts, md5 if isinstance(md5, str) else None)
            upload = dataclasses.replace(upload, status=COMPLETED, file_id=file.id)
            self._disk.uploads.put(upload)
            self._disk.delete_parts(upload.id)
        return Reply.json(views.upload_object(upload, COMPLETED, file))

    def cancel(self, request: Request, params: dict[str, str]) -> Reply:
        with self._disk.lock(f"uploads/{params['id']}"):
            upload = self._upload(params["id"])
            if upload.status != CANCELLED:
                upload = self._pending(upload.id, "cancel")
                upload = dataclasses.replace(upload, status=CANCELLED)
                self._disk.uploads.put(upload)
                self._disk.delete_parts(upload.id)
        return Reply.json(views.upload_object(upload, CANCELLED, None))

    def _upload(self, upload_id: str) -> UploadRecord:
        record = self._disk.uploads.get(upload_id)
        if record is None:
            raise not_found("Upload", upload_id, "upload_id")
        return record

    def _pending(self, upload_id: str, doing: str) -> UploadRecord:
        """The upload, which must still take parts: not completed, cancelled or expired."""
        record = self._upload(upload_id)
        status = record.status
        if status == PENDING and self._clock.now() >= record.expires_at:
            status = EXPIRED
        if status != PENDING:
            raise invalid(f"Cannot {doing} an upload with status '{status}'.", "upload_id")
        return record

    def _parts(self, upload: UploadRecord, part_ids: list[str]) -> list[PartRecord]:
        if len(set(part_ids)) != len(part_ids):
            raise invalid("part_ids names a part more than once.", "part_ids")
        parts = []
        for part_id in part_ids:
            part = self._disk.parts.get(part_id) if is_id(part_id) else None
            if part is None or part.upload_id != upload.id:
                raise invalid(f"No part {part_id!r} in upload {upload.id}.", "part_ids")
            parts.append(part)
        return parts

    def _assemble(
        self, upload: UploadRecord, parts: list[PartRecord], md5: str | None
    ) -> FileRecord:
        """The parts, in order, as a new file; its MD5 must match `md5` if one was given."""
        now = self._clock.now()
        new_id = self._files.new_id(now)
        digest = hashlib.md5(usedforsecurity=False)
        with atomic_file(self._disk.blob(new_id)) as out:
            for part in parts:
                with self._disk.part_bytes(part.id).open("rb") as data:
                    while block := data.read(1024 * 1024):
                        digest.update(block)
                        out.write(block)
        if md5 is not None and md5.lower() != digest.hexdigest():
            remove(self._disk.blob(new_id))
            raise invalid(f"The MD5 checksum of the parts, {digest.hexdigest()}, does not match"
                          f" the md5 given, {md5}.", "md5")
        keep = upload.file_expires_after
        record = FileRecord(id=new_id, filename=upload.filename, purpose=upload.purpose,
                            size=upload.size, created_at=now,
                            expires_at=None if keep is None else now + keep)
        self._disk.files.put(record)
        return record


def _string(body: Mapping[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise invalid(f"Missing required parameter: '{name}'.", name,
                      "missing_required_parameter")
    return value
