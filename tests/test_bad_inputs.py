"""The bad-input corpus: every case in tests/bad_inputs/ is a manifest directory with one mistake
a user makes. Each must fail with exit code 1 and one line on stderr naming the file and the
place, without a traceback, and without creating or changing any file.

A case is a directory holding the manifest directory's files and a `case.json`:

    command   the CLI arguments after `runner`, before the directory (["validate"] or
              ["plan", "--emulator"])
    checks    what mistake the case makes (documentation)
    file      the file the error is about, relative to the case; the message must start with it
    place     a regex searched in the message after the file name: ":12: " for a line, or a key,
              row or item ("spec.rows", "data/reviews.csv line 2")
    message   optional regex the message must contain (the kind of error)
    setup     optional steps for what git does not store well, applied after the copy:
              {"write": path, "text": ..., "encoding": "latin-1"}  a file in another encoding
              {"symlink": path, "to": target}  "{outside}" in target is a directory outside
              the case, which must stay empty as well
              {"mkdir": path}  a directory git would not keep (empty, or ignored like results/)

Whatever fails must fail while manifests, data, templates and the lockfile are loaded, before
`plan --emulator` starts the emulator: so not even `.runner/` may appear.

Most cases are Gemini manifests: what they break (YAML, paths, rows, templates, the lockfile)
is read before any provider's rules. Each provider has cases of its own for what its rules
refuse (its request schema, endpoints, keys): `openai-*` and `anthropic-*`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from providers_matrix import PROVIDERS, Flavour

CASES = Path(__file__).resolve().parent / "bad_inputs"
REPO = CASES.parent.parent
CASE_NAMES = sorted(p.name for p in CASES.iterdir() if (p / "case.json").is_file())


def snapshot(root: Path) -> dict[str, object]:
    """Every entry under `root`: symlink targets, file bytes, and the modification time of
    files and directories, so that a rewrite with the same bytes, or a temp file created and
    removed again, shows as well."""
    found: dict[str, object] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            rel = path.relative_to(root).as_posix()
            if path.is_symlink():
                found[rel] = ("symlink", os.readlink(path))
            elif path.is_dir():
                found[rel] = ("dir", path.stat().st_mtime_ns)
            else:
                found[rel] = (path.read_bytes(), path.stat().st_mtime_ns)
    return found


def prepare(name: str, tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    meta: dict[str, Any] = json.loads((CASES / name / "case.json").read_text(encoding="utf-8"))
    project = tmp_path / name
    shutil.copytree(CASES / name, project, symlinks=True,
                    ignore=shutil.ignore_patterns("case.json"))
    outside = tmp_path / "outside"
    outside.mkdir()
    for step in meta.get("setup", []):
        if "write" in step:
            target = project / step["write"]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(step["text"].encode(step["encoding"]))
        elif "mkdir" in step:
            (project / step["mkdir"]).mkdir(parents=True)
        elif "symlink" in step:
            link = project / step["symlink"]
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(step["to"].replace("{outside}", str(outside)))
        else:
            raise AssertionError(f"unknown setup step {step}")
    hour_ago = time.time() - 3600      # like a checkout: older than any freshness window
    for path in [project, *project.rglob("*")]:
        os.utime(path, (hour_ago, hour_ago), follow_symlinks=False)
    return project, meta


def run_cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("GEMINI_API_KEY", "GOOGLE_API_KEY", "GEMINI_BASE_URL")}
    env.update(RUNNER_EMULATOR_LATENCY="0", RUNNER_POLL_SECONDS="0.1",
               PYTHONPATH=str(REPO), PYTHONDONTWRITEBYTECODE="1")
    return subprocess.run([sys.executable, "-m", "runner.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=60, check=False)


def test_the_corpus_is_large_enough() -> None:
    assert len(CASE_NAMES) >= 40


@PROVIDERS
def test_the_corpus_has_cases_of_each_providers_own_rules(flavour: Flavour) -> None:
    own = [n for n in CASE_NAMES
           if any(f"provider: {flavour}\n" in p.read_text("utf-8", "replace")
                  for p in (CASES / n).glob("*.yaml"))]
    assert len(own) >= 5, own


PLAN_CASES = [n for n in CASE_NAMES
              if json.loads((CASES / n / "case.json").read_text())["command"][0] == "plan"]


@pytest.mark.parametrize("name, command", [(n, None) for n in CASE_NAMES] +
                         [(n, ["apply", "--emulator"]) for n in PLAN_CASES])
def test_bad_input_fails_cleanly(name: str, command: list[str] | None, tmp_path: Path) -> None:
    """Each case with its own command; the plan cases once more through apply, which must
    fail just as early (before the run lock, the emulator or any output)."""
    _, meta = prepare(name, tmp_path)
    before = snapshot(tmp_path)

    result = run_cli([*(command or meta["command"]), name], cwd=tmp_path)

    report = f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert result.returncode == 1, report
    assert "Traceback" not in result.stderr + result.stdout, report
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].strip(), report
    line = lines[0]
    head = re.match(rf"error: (\S*/)?{re.escape(meta['file'])}(?=:)", line)
    assert head is not None, f"the message must start with the file {meta['file']}\n{report}"
    assert re.search(meta["place"], line[head.end():]), f"place {meta['place']!r}\n{report}"
    if "message" in meta:
        assert re.search(meta["message"], line), f"message {meta['message']!r}\n{report}"
    assert snapshot(tmp_path) == before, f"files were created or changed\n{report}"
