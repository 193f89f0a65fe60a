"""Jobs of a provider that keeps no tag on them, recognised from the lockfile's intents.

The core finds a job again by its tag (runner.tags): after a create whose answer was lost, a
crash between the create and the save, or a run killed at any point. Gemini keeps the tag as
the job's displayName and OpenAI in its metadata; Anthropic's Message Batches keep nothing of
the caller's (no name, no metadata). For such a provider (`Dialect.tags_jobs` False) a job's
tag is inferred, from what the runner wrote before it created anything:

- a job a lockfile record names carries that record's tag when it was created when the record
  says (`submitted_at`, the job's creation time once bound: a lockfile merged or edited to
  name another job of the same size is caught by it), and a job this run created the tag it
  was created with;
- a job no record names, created no earlier than `SKEW` before a record's intent (the record
  is CREATING, names no job, and `submitted_at` holds the intent's time, see `intent_time`)
  and no later than `WINDOW` after it, holding as many requests as the record, carries that
  record's tag: the create whose answer was lost. An intent whose create never went out
  (a run killed before it) matches no batch made long after. Intents are matched oldest
  first, each to the earliest such job, so that every run makes the same choice;
- any other job carries no tag ("") and is never taken for a batch's.

A record submitted again (new requests, or a failed job) drops its old job, which must not be
taken for the new one: the intent's time is put at least SKEW after the creation of every job
the run saw before it (the old job among them), so that only a job created after them can
match.

A guess can still be wrong: someone else may have created a batch of the same size in that
window. So a job's results are checked before its outputs are written (`foreign_results`):
every result must answer one of the requests the record sent. A job that fails the check is
dropped from the record (runner.apply.collect). Keys are what a result carries of its
request, so a batch over the same keys and as many requests, created by someone else in the
same minutes as a create whose answer was lost, would pass it: the one case this cannot tell.
A job known only by inference is never cancelled or deleted (runner.cancel, prune): a guess
must not end someone else's work.

What this cannot do is find a job the lockfile never heard of: a lost lockfile, or two
machines applying the same change from two clones. The result store's lease covers the second.
"""

from __future__ import annotations

import calendar
import dataclasses
import hashlib
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol

import orjson

from .providers.base import JobState, OnProgress, Provider, RemoteJob

SKEW = 300.0    # seconds a provider's clock may run behind ours
# seconds after an intent within which its job is created: the create call itself, which may
# send a quarter of a gigabyte, and the clocks' skew
WINDOW = 1800.0


class Intent(Protocol):
    """A lockfile record, as far as recognition reads it (runner.records.Job)."""

    display_name: str
    requests: int
    state: JobState
    job: str | None
    submitted_at: str | None


Intents = Callable[[], Iterable[Intent]]


def recognise(jobs: Iterable[RemoteJob], intents: Iterable[Intent],
              made: Mapping[str, str]) -> list[RemoteJob]:
    """`jobs` with the tags inferred for them (see the module docstring); `made` maps the
    jobs this run created to their tags."""
    intents = list(intents)
    bound = {r.job: r for r in intents if r.job}
    out = [dataclasses.replace(j, display_name=made.get(j.name) or _bound_tag(j, bound))
           for j in jobs]
    free = sorted((i for i, j in enumerate(out) if j.name not in bound and j.name not in made),
                  key=lambda i: (_epoch(out[i].create_time), out[i].name))
    waiting = sorted((r for r in intents if r.job is None and r.state == JobState.CREATING
                      and r.submitted_at), key=lambda r: _epoch(r.submitted_at))
    for record in waiting:
        at = _epoch(record.submitted_at)
        found = next((i for i in free if out[i].total == record.requests
                      and at - SKEW <= _epoch(out[i].create_time) <= at + WINDOW), None)
        if found is not None:
            free.remove(found)
            out[found] = dataclasses.replace(out[found], display_name=record.display_name,
                                             inferred=True)
    return out


def _bound_tag(job: RemoteJob, bound: Mapping[str, Intent]) -> str:
    """The tag of the record that names `job`, if the job was created when it says."""
    record = bound.get(job.name)
    if record is None:
        return ""
    if record.submitted_at and abs(_epoch(record.submitted_at) - _epoch(job.create_time)
                                   ) > 0.001:
        return ""
    return record.display_name


