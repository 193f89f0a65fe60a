"""What the parts of a run that act on the provider share."""

from __future__ import annotations

from dataclasses import dataclass

from ..progress import Progress
from ..providers.base import Provider
from ..stream import Streams
from .journal import Journal
from .listing import Listing
from .options import Outcome


@dataclass
class Worker:
    """A part of the run (submitting, collecting): the run's journal, the provider with the
    run's listing of its jobs, where progress goes, the outcome it adds to, and the batches'
    requests as the run rendered them."""

    journal: Journal
    listing: Listing
    provider: Provider
    progress: Progress
    outcome: Outcome
    streams: Streams

    def report(self, line: str) -> None:
        self.progress.message(line)
