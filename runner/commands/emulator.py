"""`runner emulator`: serve the local emulator of the providers' APIs until interrupted."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TextIO


def emulator(state_dir: str | os.PathLike[str], *, host: str, port: int, latency: float,
             out: TextIO, until: Callable[[], object] | None = None) -> None:
    """Serves until `until` returns (by default never) or Ctrl-C, which is how it is meant to
    stop and so not an interruption. The first line names the URL to point the runner at
    (with port 0, the one the system chose)."""
    from ..emulator import Emulator  # the server's modules only for this command

    emu = Emulator(Path(state_dir), host=host, port=port, latency=latency)
    emu.start()
    print(f"Emulator on {emu.base_url} (state in {os.fspath(state_dir)}); point the runner at "
          f"it with GEMINI_BASE_URL={emu.base_url}, OPENAI_BASE_URL={emu.base_url}/openai/v1 "
          f"and ANTHROPIC_BASE_URL={emu.base_url}/anthropic; Ctrl-C stops it", file=out,
          flush=True)
    try:
        (until or threading.Event().wait)()
    except KeyboardInterrupt:
        pass
    finally:
        emu.stop()
