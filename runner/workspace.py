"""A manifest directory with its lockfile and local state: the unit every command works on."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from . import lockfile
from .desired import desire
from .manifest import Manifest, load_directory
from .plan import Desired, Observed
from .providers.base import Provider, RemoteJob


@dataclass
class Workspace:
    directory: Path
    manifests: list[Manifest]
    lock: lockfile.Lock

    @classmethod
    def open(cls, directory: Path) -> Workspace:
        directory = directory.absolute()
        manifests = load_directory(directory)
        return cls(directory, manifests, lockfile.load(lockfile.lock_path(directory)))

    @property
    def lock_path(self) -> Path:
        return lockfile.lock_path(self.directory)

    @property
    def state_dir(self) -> Path:
        return self.directory / lockfile.STATE_DIR

    def save_lock(self) -> None:
        lockfile.save(self.lock_path, self.lock)

    def manifest(self, name: str) -> Manifest:
        for m in self.manifests:
            if m.name == name:
                return m
        raise KeyError(name)

    def desired(self) -> list[Desired]:
        return [desire(m, self.lock.batches.get(m.name)) for m in self.manifests]


def observe(provider: Provider, lock: lockfile.Lock, desired: list[Desired]) -> Observed:
    """The remote jobs a plan needs: every job the lockfile names, and, when a batch may need
    creating or adopting, every job on the provider (to find one by its displayName tag)."""
    jobs: dict[str, RemoteJob] = {}
    need_list = False
    for want in desired:
        entry = lock.batches.get(want.name)
        if (entry is None or entry.content_hash != want.content_hash or entry.job is None
                or entry.state == "CREATING"):
            need_list = True
    if need_list:
        jobs.update((j.name, j) for j in provider.list_jobs())
    for name in sorted({e.job for e in lock.batches.values() if e.job} - set(jobs)):
        job = provider.get_job(name)
        if job is not None:
            jobs[name] = job
    return Observed(jobs)
