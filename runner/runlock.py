"""The run lock: one run at a time on a manifest directory.

Kept apart from the lockfile it guards (runner.lockfile): it holds no record, only the right to
write them for the length of a run, and what it does to a file is lock it, not read it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from .errors import LockfileError
from .layout import LOCKFILE_NAME, STATE_DIR


class RunLock:
    """An exclusive lock on a manifest directory, held for a whole run.

    It is an flock on a sidecar file, so the kernel releases it when the holder dies: a killed
    run never leaves a stale lock. The sidecar names the holder for the message a second run
    prints.
    """

    def __init__(self, directory: Path, timeout: float = 0.0):
        self.path = directory / STATE_DIR / "run.lock"
        self.timeout = timeout
        self._fd: int | None = None

    def __enter__(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as e:
                if e.errno not in (errno.EAGAIN, errno.EACCES):
                    os.close(fd)
                    raise
                if time.monotonic() >= deadline:
                    holder = self._holder(fd)
                    os.close(fd)
                    raise LockfileError(f"another run holds the lock ({holder}); wait for it or "
                                        "pass --lock-timeout SECONDS", path=self.path.parent.parent
                                        / LOCKFILE_NAME) from None
                time.sleep(0.2)
        info = {"pid": os.getpid(), "host": socket.gethostname(),
                "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        self._fd = fd
        return self

    @staticmethod
    def _holder(fd: int) -> str:
        with contextlib.suppress(OSError, ValueError):
            info = json.loads(os.pread(fd, 4096, 0) or b"{}")
            return f"pid {info['pid']} on {info['host']} since {info['since']}"
        return "holder unknown"

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


@contextlib.contextmanager
def held(directory: Path, timeout: float = 0.0) -> Iterator[None]:
    with RunLock(directory, timeout):
        yield
