"""Whether a job the lockfile names is the record's own.

The lockfile is edited by hand and merged by git, so a record may name another batch's job.
Acting on it would download that job's results into this batch's outputs, or cancel it: the
planner, collect, prune and cancel check every job against its record first, and say it in one
wording when it fails.
"""

from __future__ import annotations

import copy
import re

from .providers.base import JobState, RemoteJob
from .records import LockEntry, Part, Retry
from .states import Desired, Observed
from .tags import attempt_of, retry_name


def foreign(name: str, model: str, record: Part | Retry, job: RemoteJob) -> str | None:
    """Why `job`, which the lockfile names for `record`, is not that record's job, or None
    when it is. A lockfile is edited by hand and merged by git: a record naming another
    batch's job would download that job's results into this batch's outputs, or cancel it.
    The job must carry the record's tag (a follow-up's: this batch's follow-up tag), run the
    batch's model and hold as many requests as the record, where the provider says."""
    if isinstance(record, Retry):   # follow-ups kept across an edit carry an older hash
        mine = job.display_name == record.display_name and \
            re.fullmatch(re.escape(name) + r"-[0-9a-f]{12}-retry[0-9]+", job.display_name) \
            is not None
    else:
        mine = attempt_of(name, record.content_hash, job.display_name) is not None
    if not mine:
        return f"it is tagged {job.display_name!r}, not with this batch's hash"
    if job.model and model and job.model.removeprefix("models/") != model.removeprefix("models/"):
        return f"it runs {job.model}, not {model}"
    if job.total and job.total != record.requests:
        return f"it holds {job.total} requests, not {record.requests}"
    return None


def not_its_own(job: str | None, why: str) -> str:
    """How every message says that the lockfile names a job that is not the record's."""
    return f"the lockfile names job {job}, which is not this batch's ({why})"


def misdated(entry: LockEntry, observed: Observed) -> str | None:
    """For a provider that keeps no tag on its jobs: why a record's job cannot be told to be
    its own, when the record names a job of its size that no other record names, but says it
    was created at another time (the fingerprint runner.recognise checks), or None. Hand-edited
    or merged, the record is either right about the job and wrong about the time, or names
    another job: which, only the user can say; looking for the job again would create it
    again, so nothing is done until the record is fixed."""
    for record in _checked(entry):
        job = observed.jobs.get(record.job or "")
        if job is None or job.display_name or job.total not in (0, record.requests):
            continue
        return (f"the lockfile names job {job.name} for {record.display_name} with "
                f"submitted_at {record.submitted_at}, but the job was created at "
                f"{job.create_time}; if it is this batch's job, set submitted_at to that "
                "time; if not, remove its job line and apply looks for the batch's own job "
                "(nothing is submitted until then)")
    return None


def disown(want: Desired, entry: LockEntry, observed: Observed) -> tuple[LockEntry, str]:
    """The record with every job that is not its own (see `foreign`) taken out, as if the
    lockfile had lost it, so that the job is looked for by its tag; and what was found, for
    the reason shown. The entry is returned as it is when every job is its own. Follow-ups
    that ended are checked when their results are read (runner.apply.collect)."""
    records = _checked(entry)
    bad = [i for i, record in enumerate(records)
           if (job := observed.jobs.get(record.job or "")) is not None
           and foreign(want.name, entry.model, record, job) is not None]
    if not bad:
        return entry, ""
    notes = []
    for i in bad:
        record = records[i]
        why = foreign(want.name, entry.model, record, observed.jobs[record.job or ""])
        notes.append(not_its_own(record.job, why or ""))
    entry = copy.deepcopy(entry)
    copies = _checked(entry)
    for i in bad:
        copies[i].job, copies[i].state = None, JobState.CREATING
        if isinstance(copies[i], Retry):    # its tag, as this batch's follow-up names it
            copies[i].display_name = retry_name(want.name, entry.content_hash,
                                                len(entry.retries))
    return entry, "; ".join(notes) + "; looking for it by its tag"


def _checked(entry: LockEntry) -> list[Part | Retry]:
    """The records whose jobs a plan acts on: the batch's parts and its open follow-up."""
    retry = entry.open_retry
    return [*entry.parts(), *([retry] if retry is not None else [])]
