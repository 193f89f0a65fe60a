"""`inferred: true`, which has a guessed Anthropic job's results checked against its
requests' keys, survives the record being rebuilt when a shard of a split batch is
submitted (runner.desired.record_for)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from conftest import write_manifest
from test_anthropic_e2e import CLAUDE, batches, emu  # noqa: F401  (the fixture)

from runner import lockfile
from runner.cli import main
from runner.emulator import Emulator

SPLIT = CLAUDE.replace("  items:", "  max_requests: 2\n  items:")


def test_every_shard_bound_by_inference_keeps_inferred(tmp_path: Path,
                                                      emu: Emulator) -> None:  # noqa: F811
    d = tmp_path / "proj"
    write_manifest(d, SPLIT, "claude.yaml")
    emu.faults = replace(emu.faults, drop_after_create=1.0)    # every create's answer lost
    assert main(["apply", str(d), "--no-wait", "--quiet"]) == 0
    emu.faults = replace(emu.faults, drop_after_create=0.0)
    assert len(batches(emu)) == 2                               # one per shard, none twice
    shards = lockfile.load(d / "batches.lock").batches["claude"].shards
    assert all(s.job for s in shards)
    # both were bound by their size and time, not by an answer: both must be checked
    assert [s.inferred for s in shards] == [True, True], (d / "batches.lock").read_text()
