"""Claims: which job a run made for a content hash, so that another run adopts it.

A run that holds the lease on a content hash (runner.store.lease) and is about to create its
job writes a claim naming no job yet (an intent: its tag, how many requests, when), and once
the job exists, the claim again naming it; then it releases the lease. A run that takes the
lease later, or waits for it, reads the claim first: a job named there is adopted (after the
ownership checks of runner.ownership), not created again. An intent with no job, left by a
run killed while it held the lease, says that the job may exist: the next run looks for it
by its tag in a fresh listing of the provider's jobs (or, for a provider that keeps no tag,
recognises it by the intent's time and size, as runner.recognise does within one clone).

A claim is written only by the holder of the lease, so one writer at a time, and replaced
only by the next holder's (an unusable job's successor). Nothing read is trusted: a claim is
checked field by field, its content hash and tag must be those its name is built from, and
the job it names is checked against the batch before it is adopted.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import orjson

from ..hashing import canonical_bytes
from .backends import Backend
from .names import claim_object

READ_LIMIT = 4096       # bytes of a claim read, at most
NAME_LIMIT = 300        # characters of a job's name or a holder's kept


@dataclass(frozen=True)
class Claim:
    """A run's word on the job of `content_hash` tagged `tag` on `provider`."""

    content_hash: str
    provider: str
    tag: str
    holder: str
    requests: int
    intent_at: str | None       # the time the run recorded its intent at (runner.recognise)
    job: str | None             # None: the intent, written before the create


def write(backend: Backend, claim: Claim) -> None:
    body: dict[str, Any] = {"content_hash": claim.content_hash, "provider": claim.provider,
                            "tag": claim.tag, "holder": claim.holder[:NAME_LIMIT],
                            "requests": claim.requests, "intent_at": claim.intent_at,
                            "job": claim.job, "written_at": time.time()}
    backend.write(claim_object(claim.content_hash, claim.provider, claim.tag),
                  canonical_bytes(body))


def read(backend: Backend, content_hash: str, provider: str, tag: str) -> Claim | None:
    """The claim on the job of `content_hash` tagged `tag`, None when there is none or what
    is there does not read as one (put there by someone else, or for another name)."""
    try:
        data = backend.read(claim_object(content_hash, provider, tag), 0, READ_LIMIT)
    except FileNotFoundError:
        return None
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(doc, dict) or doc.get("content_hash") != content_hash \
            or doc.get("provider") != provider or doc.get("tag") != tag:
        return None
    holder, requests, job, at = (doc.get("holder"), doc.get("requests"), doc.get("job"),
                                 doc.get("intent_at"))
    if not isinstance(holder, str) or not _name(holder) or not isinstance(requests, int) \
            or isinstance(requests, bool) or requests < 0 \
            or not (job is None or (isinstance(job, str) and _name(job))) \
            or not (at is None or (isinstance(at, str) and _name(at))):
        return None
    return Claim(content_hash, provider, tag, holder, requests, at, job)


def _name(value: object) -> bool:
    """A short printable string: what a holder, a job's name or a time is."""
    return isinstance(value, str) and 0 < len(value) <= NAME_LIMIT and value.isprintable()
