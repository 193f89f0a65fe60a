"""Where a store keeps its objects: the small protocol every backend meets, and a directory.

A backend knows objects by name ('/'-separated, relative to the store's root) and does six
things: write an object whole (a reader sees the old bytes or the new, never a part), create
one only if its name is free (the one conditional write leases need), read a range, list a
folder, say when one object was last written (gc asks just before a delete), delete.
Nothing it returns is trusted: the pack reader checks every byte against the hashes
(runner.store.pack), the lease code every field it reads (runner.store.lease).

Errors: a missing object is FileNotFoundError (the reader turns it into PackMissing); any
other failure of the medium is a StoreError naming the store and the step.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple, Protocol, TypeVar

from ..errors import OutputError, StoreError, clipped
from ..fsutil import atomic_writer

T = TypeVar("T")

# what link() fails with where a file system has no hard links (some FUSE, SMB, FAT mounts)
_NO_LINKS = frozenset({errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK,
                       errno.ENOSYS})


class Stat(NamedTuple):
    name: str           # relative to the store's root
    size: int
    modified: float     # seconds since the epoch, by the backend's clock


class Backend(Protocol):
    location: str       # for messages: a path or a URL, never a credential

    def write(self, name: str, data: bytes) -> None:
        """Puts `data` under `name` whole, replacing what was there."""

    def create(self, name: str, data: bytes) -> bool:
        """Puts `data` under `name` only if no object has that name; False if one has."""

    def read(self, name: str, start: int = 0, end: int | None = None) -> bytes:
        """Bytes [start, end) of an object (to its end when `end` is None), fewer when it is
        shorter, none when it ends before `start`. FileNotFoundError when it does not exist."""

    def list(self, folder: str) -> list[Stat]:
        """The objects directly in `folder`; none when it does not exist."""

    def folders(self, folder: str) -> tuple[str, ...]:
        """The folders directly in `folder` (their names, as `list` names objects); none when
        it does not exist. gc walks leases/ and claims/ with it (runner.store.tidy)."""

    def modified(self, name: str) -> float | None:
        """When an object was last written, as `list` says it; None when it does not exist."""

    def delete(self, name: str) -> None:
        """Removes an object; one already gone is not an error."""


def check_name(name: str) -> str:
    """A backend is only ever given names the store built; this keeps a bug from becoming a
    path outside the store."""
    parts = name.split("/")
    if not name or name.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"not an object name: {name!r}")
    return name


class PathBackend:
    """A directory, local or on a shared disk. Objects are written to a temp file and renamed
    into place (runner.fsutil); an exclusive create links a temp file to the name, which a
    local file system and NFS make atomic. Temp files start with a dot and are not names the
    store acts on; gc removes old ones a killed run left among the packs."""

    def __init__(self, root: Path):
        self.root = root
        self.location = str(root)

    def _path(self, name: str) -> Path:
        return self.root / check_name(name)

    def write(self, name: str, data: bytes) -> None:
        try:
            with atomic_writer(self._path(name), "wb") as f:
                f.write(data)
        except OutputError as e:
            raise StoreError(f"cannot write to the store: {e}") from None

    def create(self, name: str, data: bytes) -> bool:
        """The bytes go to a temp file of this run's own, which is then hard-linked to the
        name: link() fails when the name is taken, as O_EXCL does, and a reader never sees
        the object before its bytes (after an O_EXCL create it could find it empty). Where
        the file system has no hard links, O_EXCL it is."""
        path = self._path(name)
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
        step = "creating its folder"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            step = "writing a temp file beside it"
            with open(tmp, "xb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            step = "linking it into place"
            os.link(tmp, path)
            return True
        except FileExistsError:
            return False
        except OSError as e:
            if step != "linking it into place" or e.errno not in _NO_LINKS:
                raise _failed(self, name, step, e) from None
            return self._create_exclusive(name, data)
        finally:
            tmp.unlink(missing_ok=True)

    def _create_exclusive(self, name: str, data: bytes) -> bool:
        path = self._path(name)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
        except FileExistsError:
            return False
        except OSError as e:
            raise _failed(self, name, "creating it", e) from None
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        except OSError as e:
            # the name is taken by an object that says nothing: readers judge it by its age
            raise _failed(self, name, "writing it", e) from None
        return True

    def read(self, name: str, start: int = 0, end: int | None = None) -> bytes:
        """Without blocking on what is not a file: a FIFO or a device put under an object's
        name (on a shared disk, by anyone who can write there) is refused, not waited on."""
        try:
            fd = os.open(self._path(name), os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            with os.fdopen(fd, "rb") as f:
                if not stat.S_ISREG(os.fstat(fd).st_mode):
                    raise StoreError(f"{name}: not a regular file", path=self.location)
                f.seek(start)
                return f.read() if end is None else f.read(max(0, end - start))
        except FileNotFoundError:
            raise
        except OSError as e:
            raise _failed(self, name, "reading it", e) from None

    def list(self, folder: str) -> list[Stat]:
        def file_of(entry: os.DirEntry[str]) -> Stat | None:
            if not entry.is_file(follow_symlinks=False):
                return None
            st = entry.stat(follow_symlinks=False)
            return Stat(f"{folder}/{entry.name}", st.st_size, st.st_mtime)

        return [*self._scan(folder, file_of)]

    def folders(self, folder: str) -> tuple[str, ...]:
        return self._scan(folder, lambda entry: f"{folder}/{entry.name}"
                          if entry.is_dir(follow_symlinks=False) else None)

    def _scan(self, folder: str, pick: Callable[[os.DirEntry[str]], T | None]
              ) -> tuple[T, ...]:
        """What `pick` makes of each entry of `folder` (None: left out); an entry removed
        meanwhile is left out, a folder that is not there holds nothing."""
        found = []
        try:
            with os.scandir(self._path(folder)) as entries:
                for entry in entries:
                    with contextlib.suppress(FileNotFoundError):    # removed meanwhile
                        if (item := pick(entry)) is not None:
                            found.append(item)
        except FileNotFoundError:
            return ()
        except OSError as e:
            raise _failed(self, folder, "listing it", e) from None
        return tuple(found)

    def modified(self, name: str) -> float | None:
        try:
            return os.stat(self._path(name), follow_symlinks=False).st_mtime
        except FileNotFoundError:
            return None
        except OSError as e:
            raise _failed(self, name, "reading its time", e) from None

    def delete(self, name: str) -> None:
        try:
            self._path(name).unlink(missing_ok=True)
        except OSError as e:
            raise _failed(self, name, "removing it", e) from None


def _failed(backend: Backend, name: str, step: str, e: BaseException) -> StoreError:
    detail = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
    return StoreError(f"{name}: {step}: {clipped(detail)}", path=backend.location)
