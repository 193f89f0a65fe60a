"""The emulated model, whichever provider's API asks it: what it answers, and what fails.

Tests must be able to tell that every result landed on the right input, so the answer is a
pure function of the request, the same rule for every provider (each puts it in its own
response shape; Gemini's is runner.emulator.gemini.echo):

- the reply's text is `"echo: " + prompt`, where the provider says what a request's prompt
  is (for Gemini, the text parts of its `contents`);
- prompt tokens = ceil(len(prompt) / 4), at least 1; answer tokens = ceil(len(text) / 4);
- where the request caps the answer's tokens (Anthropic's `max_tokens`), the text is cut to
  4 characters a token (`cut`), so a client can tell a truncated answer from a whole one;
- a response id is a hash of the request's canonical JSON.

A request fails instead when its prompt contains `EMULATOR_FAIL` (INVALID_ARGUMENT), or when
the hash of (seed, identity) falls under the batch's `request_error_rate` (INTERNAL: the kind
of failure a resubmission may cure). The identity is the request's key in the batch (its
canonical JSON when it has none), so the same request fails the same way in every run.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import math
from typing import Any

from runner.emulator.wire import canonical

MARKER = "EMULATOR_FAIL"


def reply_text(prompt: str) -> str:
    return "echo: " + prompt


def prompt_tokens_of(prompt: str) -> int:
    return max(1, math.ceil(len(prompt) / 4))


def answer_tokens_of(text: str) -> int:
    return math.ceil(len(text) / 4)


def cut(text: str, max_tokens: int) -> tuple[str, bool]:
    """The text an answer capped at `max_tokens` holds, and whether the cap cut it."""
    if answer_tokens_of(text) <= max_tokens:
        return text, False
    return text[: 4 * max(0, max_tokens)], True


def response_id(request: Any) -> str:
    return response_id_of(canonical(request).encode())


def response_id_of(canonical_request: bytes) -> str:
    """The response id of a request from its canonical JSON, encoded."""
    digest = hashlib.sha256(canonical_request).digest()
    return base64.urlsafe_b64encode(digest[:17]).decode()


@dataclasses.dataclass(frozen=True)
class Failure:
    """Why one request of a batch fails: an error name (runner.emulator.wire) and message,
    which each provider writes in its own error shape."""

    status: str
    message: str


@dataclasses.dataclass(frozen=True)
class FailurePolicy:
    """Which requests of a batch fail: the marker always, others by a seeded hash."""

    rate: float = 0.0
    seed: int = 0

    def failure(self, prompt: str, identity: str) -> Failure | None:
        if MARKER in prompt:
            return Failure(
                "INVALID_ARGUMENT", f"The request contains {MARKER}, so the emulator fails it."
            )
        if self.rate and self._draw(identity) < self.rate:
            return Failure("INTERNAL", "Emulated request failure (request_error_rate).")
        return None

    def _draw(self, identity: str) -> float:
        digest = hashlib.sha256(f"{self.seed}\0{identity}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64
