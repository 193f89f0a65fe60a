"""A streaming reader of multipart/form-data bodies, for file uploads and upload parts.

The OpenAI SDK sends files as multipart forms (`purpose` and `file` for a file, `data` for a
part of an upload). A file may be hundreds of megabytes, so a form is read part by part and
each part's bytes as they arrive, never the whole body at once: the caller streams a file
part straight to disk. The standard library only parses forms held whole in memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from email.message import Message
from email.parser import HeaderParser

from runner.emulator.openai.errors import invalid

_MAX_HEADERS = 16 * 1024


class FormPart:
    """One field of the form: its name, its filename if it is a file, and its bytes, which
    must be read (`chunks` or `read`) before the next part is asked for."""

    def __init__(self, headers: Message, data: Iterator[bytes]) -> None:
        name = headers.get_param("name", header="content-disposition")
        filename = headers.get_param("filename", header="content-disposition")
        self.field = name if isinstance(name, str) else ""
        self.filename = filename if isinstance(filename, str) else None
        self._data = data

    def chunks(self) -> Iterator[bytes]:
        yield from self._data

    def read(self, limit: int) -> bytes:
        """The whole value of a plain field, which must not exceed `limit` bytes."""
        parts: list[bytes] = []
        size = 0
        for data in self._data:
            size += len(data)
            if size > limit:
                raise invalid(f"The form field {self.field!r} is too long.", self.field)
            parts.append(data)
        return b"".join(parts)

    def drain(self) -> None:
        for _ in self._data:
            pass


def boundary_of(content_type: Message) -> bytes:
    """The boundary of a multipart/form-data body, from the request's headers."""
    if content_type.get_content_type() != "multipart/form-data":
        raise invalid("The request must be sent as multipart/form-data.")
    boundary = content_type.get_param("boundary")
    if not isinstance(boundary, str) or not boundary:
        raise invalid("The multipart/form-data body has no boundary.")
    return boundary.encode("latin-1")


class FormReader:
    """The parts of one form, in order, read from the body's chunks as they come."""

    def __init__(self, chunks: Iterator[bytes], boundary: bytes) -> None:
        self._chunks = chunks
        # Every delimiter but the first follows a CRLF; lending the first one its CRLF lets
        # one search find them all.
        self._buffer = b"\r\n"
        self._delimiter = b"\r\n--" + boundary

    def parts(self) -> Iterator[FormPart]:
        for _ in self._until_delimiter():
            pass  # the preamble
        while True:
            ending = self._take(2)
            if ending == b"--":
                return
            if ending != b"\r\n":
                raise invalid("The multipart/form-data body is malformed.")
            part = FormPart(self._headers(), self._until_delimiter())
            yield part
            part.drain()

    def _headers(self) -> Message:
        while b"\r\n\r\n" not in self._buffer:
            if len(self._buffer) > _MAX_HEADERS or not self._fill():
                raise invalid("The multipart/form-data body has malformed part headers.")
        raw, self._buffer = self._buffer.split(b"\r\n\r\n", 1)
        return HeaderParser().parsestr(raw.decode("utf-8", "replace") + "\r\n\r\n")

    def _until_delimiter(self) -> Iterator[bytes]:
        """The bytes up to the next delimiter, which is consumed."""
        keep = len(self._delimiter) - 1
        while True:
            found = self._buffer.find(self._delimiter)
            if found >= 0:
                data = self._buffer[:found]
                self._buffer = self._buffer[found + len(self._delimiter):]
                if data:
                    yield data
                return
            if len(self._buffer) > keep:
                data = self._buffer[: len(self._buffer) - keep]
                self._buffer = self._buffer[len(data):]
                yield data
            if not self._fill():
                raise invalid("The multipart/form-data body ends before its closing boundary.")

    def _take(self, size: int) -> bytes:
        while len(self._buffer) < size:
            if not self._fill():
                raise invalid("The multipart/form-data body is malformed.")
        data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data

    def _fill(self) -> bool:
        for data in self._chunks:
            if data:
                self._buffer += data
                return True
        return False
