"""Anthropic's error shape and its credentials, shared by every Anthropic route.

Errors reach a provider as provider-neutral names (runner.emulator.wire); Anthropic writes
each as `{"type": "error", "error": {"type", "message"}, "request_id"}`, where the inner
`type` is one of its own error types. The same object, with a request id derived from the
request, is what an `errored` result carries. Keys arrive as `Authorization: Bearer` (SDK
2.x) or `x-api-key` (earlier SDKs and most examples); both are accepted.
"""

from __future__ import annotations

import hashlib
import secrets
import string

from runner.emulator.messages import Request
from runner.emulator.wire import JSON, ApiError

# Anthropic's error type for each error name the emulator raises; 409s never go out (the SDK
# would retry them), and names without an entry are api_error.
ERROR_TYPES: dict[str, str] = {
    "INVALID_ARGUMENT": "invalid_request_error",
    "FAILED_PRECONDITION": "invalid_request_error",
    "OUT_OF_RANGE": "invalid_request_error",
    "UNAUTHENTICATED": "authentication_error",
    "PERMISSION_DENIED": "permission_error",
    "NOT_FOUND": "not_found_error",
    "PAYLOAD_TOO_LARGE": "request_too_large",
    "RESOURCE_EXHAUSTED": "rate_limit_error",
    "DEADLINE_EXCEEDED": "timeout_error",
    "OVERLOADED": "overloaded_error",
}

_ALPHABET = string.ascii_letters + string.digits


def new_request_id() -> str:
    return "req_" + "".join(secrets.choice(_ALPHABET) for _ in range(24))


def derived_request_id(*parts: str) -> str:
    """A request id that is a function of `parts`, for results that must repeat exactly."""
    digest = hashlib.sha256("\0".join(parts).encode()).hexdigest()
    return "req_" + digest[:24]


def error_response(status: str, message: str, request_id: str) -> JSON:
    """An ErrorResponse: the body of an error answer, and the `error` of an errored result."""
    kind = ERROR_TYPES.get(status, "api_error")
    return {"type": "error", "error": {"type": kind, "message": message},
            "request_id": request_id}


def error_body(error: ApiError, request_id: str) -> JSON:
    return error_response(error.status, error.message, request_id)


def api_key(request: Request) -> str:
    """The key a request carries: `x-api-key`, else a Bearer token; "" when it has none."""
    key = request.headers.get("x-api-key", "").strip()
    if key:
        return key
    scheme, _, token = request.headers.get("Authorization", "").strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""
