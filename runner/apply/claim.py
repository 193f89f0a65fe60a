"""Before a job is created: the lease on its content hash, and the claim of the job made.

Two machines applying the same change at once would each create the job: the tag search
before a create cannot see a create under way elsewhere, and a provider that keeps no tag
(Anthropic) gives another clone nothing to find at all. So the create is done under the
store's lease on the part's content hash (runner.store.lease), and the run that creates the
job says so in the store (runner.store.claims) before it releases the lease:

1. take the lease; held by another live run, wait a few seconds, looking at the lease and
   the claim: a claim naming a job is adopted at once, a lease freed is taken, and one still
   held after that leaves the part to the next apply (one line; not a failure);
2. holding it, read the claim: a job named there, still on the provider and this batch's own
   (runner.ownership), is adopted, not created; an intent naming no job, left by a run killed
   while it held the lease, means the job may exist: it is looked for in a fresh listing, by
   its tag, or for a provider that keeps none by the intent's time and size (runner.recognise;
   the run's own clone has that intent in its lockfile, and a job it let go is not taken);
3. the intent (the lockfile's, then the claim's), the create, the claim naming the job,
   and the lease released. While the create runs (a big upload), a thread renews the lease.

A run killed holding the lease blocks others for the ttl at most; the next run of the same
directory on the same machine takes it over at once (its run lock says the holder is gone).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import LeaseLost, StoreError
from ..manifest import Manifest
from ..ownership import foreign
from ..providers.base import JobState, Provider, RemoteJob
from ..providers.registry import dialect
from ..recognise import SKEW, recognise
from ..records import Part, Retry
from ..store import Lease, Store
from ..store.claims import Claim
from ..tags import RANK, epoch
from .listing import Listing

TTL = 120.0         # seconds a lease is promised for
RENEW = 30.0        # renewed this often while its holder creates the job
WAIT = 5.0          # seconds to wait for a lease another run holds, before leaving the part
POLL = 0.25         # how often the lease and the claim are looked at meanwhile


@dataclass
class Slot:
    """What `Claims.hold` found for a job about to be created."""

    tag: str
    job: RemoteJob | None = None    # a job another run made: adopted, not created
    left: str | None = None         # the holder of the lease, when the part is left
    fresh: bool = False             # an earlier holder may have created it: list again
    _claims: Claims | None = field(default=None, repr=False)
    _renewer: _Renewer | None = field(default=None, repr=False)
    _intent: Claim | None = field(default=None, repr=False)

    def intended(self, record: Part | Retry) -> None:
        """The intent, saved in the lockfile, said in the store too. Not when a job was
        found for it: the claim that named it stays, and so does an intent that a job was
        recognised by (a guess is not made a claim)."""
        if self._claims is not None and self._renewer is not None and self.job is None:
            self._intent = self._claims.say(self._renewer.lease, record, None)

    def created(self, job: RemoteJob) -> None:
        """The job is made (or found by its tag): the claim names it, for every run after
        this one."""
        if self._claims is not None and self._renewer is not None and self._intent is not None:
            self._claims.say(self._renewer.lease, self._intent, job.name)


@dataclass
class _Intent:
    """A claim's intent as runner.recognise reads a lockfile record's."""

    display_name: str
    requests: int
    submitted_at: str | None
    state: JobState = JobState.CREATING
    job: str | None = None


class Claims:
    """The leases and claims of one provider's creates in one run."""

    def __init__(self, store: Store, provider: Provider, listing: Listing, holder: str,
                 scope: str, report: Callable[[str], None],
                 sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic, wait: float | None = None,
                 ttl: float | None = None):
        self.store, self.provider, self.listing = store, provider, listing
        self.holder, self.scope, self.report = holder, scope, report
        self.sleep, self.clock = sleep, clock
        self.wait = WAIT if wait is None else wait
        self.ttl = TTL if ttl is None else ttl
        self.tags_jobs = dialect(provider.name).tags_jobs

    @contextlib.contextmanager
    def hold(self, m: Manifest, record: Part | Retry, tag: str) -> Iterator[Slot]:
        """The lease on `record`'s content hash for the time of the block, or the job a
        claim names, or the part left to the next apply (see the module docstring)."""
        slot = self._slot(m, record, tag)
        renewer = slot._renewer
        if renewer is None:
            yield slot
            return
        renewer.start()
        try:
            yield slot
        finally:
            renewer.stop()
            if renewer.lost:
                self.report(f"{m.name}: the lease on {record.content_hash} lapsed while this "
                            "run created its job; the job's tag stays the guard")
            else:
                with contextlib.suppress(StoreError):   # it lapses after the ttl anyway
                    self.store.release(renewer.lease)

    def say(self, lease: Lease, about: Part | Retry | Claim, job: str | None) -> Claim:
        """Writes the claim on `lease`'s content hash: the intent, or the job made."""
        if isinstance(about, Claim):
            claim = dataclasses.replace(about, job=job)
        else:
            claim = Claim(lease.content_hash, self.provider.name, about.display_name,
                          self.holder, about.requests, about.submitted_at, job)
        self.store.write_claim(claim)
        return claim

    def _slot(self, m: Manifest, record: Part | Retry, tag: str) -> Slot:
        content_hash = record.content_hash
        deadline = self.clock() + self.wait
        refused: set[str] = set()       # jobs a claim named that are not to be adopted
        while True:
            lease = self.store.lease(content_hash, self.holder, self.ttl, over=self._over)
            claim = self.store.claim(content_hash, self.provider.name, tag)
            if lease.held:
                try:
                    return self._held(m, record, tag, lease, claim)
                except BaseException:
                    with contextlib.suppress(StoreError):
                        self.store.release(lease)
                    raise
            if claim is not None and claim.job is not None and claim.job not in refused:
                job = self._usable(m, record, tag, claim.job)
                if job is not None:
                    return Slot(tag, job=job)
                refused.add(claim.job)
            if self.clock() >= deadline:
                return Slot(tag, left=lease.holder)
            self.sleep(POLL)

    def _held(self, m: Manifest, record: Part | Retry, tag: str, lease: Lease,
              claim: Claim | None) -> Slot:
        """The lease taken: what the claim says."""
        slot = Slot(tag, _claims=self, _renewer=_Renewer(self.store, lease, self.ttl))
        if claim is not None and claim.job is not None:
            slot.job = self._usable(m, record, tag, claim.job)
        elif claim is not None and claim.holder != self.holder:
            slot.fresh = True
            if not claim.holder.endswith(f"[{self.scope}]"):    # this clone has its intent
                slot.job = self._recognised(m, record, tag, claim)
        return slot

    def _over(self, holder: str) -> bool:
        """Whether a holder was a run of this directory on this machine: this run holds the
        directory's run lock, so that run has ended (killed while it held the lease)."""
        return holder != self.holder and holder.endswith(f"[{self.scope}]")

    def _usable(self, m: Manifest, record: Part | Retry, tag: str, name: str
                ) -> RemoteJob | None:
        """The job a claim names, if the provider has it, it is this batch's own and has
        or will have results; else None, and the job is created."""
        job = self.provider.get_job(name)
        if job is None:
            return None
        if not self.tags_jobs and not job.display_name:     # the claim is its tag
            job = dataclasses.replace(job, display_name=tag, inferred=True)
        return self._checked(m, record, tag, job)

    def _checked(self, m: Manifest, record: Part | Retry, tag: str, job: RemoteJob
                 ) -> RemoteJob | None:
        why = foreign(m.name, m.model, record, job) or \
            (None if job.display_name == tag else f"it is tagged {job.display_name!r}")
        if why is None and not self.tags_jobs and _let_go(record, job):
            return None
        if why is not None:
            self.report(f"{m.name}: the result store says job {job.name} was made for "
                        f"{tag}, but it is not this batch's ({why}); not adopted")
            return None
        return job if job.state in RANK else None

    def _recognised(self, m: Manifest, record: Part | Retry, tag: str, claim: Claim
                    ) -> RemoteJob | None:
        """For a provider that keeps no tag: the job an intent's run may have created before
        it was killed, recognised by the intent's time and size (runner.recognise) among the
        jobs no record of this clone names. A provider that keeps tags is listed again by
        the caller, and the job found by its tag."""
        if self.tags_jobs or claim.intent_at is None:
            return None
        untagged = [j for j in self.listing.jobs(fresh=True) if not j.display_name]
        intent = _Intent(tag, claim.requests, claim.intent_at)
        found = [j for j in recognise(untagged, [intent], {}) if j.display_name == tag]
        return self._checked(m, record, tag, found[0]) if found else None