def intent_time(now: float, after: str | None = None, last_intent: str | None = None) -> str:
    """The time to record for an intent made at `now` (seconds since 1970): at least just
    past SKEW after `after`, the creation of the newest job that must not be taken for the
    record's (every job the run saw before the intent: the batch's old job among them), and
    never before an earlier intent of the record that found no job (`last_intent`), which
    carries that bound from before."""
    moment = max(now, _epoch(after) + SKEW + 0.001 if after else 0.0, _epoch(last_intent))
    whole, micro = divmod(round(moment * 1e6), 1_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{micro:06d}Z"


def newest(times: Iterable[str | None]) -> str | None:
    """The latest of several RFC 3339 times (None for none)."""
    return max((t for t in times if t), key=_epoch, default=None)


def _epoch(t: str | None) -> float:
    """Seconds since 1970 of an RFC 3339 UTC time (any fraction digits); 0 for none or for
    one that does not parse (a job the runner cannot date is never recognised)."""
    if not t:
        return 0.0
    head, _, rest = t.rstrip("Zz").partition(".")
    try:
        whole = calendar.timegm(time.strptime(head[:19], "%Y-%m-%dT%H:%M:%S"))
    except ValueError:
        return 0.0
    digits = "".join(c for c in rest if c.isdigit())[:6]
    return whole + (int(digits) / 10 ** len(digits) if digits else 0.0)


class Recognising:
    """A provider's client whose jobs carry the tags `recognise` infers from the lockfile's
    records (`intents`, read at each call: a run records intents as it goes). Everything
    else is the client's own."""

    def __init__(self, inner: Provider, intents: Intents):
        self.inner = inner
        self.name = inner.name
        self.inline_limit = inner.inline_limit
        self._intents = intents
        self._made: dict[str, str] = {}

    @property
    def deadline(self) -> float | None:
        return self.inner.deadline

    @deadline.setter
    def deadline(self, value: float | None) -> None:
        self.inner.deadline = value

    def _tagged(self, jobs: Iterable[RemoteJob]) -> list[RemoteJob]:
        return recognise(jobs, self._intents(), self._made)

    def list_jobs(self) -> Iterator[RemoteJob]:
        return iter(self._tagged(list(self.inner.list_jobs())))

    def get_job(self, name: str) -> RemoteJob | None:
        job = self.inner.get_job(name)
        return None if job is None else self._tagged([job])[0]

    def create_job(self, model: str, display_name: str, *, input_file: str | None = None,
                   inline_lines: Path | None = None, endpoint: str | None = None
                   ) -> RemoteJob:
        job = self.inner.create_job(model, display_name, input_file=input_file,
                                    inline_lines=inline_lines, endpoint=endpoint)
        self._made[job.name] = display_name
        return dataclasses.replace(job, display_name=display_name)

    def cancel_job(self, name: str) -> None:
        self.inner.cancel_job(name)

    def count_tokens(self, model: str, request: Mapping[str, Any]) -> int:
        return self.inner.count_tokens(model, request)

    def list_models(self) -> Iterator[str]:
        return self.inner.list_models()

    def delete_job(self, name: str) -> None:
        self.inner.delete_job(name)

    def find_file(self, display_name: str) -> str | None:
        return self.inner.find_file(display_name)

    def upload_file(self, path: Path, display_name: str, *,
                    on_progress: OnProgress | None = None) -> str:
        return self.inner.upload_file(path, display_name, on_progress=on_progress)

    def download_results(self, job: RemoteJob, dest: Path, *,
                         on_progress: OnProgress | None = None) -> None:
        self.inner.download_results(job, dest, on_progress=on_progress)

    def close(self) -> None:
        self.inner.close()


# -- confirming a job by its results ---------------------------------------------------------

def foreign_results(path: Path, sent: Iterable[str],
                    key_of: Callable[[Mapping[str, Any]], object]) -> str | None:
    """Why the results file at `path` is not the answer to the requests whose keys (as sent)
    are `sent`, or None when it is: a result whose key no request has. Results come in any
    order and a provider may repeat a line, so keys are compared as sets, held as 8-byte
    hashes (a job holds at most 100,000 requests: under a megabyte). A results file missing
    some keys is still the job's: those requests fail as unanswered."""
    wanted = {_hash(key) for key in sent}
    with open(path, "rb") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                result = orjson.loads(line)
            except orjson.JSONDecodeError:
                return f"line {number} of its results is not JSON"
            key = key_of(result) if isinstance(result, dict) else None
            if not isinstance(key, str) or _hash(key) not in wanted:
                return f"line {number} of its results answers a request it was not sent"
    return None


def _hash(key: str) -> int:
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big")
