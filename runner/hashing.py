"""Canonical JSON and the hashes that identify batches.

The recipe is versioned: `RECIPE` goes into the lockfile, so that a later change to how hashes
are computed can be recognised instead of looking like every batch changed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson

ALGORITHM = "sha256"
RECIPE = 1
_CHUNK = 1 << 20


_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS


def canonical_bytes(value: Any) -> bytes:
    """JSON with sorted keys, no spaces and raw UTF-8: equal data gives equal bytes.

    orjson's output is the recipe (it is also ten times faster than the json module, which
    matters at a million requests). Integers beyond 64 bits, which orjson refuses, take the
    json module's equivalent form; the same value always takes the same path."""
    try:
        return orjson.dumps(value, option=_OPTIONS)
    except TypeError:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                          allow_nan=False).encode()


def canonical(value: Any) -> str:
    return canonical_bytes(value).decode()


def digest(data: bytes) -> str:
    return f"{ALGORITHM}:{hashlib.sha256(data).hexdigest()}"


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return f"{ALGORITHM}:{h.hexdigest()}"


def request_hash(provider: str, model: str, request_bytes: bytes) -> str:
    """Names one request's content, independent of its key, so an unchanged result can be
    reused: the canonical JSON of [provider, model, request], from the request's bytes."""
    return digest(request_hash_head(provider, model) + request_bytes + b"]")


def request_hash_head(provider: str, model: str) -> bytes:
    """What request_hash hashes before the request's bytes (after them, `]`)."""
    return canonical_bytes([provider, model])[:-1] + b","


class ContentHasher:
    """Streams request lines into the content hash of a batch: provider, model, then each line."""

    def __init__(self, provider: str, model: str):
        self._h = hashlib.sha256()
        self._h.update(canonical({"recipe": RECIPE, "provider": provider, "model": model})
                       .encode() + b"\n")

    def add(self, lines: bytes) -> None:
        """Request lines, each with its newline: one or many at a time, the hash is the same."""
        self._h.update(lines)

    def hexdigest(self) -> str:
        return f"{ALGORITHM}:{self._h.hexdigest()}"

    def copy(self) -> ContentHasher:
        """The hash so far, to go on from separately (the first shard of a batch is the
        batch's own stream up to its cut)."""
        twin = object.__new__(ContentHasher)
        twin._h = self._h.copy()
        return twin


def combine(parts: Iterable[str]) -> str:
    """One hash over several named hashes, order-sensitive."""
    return digest("\n".join(parts).encode())


def short(h: str, n: int = 12) -> str:
    """The first n hex digits, as used in a job's displayName tag."""
    return h.split(":", 1)[-1][:n]