def _let_go(record: Part | Retry, job: RemoteJob) -> bool:
    """Whether this clone let `job` go already (its results answered other requests):
    letting it go put the record's intent more than SKEW past the job's creation
    (Journal.unbind), and only a job created after that can be the record's."""
    since = epoch(record.submitted_at) if record.job is None else None
    return since is not None and (epoch(job.create_time) or 0.0) < since - SKEW


class _Renewer:
    """Renews a lease every RENEW seconds until stopped, on a thread of its own."""

    def __init__(self, store: Store, lease: Lease, ttl: float):
        self.store, self.lease, self.ttl = store, lease, ttl
        self.lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="lease renewer")

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        token, since = secrets.token_hex(16), None
        while True:
            stopping = self._stop.wait(RENEW)
            if stopping and since is None:
                return
            # stopping with a try unsettled: settle it once, else the release that follows
            # finds the generation it wrote newer than the lease it knows, calls the lease
            # lost and leaves it held for the ttl
            since = self.store.now() if since is None else since
            try:
                self.lease = self.store.renew(self.lease, self.ttl, token, since)
            except LeaseLost:
                self.lost = True
                return
            except StoreError:
                # the store did not answer: the lease holds for the ttl; the next try keeps
                # the token (and when the first began), so a generation this one wrote
                # before its answer was lost is known for this run's, expiring as written
                # (a new token would read it as another run's)
                if stopping:
                    return
                continue
            token, since = secrets.token_hex(16), None
            if stopping:
                return


def run_holder(directory: Path) -> tuple[str, str]:
    """How this run names itself as a lease's holder (host, process, a random part; no
    secret), and the mark of its directory on this machine that ends the name: a lease
    whose holder carries it was taken by an earlier run of this directory (see Claims._over).
    The mark hashes the boot, the host and the directory, so that two machines (or two
    containers) with one hostname and one path tell their runs apart."""
    host = socket.gethostname() or "localhost"
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        boot = ""
    real = os.path.realpath(directory)
    st = os.stat(real)
    scope = hashlib.sha256(f"{boot}\n{host}\n{real}\n{st.st_dev}\n{st.st_ino}".encode()
                           ).hexdigest()[:12]
    return f"{host[:60]} pid {os.getpid()} {secrets.token_hex(3)} [{scope}]", scope
