"""The lockfile as a file: what is written reads back as it was."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from runner import lockfile
from runner.lockfile import Lock
from runner.providers.base import JobState
from runner.records import LockEntry

H1 = "sha256:" + "1" * 64
D = "sha256:" + "d" * 64


def entry(**kw: Any) -> LockEntry:
    base: dict[str, Any] = dict(
        manifest="b.yaml", spec_hash="sha256:" + "5" * 64,
        inputs={"manifest": "sha256:" + "6" * 64, "rows": "sha256:" + "7" * 64},
        content_hash=H1, provider="gemini", model="m", requests=3,
        display_name="b-" + "1" * 12, state=JobState.SUCCEEDED, job="batches/j1", attempts=1,
        outputs={"out.jsonl": D}, outputs_hash="sha256:" + "8" * 64)
    base.update(kw)
    return LockEntry(**base)


def test_lockfile_round_trips_awkward_values(tmp_path: Path) -> None:
    """The lockfile writer is ours: every value it can hold must read back as written."""
    awkward = ["", " lead", "trail ", "a: b", "# not a comment", "x:", "yes", "null", "1e3",
               "0x1F", "2024-05-01", "multi\nline", "tab\there", "é ü 中文", "\x7f\x85\u2028x",
               "quote\"and'apostrophe", "back\\slash", "-dash", "? q", "[list]", "{map}"]
    e = entry(error=awkward[0])
    e.outputs = {f"out/{i}-{v}": D for i, v in enumerate(awkward)}
    e.counts = {"succeeded": 3, "failed": 0}
    e.spent = {"usage": {"input_tokens": 5}, "cost": 1e-05, "currency": "USD"}
    entries = {"b": e}
    for i, v in enumerate(awkward):
        entries[f"b{i}"] = entry(error=v, display_name=v or "x", job=f"batches/{i}")
    path = tmp_path / "batches.lock"
    lockfile.save(path, Lock(entries))
    back = lockfile.load(path)
    assert back.batches == entries
    assert back.batches["b"].spent == {"usage": {"input_tokens": 5}, "cost": 1e-05,
                                       "currency": "USD"}
