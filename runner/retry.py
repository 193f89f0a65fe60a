"""Capped exponential backoff with full jitter, for retries and for polling.

Jitter keeps many runners (say, CI jobs started by the same cron) from hitting the provider in
step. The random source and the clock are injected so that tests are deterministic and fast.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Backoff:
    base: float = 1.0
    cap: float = 60.0
    factor: float = 2.0
    rng: random.Random = field(default_factory=random.Random)
    attempt: int = 0

    def next_delay(self) -> float:
        """The next delay: uniform in [ceiling/2, ceiling], the ceiling doubling up to `cap`."""
        ceiling = min(self.cap, self.base * self.factor ** self.attempt)
        self.attempt += 1
        return self.rng.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        self.attempt = 0


Sleep = Callable[[float], None]
real_sleep: Sleep = time.sleep


def retry_after(value: str | None, default: float) -> float:
    """Seconds from a Retry-After header (only the delta-seconds form is used by Google)."""
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            pass
    return default
