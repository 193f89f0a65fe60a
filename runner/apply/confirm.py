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


def not_sent_by(m: Manifest, entry: LockEntry, record: Part | Retry, results: Path,
                streams: Streams) -> str | None:
    """Why the results at `results` do not answer `record`'s requests, or None when they do
    (always None for a job whose tag said it, or bound by the answer to its create)."""
    d = dialect_of(m)
    if d.tags_jobs or not record.inferred:
        return None
    return foreign_results(results, _sent(m, entry, record, streams), d.result_key)


def _sent(m: Manifest, entry: LockEntry, record: Part | Retry, streams: Streams
          ) -> Iterator[str]:
    """The keys, as sent, of the requests of `record`, read from its input file (rendered again
    if this run has not got it). A follow-up's are some of the batch's: any key of any part
    answers it (what the follow-up held is not kept, and the errors output it was made from
    changes once it is merged)."""
    cuts = [p.requests for p in entry.parts()]
    hashes = [p.content_hash for p in entry.parts()] if isinstance(record, Retry) else \
        [record.content_hash]
    framing = dialect_of(m).framing(m.endpoint)
    for content_hash in hashes:
        path = streams.input_file(m, content_hash)
        if path is None:
            streams.of(m, cuts, content_hash, reused=entry.reuse_packs)
            path = streams.input_file(m, content_hash)
        if path is None:        # the manifest renders other requests now
            raise InputsChanged(m.name, m.source)
        with open(path, "rb") as f:
            for line in f:
                line = line.rstrip(b"\n")
                if line:
                    key = orjson.loads(framing.split(line)[0])
                    yield key if isinstance(key, str) else str(key)
