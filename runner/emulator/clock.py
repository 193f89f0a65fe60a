"""The emulator's clock: wall time plus an offset that tests push forward.

Moving the clock lets a test reach the end of a long latency, or the 48 h expiry, without
sleeping. The offset is kept in the state directory so that a later Emulator on the same
directory agrees on what time it is, and on which jobs have therefore finished.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from runner.emulator.store import read_json, write_json


class Clock:
    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()
        saved = read_json(path)
        self._offset = float(saved["offset"]) if saved else 0.0

    def now(self) -> float:
        with self._lock:
            return time.time() + self._offset

    def advance(self, seconds: float) -> float:
        """Move the clock forward and return the new time."""
        with self._lock:
            self._offset += seconds
            write_json(self._path, {"offset": self._offset})
            return time.time() + self._offset
