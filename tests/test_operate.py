"""Operating from git: cost before paying, budgets, markdown plans, spend, progress."""

from __future__ import annotations

import json
import os
import re
import select
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import MINIMAL, remote_jobs, write_manifest

from runner import lockfile
from runner.cli import main
from runner.emulator import Emulator

BOUNDED = MINIMAL.replace("contents: [", "generationConfig: {maxOutputTokens: 100}\n    contents: [")


@pytest.fixture
def proj(tmp_path: Path) -> Path:
    """MINIMAL with maxOutputTokens, so that its cost has an upper bound."""
    d = tmp_path / "proj"
    write_manifest(d, BOUNDED)
    return d


def jobs(emu: Emulator) -> int:
    return len(remote_jobs(emu))


def test_plan_shows_cost_range_and_markdown(proj: Path, emu: Emulator,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", str(proj), "--json"]) == 0
    [action] = json.loads(capsys.readouterr().out)["actions"]
    cost = action["estimated_cost"]
    assert cost["requests"] == 2 and cost["max_output_tokens"] == 200
    assert 0 < cost["low"] < cost["high"] and cost["currency"] == "USD"
    assert main(["plan", str(proj), "--format", "markdown"]) == 0
    md = capsys.readouterr().out
    assert md.startswith("### batch-runner plan for")
    row = next(line for line in md.splitlines() if "`tiny`" in line)
    assert row.startswith("| `+` | create | `tiny` | 2 | new batch |") and "$" in row


def test_count_tokens_asks_the_provider(proj: Path, emu: Emulator,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", str(proj), "--json", "--count-tokens"]) == 0
    [action] = json.loads(capsys.readouterr().out)["actions"]
    # the emulator counts ceil(len(prompt) / 4): "What is 1+1?" and "What is 2+2?" are 3 each
    assert action["estimated_cost"]["input_tokens"] == 6
    assert action["estimated_cost"]["input_counted_by"] == "provider"


def test_budget_refuses_before_anything_is_sent(proj: Path, emu: Emulator,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    (proj / "m.yaml").write_text(BOUNDED.replace("provider: gemini",
                                                 "provider: gemini\n  budget: 0.0000001"))
    assert main(["apply", str(proj)]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "tiny" in lines[0] and "spec.budget" in lines[0]
    assert jobs(emu) == 0 and not (proj / "batches.lock").exists()
    (proj / "m.yaml").write_text(BOUNDED)
    assert main(["apply", str(proj), "--max-cost", "0.0000001"]) == 1
    err = capsys.readouterr().err
    assert "--max-cost" in err and "tiny" in err and jobs(emu) == 0
    assert main(["apply", str(proj), "--max-cost", "10"]) == 0
    assert jobs(emu) == 1


def test_spend_is_recorded_and_shown(proj: Path, emu: Emulator,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["apply", str(proj)]) == 0
    entry = lockfile.load(proj / "batches.lock").batches["tiny"]
    assert entry.spent is not None
    usage = entry.spent["usage"]
    assert usage["input_tokens"] == 6 and usage["output_tokens"] > 0
    assert entry.spent["cost"] > 0 and entry.spent["currency"] == "USD"
    capsys.readouterr()
    assert main(["status", str(proj)]) == 0
    out = capsys.readouterr().out
    assert "COST" in out and "$" in out and f"{usage['input_tokens']:,} /" in out
    assert main(["status", str(proj), "--json"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert row["spent"]["usage"]["input_tokens"] == 6


def _apply_on_a_terminal(proj: Path, emu: Emulator, extra_env: dict[str, str]) -> str:
    """Runs apply with a pseudo-terminal as its stdout, as a person at a terminal would."""
    main_fd, child_fd = os.openpty()
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    env.update(GEMINI_API_KEY="k", GEMINI_BASE_URL=emu.base_url, RUNNER_POLL_SECONDS="0.05",
               TERM="xterm", **extra_env)
    proc = subprocess.Popen([sys.executable, "-m", "runner.cli", "apply", str(proj)],
                            stdout=child_fd, stderr=child_fd, env=env)
    os.close(child_fd)
    chunks = []
    while True:
        ready, _, _ = select.select([main_fd], [], [], 30)
        if not ready:
            break
        try:
            data = os.read(main_fd, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    os.close(main_fd)
    assert proc.wait(timeout=30) == 0
    return b"".join(chunks).decode()


def test_live_progress_on_a_terminal_and_plain_lines_otherwise(
        proj: Path, emu: Emulator, tmp_path: Path) -> None:
    live = _apply_on_a_terminal(proj, emu, {})
    assert "\x1b[" in live                          # cursor movement and colour
    assert re.search(r"tiny.*succeeded", live)
    other = tmp_path / "other"
    write_manifest(other, BOUNDED)
    no_color = _apply_on_a_terminal(other, emu, {"NO_COLOR": "1"})
    assert "\x1b[3" not in no_color and "\x1b[9" not in no_color    # no colour codes
    third = tmp_path / "third"
    write_manifest(third, BOUNDED)
    plain = subprocess.run([sys.executable, "-m", "runner.cli", "apply", str(third)],
                           env=dict(os.environ, GEMINI_API_KEY="k", GEMINI_BASE_URL=emu.base_url,
                                    RUNNER_POLL_SECONDS="0.05"),
                           capture_output=True, text=True, timeout=60)
    assert plain.returncode == 0 and "\x1b" not in plain.stdout
    states = [ln for ln in plain.stdout.splitlines() if ln.startswith("tiny: ")]
    assert any("succeeded 2/2" in ln for ln in states)
    assert len(states) == len(set(states)), "plain mode repeats a line"
    quiet = subprocess.run([sys.executable, "-m", "runner.cli", "apply", str(third), "--quiet"],
                           env=dict(os.environ, GEMINI_API_KEY="k", GEMINI_BASE_URL=emu.base_url),
                           capture_output=True, text=True, timeout=60)
    assert quiet.returncode == 0 and quiet.stdout == ""
