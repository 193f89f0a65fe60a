"""A finished inline batch's answers, from the batch resource on disk to result lines.

A batch sent inline gets its answers back inside the batch resource, at
`metadata.output.inlinedResponses.inlinedResponses[]` (and again in the Operation's top-level
`response`, where the SDK does not look). The client spools that answer to a file as it
arrives; this walks it with the bounded reader (`jsonstream`), one InlinedResponse at a time,
and writes each as the results file's line `{"key", "response" | "error"}`: memory holds one
answer, whatever the size of the batch. The walk stops once the list is read: the copy under
`response` is never parsed.

Every answer is hostile until checked: a field of the wrong type, a document cut short or not
JSON, a value past the bound, become one ProviderError naming the job and the field.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import IO, Any, TextIO

from ...errors import ProviderError
from ..reading import kind
from .jsonstream import Malformed, Reader

_OUTPUT = ("output", "inlinedResponses", "inlinedResponses")
_RESPONSE = ("inlinedResponses", "inlinedResponses")
ITEM_MOST = 64 << 20                # characters one InlinedResponse may take


def write_results(source: TextIO, dest: IO[bytes], whose: str,
                  redact: Callable[[str], str], most: int = ITEM_MOST) -> int:
    """Writes the InlinedResponses of the batch resource in `source` to `dest` as result
    lines; returns how many. `whose` names the job in complaints; `redact` clears the API key
    from what is written (a provider may quote it back in an error)."""
    reader = Reader(source, most)
    written = _Lines(dest, redact, whose)
    try:
        if reader.kind() != "an object":
            raise _wrong(whose, "the batch", reader.kind(), "an object")
        for key in reader.members():
            if key == "metadata":
                found = _find(reader, _OUTPUT, "metadata", written)
            elif key == "response":
                found = _find(reader, _RESPONSE, "response", written)
            else:
                reader.skip()
                continue
            if found:
                return written.count
    except Malformed as e:
        raise ProviderError(f"{whose}: the provider's answer is unusable: {e}") from None
    raise ProviderError(f"{whose} succeeded but reports no results")


def _find(reader: Reader, path: tuple[str, ...], where: str, written: _Lines) -> bool:
    """Reads the object that comes next, down `path` to the list of answers, writing them;
    True once written (the rest of the document left unread), False when the object, now
    read, has no such list."""
    what = reader.kind()
    if what == "null":
        reader.skip()
        return False
    if what != "an object":
        raise _wrong(written.whose, where, what, "an object")
    for key in reader.members():
        if key != path[0]:
            reader.skip()
            continue
        field = f"{where}.{key}"
        if len(path) > 1:
            if _find(reader, path[1:], field, written):
                return True
            continue
        what = reader.kind()
        if what == "null":
            reader.skip()
            continue
        if what != "an array":
            raise _wrong(written.whose, field, what, "an array")
        for i, _ in enumerate(reader.elements()):
            written.line(reader.value(), f"{field}[{i}]")
        return True
    return False


class _Lines:
    """Result lines written to a file, counted."""

    def __init__(self, dest: IO[bytes], redact: Callable[[str], str], whose: str):
        self._dest = dest
        self._redact = redact
        self.whose = whose
        self.count = 0

    def line(self, item: Any, field: str) -> None:
        """One InlinedResponse `{metadata: {key}, response | error}` as a result line."""
        if type(item) is not dict:
            raise _wrong(self.whose, field, kind(item), "an object")
        metadata = item.get("metadata")
        if metadata is None:
            metadata = {}
        elif type(metadata) is not dict:
            raise _wrong(self.whose, f"{field}.metadata", kind(metadata), "an object")
        line: dict[str, Any] = {"key": metadata.get("key")}
        if "error" in item:
            line["error"] = item["error"]
        else:
            line["response"] = item.get("response", {})
        # the json module's default spacing: the same bytes as when the answers were parsed
        # whole, so the result store's packs of a batch stay what they were. JSON's grammar
        # takes two values a UTF-8 JSON line cannot hold: a number past a double, which
        # Python reads as infinity (and would write as `Infinity`, which nothing reads
        # back), and a string escaping half a surrogate pair (which UTF-8 cannot encode)
        try:
            data = self._redact(json.dumps(line, ensure_ascii=False, allow_nan=False)
                                ).encode()
        except ValueError as e:
            what = "a lone surrogate (half a character)" if \
                isinstance(e, UnicodeEncodeError) else "a number too large for JSON"
            raise ProviderError(f"{self.whose}: the provider sent {field} holding {what}; "
                                "no results line can hold it") from None
        self._dest.write(data + b"\n")
        self.count += 1


def _wrong(whose: str, field: str, what: str, expected: str) -> ProviderError:
    return ProviderError(f"{whose}: the provider sent {field} as {what}, expected {expected}")
