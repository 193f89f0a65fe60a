"""Files: the resumable upload protocol, and get / list / delete / open of stored files.

Uploads follow Google's resumable protocol. `start` opens a session; each `upload` command
appends a body at `X-Goog-Upload-Offset`, which must equal the bytes already received, so a
client that lost track must `query` and resume; `finalize` turns the session into a file;
`cancel` abandons it. Bodies are appended to a part file as they arrive (never held whole in
memory), and bytes that arrived before a connection broke are kept, as the real service does.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import os
import re
from collections.abc import Iterable, Mapping
from typing import IO, Any

from runner.emulator import paging
from runner.emulator.clock import Clock
from runner.emulator.gemini.disk import Disk
from runner.emulator.gemini.protojson import pick_int, pick_str
from runner.emulator.gemini.records import FileRecord, UploadSession
from runner.emulator.store import new_id
from runner.emulator.wire import ApiError

GRANULARITY = 8 * 1024 * 1024
COMMANDS = frozenset({"upload", "finalize", "query", "cancel"})
_FILE_NAME = re.compile(r"files/[a-z0-9-]{1,40}")


@dataclasses.dataclass(frozen=True)
class ChunkReply:
    """The upload status (`active`, `final`, `cancelled`) after a command, and its result."""

    status: str
    received: int
    file: FileRecord | None = None


def _upload_error(status: str, message: str, upload_status: str, received: int) -> ApiError:
    # Every reply on an upload URL carries the upload status: without one the SDK retries.
    return ApiError(
        status,
        message,
        headers={
            "x-goog-upload-status": upload_status,
            "x-goog-upload-size-received": str(received),
        },
    )


class Files:
    def __init__(self, disk: Disk, clock: Clock) -> None:
        self._disk = disk
        self._clock = clock

    def start_upload(
        self, meta: Mapping[str, Any], size: int | None, mime_type: str | None
    ) -> UploadSession:
        """Open a session; `meta` is the body's `file` object, size and type from headers."""
        name = pick_str(meta, "name", "file")
        if name is not None:
            if not _FILE_NAME.fullmatch(name):
                raise ApiError("INVALID_ARGUMENT", f"Invalid file name {name!r}")
            file_id = name.removeprefix("files/")
            if self._disk.files.exists(file_id):
                raise ApiError("ALREADY_EXISTS", f"File {name} already exists.")
        else:
            file_id = self._disk.files.new_id(12)
        total = size if size is not None else pick_int(meta, "sizeBytes", "file")
        session = UploadSession(
            id=new_id(40),
            file_id=file_id,
            display_name=pick_str(meta, "displayName", "file") or "",
            mime_type=mime_type or pick_str(meta, "mimeType", "file") or "application/octet-stream",
            total=total,
            create_time=self._clock.now(),
        )
        self._disk.part(session.id).touch()
        self._disk.uploads.put(session)
        return session

    def command(
        self,
        upload_id: str,
        commands: frozenset[str],
        offset: int | None,
        chunks: Iterable[bytes],
    ) -> ChunkReply:
        """Carry out `X-Goog-Upload-Command` (e.g. {"upload", "finalize"}) on a session."""
        if not commands or not commands <= COMMANDS:
            raise _upload_error("INVALID_ARGUMENT", "Unsupported upload command.", "active", 0)
        with self._disk.lock(f"uploads/{upload_id}"):
            session = self._disk.upload(upload_id)
            if session is None:
                raise _upload_error("NOT_FOUND", "Upload session not found.", "final", 0)
            if session.state == "final":
                return self._after_final(session, commands)
            if session.state == "cancelled":
                raise _upload_error("NOT_FOUND", "The upload was cancelled.", "cancelled", 0)
            part = self._disk.part(upload_id)
            if "cancel" in commands:
                part.unlink(missing_ok=True)
                self._disk.uploads.put(dataclasses.replace(session, state="cancelled"))
                return ChunkReply("cancelled", 0)
            received = part.stat().st_size
            if "query" in commands:
                return ChunkReply("active", received)
            if "upload" in commands:
                received = self._append(session, offset, received, chunks)
            if "finalize" in commands:
                return self._finalize(session, received)
            return ChunkReply("active", received)

    def _after_final(self, session: UploadSession, commands: frozenset[str]) -> ChunkReply:
        """A finalized session answers query and finalize again, for a client that lost the
        reply."""
        record = self._disk.files.get(session.file_id)
        if record is not None and commands <= {"query", "finalize"}:
            return ChunkReply("final", record.size_bytes, record)
        raise _upload_error("INVALID_ARGUMENT", "The upload is already finalized.", "final", 0)

    def _append(
        self, session: UploadSession, offset: int | None, received: int, chunks: Iterable[bytes]
    ) -> int:
        if offset is None:
            raise _upload_error(
                "INVALID_ARGUMENT", "X-Goog-Upload-Offset is required.", "active", received
            )
        if offset != received:
            raise _upload_error(
                "INVALID_ARGUMENT",
                f"X-Goog-Upload-Offset {offset} does not match the {received} bytes received;"
                " query the upload and resume from there.",
                "active",
                received,
            )
        with self._disk.part(session.id).open("ab") as part:
            for data in chunks:
                part.write(data)
                received += len(data)
                if session.total is not None and received > session.total:
                    part.truncate(offset)
                    raise _upload_error(
                        "INVALID_ARGUMENT",
                        f"The upload exceeds the declared size of {session.total} bytes.",
                        "active",
                        offset,
                    )
        return received

    def _finalize(self, session: UploadSession, received: int) -> ChunkReply:
        if session.total is not None and received != session.total:
            raise _upload_error(
                "INVALID_ARGUMENT",
                f"Received {received} bytes but the upload declared {session.total}.",
                "active",
                received,
            )
        if self._disk.files.exists(session.file_id):
            raise _upload_error(
                "ALREADY_EXISTS",
                f"File files/{session.file_id} already exists.",
                "active",
                received,
            )
        part = self._disk.part(session.id)
        with part.open("rb") as data:
            sha256 = _sha256(data)
        now = self._clock.now()
        os.replace(part, self._disk.blob(session.file_id))
        record = FileRecord(
            id=session.file_id,
            display_name=session.display_name,
            mime_type=session.mime_type,
            size_bytes=received,
            create_time=now,
            sha256=sha256,
        )
        self._disk.files.put(record)
        self._disk.uploads.put(dataclasses.replace(session, state="final"))
        return ChunkReply("final", received, record)

    def get(self, file_id: str) -> FileRecord:
        record = self._disk.files.get(file_id)
        if record is None:
            raise ApiError("NOT_FOUND", f"File files/{file_id} not found.")
        return record

    def page(self, size: int, token: str | None) -> tuple[list[FileRecord], str | None]:
        files = self._disk.files.all()
        return paging.paginate(files, lambda r: (r.create_time, r.id), size, token)

    def delete(self, file_id: str) -> None:
        with self._disk.lock(f"files/{file_id}"):
            self.get(file_id)
            self._disk.delete_file(file_id)

    def open(self, record: FileRecord) -> IO[bytes]:
        """An open handle on a file's bytes, for streaming a download."""
        try:
            return self._disk.blob(record.id).open("rb")
        except FileNotFoundError:
            raise ApiError("NOT_FOUND", f"File {record.name} not found.") from None


def _sha256(data: IO[bytes]) -> str:
    digest = hashlib.sha256()
    while block := data.read(1024 * 1024):
        digest.update(block)
    return base64.b64encode(digest.digest()).decode()
