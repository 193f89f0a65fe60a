"""The run: the plan's actions carried out in order within the provider's cap on jobs at once,
then every job polled, with backoff and within the time limit, until it ends.

The decisions are the planner's. When a job ends while the run waits (expired, failed,
cancelled by another run that kept its twin, succeeded with failed requests), the run plans
that batch again (runner.plan.replan: plan() over its record as the run keeps it and what the
provider just said) and acts on the action it gets.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from ..actions import SUBMITS, Action, Kind, Plan
from ..errors import ProviderError, ResultsGone
from ..failpoints import hit
from ..identity import Identity
from ..manifest import Manifest
from ..plan import replan
from ..progress import Progress
from ..providers import registry
from ..providers.base import JobState, RemoteJob
from ..providers.clients import Clients
from ..records import Part, Retry
from ..states import Desired, Observed
from ..store import Store
from ..store.project import project_store
from ..stream import Streams
from ..workspace import Workspace
from .crew import Crew, Crews
from .journal import Journal
from .options import Options, Outcome, note
from .polling import Inflight, Pace, pause, refresh
from .prune import prune
from .slots import Slots


class Scheduler:
    def __init__(self, ws: Workspace, clients: Clients, options: Options, progress: Progress,
                 desired: list[Desired], observed: Mapping[str, Observed] | None = None,
                 identity: Identity | None = None, streams: Streams | None = None,
                 store: Store | None = None):
        self.ws = ws
        self.clients = clients
        self.options = options
        self.progress = progress
        self.report = progress.message
        self.identity = identity = identity or Identity()
        self.outcome = Outcome()
        self.desired = {d.name: d for d in desired}
        self.journal = Journal(ws, self.desired)
        self.streams = streams or Streams(spool=True)
        self._crews = Crews(self.journal, clients, self.desired, options, progress,
                            self.outcome, self.streams, identity, observed or {},
                            store or project_store(ws.directory))
        self._slots = Slots(self._crews, self.report)

    def _crew(self, name: str) -> Crew:
        return self._crews.of_batch(name)

    def _old_crew(self, name: str) -> Crew:
        return self._crews.of_record(name)

    def run(self, plan: Plan) -> Outcome:
        # the jobs already running count against the cap on jobs in flight from the start
        inflight: Inflight = {a.job.name: (a.name, a.job) for batch in plan.actions
                              for a in (batch.parts or (batch,))
                              if a.kind in (Kind.WAIT, Kind.ADOPT) and a.job is not None}
        try:
            for action in plan.actions:
                self._act(action, inflight)
            self._heal(inflight)
            if inflight and self.options.wait:
                self._wait(inflight)
        finally:
            self.streams.discard()      # the input files rendered this run
        self.outcome.pending = sorted(self._slots.running(inflight))
        return self.outcome

    # -- acting on actions ----------------------------------------------------------------------

    def _act(self, action: Action, inflight: Inflight) -> None:
        """A planned action; a split batch's, shard by shard. A submission waits for a job
        slot: providers cap the jobs a project runs at once, and refuse a create over it."""
        if action.kind == Kind.NOTHING:
            return
        if action.parts:
            self._lay_out(action)
            for part in action.parts:
                self._act(part, inflight)
            return
        if action.kind in SUBMITS and not self._slots.free(action.name, inflight):
            self._slots.wait(action)
            self.progress.state(self._label(action), "WAITING FOR A JOB SLOT")
            return
        self._do(action, inflight)

    def _do(self, action: Action, inflight: Inflight) -> None:
        """Carries out an action now. What the planner answers for a job that just ended
        comes here directly, not through the queue: it takes the slot of the job it follows."""
        name = action.name
        if action.kind == Kind.ORPHAN:
            provider = self.journal.entry(name).provider
            if self.options.prune and provider not in registry.PROVIDERS:
                self.report(f"{name}: its record names provider {provider!r}, which this "
                            "runner does not know; left alone")
            elif self.options.prune:
                crew = self._crew(name)
                prune(name, journal=self.journal, listing=crew.listing, provider=crew.provider,
                      identity=self.identity, outputs=self.options.prune_outputs,
                      report=self.report)
            return
        if action.kind in (Kind.FAILED, Kind.LOST):
            note(self.outcome.failed, name)
            self.progress.error(f"{name}: {action.reason}")
            record = self.journal.record_of(name, action.job.name) if action.job else None
            if action.job is not None and record is not None and \
                    record.state != action.job.state:
                self.journal.terminal(name, action.job)
            return
        if action.kind == Kind.NOTHING:
            return
        m = self.ws.manifest(name)
        crew = self._crew(name)
        self._old_crew(name).submitter.cancel_superseded(m, action)
        entry = self.journal.get(name)
        if action.kind in (Kind.CREATE, Kind.REPLACE, Kind.RESUBMIT):
            if (job_name := crew.submitter.submit(m, action)) is not None:
                inflight[job_name] = (name, None)
        elif action.kind == Kind.RETRY:
            crew.submitter.submit_retry(m, action)
            self._track_retry(name, inflight)
        elif action.kind == Kind.ADOPT and action.retry:
            assert entry is not None and entry.open_retry is not None and action.job is not None
            self.journal.bind(entry.open_retry, action.job)
            self.report(f"{name}: adopted {action.job.name} ({action.reason})")
            inflight[action.job.name] = (name, action.job)
        elif action.kind == Kind.ADOPT:
            assert action.job is not None
            crew.submitter.adopt(m, action)
            inflight[action.job.name] = (name, action.job)
        elif action.kind == Kind.WAIT:
            assert action.job is not None
            inflight[action.job.name] = (name, action.job)
        elif action.kind == Kind.DOWNLOAD:
            if entry is None or entry.content_hash != self.desired[name].content_hash:
                # shards dropped (rows removed from the end): the rest are still good; or
                # every request reused from the result store
                crew.submitter.relay(m)
            self._collect(m, action.job, inflight)
        elif action.kind == Kind.RECORD and action.retry:
            assert entry is not None and entry.open_retry is not None
            crew.collector.close_retry(name, entry.open_retry, action.job)
        elif action.kind == Kind.RECORD:
            self.journal.spec(name)

    def _lay_out(self, action: Action) -> None:
        """Before a split batch's shards are acted on: cancel the jobs of requests no longer
        wanted, and record the batch as it renders now when its requests changed, so that
        no shard waits for one that was dropped (rows removed from the end)."""
        m = self.ws.manifest(action.name)
        submitter = self._crew(action.name).submitter
        self._old_crew(action.name).submitter.cancel_superseded(m, action)
        entry = self.journal.get(action.name)
        if entry is not None and entry.content_hash != self.desired[action.name].content_hash:
            submitter.relay(m, files=any(p.kind in SUBMITS for p in action.parts))
            self.journal.save()

    def _replan(self, want: Desired, observed: Observed,
                record: Part | Retry | None = None) -> Action:
        return replan(want, self.journal.entry(want.name), observed,
                      max_attempts=self.options.max_attempts, record=record)

    def _collect(self, m: Manifest, job: RemoteJob | None, inflight: Inflight) -> None:
        """A succeeded job's results into the batch's outputs. Results the provider no
        longer keeps (a job's whose files were deleted, or past retention) make the batch
        planned again as if that job were gone: sent again when they were never received,
        lost when they were (see plan)."""
        crew = self._crew(m.name)
        try:
            if crew.collector.collect(m, job):
                self._after_outputs(m.name, inflight)
        except ResultsGone as e:
            record = self.journal.record_of(m.name, e.job)
            if record is None:
                raise
            self.report(f"{self.journal.label(m.name, record)}: {e}")
            entry = self.journal.entry(m.name)
            if isinstance(record, Retry):   # never received: the follow-up is made again
                self.journal.drop_retry(entry, record)
            jobs = {name: found for name in sorted({r.job for r in (*entry.parts(),
                                                                    *entry.retries) if r.job})
                    if name != e.job and (found := crew.provider.get_job(name)) is not None}
            self._do(self._replan(self.desired[m.name], Observed(jobs), record), inflight)

    def _after_outputs(self, name: str, inflight: Inflight) -> None:
        """Once a batch's outputs are written (as the lockfile now records them), the planner
        says what its failed requests call for: a follow-up batch, or the batch failed (more
        than allowed). Any other change it sees is left to the next plan, which shows it."""
        want = dataclasses.replace(self.desired[name],
                                   outputs=dict(self.journal.entry(name).outputs))
        action = self._replan(want, Observed({}))
        if action.kind in (Kind.RETRY, Kind.FAILED):
            self._do(action, inflight)

    def _ended(self, name: str, record: Part | Retry, job: RemoteJob,
               inflight: Inflight) -> None:
        """A job that ended while the run waited: its results collected, or what the planner
        makes of it. Progress says what the provider said (the job's state and error)."""
        m = self.ws.manifest(name)
        crew = self._crew(name)
        if job.state == JobState.SUCCEEDED:
            self._collect(m, job, inflight)
            return
        jobs = {job.name: job}
        if job.state == JobState.CANCELLED and not isinstance(record, Retry):
            # perhaps by another run that created the same job and kept its own (see
            # Submitter.heal): listed, the planner takes that one
            jobs = {**{j.name: j for j in crew.listing.jobs(fresh=True)}, **jobs}
        action = self._replan(self.desired[name], Observed(jobs), record)
        label = self.journal.label(name, record)
        if action.retry:
            self._do(action, inflight)
        elif action.kind == Kind.ADOPT and action.job is not None:
            self.report(f"{label}: {job.name} was cancelled by another run that created the "
                        f"same job; recording {action.job.name}")
            self.journal.bind(record, action.job)
            inflight[action.job.name] = (name, action.job)
        elif action.kind in SUBMITS:
            self.journal.terminal(name, job)
            self.report(f"{label}: job {job.state.value.lower()}; resubmitting (attempt "
                        f"{action.attempt})")
            self._do(action, inflight)
        else:
            self.journal.terminal(name, job)
            note(self.outcome.failed, name)
            self.progress.error(f"{label}: job {job.state.value.lower()}"
                                + (f": {job.error}" if job.error else ""))

    # -- jobs in flight, and polling ------------------------------------------------------------

    def _label(self, action: Action) -> str:
        """How progress names the job an action is about, before it has a record."""
        want = self.desired.get(action.name)
        shards = len(want.parts) if want is not None else 1
        if action.part is None or shards < 2:
            return action.name
        return f"{action.name} [shard {action.part + 1}/{shards}]"

    def _track_retry(self, name: str, inflight: Inflight) -> None:
        retry = self.journal.entry(name).open_retry
        if retry is not None and retry.job is not None:
            inflight[retry.job] = (name, None)

    def _heal(self, inflight: Inflight) -> None:
        for crew in self._crews.all():
            for name, old, keep in crew.submitter.heal():
                inflight.pop(old, None)
                inflight[keep.name] = (name, keep)

    def _wait(self, inflight: Inflight) -> None:
        """Polls until every in-flight job has ended (or the time limit), acting as each
        ends."""
        pace = Pace(self.options.poll_base, self.options.poll_cap)
        start = self.options.clock()
        while inflight or self._slots.queued:
            self._slots.release(inflight, self._act)
            self._heal(inflight)
            for crew in self._crews.all():
                mine = {job: seen for job, seen in inflight.items()
                        if self._crew(seen[0]) is crew}
                refresh(crew.provider, mine)
                inflight.update(mine)
            for job_name in list(inflight):     # in the order submitted
                name, job = inflight.pop(job_name)
                record = self.journal.record_of(name, job_name)
                hit("while-polling")
                if record is None:      # superseded meanwhile
                    continue
                if job is None:
                    raise ProviderError(f"{name}: job {job_name} disappeared from the "
                                        "provider while waiting; run apply again to resubmit")
                self.progress.state(self.journal.label(name, record), job.state.value,
                                    job.succeeded + job.failed if job.total else None,
                                    job.total or None, job.create_time)
                if job.state.terminal:
                    self._ended(name, record, job, inflight)
                else:
                    self.journal.seen(record, job.state)
                    inflight[job_name] = (name, None)
            if inflight or self._slots.queued:
                waited = self.options.clock() - start
                pause(self.options, pace.next_delay(waited), start, self._slots.running(inflight))

