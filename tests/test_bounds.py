"""Hostile or mistaken files that would grow without bound: each must end, within seconds and
a bounded amount of memory, in one line naming the file and the place, exit code 1.

Each case runs `runner validate` in a child process under an address-space cap (RLIMIT_AS,
so a regression fails with an error instead of taking the machine's memory) and a wall-clock
limit; the child's own peak resident memory comes from os.wait4, its time from the clock.
"""

from __future__ import annotations

import json
import os
import re
import resource
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import pytest

REPO = Path(__file__).resolve().parent.parent
CAP_BYTES = 1 << 30         # address space of the child: far below what any case grows to
# each case fails well within this (a second or two, measured; the 40-deep macro about 3 s,
# 10 on a loaded 2-core machine); before the bounds, cases ran until killed at 30 s
SECONDS = 25
PEAK_MB = 80                # and within this resident memory (the runner starts at ~35 MB)

HEAD = """\
apiVersion: batch-runner/v1
kind: Batch
metadata: {name: hostile}
spec:
  provider: gemini
  model: gemini-2.5-flash
"""
REQUEST = """\
  request:
    contents: [{role: user, parts: [{text: %s}]}]
  outputs: [{path: out/hostile.jsonl}]
"""
ITEMS = "  items: [{a: 1}]\n"

# The billion laughs: nine levels, each naming the one before nine times.
BOMB = "".join(
    [f"    l0: &l0 [{', '.join(['lol'] * 9)}]\n"]
    + [f"    l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]\n" for i in range(1, 9)])


class Result(NamedTuple):
    code: int
    stderr: str
    seconds: float
    peak_mb: float


# The runner's CLI, reporting its own peak resident memory (VmHWM) on the way out. Not the
# child's ru_maxrss: on Linux that counts the parent's memory at the fork too, and a test
# process that has imported the providers' SDKs is bigger than the bound being checked.
_MEASURED = (
    "import atexit, runpy, sys\n"
    "out = sys.argv.pop(1)\n"
    "def peak():\n"
    "    with open('/proc/self/status') as f:\n"
    "        line = next(x for x in f if x.startswith('VmHWM:'))\n"
    "    with open(out, 'w') as f:\n"
    "        f.write(line)\n"
    "atexit.register(peak)\n"
    "sys.argv[0] = 'runner'\n"
    "runpy.run_module('runner.cli', run_name='__main__')\n")


def run_bounded(directory: Path) -> Result:
    """`runner validate DIR` in a child with at most CAP_BYTES of address space."""
    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (CAP_BYTES, CAP_BYTES))

    env = {k: v for k, v in os.environ.items() if k not in ("GEMINI_API_KEY", "GOOGLE_API_KEY")}
    env.update(PYTHONPATH=str(REPO), PYTHONDONTWRITEBYTECODE="1")
    errors = directory.parent / "stderr.txt"
    peak = directory.parent / "peak.txt"
    start = time.monotonic()
    with open(errors, "w+") as err:
        child = subprocess.Popen([sys.executable, "-c", _MEASURED, str(peak), "validate",
                                  str(directory)],
                                 stdout=subprocess.DEVNULL, stderr=err, env=env,
                                 preexec_fn=cap)
        watchdog = threading.Timer(SECONDS * 3, child.kill)
        watchdog.start()
        try:
            _, status, _ = os.wait4(child.pid, 0)
        finally:
            watchdog.cancel()
        child.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.monotonic() - start
        err.seek(0)
        text = err.read()
    kb = peak.read_text().split()[1] if peak.is_file() else "inf"
    return Result(child.returncode, text, seconds, float(kb) / 1024)


def manifest(d: Path, body: str, files: dict[str, str | bytes] | None = None) -> Path:
    d.mkdir(parents=True)
    (d / "m.yaml").write_text(HEAD + body)
    for name, content in (files or {}).items():
        path = d / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    return d


def templated(text: str, files: dict[str, str | bytes] | None = None
              ) -> Callable[[Path], Path]:
    return lambda d: manifest(d, ITEMS + REQUEST % json.dumps(text), files)


def rows(name: str, content: str | bytes) -> Callable[[Path], Path]:
    return lambda d: manifest(d, f"  rows: {name}\n" + REQUEST % '"{{ row.a }}"',
                              {name: content})


