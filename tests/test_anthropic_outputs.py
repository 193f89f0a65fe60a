"""Anthropic's results joined back to their requests: keys sent encoded (outside custom_id's
alphabet) come back as the manifest wrote them, whatever the rows' format and whether this
run rendered the requests (a later apply renders them again to join)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from conftest import write_manifest

from runner.manifest import load_directory
from runner.outputs import write_outputs
from runner.providers.anthropic import DIALECT
from runner.render import Renderer
from runner.stream import Streams

KEYS = ["plain", "b/2 é", "row.3", "日本", "__x", "a b"]
MANIFEST = """\
apiVersion: batch-runner/v1
kind: Batch
metadata: {name: c}
spec:
  provider: anthropic
  model: claude-sonnet-4-5
  ROWS
  key: "{{ row.id }}"
  request:
    max_tokens: 10
    messages: [{role: user, content: "{{ row.id }}"}]
  outputs:
    - path: out/c.jsonl
    - path: out/c.csv
      columns: {key: "{{ key }}", text: "{{ text }}"}
"""


def rows(d: Path, kind: str) -> str:
    if kind == "items":
        return "items: [" + ", ".join(json.dumps({"id": k}, ensure_ascii=False)
                                      for k in KEYS) + "]"
    if kind == "jsonl":
        (d / "rows.jsonl").write_text("".join(json.dumps({"id": k}) + "\n" for k in KEYS))
        return "rows: rows.jsonl"
    (d / "rows.csv").write_text("id\n" + "".join(f'"{k}"\n' for k in KEYS))
    return "rows: rows.csv"


@pytest.mark.parametrize("spool", [False, True])
@pytest.mark.parametrize("kind", ["items", "jsonl", "csv"])
def test_every_key_comes_back_as_written(tmp_path: Path, kind: str, spool: bool) -> None:
    d = tmp_path / "p"
    d.mkdir()
    write_manifest(d, MANIFEST.replace("ROWS", rows(d, kind)))
    [m] = load_directory(d)
    renderer = Renderer(m)
    sent = [renderer.line(req) for req in renderer.requests()]
    wires = [json.loads(line)["custom_id"] for line in sent]
    assert wires[0] == "plain" and all(w.startswith("__") for w in wires[1:])
    spooled = None
    streams = Streams(spool=True)
    if spool:       # the requests' keys as this run rendered them, read instead of rendering
        made = streams.of(m)
        spooled = streams.spooled(m, made.rendered.content_hash)
        assert spooled is not None
    arrived = [(key, wire) for key, wire in zip(KEYS, wires) if key != "row.3"]
    random.Random(1).shuffle(arrived)
    results = d / "results.jsonl"
    results.write_text("".join(json.dumps({"custom_id": wire, "result": {
        "type": "succeeded", "message": {"content": [{"type": "text", "text": f"to {key}"}],
                                         "stop_reason": "end_turn",
                                         "usage": {"input_tokens": 1, "output_tokens": 2}}}})
        + "\n" for key, wire in arrived))
    written = write_outputs(m, [results], d / "work", spooled=spooled)
    streams.discard()
    assert (written.succeeded, written.failed, written.unmatched) == (5, 1, 0)
    out = [json.loads(line) for line in (d / "out/c.jsonl").read_text().splitlines()]
    assert [o["key"] for o in out] == [k for k in KEYS if k != "row.3"]
    assert all(o["text"] == f"to {o['key']}" for o in out)
    [error] = [json.loads(line) for line in (d / "out/c.errors.jsonl").read_text().splitlines()]
    assert error["key"] == "row.3"
    assert (d / "out/c.csv").read_text().splitlines()[2] == "b/2 é,to b/2 é"
    assert DIALECT.key_of_wire(wires[2]) == "row.3"
