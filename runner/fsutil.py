"""Atomic file replacement: a reader sees the old file or the new one, never a part.

The file written gets the permissions any other file would: the mode of the file it replaces,
or 0666 less the umask for a new one (tempfile.mkstemp would leave every output 0600, which
a teammate's checkout or a web server then cannot read). When the disk refuses (full, over
quota, read-only, no permission), the error names the file and the step, in one line.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from .errors import OutputError

# What only a write can fail with: raised by the caller's writes, they are the disk's doing.
# Other errors there (a read of another file failing) are left as they are.
_DISK_ERRORS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS})


def cannot_write(path: Path, step: str, e: OSError) -> OutputError:
    return OutputError(f"cannot write this file ({step}): {e.strerror or e}", path=path)


@contextlib.contextmanager
def atomic_writer(path: Path, mode: str = "w") -> Iterator[IO[Any]]:
    """Write to a temp file beside `path`, fsync, then rename over it; on error leave nothing.
    Raises OutputError naming `path` and the step when the file system refuses."""
    step = "creating its folder"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        step = "creating a temp file beside it"
        fd, tmp = _create_beside(path)
    except OSError as e:
        raise cannot_write(path, step, e) from None
    step = "writing it"
    try:
        with os.fdopen(fd, mode, encoding=None if "b" in mode else "utf-8",
                       newline=None if "b" in mode else "") as f:
            yield f
            f.flush()
            step = "flushing it to disk"
            os.fsync(f.fileno())
            step = "closing it"
        step = "putting it in place"
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(e, OSError) and (step != "writing it" or e.errno in _DISK_ERRORS):
            raise cannot_write(path, step, e) from None
        raise
    _fsync_dir(path.parent)


def _create_beside(path: Path) -> tuple[int, str]:
    """A new temp file in `path`'s folder, with the mode `path` has, or else the one the
    umask gives a new file (the kernel applies it: reading the umask is not thread-safe)."""
    try:
        keep: int | None = stat.S_IMODE(os.stat(path).st_mode) & 0o777
    except (FileNotFoundError, NotADirectoryError):
        keep = None
    while True:
        tmp = os.path.join(path.parent, f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
        except FileExistsError:
            continue
        break
    if keep is not None:
        try:
            os.fchmod(fd, keep)
        except OSError:
            os.close(fd)
            os.unlink(tmp)
            raise
    return fd, tmp


def write_text(path: Path, text: str) -> None:
    with atomic_writer(path) as f:
        f.write(text)


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
