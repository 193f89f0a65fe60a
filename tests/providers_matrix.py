"""The providers the reliability tests run for, and what differs between them, in one table.

The kill matrix, the fault run, the terminal states, the bad-input corpus and the secret
search are written once, with Gemini manifests, and run for each provider here: `adapt`
turns a Gemini manifest into the provider's (same rows, keys, outputs and prompts; the
provider's model and request shape), `env` points the runner at the emulator's API, and
`jobs` and `tags` count what the provider holds. Parametrize with `PROVIDERS` (ids are the
provider names, so a test reads `test_x[openai-after-intent]`).

Anthropic's batches keep no tag: `tags` names each of its jobs by the lockfile record that
names the job, and any other job by itself, so that a job created twice shows as two.
"""

from __future__ import annotations

import contextlib
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from runner import lockfile
from runner.emulator import Emulator
from runner.emulator.model import MARKER
from runner.providers.anthropic import AnthropicProvider
from runner.providers.base import Provider, RemoteJob
from runner.providers.gemini import GeminiProvider
from runner.providers.openai import OpenAIProvider

# Every emulator fails a request whose prompt holds it (runner.emulator.model).
FAIL = MARKER
# Past the end of every job that expires: Gemini's after 48 h, OpenAI's and Anthropic's 24 h.
PAST_EXPIRY = 49 * 3600.0

# The request every Gemini manifest of these tests sends: one user turn of one text part.
_GEMINI = re.compile(r'\n  provider: gemini\n  model: gemini-2\.5-flash\n(?P<rest>(?:.*\n)*?)'
                     r'  request:\n    contents: \[\{role: user, parts: \[\{text: '
                     r'(?P<prompt>"[^"\n]*")\}\]\}\]\n')


@dataclass(frozen=True)
class Flavour:
    """One provider as the reliability tests drive it."""

    name: str
    model: str
    request: str                # spec.request for one user prompt, {prompt} in place
    key_env: str
    secret: str                 # a recognisable key in the provider's own shape
    base_env: str
    prefix: str                 # where the emulator serves this API
    connect: Callable[..., Provider]
    tags_jobs: bool             # its jobs carry the runner's tag
    # the kill points (runner.failpoints) it has no step for, and why
    no_step: tuple[tuple[str, str], ...] = ()
    # where its answers say when they were made (OpenAI's `created`), which no rerun repeats
    answered_at: re.Pattern[bytes] | None = None

    def __str__(self) -> str:
        return self.name

    def adapt(self, manifest: str) -> str:
        """A Gemini manifest of these tests as this provider's: the same rows and prompt."""
        if self.name == "gemini":
            return manifest
        found = _GEMINI.search(manifest)
        assert found is not None, "not a one-prompt Gemini manifest:\n" + manifest
        return (manifest[:found.start()] + f"\n  provider: {self.name}\n  model: {self.model}\n"
                + found["rest"] + "  request:\n"
                + self.request.format(prompt=found["prompt"]) + manifest[found.end():])

    def steady(self, output: bytes) -> bytes:
        """An output without the times its answers were made at: what an uninterrupted run
        at another moment writes byte for byte."""
        if self.answered_at is None:
            return output
        return self.answered_at.sub(lambda m: m[0].rstrip(b"0123456789") + b"0", output)

    def base_url(self, emu: Emulator) -> str:
        return emu.base_url + self.prefix

    def env(self, emu: Emulator, key: str) -> dict[str, str]:
        """The environment that points the runner at the emulator's API with `key`."""
        return {self.key_env: key, self.base_env: self.base_url(emu)}

    def setenv(self, monkeypatch: pytest.MonkeyPatch, emu: Emulator, key: str = "k") -> None:
        for name, value in self.env(emu, key).items():
            monkeypatch.setenv(name, value)

    def client(self, emu: Emulator, key: str = "k", **kwargs: object) -> Provider:
        return self.connect(key, self.base_url(emu), **kwargs)

    def jobs(self, emu: Emulator) -> list[RemoteJob]:
        """Every job on the emulator, as the provider lists them (newest first or not)."""
        client = self.client(emu)
        try:
            return list(client.list_jobs())
        finally:
            client.close()

    def tags(self, emu: Emulator, directory: Path) -> Counter[str]:
        """How many jobs each tag names: the job's own tag, or for a provider that keeps
        none, the tag of the lockfile record naming the job (a job no record names counts
        under its own name)."""
        jobs = self.jobs(emu)
        if self.tags_jobs:
            return Counter(j.display_name for j in jobs)
        lock = lockfile.load(directory / "batches.lock")
        named = {r.job: r.display_name for r in lock.records(self.name) if r.job}
        return Counter(named.get(j.name, f"(untagged) {j.name}") for j in jobs)


