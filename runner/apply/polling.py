"""Polling: fresh states for the jobs in flight, and the pauses between polls, which never
run past the time limit."""

from __future__ import annotations

import random
from collections.abc import Set
from dataclasses import dataclass, field

from ..errors import RunnerError
from ..providers.base import Provider, RemoteJob
from ..workspace import LIST_THRESHOLD
from .options import Options

Inflight = dict[str, tuple[str, "RemoteJob | None"]]   # job -> (its batch, as last seen)


def refresh(provider: Provider, inflight: Inflight) -> None:
    """Fresh state for every in-flight job not already known to be finished: one paged list
    when there are several, a get each otherwise."""
    stale = {job: name for job, (name, seen) in inflight.items()
             if seen is None or not seen.state.terminal}
    if len(stale) > LIST_THRESHOLD:
        listed = {j.name: j for j in provider.list_jobs()}
        fresh = {job: listed.get(job) for job in stale}
    else:
        fresh = {job: provider.get_job(job) for job in stale}
    inflight.update((job, (stale[job], seen)) for job, seen in fresh.items())


@dataclass
class Pace:
    """The pauses between polls: `base` seconds at first, then a tenth of the time waited so
    far, never more than `cap`. A job that ends is seen at most about a tenth of its wait
    later; pauses that doubled from `base` could sleep nearly as long again as the job had
    run (a 33-second job seen at 63 s). The price is more questions early: about 50 in the
    first ten minutes where doubling asked 14 (with `base` 2 and `cap` 60), then the same
    one per `cap`. The pause is jittered within its last fifth, so runs started together
    drift apart."""
    base: float
    cap: float
    fraction: float = 0.1
    rng: random.Random = field(default_factory=random.Random)

    def next_delay(self, waited: float) -> float:
        ceiling = min(self.cap, max(self.base, waited * self.fraction))
        return self.rng.uniform(ceiling * 0.8, ceiling)


def pause(options: Options, delay: float, start: float, running: Set[str]) -> None:
    """Sleeps `delay` between polls of a run that started at `start` (options.clock), never
    past the time limit; at the limit, ends the run naming the `running` batches."""
    timeout = options.timeout
    if timeout is None:
        options.sleep(delay)
        return
    left = timeout - (options.clock() - start)
    if left > 0:
        options.sleep(min(delay, left))
    if options.clock() - start >= timeout:
        names = sorted(running)
        raise RunnerError(f"timed out after {timeout:g}s with {len(names)} batch(es) still "
                          f"running ({', '.join(names)}); run apply again to resume")
