"""OpenAI's Files API: upload (a multipart form), retrieve, list, download, delete.

An upload is streamed to disk as it arrives (files reach hundreds of megabytes); the form's
fields may come in any order, so a file's checks (purpose, the `.jsonl` name a batch input
needs, sizes, expiry) are made once the form has been read, and a refused file's bytes are
removed. Files are `processed` as soon as they are stored. Batch files expire after 30 days
unless `expires_after` says otherwise (the emulator reports it; it does not delete them).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping
from typing import IO

from runner.emulator.admin import Stats
from runner.emulator.clock import Clock
from runner.emulator.faults import Faults
from runner.emulator.messages import Reply, Request
from runner.emulator.openai import listing, views
from runner.emulator.openai.disk import Disk
from runner.emulator.openai.errors import invalid, not_found
from runner.emulator.openai.hostile import WRONG_IN_RESULTS, distort_results
from runner.emulator.openai.multipart import FormPart, FormReader, boundary_of
from runner.emulator.openai.records import FileRecord, file_id
from runner.emulator.store import atomic_file, remove

PURPOSES = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")
MAX_FILE_BYTES = 512 * 1024 * 1024
MAX_BATCH_FILE_BYTES = 200 * 1024 * 1024
BATCH_LIFETIME = 30 * 24 * 3600
MIN_EXPIRY, MAX_EXPIRY = 3600, 30 * 24 * 3600
MAX_LIST = 10_000
_FIELD_BYTES = 1024


def check_purpose(purpose: str | None, filename: str) -> str:
    """The purpose of a new file, checked with its name as the real API checks them."""
    if not purpose:
        raise invalid("Missing required parameter: 'purpose'.", "purpose",
                      "missing_required_parameter")
    if purpose not in PURPOSES:
        raise invalid(f"Invalid value for 'purpose': {purpose!r}. Supported values are: "
                      + ", ".join(repr(p) for p in PURPOSES) + ".", "purpose", "invalid_value")
    if purpose == "batch" and not filename.endswith(".jsonl"):
        raise invalid("Invalid file format for Batch API. Must be .jsonl")
    return purpose


def lifetime(purpose: str, anchor: object, seconds: object) -> int | None:
    """How long a new file lives: `expires_after` if given, else 30 days for batch files."""
    if anchor is None and seconds is None:
        return BATCH_LIFETIME if purpose == "batch" else None
    if anchor != "created_at":
        raise invalid("Invalid 'expires_after.anchor': expected 'created_at'.",
                      "expires_after.anchor", "invalid_value")
    number = int(seconds) if isinstance(seconds, (int, str)) and str(seconds).isdigit() else -1
    if not MIN_EXPIRY <= number <= MAX_EXPIRY:
        raise invalid(f"Invalid 'expires_after.seconds': expected an integer from {MIN_EXPIRY}"
                      f" to {MAX_EXPIRY}.", "expires_after.seconds", "invalid_value")
    return number


class Files:
    """The handlers of the file routes (mounted by openai.api)."""

    def __init__(
        self, disk: Disk, clock: Clock, stats: Stats, faults: Callable[[], Faults]
    ) -> None:
        self._disk = disk
        self._clock = clock
        self._stats = stats
        self._faults = faults

    def create(self, request: Request, params: dict[str, str]) -> Reply:
        reader = FormReader(request.body.chunks(), boundary_of(request.headers))
        now = self._clock.now()
        new_id = self.new_id(now)
        fields: dict[str, str] = {}
        size: int | None = None
        filename = ""
        try:
            for part in reader.parts():
                if part.field == "file":
                    if size is not None:
                        raise invalid("The form holds more than one file.", "file")
                    self._stats.count("uploads_started")
                    filename = part.filename or "file"
                    size = self._receive(part, new_id)
                elif part.field:
                    fields[part.field] = part.read(_FIELD_BYTES).decode("utf-8", "replace")
            if size is None:
                raise invalid("Missing required parameter: 'file'.", "file",
                              "missing_required_parameter")
            purpose = check_purpose(fields.get("purpose"), filename)
            if purpose == "batch" and size > MAX_BATCH_FILE_BYTES:
                raise invalid(f"The batch input file is {size} bytes; the Batch API accepts at"
                              f" most {MAX_BATCH_FILE_BYTES}.", "file")
            keep = lifetime(purpose, fields.get("expires_after[anchor]"),
                            fields.get("expires_after[seconds]"))
        except BaseException:
            remove(self._disk.blob(new_id))
            raise
        record = FileRecord(id=new_id, filename=filename, purpose=purpose, size=size,
                            created_at=now, expires_at=None if keep is None else now + keep)
        self._disk.files.put(record)
        return Reply.json(views.file_object(record))

    def _receive(self, part: FormPart, new_id: str) -> int:
        size = 0
        with atomic_file(self._disk.blob(new_id)) as out:
            for data in part.chunks():
                size += len(data)
                if size > MAX_FILE_BYTES:
                    raise invalid(f"The file exceeds the maximum size of {MAX_FILE_BYTES}"
                                  " bytes.", "file")
                out.write(data)
        return size

    def new_id(self, now: float) -> str:
        new_id = file_id(now)
        while self._disk.files.exists(new_id) or self._disk.blob(new_id).exists():
            new_id = file_id(now)
        return new_id

    def get(self, request: Request, params: dict[str, str]) -> Reply:
        return Reply.json(views.file_object(self.record(params["id"])))

    def record(self, file_id: str) -> FileRecord:
        record = self._disk.files.get(file_id)
        if record is None:
            raise not_found("File", file_id)
        return record

    def list(self, request: Request, params: dict[str, str]) -> Reply:
        query: Mapping[str, str] = request.query
        limit = listing.limit_of(query.get("limit"), MAX_LIST, MAX_LIST)
        newest_first = listing.order_of(query.get("order"))
        purpose = query.get("purpose")
        files = [f for f in self._disk.files.all() if not purpose or f.purpose == purpose]
        chosen, more = listing.page(files, lambda f: listing.sort_key(f.id, f.created_at), limit,
                                    query.get("after"), self._disk.files.get, newest_first)
        return Reply.json(listing.listing([views.file_object(f) for f in chosen], more))

    def content(self, request: Request, params: dict[str, str]) -> Reply:
        """The file's bytes, streamed from disk (whatever `Accept` asked for); a result
        file's answers distorted in memory when a `wrong_types` fault reaches them."""
        record = self.record(params["id"])
        try:
            stream: IO[bytes] = self._disk.blob(record.id).open("rb")
        except FileNotFoundError:
            raise not_found("File", record.id) from None
        size = record.size
        fault = self._faults().wrong_types
        if record.purpose == "batch_output" and fault in WRONG_IN_RESULTS:
            with stream:
                stream = io.BytesIO(distort_results(stream.read(), fault))
            size = len(stream.getvalue())
        return Reply(content_type="application/octet-stream", stream=stream, stream_length=size)

    def delete(self, request: Request, params: dict[str, str]) -> Reply:
        with self._disk.lock(f"files/{params['id']}"):
            record = self.record(params["id"])
            self._disk.delete_file(record.id)
        return Reply.json(views.deleted(record.id))

