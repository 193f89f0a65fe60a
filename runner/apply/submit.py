"""Putting jobs on the provider, never one twice.

Each batch is rendered once a run. Before a create, the intent (state CREATING, with the
displayName tag) is saved and the tag looked for: a job an earlier run created and then lost
is adopted, not created again. A create whose answer was lost is resolved by looking for the
tag, never by a blind retry; a create answered with another batch's job is not recorded.
All of it is done holding the store's lease on the content hash, and the job made is claimed
in the store, so that another clone applying the same change adopts it (runner.apply.claim).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, cast

import orjson

from ..actions import Action
from ..desired import Rendered, input_path, render_into
from ..errors import InputsChanged, OutputError, ProviderError
from ..failpoints import hit
from ..failures import only_unfinished
from ..fsutil import atomic_writer
from ..identity import Identity
from ..manifest import Manifest
from ..ownership import foreign
from ..providers.base import AmbiguousCreate, JobState, RemoteJob
from ..providers.dialect import UNFINISHED
from ..providers.registry import dialect
from ..recognise import newest
from ..records import LockEntry, Part, Retry
from ..retry import Sleep
from ..tags import display_name, twins
from .claim import Claims, Slot
from .journal import part_of
from .options import note
from .worker import Worker

# (batch, the job its record named, the job it names now) for a record healed of a twin
Moved = tuple[str, str, RemoteJob]


@dataclass
class Submitter(Worker):
    identity: Identity
    sleep: Sleep
    claims: Claims | None = None    # the store's leases and claims (runner.apply.claim)
    # the jobs this run created, to check for twins (see heal)
    _created: list[tuple[str, Part | Retry]] = field(default_factory=list, init=False)

    @property
    def state_dir(self) -> Path:
        return self.journal.ws.state_dir

    # -- the batch as it renders now ----------------------------------------------------------

    def render(self, m: Manifest, files: bool, need: str | None = None
               ) -> tuple[dict[str, Any], Rendered]:
        """The batch as the run's stream rendered it (runner.stream), with its inputs. The
        same requests are cut as the lockfile records them, so a shard resubmitted keeps its
        hash. With `files`, rendered again only if the input file of the shard `need` is gone
        (another run cleared it)."""
        entry = self.journal.get(m.name)
        same = entry is not None and \
            entry.content_hash == self.journal.desired[m.name].content_hash
        cuts = [p.requests for p in entry.parts()] if entry is not None and same else []
        stream = self.streams.of(m, cuts, need if files else None,
                                 reused=entry.reuse_packs if entry is not None and same else None)
        return stream.inputs, stream.rendered

    def relay(self, m: Manifest, files: bool = False, need: str | None = None) -> LockEntry:
        """The batch recorded anew as it renders now (see Journal.relay)."""
        inputs, rendered = self.render(m, files, need)
        return self.journal.relay(m, inputs, rendered)

    def layout(self, m: Manifest, content_hash: str | None, files: bool
               ) -> tuple[LockEntry, Part]:
        """The batch's record laid out as the manifest renders now (the parts whose requests
        are unchanged keep their jobs), and the part holding `content_hash`."""
        entry = self.journal.get(m.name)
        part = part_of(entry, content_hash) if entry is not None else None
        if entry is not None and part is not None and not files and \
                entry.content_hash == self.journal.desired[m.name].content_hash:
            return entry, part
        entry = self.relay(m, files, content_hash)
        part = part_of(entry, content_hash)
        if part is None:
            raise InputsChanged(m.name, m.source)
        return entry, part

    # -- submitting ---------------------------------------------------------------------------

    def cancel_superseded(self, m: Manifest, action: Action) -> None:
        for job in action.old_jobs:
            if self.identity.guards(job):
                self.report(f"{m.name}: superseded {self.identity.refusal(job)}")
                continue
            self.provider.cancel_job(job)
            self.report(f"{m.name}: cancelled superseded job {job}")

    def submit(self, m: Manifest, action: Action) -> str | None:
        """Render, take the lease, record the intent, look for the job (in the store's claim,
        by its tag: a job another run created, or an earlier run created and then lost), and
        only then create. Returns the job's name; None when another run holds the lease."""
        _, part = self.layout(m, action.content_hash, files=True)
        tag = display_name(m.name, part.content_hash, action.attempt)
        with self._hold(m, part, tag) as slot:      # the store's lease (runner.apply.claim)
            if slot.left is not None:
                self._left(m, part, slot.left)
                return None
            self.journal.intent(part, tag, action.attempt, self._fence())
            slot.intended(part)
            hit("after-intent")
            path = self.streams.input_file(m, part.content_hash)
            if path is None:        # rendered above: only a change made behind its back
                raise InputsChanged(m.name, m.source)
            job = slot.job or self.listing.find(tag, fresh=slot.fresh) or \
                self._create(m, part, path)
            self.journal.bind(part, job)
            slot.created(job)
        hit("after-job-recorded")
        label = self.journal.label(m.name, part)
        if slot.job is not None:
            self.report(f"{label}: adopted {job.name}, which another run created ({tag})")
            return job.name
        note(self.outcome.submitted, m.name)
        self.report(f"{label}: submitted {part.requests} requests as {job.name} ({tag})")
        return job.name     # its input file stays until the run ends: the join may read it

    def adopt(self, m: Manifest, action: Action) -> None:
        assert action.job is not None
        _, part = self.layout(m, action.content_hash, files=False)
        self.journal.adopt(part, action.job, action.attempt)
        self.report(f"{self.journal.label(m.name, part)}: adopted {action.job.name} "
                    f"({action.reason})")

    def submit_retry(self, m: Manifest, action: Action) -> None:
        """A follow-up batch of only the requests that failed: intent first, as for any
        batch."""
        entry = self.journal.entry(m.name)
        retry = entry.open_retry
        failed = retry_keys(m, entry, retry)
        path = input_path(self.state_dir, f"sha256:retry-{m.name}")
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_writer(path, "wb") as sink:     # binary, whatever its type says
            rendered = render_into(m, cast(IO[bytes], sink), only=failed,
                                   sent=entry.content_hash)
        if rendered.requests == 0:          # nothing left to retry: close an interrupted one
            if retry is not None and retry.job is None:
                self.journal.drop_retry(entry, retry)
            path.unlink(missing_ok=True)
            return
        assert retry is not None or action.display_name is not None
        record = retry or Retry(rendered.content_hash, rendered.requests,
                                action.display_name or "", JobState.CREATING)
        with self._hold(m, record, record.display_name) as slot:
            if slot.left is not None:
                self._left(m, record, slot.left)
                path.unlink(missing_ok=True)
                return
            if retry is None:
                retry = record
                self.journal.retry_intent(entry, retry, self._fence())
                hit("after-intent")
            slot.intended(retry)
            job = slot.job or self.listing.find(retry.display_name, fresh=slot.fresh) or \
                self._create(m, retry, path)
            self.journal.bind(retry, job)
            slot.created(job)
        self.outcome.submitted.append(m.name)
        self.report(f"{m.name}: resubmitted {rendered.requests} failed requests as {job.name} "
                    f"({retry.display_name})")
        with contextlib.suppress(FileNotFoundError):
            path.unlink()

    def _hold(self, m: Manifest, record: Part | Retry, tag: str
              ) -> contextlib.AbstractContextManager[Slot]:
        return self.claims.hold(m, record, tag) if self.claims is not None \
            else contextlib.nullcontext(Slot(tag))

    def _left(self, m: Manifest, record: Part | Retry, holder: str) -> None:
        """Another live run holds the lease: not waited for, not a failure."""
        note(self.outcome.left, m.name)
        self.progress.error(f"{self.journal.label(m.name, record)}: another run ({holder}) "
                            "is submitting it; left to the next apply")

    def _fence(self) -> str | None:
        """For a provider that keeps no tag: the creation time of the newest job seen, which
        the intent about to be recorded must come after (see recognise.intent_time)."""
        if dialect(self.provider.name).tags_jobs:
            return None
        return newest(j.create_time for j in self.listing.jobs())

    def _create(self, m: Manifest, record: Part | Retry, path: Path) -> RemoteJob:
        """Upload if too big to send inline, then create; `record` (the batch or a follow-up)
        is already saved with its tag, and gets the uploaded file's name before the create."""
        inline = path.stat().st_size + 64 * record.requests < self.provider.inline_limit
        if not inline:
            file = self.provider.find_file(record.display_name) or self.provider.upload_file(
                path, record.display_name, on_progress=lambda sent, total:
                self.progress.transfer(m.name, "upload", sent, total))
            self.journal.uploaded(record, file)
        try:
            if inline:
                job = self.provider.create_job(m.model, record.display_name, inline_lines=path,
                                               endpoint=m.endpoint)
            else:
                job = self.provider.create_job(m.model, record.display_name, endpoint=m.endpoint,
                                               input_file=record.input_file)
        except AmbiguousCreate as e:
            self.report(f"{m.name}: the answer to create was lost ({e}); looking for the job")
            for delay in (0.5, 2.0, 5.0):
                self.sleep(delay)
                found = self.listing.find(record.display_name, fresh=True)
                if found is not None:
                    return found
            raise ProviderError(f"{m.name}: create may or may not have reached the provider; "
                                "the intent is recorded, and the next apply looks for the job "
                                "again before creating it") from None
        why = foreign(m.name, self.journal.entry(m.name).model, record, job)
        if why is not None:
            # an answer about another job: this create's job, if it exists, carries the tag
            answered = (f"{m.name}: the provider answered the create with job {job.name}, "
                        f"which is not this batch's ({why})")
            self.report(f"{answered}; looking for it by its tag")
            found = self.listing.find(record.display_name, fresh=True)
            if found is None:
                raise ProviderError(f"{answered}; the intent is recorded, and the next apply "
                                    "looks for the job by its tag before creating it")
            return found
        self.listing.add(job)
        self._created.append((m.name, record))
        return job

    def heal(self) -> list[Moved]:
        """Another machine may have created the same job at the same time (the tag search
        before a create cannot see a create under way elsewhere). After creating, list again:
        of two jobs with one tag, every run keeps the same one (see tags.twins), cancels the
        other and records the one kept. Returns the records that now name another job."""
        if not self._created:
            return []
        created, self._created = self._created, []
        jobs = self.listing.jobs(fresh=True)
        moved: list[Moved] = []
        for name, record in created:
            keep, others = twins(jobs, record.display_name)
            for job in others:
                self.provider.cancel_job(job.name)
                self.report(f"{self.journal.label(name, record)}: another run created the same "
                            f"job at the same time; cancelled {job.name}, keeping "
                            f"{keep.name if keep else record.job}")
            if keep is not None and record.job is not None and keep.name != record.job:
                moved.append((name, record.job, keep))
                self.journal.bind(record, keep)
        return moved


def retry_keys(m: Manifest, entry: LockEntry, retry: Retry | None) -> set[str]:
    """The keys the follow-up `retry` sends (None: the next one): every failed request while
    retry_failed allows, then only the unfinished ones (see failures.only_unfinished)."""
    index = entry.retries.index(retry) if retry is not None else len(entry.retries)
    return failed_keys(m, only_unfinished(m.retry_failed, index))


def failed_keys(m: Manifest, unfinished: bool = False) -> set[str]:
    """Keys in the errors output: the requests a follow-up batch sends again (`unfinished`:
    only those their job expired before running)."""
    keys = set()
    try:
        with open(m.errors.path, "rb") as f:
            for line in f:
                if line.strip():
                    failure = orjson.loads(line)
                    if not unfinished or failure["error"].get(UNFINISHED) is True:
                        keys.add(str(failure["key"]))
    except (OSError, orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
        raise OutputError(f"cannot read the failed requests from {m.errors.rel}; delete it and "
                          "run apply again, which writes it anew from the results",
                          path=m.source) from None
    return keys
