"""Results in input order (or nearly: out of order only within a chunk) are joined without
temp files (runner.inorder), to the bytes the join by key writes; anything else is left to
the join by key, which writes what it always did."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
from conftest import write_manifest, write_rows
from test_join_cores import MANIFEST, Kept, result

from runner import inorder, joinapart, joinlines, outputs
from runner.hashing import request_hash
from runner.join import Join, Spooled
from runner.manifest import load_directory
from runner.outputs import Written, write_outputs
from runner.render import Renderer

ROWS = 2000


@pytest.fixture
def project(tmp_path: Path) -> tuple[Path, list[str]]:
    d = tmp_path / "p"
    write_manifest(d, MANIFEST)
    write_rows(d, ROWS, "lorem ipsum")
    [m] = load_directory(d)
    renderer = Renderer(m)
    keys = []
    with open(d / "keys", "wb") as f:
        for req in renderer.requests():
            key_json, body = renderer.framing.split(renderer.line(req))
            f.write(key_json + b"\t" + request_hash(m.provider, m.model, body).encode() + b"\n")
            keys.append(req.key)
    return d, keys


def run(d: Path, lines: list[str], ordered: bool, monkeypatch: pytest.MonkeyPatch,
        cores: bool = True, chunk_bytes: int = 50_000
        ) -> tuple[Written, dict[str, bytes], list[str], str]:
    """The outputs, the lines kept, and how they were joined: "in order", "by key", or
    "by key after trying in order"."""
    monkeypatch.setattr(inorder, "CHUNK_LINES", 300)
    monkeypatch.setattr(inorder, "CHUNK_BYTES", chunk_bytes)     # whichever comes first
    monkeypatch.setattr(inorder, "MIN_BYTES", 0 if ordered else 1 << 60)
    monkeypatch.setattr(joinlines, "MIN_REQUESTS", 0 if cores else 1 << 60)
    monkeypatch.setattr(joinlines, "PACK_BYTES", 100_000)
    monkeypatch.setattr(joinapart, "_cpus", lambda: 2)
    results = d / "results.jsonl"
    results.write_text("".join(lines))
    [m] = load_directory(d)
    tried, by_key = [], []
    chunks, join = inorder.chunks, Join

    def cut(*args: Any) -> Any:
        tried.append(got := chunks(*args))
        return got

    def joining(*args: Any, **kwargs: Any) -> Any:
        by_key.append(True)
        return join(*args, **kwargs)

    monkeypatch.setattr(inorder, "chunks", cut)
    monkeypatch.setattr(outputs, "Join", joining)
    kept = Kept()
    written = write_outputs(m, [results], d / "work", spooled=Spooled(d / "keys", "c"),
                            keep=kept)
    assert list((d / "work").iterdir()) == []
    files = {o.rel: o.path.read_bytes() for o in m.declared_paths()}
    how = "by key after trying in order" if any(tried) and by_key else \
        "by key" if by_key else "in order"
    return written, files, sorted(map(repr, kept.lines)), how


def lines_of(keys: list[str]) -> list[str]:
    return [json.dumps(result(k, int(k[1:]))) + "\n" for k in keys]


@pytest.mark.parametrize(("cores", "cut"), [(True, "lines"), (False, "lines"), (True, "bytes"),
                                           (True, "half"), (False, "half")])
def test_results_in_order_within_chunks_are_joined_without_temp_files(
        project: tuple[Path, list[str]], monkeypatch: pytest.MonkeyPatch, cores: bool,
        cut: str) -> None:
    d, keys = project
    lines = lines_of(keys)
    if cut in ("lines", "half"):    # chunks of 300 lines, each shuffled (or its second half:
        rng = random.Random(3)      # its lines are taken in order, then by key)
        for start in range(0, ROWS, 300):
            first = start + (150 if cut == "half" else 0)
            window = lines[first:start + 300]
            rng.shuffle(window)
            lines[first:start + 300] = window
    lines[-1] = lines[-1].rstrip("\n")      # the last line without its newline
    chunk_bytes = 20_000 if cut == "bytes" else 1 << 30
    written, files, kept, how = run(d, lines, False, monkeypatch, cores, chunk_bytes)
    assert how == "by key"
    assert run(d, lines, True, monkeypatch, cores, chunk_bytes) == \
        (written, files, kept, "in order")
    assert (written.succeeded + written.failed, written.unmatched, written.repeated) == \
        (ROWS, 0, 0) and written.failed > 1
    if cut == "bytes":
        assert len(inorder.chunks("gemini", d / "keys", d / "results.jsonl") or []) > 7


@pytest.mark.parametrize("spoil", ["across chunks", "late", "repeated", "repeats one before",
                                   "missing", "extra", "blank", "not json", "no key"])
def test_results_not_in_order_are_joined_by_key(
        project: tuple[Path, list[str]], monkeypatch: pytest.MonkeyPatch, spoil: str) -> None:
    d, keys = project
    lines = lines_of(keys)
    if spoil == "across chunks":
        lines[5], lines[1500] = lines[1500], lines[5]
    elif spoil == "late":       # found once the outputs hold the chunks before
        lines[1700], lines[1990] = lines[1990], lines[1700]
    elif spoil == "repeated":
        lines[7] = lines[8]
    elif spoil == "repeats one before":     # a line of a key taken in order already
        lines[20] = lines[3]
    elif spoil == "missing":
        del lines[100]
    elif spoil == "extra":
        lines.append(json.dumps(result("stray", 1)) + "\n")
    elif spoil == "blank":
        lines.insert(50, "\n")
    elif spoil == "not json":
        lines[9] = "not json\n"
    else:
        lines[9] = json.dumps({"response": {}}) + "\n"
    if spoil == "not json":     # the join by key says which line
        with pytest.raises(Exception, match="results.jsonl:10: a results line is not"):
            run(d, lines, True, monkeypatch)
        return
    *by_key, _ = run(d, lines, False, monkeypatch)
    *fallen_back, how = run(d, lines, True, monkeypatch)
    assert fallen_back == by_key
    # counted apart (a line too many or too few) or an empty line: not even tried
    assert how == ("by key" if spoil in ("missing", "extra", "blank") else
                   "by key after trying in order")
