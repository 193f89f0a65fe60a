"""Secrets and escapes: a manifest under review (the shipped workflow posts validate's and
plan's output as a pull-request comment) must not make the runner read files outside the
project, and no message may quote more than a short excerpt of any file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import MINIMAL, ROWS_MANIFEST, write_manifest

REPO = Path(__file__).resolve().parent.parent
SECRET = "AIzaSy-ESCAPE-7f3c2a9d0b1e4f5a6c7d8e9f0a1b2c3d"


def cli(args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    """The CLI with the secret in its environment, as a CI job holding the API key runs it."""
    full = {k: v for k, v in os.environ.items() if not k.startswith(("GEMINI", "GOOGLE"))}
    full.update(GEMINI_API_KEY=SECRET, PYTHONPATH=str(REPO), RUNNER_EMULATOR_LATENCY="0",
                **env)
    return subprocess.run([sys.executable, "-m", "runner.cli", *args], env=full, text=True,
                          capture_output=True, timeout=60)


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A file outside the project holding the secret, in a form each reader would quote:
    a YAML key, a template expression, a CSV header, a JSON key."""
    path = tmp_path / "outside" / "secrets.txt"
    path.parent.mkdir()
    path.write_text(f"{SECRET}: {{{{ {SECRET} }}}}\n{SECRET},{SECRET}\n")
    return path


def rows_project(d: Path, rows_name: str) -> Path:
    write_manifest(d, ROWS_MANIFEST.replace("data/rows.jsonl", rows_name))
    (d / rows_name).parent.mkdir(parents=True, exist_ok=True)
    return d / rows_name


@pytest.mark.parametrize("case", ["rows to environ", "rows csv", "include", "manifest"])
def test_no_input_is_read_from_outside_the_project(case: str, tmp_path: Path, outside: Path
                                                   ) -> None:
    d = tmp_path / "proj"
    if case == "rows to environ":
        rows_project(d, "data/rows.jsonl").symlink_to("/proc/self/environ")
    elif case == "rows csv":
        rows_project(d, "data/rows.csv").symlink_to(outside)
    elif case == "include":
        write_manifest(d, MINIMAL.replace('"{{ row.q }}"', "\"{% include 'p.j2' %}\""))
        (d / "p.j2").symlink_to(outside)
    else:
        write_manifest(d, MINIMAL)
        (d / "other.yaml").symlink_to(outside)

    result = cli(["validate", str(d)])

    assert result.returncode == 1, result
    assert "leaves the project directory through the symlink" in result.stderr, result
    assert SECRET not in result.stdout + result.stderr


def test_prices_json_beside_the_manifests_may_not_lead_out(tmp_path: Path, outside: Path
                                                           ) -> None:
    d = tmp_path / "proj"
    write_manifest(d, MINIMAL)
    (d / "prices.json").symlink_to(outside)
    result = cli(["plan", str(d), "--emulator"])
    assert result.returncode == 1
    assert result.stderr == f"error: {d}/prices.json: leaves the project directory through " \
                            "the symlink 'prices.json'; keep the price table in the directory\n"


def test_the_price_table_named_by_the_environment_may_be_anywhere_but_is_never_quoted(
        tmp_path: Path) -> None:
    d = tmp_path / "proj"
    write_manifest(d, MINIMAL)
    result = cli(["plan", str(d), "--emulator"], RUNNER_PRICES="/proc/self/environ")
    assert result.returncode == 1
    assert result.stderr.startswith("error: /proc/self/environ:1: not valid JSON")
    assert SECRET not in result.stdout + result.stderr

    table = tmp_path / "prices.json"
    table.write_text(json.dumps({"models": {"gemini-2.5-flash": {SECRET * 100: 1}}}))
    result = cli(["plan", str(d), "--emulator"], RUNNER_PRICES=str(table))
    assert result.returncode == 1
    assert "unknown key 'AIzaSy-ESCAPE-" in result.stderr and \
        f"({len(SECRET) * 100:,} characters)" in result.stderr and len(result.stderr) < 400, \
        result.stderr


def test_no_output_over_the_price_table_the_environment_names(tmp_path: Path) -> None:
    d = tmp_path / "proj"
    write_manifest(d, MINIMAL)
    result = cli(["validate", str(d)], RUNNER_PRICES=str(d / "out/tiny.jsonl"))
    assert result.returncode == 1
    assert result.stderr == f"error: {d}/m.yaml:14: output path 'out/tiny.jsonl' would " \
                            "overwrite the price table named by $RUNNER_PRICES\n"


LONG = "k" * 10_000


@pytest.mark.parametrize("name, content, kind", [
    ("data/rows.csv", f"id,{LONG},{LONG}\n1,a,b\n", "column"),
    ("data/rows.json", f'[{{"n": 1, "{LONG}": 1, "{LONG}": 2}}]', "key"),
    ("data/rows.yaml", f"- n: 1\n  ? {LONG}\n  : 1\n  ? {LONG}\n  : 2\n", "duplicate key"),
    ("data/rows.jsonl", f'{{"n": "{LONG}", "body": "x"}}\n{{"n": "{LONG}", "body": "y"}}\n',
     "duplicate key 'r"),
])
def test_a_long_value_from_a_file_is_quoted_as_a_short_excerpt(name: str, content: str,
                                                                kind: str, tmp_path: Path
                                                                ) -> None:
    d = tmp_path / "proj"
    rows_project(d, name).write_text(content)
    result = cli(["validate", str(d)])
    assert result.returncode == 1
    message = result.stderr
    assert kind in message and "characters)" in message and len(message) < 400, message
