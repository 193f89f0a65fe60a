"""`apply --prune`: the remote jobs and, when asked, the outputs of a removed manifest.

It acts on the lockfile's own records only, and the lockfile is committed text that people
edit and merge: its paths are not trusted further than the checks below.
"""

from __future__ import annotations

from collections.abc import Callable

from ..errors import ProviderError
from ..hashing import file_digest
from ..identity import Identity
from ..lockfile import lock_path as lockfile_path
from ..ownership import foreign, not_its_own
from ..providers.base import JobState, Provider
from ..providers.registry import dialect
from ..records import LockEntry, Part, Retry
from ..workspace import Workspace
from .journal import Journal
from .listing import Listing


def prune(name: str, *, journal: Journal, listing: Listing, provider: Provider,
          identity: Identity, outputs: bool, report: Callable[[str], None]) -> None:
    """Cancels and deletes the remote jobs the lockfile records for a removed manifest, then
    forgets it; its outputs stay unless `outputs`. Only a job that the provider shows to be
    the record's own (see ownership.foreign) is cancelled or deleted: a lockfile line naming
    another batch's job, or any other resource, must not delete it."""
    entry = journal.entry(name)
    records: list[Part | Retry] = [*entry.parts(), *entry.retries]
    for record in records:
        found = record.job is None and record.state == JobState.CREATING
        if found:
            job = listing.find(record.display_name)      # created just before a crash?
            if job is not None and not dialect(entry.provider).tags_jobs:
                report(f"{name}: not pruned remotely: job {job.name} may be this batch's, "
                       "known only by its size and creation time (the provider keeps no "
                       "tag); left alone")
                job = None
            record.job = job.name if job is not None else None
        if record.job is None:
            continue
        if identity.guards(record.job) or (found and identity.original is not None):
            report(f"{name}: not pruned remotely: {identity.refusal(record.job)}")
            record.job = None
            continue
        try:
            job = provider.get_job(record.job)
            why = foreign(name, entry.model, record, job) if job is not None else None
        except ProviderError as e:      # not even a batch
            job, why = None, str(e)
        if job is None or why is not None:
            if why is not None:
                report(f"{name}: not pruned remotely: {not_its_own(record.job, why)}; left "
                       "alone")
            record.job = None
            continue
        if not job.state.terminal:
            provider.cancel_job(record.job)
        provider.delete_job(record.job)
    kept = "kept its outputs"
    if outputs:
        deleted, left = prune_outputs(journal.ws, entry)
        kept = f"deleted {deleted} output(s)" + (
            f"; left {', '.join(left)}: changed since written, or not the runner's to "
            "delete" if left else "")
    journal.forget(name)
    report(f"{name}: pruned: deleted {sum(1 for r in records if r.job)} remote job(s), {kept}")


def prune_outputs(ws: Workspace, entry: LockEntry) -> tuple[int, list[str]]:
    """Deletes the outputs the runner wrote for a removed batch: only files inside the
    directory, that no manifest reads or writes, whose bytes are still the ones recorded."""
    root = ws.directory.resolve()
    taken = {lockfile_path(root)}
    for m in ws.manifests:
        taken.add(m.source.resolve())
        taken.update(o.path.resolve() for o in m.declared_paths())
        if m.rows is not None:
            taken.add(m.rows.resolve())
    deleted, left = 0, []
    for rel, digest in sorted(entry.outputs.items()):
        path = ws.directory / rel
        real = path.resolve()
        if not path.is_file():
            continue
        if (not real.is_relative_to(root) or real in taken or path.is_symlink()
                or real.is_relative_to(ws.state_dir.resolve())
                or file_digest(real) != digest):
            left.append(rel)
            continue
        path.unlink()
        deleted += 1
    return deleted, left
