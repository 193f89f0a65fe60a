"""`runner cancel`: ending the running jobs of named batches, and recording that it was asked.

The lockfile is text that people edit and merge, so a job is cancelled only when the provider
shows it to be the record's own (ownership.foreign): a record naming another batch's job would end
that batch's work and have it paid for again. Everything is checked before anything is
cancelled, so a refusal leaves every job running.
"""

from __future__ import annotations

from collections.abc import Mapping

from .apply.journal import now
from .errors import RunnerError
from .identity import Identity
from .ownership import foreign, not_its_own
from .providers.base import JobState, Provider, RemoteJob
from .providers.clients import Clients
from .providers.registry import dialect
from .records import CANCELLED_BY_USER, LIVE, LockEntry, Part, Retry
from .workspace import Workspace


def cancel_batches(ws: Workspace, entries: Mapping[str, LockEntry], clients: Clients,
                   identity: Identity) -> list[str]:
    """Cancels every live job of `entries` (an open follow-up's, or every part's) and records
    each as cancelled by the user; returns the jobs cancelled."""
    listings: dict[str, list[RemoteJob]] = {}       # one listing a provider, when needed
    targets: list[tuple[Part | Retry, str | None, Provider]] = []
    for name, entry in entries.items():
        provider = clients[entry.provider]
        retry = entry.open_retry
        for record in ([retry] if retry is not None else entry.parts()):
            if record.state not in LIVE:
                continue
            if record.job is None:      # queued, or created just before a crash
                if entry.provider not in listings:
                    listings[entry.provider] = [j for j in provider.list_jobs()
                                                if not j.state.terminal]
                listed = listings[entry.provider]
                # a provider that keeps no tag: a job found so is a guess, never cancelled
                mine = [j for j in listed if j.display_name == record.display_name
                        and foreign(name, entry.model, record, j) is None
                        and dialect(entry.provider).tags_jobs]
                if mine and identity.original is not None:
                    raise RunnerError(f"{name}: {identity.refusal(mine[0].name)}",
                                      path=ws.lock_path)
                targets.append((record, mine[0].name if mine else None, provider))
                continue
            if identity.guards(record.job):
                raise RunnerError(f"{name}: {identity.refusal(record.job)}", path=ws.lock_path)
            job = provider.get_job(record.job)
            why = foreign(name, entry.model, record, job) if job is not None else None
            if why is not None:
                raise RunnerError(f"{name}: {not_its_own(record.job, why)}; nothing was "
                                  "cancelled", path=ws.lock_path)
            targets.append((record, record.job, provider))
    cancelled = []
    for record, job_name, provider in targets:
        record.job = job_name
        if job_name is None:            # never submitted: it stays unsubmitted
            record.state, record.error = JobState.CANCELLED, CANCELLED_BY_USER
            ws.save_lock()
            continue
        provider.cancel_job(job_name)
        record.state, record.finished_at = JobState.CANCELLED, now()
        record.error = CANCELLED_BY_USER
        cancelled.append(job_name)
        ws.save_lock()
    return cancelled
