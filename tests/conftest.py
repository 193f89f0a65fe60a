from __future__ import annotations

import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "batches.d"


@pytest.fixture
def examples(tmp_path: Path) -> Path:
    """A copy of the example manifest directory, without any local state or results."""
    dest = tmp_path / "batches.d"
    shutil.copytree(EXAMPLES, dest, ignore=shutil.ignore_patterns(
        ".runner", "results", "batches.lock"))
    return dest


def write_manifest(directory: Path, text: str, name: str = "m.yaml") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(text)
    return path


MINIMAL = """\
apiVersion: batch-runner/v1
kind: Batch
metadata: {name: tiny}
spec:
  provider: gemini
  model: gemini-2.5-flash
  items:
    - {id: a, q: "What is 1+1?"}
    - {id: b, q: "What is 2+2?"}
  key: "{{ row.id }}"
  request:
    contents: [{role: user, parts: [{text: "{{ row.q }}"}]}]
  outputs:
    - path: out/tiny.jsonl
"""
