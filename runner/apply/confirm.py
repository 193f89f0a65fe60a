"""A job of a provider that keeps no tag, checked against its record before its results are
used: it was recognised by its size and creation time (runner.recognise), which someone else's
batch can share, so its results must answer the requests the record sent."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson

from ..errors import InputsChanged
from ..manifest import Manifest
from ..providers.registry import dialect_of
from ..recognise import foreign_results
from ..records import LockEntry, Part, Retry
from ..stream import Streams
from .submit import retry_keys


def not_sent_by(m: Manifest, entry: LockEntry, record: Part | Retry, results: Path,
                streams: Streams) -> str | None:
    """Why the results at `results` do not answer `record`'s requests, or None when they do
    (always None for a provider that tags its jobs: the tag said it)."""
    d = dialect_of(m)
    if d.tags_jobs:
        return None
    return foreign_results(results, _sent(m, entry, record, streams), d.result_key)


def _sent(m: Manifest, entry: LockEntry, record: Part | Retry, streams: Streams
          ) -> Iterator[str]:
    """The keys, as sent, of the requests of `record`: a follow-up's are the batch's failed
    requests (in its errors output, which nothing rewrites while the follow-up runs); a job's
    are read from its input file, rendered again if this run has not got it."""
    d = dialect_of(m)
    if isinstance(record, Retry):
        wire = d.wire_key if d.maps_keys else None
        for key in retry_keys(m, entry, record):
            yield key if wire is None else wire(key)
        return
    path = streams.input_file(m, record.content_hash)
    if path is None:
        streams.of(m, [p.requests for p in entry.parts()], record.content_hash)
        path = streams.input_file(m, record.content_hash)
    if path is None:        # the manifest renders other requests now
        raise InputsChanged(m.name, m.source)
    framing = d.framing(m.endpoint)
    with open(path, "rb") as f:
        for line in f:
            line = line.rstrip(b"\n")
            if line:
                key = orjson.loads(framing.split(line)[0])
                yield key if isinstance(key, str) else str(key)
