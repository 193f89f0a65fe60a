"""The toy provider as a provider that keeps no tag on a job (as Anthropic keeps none): its
jobs are listed and fetched without a display name, so that the core must recognise them from
the lockfile's intents (runner.recognise). Registered in place of the toy:
`monkeypatch.setitem(registry.PROVIDERS, "toy", "toy_provider.untagged")`.

Faults, each armed by a file in TOY_STATE and used once: `lose-create` creates the job and
then loses the answer (AmbiguousCreate); `die-after-create` creates it and then kills the run
(KeyboardInterrupt, which no handler of the runner takes for a provider error)."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from runner.providers.base import AmbiguousCreate, Provider, RemoteJob

from . import ToyClient, ToyDialect


class UntaggedToyClient(ToyClient):
    def _armed(self, fault: str) -> bool:
        flag = self.state / fault
        if flag.exists():
            flag.unlink()
            return True
        return False

    def list_jobs(self) -> Iterator[RemoteJob]:
        for job in super().list_jobs():
            yield dataclasses.replace(job, display_name="")

    def get_job(self, name: str) -> RemoteJob | None:
        job = super().get_job(name)
        return None if job is None else dataclasses.replace(job, display_name="")

    def create_job(self, model: str, display_name: str, *, input_file: str | None = None,
                   inline_lines: Path | None = None, endpoint: str | None = None
                   ) -> RemoteJob:
        job = super().create_job(model, display_name, input_file=input_file,
                                 inline_lines=inline_lines, endpoint=endpoint)
        if self._armed("lose-create"):
            raise AmbiguousCreate("the toy lost the answer")
        if self._armed("die-after-create"):
            raise KeyboardInterrupt
        return job


@dataclass(frozen=True)
class UntaggedToyDialect(ToyDialect):
    tags_jobs: bool = False

    def connect(self, api_key: str, base_url: str | None, tuning: Mapping[str, int]
                ) -> Provider:
        return UntaggedToyClient(Path(os.environ["TOY_STATE"]))


DIALECT = UntaggedToyDialect()
