"""Encoding rules shared by every Gemini route: proto3-JSON habits and google.rpc errors.

The real API accepts camelCase and snake_case field names in request bodies (the SDK itself
mixes them), and answers in camelCase with int64 values as strings, zero defaults omitted and
RFC 3339 timestamps with nanosecond digits. Keeping those rules in one place lets the routes
read like the spec.
"""

from __future__ import annotations

import datetime
import json
import re
from collections.abc import Mapping
from typing import Any

JSON = dict[str, Any]

# gRPC code number and HTTP status for each google.rpc status name the emulator emits.
STATUS_CODES: dict[str, tuple[int, int]] = {
    "CANCELLED": (1, 499),
    "INVALID_ARGUMENT": (3, 400),
    "DEADLINE_EXCEEDED": (4, 504),
    "NOT_FOUND": (5, 404),
    "ALREADY_EXISTS": (6, 409),
    "PERMISSION_DENIED": (7, 403),
    "RESOURCE_EXHAUSTED": (8, 429),
    "FAILED_PRECONDITION": (9, 400),
    "OUT_OF_RANGE": (11, 416),
    "INTERNAL": (13, 500),
    "UNAVAILABLE": (14, 503),
}


class ApiError(Exception):
    """An error answered as `{"error": {code, message, status}}` with the matching HTTP status."""

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
        self.http_status = STATUS_CODES[status][1]
        self.headers = dict(headers or {})
        self.details = details or []

    def body(self) -> JSON:
        error: JSON = {"code": self.http_status, "message": self.message, "status": self.status}
        if self.details:
            error["details"] = self.details
        return {"error": error}


def rpc_status(status: str, message: str) -> JSON:
    """A google.rpc.Status as it appears inside an Operation or a result line (gRPC code)."""
    return {"code": STATUS_CODES[status][0], "message": message, "status": status}


def snake(camel: str) -> str:
    return re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), camel)


def pick(obj: Mapping[str, Any], camel: str) -> Any:
    """Read a request field under its camelCase or snake_case name."""
    if camel in obj:
        return obj[camel]
    return obj.get(snake(camel))


def pick_object(obj: Mapping[str, Any], camel: str, where: str) -> JSON | None:
    value = pick(obj, camel)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ApiError("INVALID_ARGUMENT", f"{where}.{camel} must be an object")
    return value


def pick_str(obj: Mapping[str, Any], camel: str, where: str) -> str | None:
    value = pick(obj, camel)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ApiError("INVALID_ARGUMENT", f"{where}.{camel} must be a string")
    return value


def pick_int(obj: Mapping[str, Any], camel: str, where: str) -> int | None:
    """int64 fields arrive as JSON numbers or as decimal strings."""
    value = pick(obj, camel)
    if value is None:
        return None
    if isinstance(value, bool):
        raise ApiError("INVALID_ARGUMENT", f"{where}.{camel} must be an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"-?[0-9]+", value):
        return int(value)
    raise ApiError("INVALID_ARGUMENT", f"{where}.{camel} must be an integer")


def int64(value: int) -> str:
    return str(value)


def timestamp(epoch: float) -> str:
    """RFC 3339 in UTC with nine fractional digits, as the real API writes them."""
    seconds = int(epoch // 1)
    nanos = min(round((epoch - seconds) * 1e9), 999_999_999)
    moment = datetime.datetime.fromtimestamp(seconds, tz=datetime.timezone.utc)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{nanos:09d}Z"


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


def canonical(obj: Any) -> str:
    """A stable text form of a JSON value, for hashing."""
    return json.dumps(obj, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
