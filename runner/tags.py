"""The tags the runner puts on its jobs, and which of several jobs for the same requests to keep.

A job's display name (`<name>-<hash>`, `-N` for a later attempt, `-retryN` for a follow-up) is
how a job is found again when the lockfile forgot it: after a crash between create and save, a
lost or merged lockfile, two machines applying at once. These are pure functions of names, hashes
and the provider's job list: the planner reads them, and apply tags what it creates with them.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterable

from .hashing import short
from .providers.base import JobState, RemoteJob


def display_name(name: str, content_hash: str, attempt: int = 1) -> str:
    """The provider-side tag: finds the job again even when the lockfile forgot it."""
    tag = f"{name}-{short(content_hash)}"
    return tag if attempt <= 1 else f"{tag}-{attempt}"


def attempt_of(name: str, content_hash: str, tag: str) -> int | None:
    """The attempt a displayName tags for this batch's requests: 1 for `<name>-<hash>`, N for
    `<name>-<hash>-N`; None for anything else."""
    base = display_name(name, content_hash)
    if tag == base:
        return 1
    rest = tag[len(base) + 1:] if tag.startswith(base + "-") else ""
    return int(rest) if rest.isdigit() else None


def retry_name(name: str, content_hash: str, number: int) -> str:
    """The tag of the Nth follow-up batch of a batch's failed requests."""
    return f"{display_name(name, content_hash)}-retry{number}"


# How useful a job is for its requests, most first: succeeded, then live. A job in any other
# state ended without results and is never kept.
RANK = {JobState.SUCCEEDED: 0, JobState.PENDING: 1, JobState.RUNNING: 1}


def best(jobs: list[RemoteJob]) -> RemoteJob | None:
    """The most useful of several jobs for the same requests: succeeded, then live, the first
    created (then by name). Every run picks the same one, so that two machines that created
    the same batch at once both keep it and cancel the other (see runner.apply.submit)."""
    return min(jobs, key=lambda j: (RANK.get(j.state, 2), moment(j.create_time), j.name),
               default=None)


def twins(jobs: Iterable[RemoteJob], tag: str) -> tuple[RemoteJob | None, list[RemoteJob]]:
    """Of the jobs carrying `tag` that are running or succeeded, the one to keep (`best`) and
    the live others to cancel: two machines that applied the same change at once each
    created one, and each run that sees both makes the same choice."""
    found = [j for j in jobs if j.display_name == tag and j.state in RANK]
    keep = best(found)
    return keep, [j for j in found if j is not keep and not j.state.terminal]


_UTC = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})"
                  r"(?:\.([0-9]{1,9}))?Z")


def epoch(t: str | None) -> float | None:
    """Seconds since 1970 of an RFC 3339 UTC time as the runner writes it (`Z`, 0 to 9
    fraction digits), None for none or for one that is not a real time."""
    found = _UTC.fullmatch(t) if t else None
    if found is None:
        return None
    year, month, day, hour, minute, second, fraction = found.groups()
    try:
        whole = datetime.datetime(int(year), int(month), int(day), int(hour), int(minute),
                                  int(second), tzinfo=datetime.timezone.utc).timestamp()
    except ValueError:
        return None
    return whole + (int(fraction) / 10 ** len(fraction) if fraction else 0.0)


def moment(t: str | None) -> str:
    """An RFC 3339 UTC time that sorts as time does, whatever its fraction's digits (the API
    writes 0 to 9 of them); no time sorts last."""
    if not t:
        return "~"
    head, dot, rest = t.rstrip("Z").partition(".")
    return f"{head}.{rest[:9].ljust(9, '0')}" if dot else f"{head}.000000000"
