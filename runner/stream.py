"""One request stream per manifest per run.

Rendering is the costly step of a big batch (tens of thousands of requests a second), and a
run needs the requests four times: their hashes for the plan, their tokens for the price and
the budgets, the shards' input files to send, and the requests again to join the results to.
`Streams` renders each manifest once a run and keeps what each of those needs: the hashes
and the token tally from the same pass, and, when the run may submit (`spool`), the shards'
input files, written as they are rendered and kept until the run ends, so that the join of a
batch submitted and finished in the same run reads them instead of rendering again.

The files go to a directory of the run's own in the system's temporary directory (TMPDIR),
a folder a manifest, each named by its content hash. Not under the project: the manifests are
rendered before the run lock is taken, and bad input must leave the project untouched, nor
may two runs rendering at once take or remove each other's files. The directory goes when the
run ends; one a killed run left (its name holds the process id) goes with the next run's
sweep (`sweep_dead`); a run that finds a file of its own gone renders again.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .desired import Rendered, render_recorded
from .fsutil import cannot_write
from .manifest import Manifest

Stamp = tuple[int, int, int]
PREFIX = "batch-runner-"        # then the process id, a dash and tempfile's random part


@dataclass(frozen=True)
class Stream:
    """A manifest rendered once: its spec inputs (digested before rendering), the shards'
    hashes, input files (when spooled) and token tally, and the rows file as it was read."""

    inputs: dict[str, Any]
    rendered: Rendered
    rows: Stamp | None          # the rows file's stamp when it was rendered

    def cuts(self) -> list[int]:
        return [s.requests for s in self.rendered.shards]


class Streams:
    """Each manifest's requests rendered at most once a run (see the module docstring); with
    `spool`, the shards' input files are kept too, in a temporary directory of the run's own
    (`discard` removes it)."""

    def __init__(self, spool: bool = False):
        self._spool = spool
        self.spool: Path | None = None      # made when the first manifest is rendered
        self._made: dict[str, Stream] = {}
        self.renders = 0            # how many times a manifest was rendered: for the tests

    def of(self, m: Manifest, cuts: Sequence[int] = (), need: str | None = None) -> Stream:
        """The manifest's stream: rendered now unless it was this run, cut as `cuts` says
        (request counts per shard; () for the provider's limits), or again when the input
        file of the shard `need` is gone."""
        made = self._made.get(m.name)
        if made is not None and (not cuts or made.cuts() == list(cuts)) and (
                need is None or not self._spool or self._file(made, need) is not None):
            return made
        if made is not None:        # before: the new files may have the same names
            self._discard(made)
            del self._made[m.name]
        if self._spool and self.spool is None:
            try:
                self.spool = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-"))
            except OSError as e:
                raise cannot_write(Path(tempfile.gettempdir()), "creating a folder in it for "
                                   "the requests of the run's jobs; TMPDIR may name another",
                                   e) from None
        rows = stamp(m.rows)
        inputs, rendered = render_recorded(
            m, None if self.spool is None else self.spool / m.name, cuts, tally=True)
        self.renders += 1
        self._made[m.name] = made = Stream(inputs, rendered, rows)
        return made

    def input_file(self, m: Manifest, content_hash: str) -> Path | None:
        """The input file of the batch's shard whose requests hash to `content_hash`, if this
        run wrote it and it is still there."""
        made = self._made.get(m.name)
        return None if made is None else self._file(made, content_hash)

    @staticmethod
    def _file(made: Stream, content_hash: str) -> Path | None:
        name = f"{content_hash.split(':', 1)[-1]}.jsonl"
        return next((p for p in made.rendered.paths if p.name == name and p.is_file()), None)

    def spooled(self, m: Manifest, content_hash: str) -> list[Path] | None:
        """The input files of every shard of the batch whose requests hash to `content_hash`,
        in order, when this run rendered them and they are all still there and the rows file
        is as it was read then: what the join may read instead of rendering again."""
        made = self._made.get(m.name)
        if made is None or made.rendered.content_hash != content_hash or \
                not made.rendered.paths or stamp(m.rows) != made.rows:
            return None
        paths = list(made.rendered.paths)
        return paths if all(p.is_file() for p in paths) else None

    def paths(self) -> list[Path]:
        """Every input file this run wrote."""
        return [p for s in self._made.values() for p in s.rendered.paths]

    def discard(self) -> None:
        """Removes the input files this run wrote, with their directory (at its end)."""
        self._made.clear()
        if self.spool is not None:
            shutil.rmtree(self.spool, ignore_errors=True)
            self.spool = None

    @staticmethod
    def _discard(made: Stream) -> None:
        for path in made.rendered.paths:
            path.unlink(missing_ok=True)


def sweep_dead(directory: Path | None = None) -> int:
    """Removes the input files of runs that were killed (their process is gone) from the
    temporary directory; returns how many folders went. A process id used again by a live
    process keeps its folder: the safe way to be wrong."""
    removed = 0
    for path in Path(directory or tempfile.gettempdir()).glob(f"{PREFIX}*-*"):
        pid = path.name[len(PREFIX):].split("-", 1)[0]
        try:
            st = path.lstat()
        except OSError:
            continue
        # only a real folder of this user's (the temporary directory is shared, and a name
        # anyone may create must not steer a removal elsewhere)
        if not pid.isdigit() or not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() \
                or _alive(int(pid)):
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed += 1
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:         # another user's process: alive
        return True
    return True


def stamp(path: Path | None) -> Stamp | None:
    """What changes when a file is written to: its size, mtime and inode."""
    if path is None:
        return None
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns, st.st_ino
