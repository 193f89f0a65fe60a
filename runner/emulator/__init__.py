"""Local emulators of LLM batch APIs (Gemini's Batch Mode and Files API, OpenAI's Batch API),
for tests and demos.

    from runner.emulator import Emulator, Faults
    with Emulator(state_dir, latency=2.0, faults=Faults(rate_429=0.1)) as emu:
        client = genai.Client(api_key="any", http_options=HttpOptions(base_url=emu.base_url))
        client = openai.OpenAI(api_key="any", base_url=emu.base_url + "/openai/v1")

Every request is answered deterministically, so a test can map results back to inputs: the
reply's text is "echo: " + the request's prompt (for Gemini the `text` of every part of every
`contents` item, for OpenAI the content of its messages or `input`, joined with "\n"), and a
prompt containing EMULATOR_FAIL gets an error instead. The full rule, token counts included,
is in `runner.emulator.model` (in each provider's shape: `runner.emulator.gemini.echo`,
`runner.emulator.openai.echo`); the admin routes (`/_emulator/faults`, `/_emulator/clock`,
`/_emulator/stats`) are in `runner.emulator.admin`.

Layout: the package itself is the shared machinery (server, store, clock, faults, admin,
paging, hostile answers), which knows no provider's shapes; each provider is a subpackage
mounted under a path prefix (`runner.emulator.provider`): Gemini's (`gemini/`) at the root,
OpenAI's (`openai/`) under "/openai/v1", where the SDK's base URL (`OPENAI_BASE_URL`) points,
and Anthropic's Message Batches (`anthropic/`) under "/anthropic" (`ANTHROPIC_BASE_URL`).
"""

from __future__ import annotations

from runner.emulator.emulator import Emulator
from runner.emulator.faults import Faults

__all__ = ["Emulator", "Faults"]
