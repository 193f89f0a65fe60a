"""Google's encoding rules, shared by every Gemini route: proto3-JSON habits, google.rpc errors.

The real API accepts camelCase and snake_case field names in request bodies (the SDK itself
mixes them), and answers in camelCase with int64 values as strings, zero defaults omitted and
RFC 3339 timestamps with nanosecond digits. Keeping those rules in one place lets the routes
read like the spec.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Any

from runner.emulator.wire import JSON, ApiError

# The gRPC code number of each error name, as google.rpc.Status writes it inside an Operation
# or a result line (the HTTP status is the shared runner.emulator.wire.HTTP_STATUS).
GRPC_CODE: dict[str, int] = {
    "CANCELLED": 1,
    "INVALID_ARGUMENT": 3,
    "DEADLINE_EXCEEDED": 4,
    "NOT_FOUND": 5,
    "ALREADY_EXISTS": 6,
    "PERMISSION_DENIED": 7,
    "RESOURCE_EXHAUSTED": 8,
    "FAILED_PRECONDITION": 9,
    "OUT_OF_RANGE": 11,
    "INTERNAL": 13,
    "UNAVAILABLE": 14,
}


def error_body(error: ApiError) -> JSON:
    """An error answer as Google's APIs send it: `{"error": {code, message, status}}`, where
    `code` is the HTTP status, plus the google.rpc `details` if any."""
    body: JSON = {"code": error.http_status, "message": error.message, "status": error.status}
    if error.details:
        body["details"] = error.details
    return {"error": body}


def rpc_status(status: str, message: str) -> JSON:
    """A google.rpc.Status as it appears inside an Operation or a result line (gRPC code)."""
    return {"code": GRPC_CODE[status], "message": message, "status": status}


@functools.lru_cache(maxsize=512)     # the field names the routes read: a regex each, per request
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
