"""What one job of a provider accepts: each provider's dialect gives its own `Limits`.

A batch over a job's limits is cut into shards (runner.shards); one under the inline limit is
sent in the create call, a bigger one is uploaded as a file first.
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Limits:
    inline_bytes: int           # body of a create call that carries its requests inline
    file_bytes: int             # one uploaded input file
    requests: int | None = None  # requests in one job, if the provider caps them
    concurrent_jobs: int | None = None  # jobs a project may have in flight at once

    def capped(self, max_requests: int | None) -> Limits:
        """These limits with a manifest's own, smaller, cap on requests per job."""
        if max_requests is None or (self.requests is not None and self.requests <= max_requests):
            return self
        return replace(self, requests=max_requests)
