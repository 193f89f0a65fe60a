"""The clients one run talks to: one per provider its manifests name, each opened when first
needed, so that a directory may mix providers and a run that only reads the lockfile opens
none.

A client comes from its dialect's `connect`, with the key from the provider's own environment
variables; with `emulator=True` every client talks to one embedded emulator, which serves
each API under its own path prefix and keeps its state under the directory's `.runner/`, so
that a later run finds the jobs an earlier one made. Clients passed in (`given`) are used as
they are, for their provider (tests, and library callers with a client of their own).

The client of a provider that keeps no tag on its jobs is wrapped so that its jobs carry the
tags recognised from the lockfile (runner.recognise): `follow` names the lockfile records.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from ..errors import RunnerError
from ..layout import STATE_DIR
from ..recognise import Intent, Recognising
from .base import Provider
from .registry import PROVIDERS, dialect, names

EMULATOR_KEY = "emulator-local-key"


class Clients:
    """Providers by name (`clients["gemini"]`); close them with `close()` or `with`."""

    def __init__(self, directory: Path, *, emulator: bool = False,
                 given: Mapping[str, Provider] | None = None):
        self._directory = directory
        self._emulator = emulator
        self._given = dict(given or {})
        self._opened: dict[str, Provider] = {}
        self._stack = contextlib.ExitStack()
        self._base_url: str | None = None
        self._wrapped: dict[str, Recognising] = {}
        self._records: Callable[[str], Iterable[Intent]] = lambda name: ()
        self.deadline: float | None = None

    @property
    def emulator(self) -> bool:
        """Whether the clients this object opens talk to the embedded emulator."""
        return self._emulator

    @classmethod
    def of(cls, provider: Provider) -> Clients:
        """Clients that are this one provider (for its own provider name)."""
        return cls(Path("."), given={provider.name: provider})

    def follow(self, records: Callable[[str], Iterable[Intent]]) -> None:
        """Where the lockfile records of each provider's jobs are read from (by provider
        name), each time a job of a provider that keeps no tag is looked at."""
        self._records = records

    def __getitem__(self, name: str) -> Provider:
        client = self._given.get(name) or self._opened.get(name)
        if client is None:
            client = self._opened[name] = self._open(name)
        if name in PROVIDERS and not dialect(name).tags_jobs:
            wrapped = self._wrapped.get(name)
            if wrapped is None or wrapped.inner is not client:
                wrapped = self._wrapped[name] = Recognising(
                    client, lambda: self._records(name))
            client = wrapped
        if self.deadline is not None and (client.deadline is None
                                          or client.deadline > self.deadline):
            client.deadline = self.deadline
        return client

    def _open(self, name: str) -> Provider:
        try:
            d = dialect(name)
        except KeyError:
            raise RunnerError(f"no provider named {name!r}; this runner knows: "
                              f"{', '.join(names())}") from None
        tuning = _tuning()
        if self._emulator:
            client = d.connect(EMULATOR_KEY, self._emulator_url() + d.endpoint.emulator_prefix,
                               tuning)
        else:
            key = next((v for env in d.endpoint.key_env if (v := os.environ.get(env))), "")
            client = d.connect(key, None, tuning)
        self._stack.callback(client.close)
        return client

    def _emulator_url(self) -> str:
        if self._base_url is None:
            from ..emulator import Emulator

            latency = os.environ.get("RUNNER_EMULATOR_LATENCY", "2")
            if not latency.replace(".", "", 1).isdigit():
                raise RunnerError(f"RUNNER_EMULATOR_LATENCY must be a number of seconds "
                                  f"(got {latency!r})")
            state = self._directory.absolute() / STATE_DIR / "emulator"
            emu = self._stack.enter_context(Emulator(state, latency=float(latency)))
            self._base_url = str(emu.base_url)
        return self._base_url

    @contextlib.contextmanager
    def time_limit(self, seconds: float | None) -> Iterator[None]:
        """While the block runs, every call of every client (opened now or later) ends within
        `seconds` from now, or by an earlier deadline already set: a run's timeout bounds its
        provider calls too, not only its waits between them."""
        before = self.deadline
        saved = {id(c): c.deadline for c in self._clients()}
        if seconds is not None:
            until = time.monotonic() + seconds
            self.deadline = until if before is None else min(before, until)
            for client in self._clients():
                if client.deadline is None or client.deadline > self.deadline:
                    client.deadline = self.deadline
        try:
            yield
        finally:
            self.deadline = before
            for client in self._clients():
                client.deadline = saved.get(id(client), before)

    def _clients(self) -> list[Provider]:
        return [*self._given.values(), *self._opened.values()]

    def close(self) -> None:
        """Closes the clients this object opened (not the given ones), then the emulator."""
        self._opened.clear()
        self._stack.close()

    def __enter__(self) -> Clients:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def _tuning() -> dict[str, Any]:
    """Size knobs, mostly for tests that need a file upload without 20 MB of data."""
    out: dict[str, Any] = {}
    for env, arg in (("RUNNER_INLINE_LIMIT", "inline_limit"),
                     ("RUNNER_UPLOAD_CHUNK", "chunk_size")):
        value = os.environ.get(env)
        if value:
            if not value.isdigit() or int(value) <= 0:
                raise RunnerError(f"{env} must be a positive number of bytes (got {value!r})")
            out[arg] = int(value)
    return out
