"""Anthropic's Message Batches API as the emulator serves it, under the /anthropic prefix.

`provider` is what the shared server mounts (runner.emulator.provider.Factory): everything
Anthropic-shaped lives in this package, from the routes and the error shape to the batch's
life (in_progress, canceling, ended; results succeeded, errored, canceled or expired), the
echo answers as Messages and the results JSONL. Point the official SDK at it with
`anthropic.Anthropic(api_key=..., base_url=<emulator base_url> + "/anthropic")`.
"""

from __future__ import annotations

from runner.emulator.anthropic.api import AnthropicApi
from runner.emulator.provider import Provider, Shared


def provider(shared: Shared) -> Provider:
    return AnthropicApi(shared)


__all__ = ["provider"]
