"""What the runner needs from a batch provider, independent of its wire format."""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol


class JobState(str, enum.Enum):
    CREATING = "CREATING"      # ours: intent recorded, create not yet confirmed
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    EXPIRED = "EXPIRED"

    @property
    def terminal(self) -> bool:
        return self in _TERMINAL


_TERMINAL = {JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED, JobState.EXPIRED}


@dataclass(frozen=True)
class RemoteJob:
    """A job as the provider reports it."""

    name: str
    display_name: str
    state: JobState
    model: str = ""
    create_time: str | None = None
    end_time: str | None = None
    total: int = 0
    succeeded: int = 0
    failed: int = 0
    pending: int = 0
    error: str | None = None
    results_file: str | None = None
    input_file: str | None = None
    inferred: bool = False      # its tag was inferred, not kept by the provider (recognise)


# Called with (bytes so far, total bytes or 0 when unknown) during uploads and downloads.
OnProgress = Callable[[int, int], None]


class Provider(Protocol):
    """A batch API. Create is the one call that is not idempotent: callers resolve its
    ambiguity by looking for the job by display name, never by retrying it blindly."""

    name: str
    inline_limit: int
    # a time.monotonic() value by which every call must end (None: none); apply sets it from
    # its timeout, so that a stalled or slow provider cannot hold a run past it
    deadline: float | None

    def list_jobs(self) -> Iterator[RemoteJob]: ...

    def get_job(self, name: str) -> RemoteJob | None: ...

    def create_job(self, model: str, display_name: str, *, input_file: str | None = None,
                   inline_lines: Path | None = None, endpoint: str | None = None
                   ) -> RemoteJob:
        """Creates a job of the requests in `input_file` (uploaded) or `inline_lines` (a
        local file of input lines, sent in the call), sent to `endpoint` where the provider
        has several (the manifest's spec.endpoint)."""
        ...

    def cancel_job(self, name: str) -> None: ...

    def count_tokens(self, model: str, request: Mapping[str, Any]) -> int: ...

    def list_models(self) -> Iterator[str]:
        """The ids of the models the key may use, without Gemini's `models/` prefix: what
        `plan` and `apply` check a manifest's model against (runner.models)."""
        ...

    def delete_job(self, name: str) -> None: ...

    def find_file(self, display_name: str) -> str | None: ...

    def upload_file(self, path: Path, display_name: str, *,
                    on_progress: OnProgress | None = None) -> str: ...

    def download_results(self, job: RemoteJob, dest: Path, *,
                         on_progress: OnProgress | None = None) -> None: ...

    def close(self) -> None: ...


class AmbiguousCreate(Exception):
    """The create call may or may not have reached the provider (timeout, dropped connection)."""
