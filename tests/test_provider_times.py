"""Times the runner writes into the lockfile load again, whatever RFC 3339 form the provider
(or a gateway in front of it) sends them in: an offset, a lower-case `z`. They are read
into UTC `Z` when they come in, as the lockfile's check wants them."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import MINIMAL, write_manifest

from runner import lockfile
from runner.cli import main
from runner.emulator import Emulator
from runner.emulator import wire as emu_wire
from runner.emulator.gemini import views


def _offset_timestamp(epoch: float) -> str:
    # the same instant, written with an explicit offset: valid RFC 3339, as many servers do
    return emu_wire.timestamp(epoch)[:-1] + "+00:00"


@pytest.mark.parametrize("form", ["offset", "lower-z"])
def test_gemini_times_with_an_offset_do_not_poison_the_lockfile(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, form: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    if form == "offset":
        monkeypatch.setattr(views, "timestamp", _offset_timestamp)
    else:
        monkeypatch.setattr(views, "timestamp", lambda e: emu_wire.timestamp(e)[:-1] + "z")
    with Emulator(tmp_path / "emu", latency=0.3) as e:
        monkeypatch.setenv("GEMINI_API_KEY", "k")
        monkeypatch.setenv("GEMINI_BASE_URL", e.base_url)
        monkeypatch.setenv("RUNNER_POLL_SECONDS", "0.05")
        d = tmp_path / "proj"
        write_manifest(d, MINIMAL)
        first = main(["apply", str(d), "--quiet"])
        said = capsys.readouterr()
        # whatever the first apply did, the lockfile it wrote must be one it can read again
        try:
            lock = lockfile.load(d / "batches.lock")
        except Exception as err:  # noqa: BLE001
            pytest.fail(f"apply exited {first} and wrote a lockfile it refuses: {err}\n"
                        f"{said.out}{said.err}")
        entry = lock.batches["tiny"]
        assert entry.submitted_at is not None and entry.submitted_at.endswith("Z")
        assert main(["plan", str(d)]) == 0
