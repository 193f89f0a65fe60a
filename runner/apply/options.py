"""What a run of apply is asked to do, and what it did."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..report import Report
from ..retry import Sleep, real_sleep


@dataclass
class Options:
    wait: bool = True
    timeout: float | None = None
    prune: bool = False
    prune_outputs: bool = False
    max_cost: float | None = None
    max_attempts: int = 3
    resubmit: frozenset[str] = frozenset()
    max_jobs: int | None = None     # jobs in flight at once; None: the provider's limit
    take_over: Path | None = None   # the original of a copied directory, whose jobs it may end
    poll_base: float = 2.0
    poll_cap: float = 60.0
    sleep: Sleep = field(default=real_sleep)
    clock: Callable[[], float] = field(default=time.monotonic)


@dataclass
class Outcome:
    submitted: list[str] = field(default_factory=list)
    completed: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    left: list[str] = field(default_factory=list)   # another run was submitting them

    @property
    def exit_code(self) -> int:
        """The exit code `runner apply` gives for this outcome (runner.report's policy)."""
        return Report(failed=list(self.failed)).code


def note(names: list[str], name: str) -> None:
    if name not in names:
        names.append(name)
