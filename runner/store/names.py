"""The names of a store's objects, built from hashes and read back from listings.

    packs/<64 hex digits>.pack                  a pack, named by its hash
    leases/<64 hex digits>/<20 digits>.json     one generation of a content hash's lease
    claims/<64 hex digits>/<64 hex digits>.json which job a run made for a content hash and tag

Only names of these shapes are ever built or acted on: anything else in a listing (a temp
file, an object someone put there) is ignored, and a hash that is not sha256 hex is refused
before it becomes part of a path.
"""

from __future__ import annotations

import hashlib
import re

PACKS = "packs"
LEASES = "leases"
CLAIMS = "claims"
_HEX = re.compile(r"[0-9a-f]{64}")
_PACK = re.compile(r"packs/([0-9a-f]{64})\.pack")
_GENERATION = re.compile(r"leases/[0-9a-f]{64}/([0-9]{20})\.json")
GENERATIONS = 10**20        # the names hold 20 digits


def _hex(value: str, what: str) -> str:
    algorithm, _, hexdigest = value.partition(":")
    if algorithm != "sha256" or not _HEX.fullmatch(hexdigest):
        raise ValueError(f"not a sha256 {what} hash: {value[:80]!r}")
    return hexdigest


def pack_object(pack: str) -> str:
    return f"{PACKS}/{_hex(pack, 'pack')}.pack"


def pack_of(name: str) -> str | None:
    """The pack hash an object name holds, or None when it is not a pack's name."""
    m = _PACK.fullmatch(name)
    return f"sha256:{m.group(1)}" if m else None


def lease_folder(content_hash: str) -> str:
    return f"{LEASES}/{_hex(content_hash, 'content')}"


def generation_object(content_hash: str, generation: int) -> str:
    return f"{lease_folder(content_hash)}/{generation:020d}.json"


def generation_of(name: str) -> int | None:
    m = _GENERATION.fullmatch(name)
    return int(m.group(1)) if m else None


def claim_object(content_hash: str, provider: str, tag: str) -> str:
    """Where the claim on a content hash's job of `provider` tagged `tag` is kept: the tag
    (a batch's name is in it) is hashed, so that the name is only ever hex."""
    which = hashlib.sha256(f"{provider}\n{tag}".encode()).hexdigest()
    return f"{CLAIMS}/{_hex(content_hash, 'content')}/{which}.json"