CASES: dict[str, tuple[Callable[[Path], Path], str, str]] = {
    # name: (build the directory, the file named, a regex for the rest of the line)
    "manifest alias bomb": (
        lambda d: manifest(d, ITEMS + "  vars:\n" + BOMB + REQUEST % '"{{ row.a }}"'),
        "m.yaml", r":15: the aliases here expand to more than [\d,]+ values"),
    "rows file alias bomb": (
        rows("data/rows.yaml", "- a: 1\n  laughs:\n" + BOMB.replace("    ", "    ", 1)),
        "data/rows.yaml", r":\d+: the aliases here expand to more than"),
    "alias inside itself": (
        lambda d: manifest(d, ITEMS + "  vars: &v {again: *v}\n" + REQUEST % '"x"'),
        "m.yaml", r":8: an alias refers to a value that contains it"),
    "manifest nested 150 deep": (
        lambda d: manifest(d, ITEMS + "  vars: {v: " + "[" * 150 + "]" * 150 + "}\n"
                           + REQUEST % '"x"'),
        "m.yaml", r":8: nested deeper than 100 levels"),
    "jsonl row nested 100,000 deep": (
        rows("data/rows.jsonl", '{"a": ' + "[" * 100_000 + "]" * 100_000 + "}\n"),
        "data/rows.jsonl", r":1: nested too deeply to read"),
    "json rows nested 100,000 deep": (
        rows("data/rows.json", '[\n{"a": ' + "[" * 100_000 + "]" * 100_000 + "}]\n"),
        "data/rows.json", r":2: nested too deeply to read"),
    "yaml rows nested 100,000 deep": (
        rows("data/rows.yaml", "- a: " + "[" * 100_000 + "]" * 100_000 + "\n"),
        "data/rows.yaml", r":1: invalid YAML: exceeded maximum nesting depth"),
    "template that includes itself": (
        templated("{% include 'self.j2' %}", {"self.j2": "again {% include 'self.j2' %}"}),
        "m.yaml", r":9: spec\.items item 1: template nested too deeply .* \(in self\.j2 line 1\)"),
    "'x' * 10**10": (
        templated("{{ 'x' * 10**10 }}"),
        "m.yaml", r":9: spec\.items item 1: template over a limit in "
                  r"spec\.request\.contents\[0\]\.parts\[0\]\.text: '\*' would make more than"),
    "'%*s' % (10**10, 'x')": (
        templated("{{ '%*s' % (10**10, 'x') }}"), "m.yaml", r":9: .* '%' would make more than"),
    "a long string printed a thousand times over": (
        templated("{{ ['x' * 1000000] * 1000 }}"),
        "m.yaml", r":9: .* printing a value would make more than"),
    "join over a huge range": (
        templated("{{ range(100000)|join('-' * 1000) }}"),
        "m.yaml", r":9: .* the filter 'join' would make more than"),
    "a string doubled in a loop": (
        templated("{% set ns = namespace(s='x') %}{% for i in range(64) %}"
                  "{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}"),
        "m.yaml", r":9: .* would be more than [\d,]+ characters"),
    "loops nested over range(100000)": (
        templated("{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}"
                  "{% endfor %}"),
        "m.yaml", r":9: .* more than [\d,]+ steps"),
    "a macro calling itself twice, 40 deep": (
        templated("{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}"
                  "{% endmacro %}{{ f(40) }}"),
        "m.yaml", r":9: .* more than [\d,]+ steps"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_hostile_input_fails_fast_in_bounded_memory(name: str, tmp_path: Path) -> None:
    build, file, rest = CASES[name]
    d = build(tmp_path / "project")
    before = sorted(p.relative_to(d) for p in d.rglob("*"))

    result = run_bounded(d)

    report = f"{name}: {result}"
    assert result.code == 1, report
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, report
    head = f"error: {d}/{file}"
    assert lines[0].startswith(head) and re.match(rest, lines[0][len(head):]), report
    assert result.seconds < SECONDS, report
    assert result.peak_mb < PEAK_MB, report
    assert sorted(p.relative_to(d) for p in d.rglob("*")) == before, "nothing is written"


def test_a_request_over_the_size_bound_names_its_largest_field(tmp_path: Path) -> None:
    """A row value inserted as it is (no Jinja involved) that makes a request of more than
    40 MB: refused naming the row and the field, in memory proportional to the row."""
    body = "y" * 41_000_000
    d = manifest(tmp_path / "project", "  rows: data/rows.jsonl\n" + REQUEST % json.dumps(
        "{{ row.a }}"), {"data/rows.jsonl": '{"a": "short"}\n{"a": "' + body + '"}\n'})

    result = run_bounded(d)

    assert result.code == 1, result
    assert re.fullmatch(
        rf"error: {re.escape(str(d))}/m\.yaml:9: data/rows\.jsonl line 2: the request renders "
        r"to 41,000,\d+ bytes, more than 40,000,000; its largest field is "
        r"spec\.request\.contents\[0\]\.parts\[0\]\.text \(41,000,002 bytes\)\n", result.stderr)
    assert result.seconds < SECONDS and result.peak_mb < 4 * 41 + PEAK_MB, result
