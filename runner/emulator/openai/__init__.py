"""OpenAI's Batch API (batches, files, uploads) as the emulator serves it, under "/openai/v1".

`provider` is what the shared server mounts (runner.emulator.provider.Factory): everything
OpenAI-shaped lives in this package, from the routes and the error body to the batch state
machine, the input file's validation, the multipart uploads, the echo answers of each
endpoint and the output and error files. Point the official SDK at it with
`OpenAI(api_key="any", base_url=emulator.base_url + "/openai/v1")`.
"""

from __future__ import annotations

from runner.emulator.openai.api import OpenAiApi
from runner.emulator.provider import Provider, Shared


def provider(shared: Shared) -> Provider:
    return OpenAiApi(shared)


__all__ = ["provider"]
