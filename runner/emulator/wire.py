"""What every emulated provider's wire has in common: JSON bodies, and errors by name.

Errors are raised anywhere in the emulator (a body too large, a page token that does not
decode, a record not found) long before anyone knows which provider's shape the answer must
take, so they carry a provider-neutral name (the canonical gRPC status names, which every
HTTP API's errors map onto) and the HTTP status that goes with it. Each provider renders an
ApiError in its own body shape; Gemini's is in `runner.emulator.gemini.protojson`.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Mapping
from typing import Any

import orjson

JSON = dict[str, Any]

# The HTTP status of each error name the emulator raises.
HTTP_STATUS: dict[str, int] = {
    "CANCELLED": 499,
    "INVALID_ARGUMENT": 400,
    "DEADLINE_EXCEEDED": 504,
    "UNAUTHENTICATED": 401,
    "NOT_FOUND": 404,
    "ALREADY_EXISTS": 409,
    "PERMISSION_DENIED": 403,
    "RESOURCE_EXHAUSTED": 429,
    "FAILED_PRECONDITION": 400,
    "OUT_OF_RANGE": 416,
    "INTERNAL": 500,
    "UNAVAILABLE": 503,
    # Not gRPC names: answers some providers give that no gRPC code stands for (Anthropic's
    # request_too_large and overloaded_error).
    "PAYLOAD_TOO_LARGE": 413,
    "OVERLOADED": 529,
}


class ApiError(Exception):
    """An error answer: its name, message, HTTP status, extra headers, and any structured
    `details` the provider's error shape can carry (Gemini's google.rpc details)."""

    def __init__(
        self,
        status: str,
        message: str,
        *,
        headers: Mapping[str, str] | None = None,
        details: list[JSON] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.http_status = HTTP_STATUS[status]
        self.headers = dict(headers or {})
        self.details = details or []


def timestamp(epoch: float) -> str:
    """RFC 3339 in UTC with nine fractional digits, as Google's APIs write them."""
    seconds = int(epoch // 1)
    nanos = min(round((epoch - seconds) * 1e9), 999_999_999)
    moment = datetime.datetime.fromtimestamp(seconds, tz=datetime.timezone.utc)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{nanos:09d}Z"


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


def canonical(obj: Any) -> str:
    """A stable text form of a JSON value, for hashing."""
    return json.dumps(obj, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


# Every float in JSON text has a digit followed by ".", "e" or "E": mapped to "0e", a text
# without "0e" holds none. orjson writes a float otherwise than Python only with an exponent
# ("0e" once digits are mapped to 0) or as "0.0000..." (Python: 1e-05).
_FLOATISH = bytes.maketrans(b"123456789.E", b"000000000ee")
_DIGITS = bytes.maketrans(b"123456789", b"000000000")


def may_hold_floats(text: bytes) -> bool:
    """False when the JSON `text` holds no float (True may be wrong: "0e" in a string)."""
    return b"0e" in text.translate(_FLOATISH)


def fast_dumps(obj: Any, sort_keys: bool = False, floats: bool = True) -> bytes:
    """The bytes of dumps(obj), or of canonical(obj) with `sort_keys`, several times faster,
    for a value orjson parsed (so no NaN, infinity or integer past 64 bits, which orjson
    writes otherwise or not at all): orjson's, unless it may hold a float that Python writes
    otherwise (with an exponent from 1e16 and under 1e-4), then the json module's.
    `floats=False`: the value holds no float."""
    try:
        data = orjson.dumps(obj, option=orjson.OPT_SORT_KEYS if sort_keys else None)
    except TypeError:       # orjson.JSONEncodeError: leave it to the json module
        return canonical(obj).encode() if sort_keys else dumps(obj)
    if floats and (b"0e" in data.translate(_DIGITS) or b"0.0000" in data):
        return canonical(obj).encode() if sort_keys else dumps(obj)
    return data
