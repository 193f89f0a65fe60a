"""A manifest directory with its lockfile and local state: the unit every command works on."""

from __future__ import annotations

import dataclasses
import os
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import hashing, lockfile
from .clashes import check_templates
from .desired import Rendered, desire, render_recorded
from .errors import LockfileError, OutputError
from .freshness import needs_remote, needs_tag_search
from .layout import LOCKFILE_NAME, STATE_DIR
from .manifest import Manifest, load_directory, parse_cache
from .outputcheck import check_outputs
from .ownership import disown
from .parsecache import ParseCache, salt
from .providers import registry
from .providers.base import JobState, Provider, RemoteJob
from .providers.clients import Clients
from .records import CANCELLED_BY_USER
from .resolve import Resolver, leaves
from .reuse import Reuse
from .schema_check import load_schema
from .statcache import cache_for
from .states import Desired, Observed
from .store.project import project_store
from .stream import Stream, Streams

# Above this many jobs to look at, one paged list costs less than a get per job.
LIST_THRESHOLD = 5


@dataclass
class Workspace:
    directory: Path
    manifests: list[Manifest]
    lock: lockfile.Lock
    # what was parsed and validated, to save once the whole workspace proved valid
    parsed: tuple[ParseCache, ...] = field(default=(), repr=False, compare=False)
    # YAML files of other tools in the directory, left out (see manifest.load_file)
    skipped: tuple[Path, ...] = field(default=(), compare=False)

    @classmethod
    def open(cls, directory: Path) -> Workspace:
        directory = directory.absolute()
        _check_own_files(directory)     # before a cache under .runner/ is read
        state = directory / STATE_DIR
        manifests_cache, lock_cache = parse_cache(state), _lock_cache(state)
        skipped: list[Path] = []
        manifests = load_directory(directory, manifests_cache, skipped)
        lock = _load_lock(lockfile.lock_path(directory), lock_cache)
        return cls(directory, manifests, lock, (manifests_cache, lock_cache), tuple(skipped))

    def reloaded(self) -> Workspace:
        """The same manifests with the lockfile read again (under the run lock, from the file
        itself: another run may have just replaced it)."""
        return Workspace(self.directory, self.manifests, lockfile.load(self.lock_path),
                         self.parsed, self.skipped)

    @property
    def lock_path(self) -> Path:
        return lockfile.lock_path(self.directory)

    @property
    def state_dir(self) -> Path:
        return self.directory / STATE_DIR

    def save_lock(self) -> None:
        lockfile.save(self.lock_path, self.lock)

    def manifest(self, name: str) -> Manifest:
        for m in self.manifests:
            if m.name == name:
                return m
        raise KeyError(name)

    def desired(self, streams: Streams | None = None,
                report: Callable[[str], None] | None = None) -> list[Desired]:
        """What each manifest asks for now; a manifest is rendered only when its inputs moved,
        by `streams` when given (which keeps what the rest of the run needs of it). `report`
        is told of a pack the lockfile names that the store lacks or holds damaged: its
        results are not reused (runner.reuse)."""
        cache = cache_for(self.state_dir)
        owners: dict[str, list[str]] = {}
        for name in sorted(self.lock.batches):
            record = self.lock.batches[name]
            for pack in dict.fromkeys((*record.packs, *record.reuse_packs)):
                owners.setdefault(pack, []).append(name)
        reuse = Reuse(lambda: project_store(self.directory), owners, report,
                      self.state_dir / "index")
        kept = self.state_dir / "render"
        if streams is not None:
            streams.reuse, streams.kept = reuse, kept

        def render(m: Manifest) -> tuple[dict[str, Any], Rendered]:
            if streams is not None:
                return _inputs_and_render(streams.of(m, fresh=cache))
            return render_recorded(m, cache=cache, reuse=reuse.index() if m.reuse else None,
                                   kept=kept)

        desired = [desire(m, self.lock.batches.get(m.name), cache, render)
                   for m in self.manifests]
        check_templates(self.manifests, {d.name: d.inputs.get("templates", {})
                                                for d in desired})
        for m, want in zip(self.manifests, desired):
            entry = self.lock.batches.get(m.name)
            if entry is None or entry.spec_hash != want.spec_hash:
                check_outputs(m)    # else unchanged since the run that checked them
        cache.save()    # only once every manifest rendered: bad input leaves nothing behind
        for parsed in self.parsed:
            parsed.save()
        return desired


def _inputs_and_render(stream: Stream) -> tuple[dict[str, Any], Rendered]:
    return stream.inputs, stream.rendered


def _check_own_files(directory: Path) -> None:
    """The lockfile and the state directory follow the rule of every file of the project
    (runner.resolve.leaves): neither may lead out of it, and the lockfile, when there is one,
    is a regular file (reading a pipe would wait forever)."""
    resolve = Resolver()
    lock = lockfile.lock_path(directory)
    problem = leaves(directory, LOCKFILE_NAME, resolve)
    if problem is None and os.path.exists(lock) and not stat.S_ISREG(os.stat(lock).st_mode):
        problem = "is not a regular file"
    if problem is not None:
        raise LockfileError(f"{problem}; the lockfile must be a file in the directory", path=lock)
    problem = leaves(directory, STATE_DIR, resolve)
    if problem is not None:
        raise OutputError(f"{problem}; the runner keeps its state inside the directory",
                          path=directory / STATE_DIR)


