"""The jobs on the provider as this run knows them, for finding a job by its tag."""

from __future__ import annotations

from collections.abc import Collection

from ..providers.base import Provider, RemoteJob
from ..states import Observed
from ..tags import best


class Listing:
    """Every job on the provider, listed once a run (or taken from the plan, when it listed
    them all) and kept up to date with the jobs the run creates: a tag is looked up before
    every create, and a thousand creates must not list a thousand times."""

    def __init__(self, provider: Provider, observed: Observed | None = None):
        self._provider = provider
        self._jobs: dict[str, RemoteJob] | None = \
            dict(observed.jobs) if observed is not None and observed.complete else None

    def jobs(self, *, fresh: bool = False) -> Collection[RemoteJob]:
        """Every job (`fresh`: listed again now)."""
        if self._jobs is None or fresh:
            self._jobs = {j.name: j for j in self._provider.list_jobs()}
        return self._jobs.values()

    def find(self, tag: str, *, fresh: bool = False) -> RemoteJob | None:
        """The best job carrying `tag` (see tags.best)."""
        return best([j for j in self.jobs(fresh=fresh) if j.display_name == tag])

    def add(self, job: RemoteJob) -> None:
        """A job this run created."""
        if self._jobs is not None:
            self._jobs[job.name] = job