GEMINI = Flavour(
    name="gemini", model="gemini-2.5-flash",
    request="    contents: [{{role: user, parts: [{{text: {prompt}}}]}}]\n",
    key_env="GEMINI_API_KEY", secret="AIzaSy-SECRET-d41d8cd98f00b204e9800998ecf8427e",
    base_env="GEMINI_BASE_URL", prefix="", connect=GeminiProvider, tags_jobs=True)
OPENAI = Flavour(
    name="openai", model="gpt-4o-mini",
    request=("    messages: [{{role: user, content: {prompt}}}]\n"
             "    max_completion_tokens: 1000\n"),
    key_env="OPENAI_API_KEY", secret="sk-proj-SECRET-d41d8cd98f00b204e9800998ecf8427e",
    base_env="OPENAI_BASE_URL", prefix="/openai/v1", connect=OpenAIProvider, tags_jobs=True,
    answered_at=re.compile(rb'"created":[0-9]+'))
ANTHROPIC = Flavour(
    name="anthropic", model="claude-sonnet-4-5",
    request="    messages: [{{role: user, content: {prompt}}}]\n    max_tokens: 1000\n",
    key_env="ANTHROPIC_API_KEY", secret="sk-ant-api03-SECRET-d41d8cd98f00b204e9800998ecf8427e",
    base_env="ANTHROPIC_BASE_URL", prefix="/anthropic", connect=AnthropicProvider,
    tags_jobs=False,
    no_step=(("during-upload", "Anthropic takes every request inline in the create call: "
                               "nothing is uploaded"),))
FLAVOURS = (GEMINI, OPENAI, ANTHROPIC)

PROVIDERS = pytest.mark.parametrize("flavour", FLAVOURS, ids=str)


def providers(**marks: pytest.MarkDecorator) -> pytest.MarkDecorator:
    """PROVIDERS with a mark on some of them, by name: a provider that has no such step is
    skipped, one that breaks a guarantee is xfail(strict=True), each saying why."""
    unknown = set(marks) - {f.name for f in FLAVOURS}
    assert not unknown, f"no such provider: {unknown}"
    return pytest.mark.parametrize("flavour", [
        pytest.param(f, id=f.name, marks=[marks[f.name]] if f.name in marks else [])
        for f in FLAVOURS])


@contextlib.contextmanager
def serve(flavour: Flavour, state: Path, monkeypatch: pytest.MonkeyPatch, latency: float
          ) -> Iterator[Emulator]:
    """An emulator whose jobs take `latency` s, which the runner reaches through the
    provider's own environment, polling every 0.05 s."""
    with Emulator(state, latency=latency) as e:
        flavour.setenv(monkeypatch, e)
        monkeypatch.setenv("RUNNER_POLL_SECONDS", "0.05")
        yield e


def advance(emu: Emulator, seconds: float) -> None:
    """Moves the emulator's clock `seconds` on."""
    httpx.post(f"{emu.base_url}/_emulator/clock", json={"advance": seconds}).raise_for_status()


def with_points(points: Iterable[str]) -> list[object]:
    """(flavour, kill point) for every provider and point, with ids such as
    `openai-after-intent`; a point the provider has no step for is skipped, saying why."""
    return [pytest.param(f, p, id=f"{f}-{p}",
                         marks=[pytest.mark.skip(reason=why) for q, why in f.no_step if q == p])
            for f in FLAVOURS for p in points]