def _lock_cache(state_dir: Path) -> ParseCache:
    """The cache of the loaded lockfile; another lockfile schema, version or hash recipe
    makes it be read and validated again."""
    return ParseCache(state_dir / "lockfile.cache", salt(
        load_schema("lockfile.schema.json"), lockfile.VERSION, hashing.RECIPE))


def _load_lock(path: Path, cache: ParseCache) -> lockfile.Lock:
    """The lockfile; from `cache` when the file is unchanged since it was last loaded, which
    spares parsing and validating a record of every batch (seconds for a thousand)."""
    try:
        st = os.stat(path)
    except OSError:
        return lockfile.load(path)      # missing: an empty lock; otherwise it says why
    cached = cache.get(path.name, st)
    if cached is not None:
        # the loader's own constructor over every field of what it built: a hit gives what
        # loading the file gives (to_dict would drop what the writer leaves out)
        return lockfile.Lock({name: lockfile.entry_from(data) for name, data in cached.items()})
    lock = lockfile.load(path)
    cache.put(path.name, st, {name: dataclasses.asdict(entry)
                              for name, entry in lock.batches.items()})
    return lock


def observe(clients: Clients, lock: lockfile.Lock, desired: list[Desired],
            stored: frozenset[str] = frozenset()) -> Observed:
    """observe_each, as one view for the planner."""
    return merged(observe_each(clients, lock, desired, stored).values())


def observe_each(clients: Clients, lock: lockfile.Lock, desired: list[Desired],
                 stored: frozenset[str] = frozenset()) -> dict[str, Observed]:
    """What each provider the manifests name has (see observe_one), by provider name. The
    jobs of a provider that keeps no tag are recognised from `lock`'s records from now on
    (Clients.follow): the run records its intents in this very lock. `stored`: the packs
    the result store holds (runner.store.project.stored_packs); a batch restored from them
    is not asked about."""
    clients.follow(lock.records)
    groups: dict[str, list[Desired]] = {}
    for want in desired:
        groups.setdefault(want.provider, []).append(want)
    views = {name: observe_one(clients[name], lock, group, stored)
             for name, group in groups.items()}
    # a batch moved to another provider: its recorded jobs are on the one its record names,
    # and are looked at there, so that replacing the batch ends them there
    moved: dict[str, dict[str, RemoteJob]] = {}
    for want in desired:
        entry = lock.batches.get(want.name)
        if entry is None or entry.provider == want.provider or \
                entry.provider not in registry.PROVIDERS:
            continue
        client = clients[entry.provider]
        for job in sorted({r.job for r in entry.parts() if r.job is not None}):
            if (found := client.get_job(job)) is not None:
                moved.setdefault(entry.provider, {})[job] = found
    for name, jobs in moved.items():
        view = views.get(name, Observed({}))
        views[name] = Observed({**view.jobs, **jobs}, view.complete)
    return views


def merged(views: Iterable[Observed]) -> Observed:
    """The jobs of several providers as one Observed: complete when each listed all its jobs.
    Tags carry the content hash, which covers the provider, so no tag is shared across them."""
    views = list(views)
    jobs = {name: job for view in views for name, job in view.jobs.items()}
    return Observed(jobs, bool(views) and all(v.complete for v in views))


def observe_one(provider: Provider, lock: lockfile.Lock, desired: list[Desired],
                stored: frozenset[str] = frozenset()) -> Observed:
    """The remote jobs a plan needs: the recorded job of every batch not yet settled (nor
    restored from the packs `stored`), and, when a batch may need creating or adopting,
    every job on the provider (to find it by its displayName tag). Live jobs are refreshed
    by listing, page by page, when there are several, rather than one get each."""
    jobs: dict[str, RemoteJob] = {}
    entries = [(lock.batches.get(w.name), w) for w in desired]
    wanted = {job for e, w in entries if e is not None and e.provider == provider.name
              and needs_remote(e, w, stored)
              for job in (*(p.job for p in e.parts()), e.current_job) if job}
    complete = any(needs_tag_search(e, w) for e, w in entries) or len(wanted) > LIST_THRESHOLD
    if complete:
        jobs.update((j.name, j) for j in provider.list_jobs())
    for name in sorted(wanted - set(jobs)):
        job = provider.get_job(name)
        if job is not None:
            jobs[name] = job
    if not complete and (
            any(disown(w, e, Observed(jobs))[1] for e, w in entries if e is not None)
            or any(j.state == JobState.CANCELLED and r.error != CANCELLED_BY_USER
                   for e, _ in entries if e is not None for r in e.parts()
                   if (j := jobs.get(r.job or "")) is not None)):
        # a recorded job that is not the batch's own, or one cancelled outside the runner
        # (by another run that kept its twin): the batch's own is looked for by its tag
        jobs.update((j.name, j) for j in provider.list_jobs())
        complete = True
    return Observed(jobs, complete)
