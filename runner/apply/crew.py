"""The parts of a run that act on one provider (its crew), made when a batch first needs
them: a run over manifests of three providers talks to each through its own."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from ..identity import Identity
from ..progress import Progress
from ..providers import registry
from ..providers.base import Provider
from ..providers.clients import Clients
from ..providers.registry import dialect
from ..states import Desired, Observed
from ..store import Store
from ..stream import Streams
from .claim import Claims, run_holder
from .collect import Collector
from .journal import Journal
from .listing import Listing
from .options import Options, Outcome
from .submit import Submitter


@dataclass
class Crew:
    """The parts of a run that act on one provider, with the run's listing of its jobs."""

    provider: Provider
    listing: Listing
    submitter: Submitter
    collector: Collector
    max_jobs: int | None        # jobs the provider lets a project run at once


@dataclass
class Crews:
    """A run's crews, by provider."""

    journal: Journal
    clients: Clients
    desired: Mapping[str, Desired]
    options: Options
    progress: Progress
    outcome: Outcome
    streams: Streams
    identity: Identity
    observed: Mapping[str, Observed]
    store: Store | None = None      # where results are kept (runner.apply.keep)

    def __post_init__(self) -> None:
        self._crews: dict[str, Crew] = {}
        self._holder = run_holder(self.journal.ws.directory)     # this run, as a lease's

    def all(self) -> Iterator[Crew]:
        return iter(list(self._crews.values()))

    def of_batch(self, name: str) -> Crew:
        """The crew of the provider of batch `name` (an orphan's: as its record says)."""
        want = self.desired.get(name)
        return self.of(want.provider if want is not None
                       else self.journal.entry(name).provider)

    def of_record(self, name: str) -> Crew:
        """The crew of the provider batch `name`'s record names: its jobs are there, even
        when the manifest has moved to another provider since."""
        entry = self.journal.get(name)
        if entry is None or entry.provider == self.desired[name].provider or \
                entry.provider not in registry.PROVIDERS:
            return self.of_batch(name)
        return self.of(entry.provider)

    def of(self, provider: str) -> Crew:
        crew = self._crews.get(provider)
        if crew is None:
            client = self.clients[provider]
            listing = Listing(client, self.observed.get(provider))
            claims = None if self.store is None else Claims(
                self.store, client, listing, *self._holder, report=self.progress.message)
            crew = self._crews[provider] = Crew(
                client, listing,
                Submitter(self.journal, listing, client, self.progress, self.outcome,
                          self.streams, self.identity, self.options.sleep, claims),
                Collector(self.journal, listing, client, self.progress, self.outcome,
                          self.streams, self.store),
                self.options.max_jobs or dialect(provider).limits.concurrent_jobs)
        return crew
