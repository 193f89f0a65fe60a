"""The emulated model: a deterministic answer to each request, and the rule for which fail.

Tests must be able to tell that every result landed on the right input, so the answer is a
pure function of the request:

- `prompt` is the `text` of every part of every item of `contents`, in order, joined with
  "\\n" (parts without text, such as inline data, and `systemInstruction` are ignored);
- the response is a GenerateContentResponse with one candidate whose only part is the text
  `"echo: " + prompt`, role "model", finishReason "STOP", index 0;
- `usageMetadata`: promptTokenCount = ceil(len(prompt) / 4), at least 1;
  candidatesTokenCount = ceil(len(text) / 4); totalTokenCount = their sum;
- `modelVersion` is the batch's model id (e.g. "gemini-2.5-flash"); `responseId` is a hash of
  the request's canonical JSON.

A request fails instead, with a google.rpc.Status, when its prompt contains `EMULATOR_FAIL`
(INVALID_ARGUMENT, code 3), or when the hash of (seed, identity) falls under the batch's
`request_error_rate` (INTERNAL, code 13: the kind of failure a resubmission may cure). The
identity is the request's key (`key` of a file line, `metadata.key` inline), or its canonical
JSON when it has no key.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import math
from collections.abc import Mapping
from typing import Any

from runner.emulator.gemini.protojson import rpc_status
from runner.emulator.wire import JSON, canonical

MARKER = "EMULATOR_FAIL"


def prompt_tokens_of(prompt: str) -> int:
    return max(1, math.ceil(len(prompt) / 4))


def prompt_of(request: Mapping[str, Any]) -> str:
    texts: list[str] = []
    contents = request.get("contents")
    for content in contents if isinstance(contents, list) else []:
        parts = content.get("parts") if isinstance(content, dict) else None
        for part in parts if isinstance(parts, list) else []:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                texts.append(part["text"])
    return "\n".join(texts)


def answer(request: Mapping[str, Any], prompt: str, model: str) -> JSON:
    """The response to `request`, whose `prompt_of` the caller has already computed."""
    text = "echo: " + prompt
    prompt_tokens = prompt_tokens_of(prompt)
    answer_tokens = math.ceil(len(text) / 4)
    digest = hashlib.sha256(canonical(request).encode()).digest()
    return {
        "candidates": [
            {
                "content": {"parts": [{"text": text}], "role": "model"},
                "finishReason": "STOP",
                "index": 0,
            }
        ],
        "usageMetadata": {
            "promptTokenCount": prompt_tokens,
            "candidatesTokenCount": answer_tokens,
            "totalTokenCount": prompt_tokens + answer_tokens,
        },
        "modelVersion": model,
        "responseId": base64.urlsafe_b64encode(digest[:17]).decode(),
    }


@dataclasses.dataclass(frozen=True)
class FailurePolicy:
    """Which requests of a batch fail: the marker always, others by a seeded hash."""

    rate: float = 0.0
    seed: int = 0

    def error_for(self, prompt: str, identity: str) -> JSON | None:
        if MARKER in prompt:
            return rpc_status(
                "INVALID_ARGUMENT", f"The request contains {MARKER}, so the emulator fails it."
            )
        if self.rate and self._draw(identity) < self.rate:
            return rpc_status("INTERNAL", "Emulated request failure (request_error_rate).")
        return None

    def _draw(self, identity: str) -> float:
        digest = hashlib.sha256(f"{self.seed}\0{identity}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64
