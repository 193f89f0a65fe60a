"""The lists of models the emulator serves, one per provider, in each API's own shape: the
models of the shipped price table (runner.models.known), so that `plan` and the official
SDKs' `models.list()` find the models the examples use, and not a misspelt one."""

from __future__ import annotations

import base64
import binascii

from runner.emulator.wire import JSON, ApiError
from runner.models import known

CREATED = 1_735_689_600                 # 2025-01-01, when every emulated model "appeared"


def _offset(token: str | None) -> int:
    if not token:
        return 0
    try:
        return int(base64.urlsafe_b64decode(token.encode()).decode())
    except (ValueError, binascii.Error):
        raise ApiError("INVALID_ARGUMENT", "Invalid page token") from None


def gemini(page_size: str | None, token: str | None) -> JSON:
    """GET /v1beta/models: `models` (at most pageSize, default 50, 1000 at most) and a
    `nextPageToken` while more follow."""
    try:
        size = min(int(page_size or 50), 1000) or 50
    except ValueError:
        raise ApiError("INVALID_ARGUMENT", f"Invalid pageSize {page_size!r}") from None
    start = _offset(token)
    names = known("gemini")
    listing: JSON = {"models": [
        {"name": f"models/{name}", "baseModelId": name, "version": "001",
         "displayName": name, "inputTokenLimit": 1_048_576, "outputTokenLimit": 65_536,
         "supportedGenerationMethods": ["generateContent", "countTokens",
                                        "batchGenerateContent"]}
        for name in names[start:start + size]]}
    if start + size < len(names):
        listing["nextPageToken"] = base64.urlsafe_b64encode(str(start + size).encode()).decode()
    return listing


def openai() -> JSON:
    """GET /v1/models: every model in one list."""
    return {"object": "list", "data": [
        {"id": name, "object": "model", "created": CREATED,
         "owned_by": "openai" if not name.startswith("text-") else "openai-internal"}
        for name in known("openai")]}


def anthropic(limit: int, before: str | None, after: str | None) -> JSON:
    """GET /v1/models: a page of `limit` models after `after_id` (or before `before_id`)."""
    names = list(known("anthropic"))
    for mark in (after, before):
        if mark is not None and mark not in names:
            raise ApiError("NOT_FOUND", f"model: {mark}")
    if after is not None:
        chosen = names[names.index(after) + 1:][:limit]
        more = names.index(after) + 1 + limit < len(names)
    elif before is not None:
        chosen = names[:names.index(before)][-limit:]
        more = names.index(before) > limit
    else:
        chosen, more = names[:limit], limit < len(names)
    return {"data": [{"type": "model", "id": name, "display_name": name,
                      "created_at": "2025-01-01T00:00:00Z"} for name in chosen],
            "has_more": more, "first_id": chosen[0] if chosen else None,
            "last_id": chosen[-1] if chosen else None}
