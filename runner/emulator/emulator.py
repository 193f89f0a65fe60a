"""The Emulator: local provider APIs (Gemini's Batch Mode + Files API, OpenAI's Batch API) on a
real socket.

One object ties the pieces together (store, clock, fault dice, the providers mounted at their
path prefixes, HTTP server) and owns the serving thread. Two Emulators on one state directory
share everything the first created, which is how the runner, starting one per command, finds
its jobs again.
"""

from __future__ import annotations

import threading
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from runner.emulator import anthropic, gemini, openai
from runner.emulator.admin import Stats
from runner.emulator.clock import Clock
from runner.emulator.dispatch import Dispatcher
from runner.emulator.faults import FaultDice, Faults
from runner.emulator.provider import Factory, Shared
from runner.emulator.store import Store
from runner.emulator.transport import Server

if TYPE_CHECKING:
    from typing_extensions import Self

# Which provider answers under which path prefix. Gemini keeps the root, where its SDK and the
# runner have always found it; OpenAI's Batch API is under "/openai/v1" (the SDK's base URL
# includes its version); Anthropic's Message Batches under "/anthropic" (the SDK's base URL,
# to which it appends /v1/...).
MOUNTS: dict[str, Factory] = {
    "": gemini.provider,
    "/openai/v1": openai.provider,
    "/anthropic": anthropic.provider,
}

# How often the serving loop checks for stop(): bounds how long stop() takes.
_POLL_SECONDS = 0.05


class Emulator:
    """Serve the emulated APIs; `latency` is how long (emulator clock) each batch runs."""

    def __init__(
        self,
        state_dir: Path,
        host: str = "127.0.0.1",
        port: int = 0,
        latency: float = 2.0,
        faults: Faults | None = None,
    ) -> None:
        store = Store(Path(state_dir))
        self._dice = FaultDice(faults or Faults())
        shared = Shared(store, Clock(store.clock_path), self._dice, Stats(), latency)
        self._app = Dispatcher(shared, {prefix: make(shared) for prefix, make in MOUNTS.items()})
        self._host = host
        self._port = port
        self._server: Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        """`http://host:port`, without an API version; valid once started."""
        if self._server is None:
            raise RuntimeError("the emulator is not started")
        return self._server.base_url

    @property
    def faults(self) -> Faults:
        return self._dice.faults

    @faults.setter
    def faults(self, faults: Faults) -> None:
        self._dice.replace(faults)

    def start(self) -> None:
        """Listen, then serve from a daemon thread; returns once connections are accepted."""
        if self._server is not None:
            raise RuntimeError("the emulator is already started")
        self._server = Server(self._host, self._port, self._app)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": _POLL_SECONDS},
            name="emulator",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop serving, close the socket and every open connection."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        server.shutdown()
        thread.join()
        server.close_connections()
        server.server_close()
        self._app.close()
        self._server = self._thread = None

    def serve_forever(self) -> None:
        """Serve in the calling thread until Ctrl-C, which stops cleanly (no traceback)."""
        if self._server is not None:
            raise RuntimeError("the emulator is already started")
        self._server = Server(self._host, self._port, self._app)
        try:
            self._server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            self._server.close_connections()
            self._server.server_close()
            self._app.close()
            self._server = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
