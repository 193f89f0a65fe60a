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
run ends; one a killed run left goes with the next run's sweep (`sweep_dead`, which tells a
live run's folder by the lock it holds); a run that finds a file of its own gone renders
again.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import stat
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .desired import Rendered, render_recorded, spec_inputs
from .fsutil import cannot_write
from .join import Spooled
from .manifest import Manifest
from .reuse import Reuse
from .statcache import NO_CACHE, DigestCache

Stamp = tuple[int, int, int]
PREFIX = "batch-runner-"        # then tempfile's random part
HELD = ".held"                  # the file a live run holds a lock on, in its folder


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

    def __init__(self, spool: bool = False, tally: bool = True):
        self._spool = spool
        self._held: int | None = None       # the lock on the spool folder (see sweep_dead)
        self._tally = tally         # count tokens as it renders: for prices and budgets
        self.spool: Path | None = None      # made when the first manifest is rendered
        self._made: dict[str, Stream] = {}
        self.reuse: Reuse | None = None     # what renders reuse (set by Workspace.desired)
        self.kept: Path | None = None       # where rendered blocks are kept (runner.blockcache)
        self.renders = 0            # how many times a manifest was rendered: for the tests

    def of(self, m: Manifest, cuts: Sequence[int] = (), need: str | None = None,
           fresh: DigestCache | None = None, reused: Sequence[str] | None = None) -> Stream:
        """The manifest's stream: rendered now unless it was this run, cut as `cuts` says
        (request counts per shard; () for the provider's limits), or again when the input
        file of the shard `need` is gone, or (with `fresh`, the digest cache) when its files
        changed since it was rendered. Requests the result store holds are in no shard
        (runner.reuse): those of any pack the lockfile names, or with `reused`, as a record
        says, of those packs alone."""
        made = self._made.get(m.name)
        if made is not None and (not cuts or made.cuts() == list(cuts)) and (
                need is None or not self._spool or self._file(made, need) is not None) and (
                fresh is None or spec_inputs(m, made.rendered.templates, fresh) == made.inputs):
            return made
        if made is not None:        # before: the new files may have the same names
            self._discard(made)
            del self._made[m.name]
        if self._spool and self.spool is None:
            try:
                self.spool = Path(tempfile.mkdtemp(prefix=PREFIX))
                self._held = _hold(self.spool)
            except OSError as e:
                raise cannot_write(Path(tempfile.gettempdir()), "creating a folder in it for "
                                   "the requests of the run's jobs; TMPDIR may name another",
                                   e) from None
        rows = stamp(m.rows)
        inputs, rendered = render_recorded(
            m, None if self.spool is None else self.spool / m.name, cuts, tally=self._tally,
            cache=fresh or NO_CACHE, kept=self.kept,
            # a record reproduced reuses as it did, even if the manifest has said reuse: false
            # since (its shards must come out the same; the next change sends all afresh)
            reuse=self.reuse.index(reused) if self.reuse is not None and (
                m.reuse or reused is not None) else None)
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

    def spooled(self, m: Manifest, content_hash: str) -> Spooled | None:
        """The keys and hashes of the requests of the batch whose requests hash to
        `content_hash` (runner.held.KeysFile), when this run rendered them, the file is
        still there and the rows file is as it was read then: what the join may read instead
        of rendering again."""
        made = self._made.get(m.name)
        keys = made.rendered.keys if made is not None else None
        if made is None or keys is None or made.rendered.content_hash != content_hash or \
                stamp(m.rows) != made.rows or not keys.is_file():
            return None
        return Spooled(keys, content_hash)

    def release(self, names: set[str]) -> None:
        """Removes the input files of these batches, which the run will not send or join:
        a render kept only for the plan costs no disk for the rest of the run."""
        for name in names:
            made = self._made.get(name)
            if made is not None:
                self._discard(made)

    def paths(self) -> list[Path]:
        """Every input file this run wrote."""
        return [p for s in self._made.values() for p in s.rendered.paths]

    def discard(self) -> None:
        """Removes the input files this run wrote, with their directory (at its end)."""
        self._made.clear()
        if self.spool is not None:
            shutil.rmtree(self.spool, ignore_errors=True)
            self.spool = None
        if self._held is not None:
            os.close(self._held)
            self._held = None

    @staticmethod
    def _discard(made: Stream) -> None:
        for path in made.rendered.paths:
            path.unlink(missing_ok=True)
        if made.rendered.keys is not None:
            made.rendered.keys.unlink(missing_ok=True)


def sweep_dead(directory: Path | None = None) -> int:
    """Removes the input files of runs that were killed from the temporary directory; returns
    how many folders went. A run holds a lock on its folder (`HELD`) while it lives, which
    the kernel lets go when the process ends however it ends: unlike a process id, that
    cannot be mistaken across containers or PID namespaces sharing the directory. Only real
    folders of this user's are touched: the directory is shared, and a name anyone may
    create must not steer a removal elsewhere."""
    removed = 0
    for path in Path(directory or tempfile.gettempdir()).glob(f"{PREFIX}*"):
        try:
            st = path.lstat()
        except OSError:
            continue
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or _held(path, st):
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed += 1
    return removed


def _hold(folder: Path) -> int:
    """A lock on `folder` for as long as this process keeps the descriptor open."""
    fd = os.open(folder / HELD, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return fd


def _held(folder: Path, st: os.stat_result) -> bool:
    """Whether a live run holds `folder`. A folder without its lock file is one being made
    (or a run killed between the two steps): left alone for a minute."""
    try:
        fd = os.open(folder / HELD, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return time.time() - st.st_mtime < 60
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)
    return False


def stamp(path: Path | None) -> Stamp | None:
    """What changes when a file is written to: its size, mtime and inode."""
    if path is None:
        return None
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns, st.st_ino
