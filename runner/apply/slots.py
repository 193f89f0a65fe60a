"""Job slots: providers cap the jobs a project runs at once, and refuse a create over the cap,
so a submission waits for a slot. A provider's jobs in flight count against its cap; what
waits is submitted, in order, as slots free up."""

from __future__ import annotations

from collections.abc import Callable

from ..actions import Action
from .crew import Crews
from .polling import Inflight


class Slots:
    """The submissions of a run waiting for a job slot, and each provider's count of jobs in
    flight against its cap."""

    def __init__(self, crews: Crews, report: Callable[[str], None]):
        self._crews = crews
        self._report = report
        self.queued: list[Action] = []      # submissions waiting for a job slot

    def free(self, name: str, inflight: Inflight) -> bool:
        """Whether one more job of batch `name`'s provider may be submitted (a split batch
        can have many)."""
        crew = self._crews.of_batch(name)
        if crew.max_jobs is None:
            return True
        live = sum(1 for batch, seen in inflight.values()
                   if (seen is None or not seen.state.terminal)
                   and self._crews.of_batch(batch) is crew)
        return live < crew.max_jobs

    def wait(self, action: Action) -> None:
        """Queues a submission until its provider has a slot; the first to wait says why."""
        if not self.queued:
            crew = self._crews.of_batch(action.name)
            self._report(f"{crew.max_jobs} jobs in flight on {crew.provider.name}, the most "
                         "at once; the next submissions wait for one to finish")
        self.queued.append(action)

    def release(self, inflight: Inflight, act: Callable[[Action, Inflight], None]) -> None:
        """Submits what waited for a slot (through `act`), in order, as far as each provider
        has slots."""
        waiting, self.queued = self.queued, []
        for action in waiting:
            if self.free(action.name, inflight):
                act(action, inflight)
            else:
                self.queued.append(action)

    def running(self, inflight: Inflight) -> set[str]:
        """The batches with a job in flight or a submission waiting for a slot."""
        return {name for name, _ in inflight.values()} | {a.name for a in self.queued}
