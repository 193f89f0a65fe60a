"""Results into outputs: each job's results fetched once and kept until the outputs are
written from them (see runner.downloads), a batch's outputs written when every part's results
are in, with its follow-ups' merged over them, every line kept in the result store as they are
(runner.apply.keep); outputs rebuilt from the store when it holds the batch's packs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..aligned import Reused
from ..desired import outputs_hash
from ..downloads import cached, discard, keep, results_path
from ..errors import (
    InputsChanged,
    PackDamaged,
    PackMissing,
    ProviderError,
    ResultsError,
    StoreError,
    StoreIncomplete,
)
from ..failpoints import hit
from ..manifest import Manifest
from ..outputs import Keep, Written, write_outputs
from ..ownership import foreign, not_its_own
from ..pricing import load_prices, spent
from ..providers.base import JobState, RemoteJob
from ..records import LockEntry, Part, Retry
from ..reuse import extract
from ..store import Store
from ..tags import best, moment
from .confirm import not_sent_by
from .keep import earlier, rebuild, reuse_gone, write_keeping
from .options import note
from .worker import Worker


@dataclass
class Collector(Worker):
    store: Store | None = None
    # batch -> the jobs whose results its outputs were written from, this run
    _written: dict[str, tuple[str | None, ...]] = field(default_factory=dict, init=False)

    def collect(self, m: Manifest, job: RemoteJob | None) -> bool:
        """Marks the job's record succeeded and, once every part of the batch is in, writes
        the outputs from all their results, merging every follow-up batch's over them; the
        lockfile records them last. A shard that finishes before the others has its results
        fetched now, and waits. Returns whether the outputs were written."""
        entry = self.journal.entry(m.name)
        record = self.journal.record_of(m.name, job.name) if job is not None else None
        # the outputs again, from results received before (and kept in the store)
        again = bool(entry.packs) and not entry.packs_jobs and (
            record is None or record.state == JobState.SUCCEEDED)
        if job is not None and record is not None and not again:
            # fetched before the record says they were received: results the provider no
            # longer has (ResultsGone) leave it saying they never were
            self._results(m, record, job)
            if entry.packs and not entry.packs_jobs:
                # the packs hold the results of the jobs received before this one: said, so
                # that the outputs written below (or by another clone, if this run is
                # killed first) read those from the packs, not the provider
                entry.packs_jobs = [r.job for r in (*entry.parts(), *entry.retries)
                                    if r.job and r.state == JobState.SUCCEEDED]
                if not entry.packs_jobs:
                    entry.packs = []
            self.journal.succeeded(record, job)
            if entry.shards:    # recorded before the other shards' results are fetched
                self.journal.save()
        if not entry.settled:
            if job is None or record is None:
                raise InputsChanged(m.name, m.source)
            waiting = sum(1 for p in entry.parts() if p.state != JobState.SUCCEEDED)
            self.report(f"{self.journal.label(m.name, record)}: succeeded; results fetched, "
                        f"waiting for {waiting} more shard(s)")
            return False
        records: list[Part | Retry] = [*entry.parts()]
        records += [r for r in entry.retries if r.state == JobState.SUCCEEDED]
        # a later results file wins for a key: oldest first, so each key gets its newest
        # result (a follow-up's over its job's, a shard resubmitted since over a follow-up's)
        records.sort(key=lambda r: moment(r.submitted_at) if r.submitted_at else "")
        jobs = tuple(r.job for r in records)
        if self._written.get(m.name) == jobs:
            return False    # written this run from these very results (shards re-adopted)
        written = self._rebuild(m, entry) if again else None
        paths: list[Path] = []
        if written is None:
            written, paths = self._from_results(m, entry, records, job)
        hit("after-outputs")
        self.journal.outputs(m.name, written, spent(load_prices(self.journal.ws.directory),
                                                    m.model, written.usage).to_dict(),
                             outputs_hash(m))
        self._written[m.name] = jobs
        if not (written.failed and len(entry.retries) < m.retry_failed):
            for path in paths:      # no follow-up will need them again
                discard(path)
        note(self.outcome.completed, m.name)
        self._report(m, entry, written, isinstance(record, Retry))
        return True

    def close_retry(self, name: str, retry: Retry, job: RemoteJob | None) -> None:
        """A follow-up that ended without results: its requests stay in the errors output."""
        self.journal.close_retry(retry, job)
        self.report(f"{name}: retry {retry.job} ended {retry.state.value.lower()}; its "
                    "requests stay in the errors output")

    def _rebuild(self, m: Manifest, entry: LockEntry) -> Written | None:
        """The outputs from the store's lines, when the record names the packs that hold the
        batch's results (recorded with the outputs, cleared when a job's results came in
        since); None to fetch them from the provider instead."""
        if self.store is None or not entry.packs:
            return None

        def write(results: Sequence[Path], keep: Keep | None) -> Written:
            return write_outputs(m, results, results[0].parent, sent=entry.content_hash,
                                 spooled=self.streams.spooled(m, entry.content_hash),
                                 stored=entry.counts.get("failed", 0))

        try:
            written = rebuild(self.store, entry.packs, write,
                              self.journal.ws.state_dir / "results", self.report,
                              entry.reuse_packs)
        except (PackMissing, PackDamaged) as e:
            raise reuse_gone(m, e) from None
        if written is not None:
            self.report(f"{m.name}: rebuilt from the result store ({self.store.location})")
        return written

    def _from_results(self, m: Manifest, entry: LockEntry, records: list[Part | Retry],
                      job: RemoteJob | None) -> tuple[Written, list[Path]]:
        """The outputs written from the records' results: those of the jobs the packs hold
        (packs_jobs) read from the store, the rest fetched from the provider (all of them
        when the store's lines fall short); with the results files read."""
        stored = self._earlier(m, entry, records)
        try:
            if stored is not None:
                try:
                    later = [r for r in records if r.job not in entry.packs_jobs]
                    paths = [self._results(m, r, job) for r in later]
                    return self._write(m, entry, later, paths, stored), paths
                except StoreIncomplete as e:
                    self.report(f"{e}; fetching them from the provider")
                    entry.packs, entry.packs_jobs = [], []
            paths = [self._results(m, r, job) for r in records]
            return self._write(m, entry, records, paths), paths
        finally:
            if stored is not None:
                stored.unlink(missing_ok=True)

    def _earlier(self, m: Manifest, entry: LockEntry, records: list[Part | Retry]
                 ) -> Path | None:
        """The store's lines of the jobs whose results the packs hold (`packs_jobs`: those
        received before the packs were written, when a follow-up's or a shard's came in
        since), in a file for the join; None when no record is one of them, or the packs
        are missing or damaged: then every job's results come from the provider."""
        if self.store is None or not entry.packs_jobs or \
                not any(r.job in entry.packs_jobs for r in records):
            return None
        try:
            return earlier(self.store, entry.packs, self.journal.ws.state_dir / "results",
                           m.name, self.report, entry.reuse_packs)
        except (PackMissing, PackDamaged) as e:
            raise reuse_gone(m, e) from None

    def _write(self, m: Manifest, entry: LockEntry, records: list[Part | Retry],
               paths: list[Path], stored: Path | None = None) -> Written:
        """The outputs from the records' results files and, with `stored`, the store's lines
        of the jobs before them (every request they answer, so `reused` lines too): the
        files' lines are joined by key and win; the rest is found by request hash, at most
        as many requests left without a line as failed when the packs were written (more:
        the packs lack results, and the provider's are fetched instead)."""
        workdir = self.journal.ws.state_dir / "results"
        reused = Reused(lambda _: stored) if stored is not None else self._reused(m, entry)
        # a batch that reused, its outputs written before (again, or with a follow-up's
        # results): the jobs' results hold only the requests sent, so a reused request the
        # packs its record names (reuse_packs) lack would be written as a failure, and a
        # follow-up would pay for it again; no more may be without a line than failed then
        gaps = entry.counts.get("failed", 0) \
            if stored is not None or (reused is not None and entry.outputs) else None

        def write(results: Sequence[Path], keep: Keep | None) -> Written:
            return write_outputs(m, results, workdir, sent=entry.content_hash,
                                 spooled=self.streams.spooled(m, entry.content_hash), keep=keep,
                                 reused=reused, stored=gaps)

        try:
            if self.store is None:
                entry.packs, entry.packs_jobs = [], []
                return write(paths, None)
            written, packs = write_keeping(self.store, write, paths)
            entry.packs, entry.packs_jobs = packs, []
            return written
        except StoreIncomplete:
            if stored is not None:
                raise
            raise StoreError(f"{m.name}: the packs its lockfile entry names as reuse_packs lack "
                             "results it reused; restore batches.lock from git, or runner "
                             f"forget {m.name} and apply to send them all again",
                             path=m.source) from None
        except ResultsError as e:
            bad = next((r for r, p in zip(records, paths) if str(p) == e.path), None)
            if bad is None:
                raise
            discard(Path(e.path or ""))
            raise ProviderError(f"{m.name}: the results of job {bad.job} do not parse "
                                f"({Path(e.path or '').name} line {e.where}: {e.args[0]}); "
                                "the copy was removed, and the next apply downloads them "
                                "again", path=m.source) from None

    def _reused(self, m: Manifest, entry: LockEntry) -> Reused | None:
        """The store's lines for the requests the batch reused, for the join (walked in
        input order by runner.aligned, else extracted for runner.rejoin); None when it
        reused none. A pack gone or damaged since the plan leaves the outputs as they were,
        with how to go on."""
        if not entry.reused:
            return None
        store = self.store
        if store is None:
            raise StoreError(f"{m.name}: its lockfile entry reuses results from a result "
                             "store, and this run has none", path=m.source)

        def lines(path: Path) -> Path:
            try:
                extract(store, entry.reuse_packs, path, successes=True)
            except (PackMissing, PackDamaged) as e:
                raise reuse_gone(m, e) from None
            return path
        return Reused(lines, store, tuple(entry.reuse_packs))

    def _report(self, m: Manifest, entry: LockEntry, written: Written, retry: bool) -> None:
        extra = f", {written.failed} failed (see {m.errors.rel})" if written.failed else ""
        if written.unmatched:
            extra += (f"; {written.unmatched} result(s) carried keys no request has, and were "
                      "left out")
        if written.repeated:
            extra += (f"; {written.repeated} result(s) repeated a key within one results "
                      "file, and the last of each was kept")
        merged = f" (with retry {len(entry.retries)})" if retry else ""
        shards = f" from {len(entry.shards)} shards" if len(entry.shards) > 1 else ""
        if entry.reused:
            shards += (f" ({entry.requests - entry.reused} sent, {entry.reused} reused from the "
                       "result store)")
        self.report(f"{m.name}: wrote {', '.join(o.rel for o in m.outputs)}{shards}{merged}: "
                    f"{written.succeeded} succeeded{extra}")

    def _results(self, m: Manifest, record: Part | Retry, job: RemoteJob | None) -> Path:
        """The record's results on disk, downloaded again if this machine has not got them or
        its copy is damaged (see `cached`). The job is checked to be the record's own first:
        the lockfile is text that people edit and merge; and, for a provider that keeps no
        tag, its results are checked to answer the record's requests (runner.apply.confirm)."""
        assert record.job is not None
        name = m.name
        state_dir = self.journal.ws.state_dir
        path = results_path(state_dir, record.job)
        entry = self.journal.entry(name)
        tag = cached(path)
        if tag is not None and foreign(name, entry.model, record, RemoteJob(
                record.job, tag, JobState.SUCCEEDED)) is None:
            return path
        job = job if job is not None and job.name == record.job else \
            self.provider.get_job(record.job)
        why = foreign(name, entry.model, record, job) if job is not None else None
        if job is not None and why is not None:
            self.report(f"{name}: {not_its_own(record.job, why)}; looking for it by its tag")
            job = self._own_job(name, record)
            self.journal.rebind(record, job)
            path = results_path(state_dir, job.name)
            if cached(path) == job.display_name:
                return path
        if job is None or job.state != JobState.SUCCEEDED:
            raise ProviderError(f"the results of {record.job} are no longer on the provider")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".part")
        self.provider.download_results(job, tmp, on_progress=lambda got, total:
                                       self.progress.transfer(name, "download", got, total))
        why = not_sent_by(m, entry, record, tmp, self.streams)
        if why is not None:
            discard(tmp)
            self.journal.unbind(record, job)
            raise ProviderError(f"{self.journal.label(name, record)}: job {job.name} was taken "
                                "for this batch's by its size and creation time (the provider "
                                f"keeps no tag on a job), but {why}; it is no longer recorded, "
                                "and the next apply submits the requests again",
                                path=self.journal.ws.lock_path)
        keep(tmp, path, job.display_name)
        return path

    def _own_job(self, name: str, record: Part | Retry) -> RemoteJob:
        """The succeeded job that carries the record's tag, for a record whose job was not
        its own; none found is an error: the results cannot be told apart."""
        entry = self.journal.entry(name)
        found = best([j for j in self.listing.jobs(fresh=True) if j.state == JobState.SUCCEEDED
                      and foreign(name, entry.model, record, j) is None])
        if found is None:
            raise ProviderError(f"{name}: no succeeded job on the provider carries the tag of "
                                f"{record.display_name}; run plan to see what apply would "
                                "submit", path=self.journal.ws.lock_path)
        return found

