"""The lists of models the emulator serves, one per provider, in each API's own shape: the
models of the shipped price table (MODELS, kept equal to runner.models.known by a test), so
that `plan` and the official SDKs' `models.list()` find the models the examples use, and not
a misspelt one."""

from __future__ import annotations

import base64
import binascii

from runner.emulator.wire import JSON, ApiError

# The models each emulated API offers: those the runner's price table knows (a test keeps the
# two the same). Written out here: the emulator is a server apart from the runner's core.
MODELS: dict[str, tuple[str, ...]] = {
    "gemini": (
        "gemini-2.0-flash", "gemini-2.0-flash-lite", "gemini-2.5-flash",
        "gemini-2.5-flash-image", "gemini-2.5-flash-lite", "gemini-2.5-pro",
        "gemini-3-flash-preview", "gemini-3.1-flash-lite-preview", "gemini-3.1-pro-preview",
        "gemini-3.5-flash", "gemini-3.5-flash-lite",
    ),
    "openai": (
        "gpt-4.1", "gpt-4.1-mini", "gpt-4.1-nano", "gpt-4o", "gpt-4o-2024-05-13",
        "gpt-4o-mini", "gpt-5", "gpt-5-mini", "gpt-5-nano", "gpt-5-pro", "gpt-5.1", "gpt-5.2",
        "gpt-5.2-pro", "gpt-5.4", "gpt-5.4-mini", "gpt-5.4-nano", "gpt-5.4-pro", "gpt-5.5",
        "gpt-5.5-pro", "gpt-5.6", "gpt-5.6-luna", "gpt-5.6-sol", "gpt-5.6-terra",
        "gpt-6-astra", "gpt-6-luna", "gpt-6-sol", "gpt-6.1-sol", "gpt-6.1-terra", "o1",
        "o1-pro", "o3", "o3-mini", "o3-pro", "o4-mini", "text-embedding-3-large",
        "text-embedding-3-small", "text-embedding-ada-002",
    ),
    "anthropic": (
        "claude-3-5-haiku", "claude-3-7-sonnet", "claude-fable-5", "claude-fable-5-1",
        "claude-fable-5-2", "claude-haiku-4-5", "claude-haiku-5-5", "claude-mythos-5-2",
        "claude-opus-4", "claude-opus-4-5", "claude-opus-4-6", "claude-opus-4-7",
        "claude-opus-4-8", "claude-opus-5", "claude-opus-5-5", "claude-sonnet-4",
        "claude-sonnet-4-5", "claude-sonnet-4-6", "claude-sonnet-5", "claude-sonnet-5-5",
    ),
}

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
    names = MODELS["gemini"]
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
        for name in MODELS["openai"]]}


def anthropic(limit: int, before: str | None, after: str | None) -> JSON:
    """GET /v1/models: a page of `limit` models after `after_id` (or before `before_id`)."""
    names = list(MODELS["anthropic"])
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
