"""The two states a plan reconciles: Desired (a manifest as hashed now) and Observed (the jobs
the provider reports).

The third input, what was done before, is the lockfile's (runner.records). These are built at
the edges (runner.desired hashes the manifests, runner.workspace asks the provider) so that the
planner itself stays pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .providers.base import RemoteJob
from .shards import ShardHash
from .tags import attempt_of, best


@dataclass(frozen=True)
class Desired:
    """A manifest as hashed now. `content_hash` is None when it has not been rendered."""

    name: str
    manifest: str
    spec_hash: str
    inputs: Mapping[str, Any]
    content_hash: str
    provider: str
    model: str
    requests: int
    outputs_hash: str
    outputs: Mapping[str, str | None]   # output path -> digest of the file on disk, None if missing
    retry_failed: int = 0               # follow-up batches allowed for failed requests
    allowed_failures: int = 0           # failed requests the batch may end with, healthy
    errors_output: str = ""             # where they are written
    shards: tuple[ShardHash, ...] = ()  # the jobs it takes (see runner.shards); () for one
    reused: int = 0                     # requests in no shard: the store holds their results
    reuse_packs: tuple[str, ...] = ()   # the packs that hold them (runner.reuse)

    @property
    def parts(self) -> tuple[ShardHash, ...]:
        """The jobs it takes: none when every request is reused."""
        if self.shards or self.reused:
            return self.shards
        return (ShardHash(self.content_hash, self.requests),)


@dataclass(frozen=True)
class Observed:
    """The provider's jobs, by job name; `complete` when every job was listed, not only the
    ones the lockfile names."""

    jobs: Mapping[str, RemoteJob]
    complete: bool = False

    def tagged(self, display_name: str) -> RemoteJob | None:
        """The most useful job carrying `display_name`."""
        return best([j for j in self.jobs.values() if j.display_name == display_name])

    def attempts(self, name: str, content_hash: str) -> list[tuple[int, RemoteJob]]:
        """Every job submitted for these requests, with its attempt number (follow-up
        batches of failures excluded)."""
        found = []
        for job in self.jobs.values():
            n = attempt_of(name, content_hash, job.display_name)
            if n is not None:
                found.append((n, job))
        return found
