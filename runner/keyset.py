"""Whether a key repeats in a batch of millions, in little memory."""

from __future__ import annotations

from array import array
from collections import Counter
from collections.abc import Iterable


class KeySet:
    """Tells whether a key repeats, in 8 bytes per key instead of the ~100 a set of strings
    costs: each key's hash is appended to one of 64 arrays (by its low bits), and at the end
    each array is checked with a set, one at a time, so that the check needs a 64th of the
    memory one set of every hash would. hash() differs between processes: keys rendered in
    worker processes are added here, in one process."""

    PARTS = 64

    def __init__(self) -> None:
        self._parts = [array("q") for _ in range(self.PARTS)]

    def add(self, key: str) -> None:
        h = hash(key)
        self._parts[h % self.PARTS].append(h)

    def update(self, keys: Iterable[str]) -> None:
        parts = self._parts
        for key in keys:
            h = hash(key)
            parts[h % self.PARTS].append(h)

    def repeated(self) -> set[int]:
        """Hashes seen more than once (nearly always a key seen more than once)."""
        found: set[int] = set()
        for part in self._parts:
            if len(set(part)) != len(part):
                found.update(h for h, n in Counter(part).items() if n > 1)
        return found
