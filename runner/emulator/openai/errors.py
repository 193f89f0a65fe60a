"""OpenAI's error shape: `{"error": {"message", "type", "param", "code"}}`, and its request ids.

Errors are raised as the shared `ApiError` (named by gRPC status, runner.emulator.wire) so that
the shared machinery's own errors (a body too large, invalid JSON) come out in this shape too;
`OpenAiError` adds what only OpenAI's body carries: the offending parameter and a code. The
`type` follows from the status, as OpenAI's does from the HTTP status class.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping

from runner.emulator.wire import JSON, ApiError

# The `type` of each error name in OpenAI's body.
_TYPES: dict[str, str] = {
    "RESOURCE_EXHAUSTED": "requests",
    "INTERNAL": "server_error",
    "UNAVAILABLE": "server_error",
    "DEADLINE_EXCEEDED": "server_error",
}
_DEFAULT_TYPE = "invalid_request_error"


class OpenAiError(ApiError):
    """An ApiError that also names the request parameter at fault and a machine-readable
    code, as OpenAI's error body does (both null when unknown)."""

    def __init__(
        self,
        status: str,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(status, message, headers=headers)
        self.param = param
        self.code = code


def invalid(message: str, param: str | None = None, code: str | None = None) -> OpenAiError:
    """A 400 invalid_request_error."""
    return OpenAiError("INVALID_ARGUMENT", message, param=param, code=code)


def not_found(kind: str, object_id: str, param: str = "id") -> OpenAiError:
    """A 404 for a record that does not exist (or no longer does)."""
    return OpenAiError("NOT_FOUND", f"No such {kind} object: {object_id}", param=param)


def error_type(status: str) -> str:
    return _TYPES.get(status, _DEFAULT_TYPE)


def error_body(error: ApiError) -> JSON:
    """The answer's body for `error`, whichever part of the emulator raised it."""
    return {
        "error": {
            "message": error.message,
            "type": error_type(error.status),
            "param": getattr(error, "param", None),
            "code": getattr(error, "code", None),
        }
    }


def request_id() -> str:
    """A fresh `x-request-id`: OpenAI sends one on every answer, and clients log it."""
    return "req_" + secrets.token_hex(16)
