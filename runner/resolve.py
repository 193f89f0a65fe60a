"""Path.resolve() for the many paths one load of a directory looks at, each worked out once.

Loading a thousand manifests resolves some three thousand paths (every output where it is
declared and again against the others, every manifest and rows file), and pathlib resolves
each from the top of the file system, with a system call and several Path objects per part.
The outputs mostly share a folder or two, so this remembers what it resolved: a path whose
last part is not a symlink resolves to its resolved parent joined with that part, which is
what os.path.realpath finds too; a symlink, `..` or the root goes through Path.resolve().
Answers are strings, compared as such. A Resolver lives for one load: the file system may
change between runs.

It also holds the project's one rule for paths (`leaves`): every file the runner reads or
writes for a project (manifests, rows files, included templates, prices.json, the lockfile,
outputs) is inside the project directory. A path may not be absolute, go up out of it with
`..`, or pass through a symlink that leads out, so that a manifest under review cannot make
the runner read /proc/self/environ into an error message or write over a file elsewhere.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

# The errors for which pathlib's exists() and is_dir() answer False instead of raising.
_ABSENT = (errno.ENOENT, errno.ENOTDIR, errno.EBADF, errno.ELOOP)


class Resolver:
    def __init__(self) -> None:
        self._real: dict[str, str] = {}
        self._folders: set[str] = set()

    def __call__(self, path: Path) -> str:
        """str(path.resolve())."""
        return self._resolved(str(path))

    def _resolved(self, path: str) -> str:
        known = self._real.get(path)
        if known is None:
            known = self._real[path] = self._resolve(path)
        return known

    def _resolve(self, path: str) -> str:
        head, name = os.path.split(path)
        if not name or name == "..":
            return str(Path(path).resolve())
        real = os.path.join(self._resolved(head), name)
        if _is_symlink(real):
            return str(Path(path).resolve())
        return real

    def can_hold_files(self, folder: str) -> bool:
        """Whether `folder` is a directory or missing, rather than a file in the way."""
        if folder not in self._folders:
            mode = _mode(folder)
            if mode is not None and not stat.S_ISDIR(mode):
                return False
            self._folders.add(folder)
        return True


def leaves(project: Path, rel: str, resolve: Resolver) -> str | None:
    """Why `rel` (as written in a manifest, relative to `project`) is not a path inside the
    project, in words that follow the path's name; None when it is inside."""
    if os.path.isabs(rel) or rel.startswith("~"):
        return f"must be a relative path inside {project.name}/"
    try:
        inside = within(resolve(project / rel), resolve(project))
    except (OSError, RuntimeError):     # a symlink loop (RuntimeError before Python 3.13)
        return "cannot be followed: its symlinks form a loop"
    if inside:
        return None
    link = first_symlink(project, rel)
    return f"leaves the project directory through the symlink {link!r}" if link \
        else "leaves the project directory"


def first_symlink(project: Path, rel: str) -> str | None:
    """The first component of `rel` that is a symlink, as written (None if there is none)."""
    current = project
    for part in Path(rel).parts:
        current = current / part
        if current.is_symlink():
            return current.relative_to(project).as_posix()
    return None


def is_dir(path: str) -> bool:
    """Path(path).is_dir(): False if missing, an error if it cannot be looked at."""
    mode = _mode(path)
    return mode is not None and stat.S_ISDIR(mode)


def within(path: str, folder: str) -> bool:
    """Path(path).is_relative_to(folder), for resolved paths."""
    return path == folder or path.startswith(folder if folder.endswith("/") else folder + "/")


def folders_down_to(path: str, root: str) -> list[str]:
    """The folders from `root` down to the one holding `path` (which is within root)."""
    folders = []
    folder = os.path.dirname(path)
    while folder != root and within(folder, root):
        folders.append(folder)
        folder = os.path.dirname(folder)
    folders.append(root)
    return folders[::-1]


def _is_symlink(path: str) -> bool:
    """As os.path.realpath decides: a part that cannot be looked at is not a link."""
    try:
        return stat.S_ISLNK(os.lstat(path).st_mode)
    except OSError:
        return False


def _mode(path: str) -> int | None:
    """The file's mode, or None where pathlib would say the path does not exist."""
    try:
        return os.stat(path).st_mode
    except OSError as e:
        if e.errno in _ABSENT:
            return None
        raise
    except ValueError:
        return None
