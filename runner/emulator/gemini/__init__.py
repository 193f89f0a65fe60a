"""The Gemini API (Batch Mode + Files API) as the emulator serves it, at the root path.

`provider` is what the shared server mounts (runner.emulator.provider.Factory): everything
Gemini-shaped lives in this package, from the routes and Google's JSON habits to the batch
state machine, the resumable upload protocol, the echo answers and the results files.
"""

from __future__ import annotations

from runner.emulator.gemini.api import GeminiApi
from runner.emulator.provider import Provider, Shared


def provider(shared: Shared) -> Provider:
    return GeminiApi(shared)


__all__ = ["provider"]
