"""Outputs are byte for byte what the SQLite-indexed join wrote before the join moved to
partitioned temp files: csv and jsonl outputs, the errors file, several results files where a
later line for a key wins, results missing, results no request asked for, in order and shuffled.

The digests were taken from that implementation on these fixtures; each fixture is also checked
against a plain in-memory join (`expected_outputs`), which says what differs when a digest does.
"""

from __future__ import annotations

import csv
import io
import json
import random
from pathlib import Path
from typing import Any

import orjson
import pytest
from conftest import TICKETS_HEAD

from runner.hashing import digest, request_hash
from runner.manifest import load_directory
from runner.outputs import write_outputs
from runner.providers.gemini import results as gemini_results
from runner.providers.gemini.results import response_text, usage_of
from runner.render import Renderer
from runner.usage import Usage

JSONL_MANIFEST = TICKETS_HEAD + """\
  rows: data/tickets.jsonl
  key: "{{ row.id }}"
  vars: {tone: dry}
  request:
    systemInstruction: {parts: [{text: "Label the ticket, {{ vars.tone }}."}]}
    contents: [{role: user, parts: [{text: "{{ row.title }}: {{ row.body }} ({{ row.n }})"}]}]
    generationConfig: {temperature: 0, maxOutputTokens: 16}
  outputs:
    - path: out/tickets.jsonl
    - path: out/tickets.csv
      columns:
        key: "{{ key }}"
        index: "{{ index }}"
        title: "{{ row.title | upper }}"
        tags: "{{ row.meta.tags | join('+') }}"
        text: "{{ text }}"
        finish: "{{ finish_reason }}"
        tokens: "{{ usage.totalTokenCount }}"
        hash: "{{ request_hash }}"
        tone: "{{ vars.tone }}"
        candidates: "{{ response.candidates | length }}"
"""

ITEMS_MANIFEST = """\
apiVersion: batch-runner/v1
kind: Batch
metadata: {name: items}
spec:
  provider: gemini
  model: gemini-2.5-flash-lite
  items:
    - {sku: a1, price: 1.5, stock: 3, active: true, note: null}
    - {sku: "b 2", price: 10, stock: 0, active: false, note: "tab\\there"}
    - {sku: c3, price: 0.1, stock: -1, active: true, note: "ünïcödé, \\"quoted\\""}
    - {sku: d4, price: 2e3, stock: 7, active: true, note: "line\\nbreak"}
  key: "item-{{ row.sku }}"
  request:
    contents: [{role: user, parts: [{text: "Describe {{ row.sku }} at {{ row.price }}"}]}]
  outputs:
    - path: out/items.csv
      columns: {sku: "{{ row.sku }}", price: "{{ row.price }}", note: "{{ row.note }}",
                active: "{{ row.active }}", answer: "{{ text | trim }}"}
  errors: out/failed-items.jsonl
"""

CSV_MANIFEST = """\
apiVersion: batch-runner/v1
kind: Batch
metadata: {name: reviews}
spec:
  provider: gemini
  model: gemini-2.5-flash
  rows: data/reviews.csv
  key: "review-{{ row.id }}"
  request:
    contents: [{role: user, parts: [{text: "Sentiment of: {{ row.text }}"}]}]
  outputs:
    - path: out/reviews.jsonl
"""


def success(key: str, text: str, rng: random.Random) -> dict[str, Any]:
    parts: list[dict[str, Any]] = [{"text": text}]
    if rng.random() < 0.2:
        parts.insert(0, {"text": "thinking…", "thought": True})
    if rng.random() < 0.2:
        parts.append({"text": " — 続き"})
    prompt, out = rng.randrange(1, 500), rng.randrange(1, 50)
    usage: dict[str, Any] = {"promptTokenCount": prompt, "candidatesTokenCount": out,
                             "totalTokenCount": prompt + out}
    if rng.random() < 0.3:
        usage["thoughtsTokenCount"] = 7
    return {"key": key, "response": {"candidates": [{"content": {"parts": parts, "role": "model"},
                                                     "finishReason": rng.choice(["STOP",
                                                                                 "MAX_TOKENS"])}],
                                     "usageMetadata": usage, "modelVersion": "gemini-2.5-flash"}}


def failure(key: str, rng: random.Random) -> dict[str, Any]:
    kind = rng.randrange(4)
    if kind == 0:
        return {"key": key, "error": {"code": 13, "message": "internal", "status": "INTERNAL"}}
    if kind == 1:
        return {"key": key, "error": "quota exhausted"}
    if kind == 2:
        return {"key": key, "response": {"promptFeedback": {"blockReason": "SAFETY"}}}
    return {"key": key, "response": {"candidates": []}}


def write_lines(path: Path, lines: list[dict[str, Any] | str], rng: random.Random) -> Path:
    """Results as providers write them: json.dumps spacing, sometimes orjson's."""
    with open(path, "w", encoding="utf-8") as f:
        for line in lines:
            if isinstance(line, str):
                f.write(line)
            elif rng.random() < 0.5:
                f.write(json.dumps(line, ensure_ascii=rng.random() < 0.5) + "\n")
            else:
                f.write(orjson.dumps(line).decode() + "\n")
    return path


def tickets(directory: Path, rows: int) -> list[str]:
    (directory / "data").mkdir(parents=True)
    (directory / "m.yaml").write_text(JSONL_MANIFEST)
    rng = random.Random(rows)
    keys = []
    with open(directory / "data/tickets.jsonl", "w", encoding="utf-8") as f:
        for i in range(rows):
            key = f"T-{i:05d}" if i % 97 else f"T/{i} \"odd\"\tkey ✓"
            keys.append(key)
            f.write(json.dumps({"id": key, "title": f"ticket {i} ärger", "n": i * 1.5,
                                "body": " ".join(rng.choice(["late", "refund", "{{ x }}", "%s"])
                                                 for _ in range(5)),
                                "meta": {"tags": [f"t{i % 3}", "x"]}}) + "\n")
            if i % 250 == 0:
                f.write("\n")
    return keys


def case_two_files(directory: Path) -> list[Path]:
    """A job's results shuffled with failures, missing and stray keys, then a retry's."""
    keys = tickets(directory, 1500)
    rng = random.Random(7)
    first: list[dict[str, Any] | str] = []
    for key in keys:
        roll = rng.random()
        if roll < 0.05:
            continue                                    # never returned
        first.append(failure(key, rng) if roll < 0.2 else success(key, f"label {key}", rng))
    first += [success("stray-1", "nobody asked", rng), success("stray-2", "x", rng),
              {"key": 12, "response": {}}, {"no": "key"}, "\n", "   \n"]
    first.append(success(keys[3], "a second line for a key: the later one wins", rng))
    rng.shuffle(first)
    second: list[dict[str, Any] | str] = [success(k, f"retried {k}", rng) for k in keys[::9]]
    second += [failure(keys[10], rng), success("stray-2", "again", rng)]
    rng.shuffle(second)
    return [write_lines(directory / "r1.jsonl", first, rng),
            write_lines(directory / "r2.jsonl", second, rng)]


def case_nearly_in_order(directory: Path) -> list[Path]:
    """One file, in input order but for local swaps: the old join's streaming window."""
    keys = tickets(directory, 1200)
    rng = random.Random(8)
    lines: list[dict[str, Any] | str] = [
        failure(k, rng) if rng.random() < 0.1 else success(k, f"in order {k}", rng)
        for k in keys if rng.random() > 0.03]
    for start in range(0, len(lines), 30):
        window = lines[start:start + 30]
        rng.shuffle(window)
        lines[start:start + 30] = window
    lines.insert(500, success("stray", "x", rng))
    lines[-1] = orjson.dumps(lines[-1]).decode()        # no newline at the end of the file
    return [write_lines(directory / "r.jsonl", lines, rng)]


def case_shuffled(directory: Path) -> list[Path]:
    """One file shuffled beyond the old window of 10,000 lines: the old on-disk index."""
    keys = tickets(directory, 12_000)
    rng = random.Random(9)
    lines: list[dict[str, Any] | str] = [
        failure(k, rng) if rng.random() < 0.02 else success(k, k[::-1], rng)
        for k in keys if rng.random() > 0.01]
    lines.append(success("stray", "x", rng))
    rng.shuffle(lines)
    return [write_lines(directory / "r.jsonl", lines, rng)]


def case_items(directory: Path) -> list[Path]:
    directory.mkdir(parents=True)
    (directory / "m.yaml").write_text(ITEMS_MANIFEST)
    rng = random.Random(10)
    lines: list[dict[str, Any] | str] = [success("item-a1", "  one  ", rng),
                                         failure("item-b 2", rng),
                                         success("item-d4", "four, \"quoted\"\nand more", rng)]
    return [write_lines(directory / "r.jsonl", lines, rng)]


def case_csv_rows(directory: Path) -> list[Path]:
    (directory / "data").mkdir(parents=True)
    (directory / "m.yaml").write_text(CSV_MANIFEST)
    rng = random.Random(11)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["id", "text"])
    for i in range(300):
        w.writerow([i, f"review {i}, \"great\"\nsecond line"])
    (directory / "data/reviews.csv").write_text(buf.getvalue())
    lines: list[dict[str, Any] | str] = [success(f"review-{i}", f"s{i % 3}", rng)
                                         for i in range(300) if i % 50]
    rng.shuffle(lines)
    return [write_lines(directory / "r.jsonl", lines, rng)]


CASES = {"two-files": case_two_files, "nearly-in-order": case_nearly_in_order,
         "shuffled": case_shuffled, "items": case_items, "csv-rows": case_csv_rows}

# sha256 of each output, written by the SQLite-indexed join on these fixtures
GOLDEN: dict[str, dict[str, str]] = {
    "csv-rows": {
        "out/reviews.jsonl":
            "sha256:a934853bc58aca5927959f7eca310303c1fc2955ac9544d82265e7cca05e37e5",
        "out/reviews.errors.jsonl":
            "sha256:a3b0408803bcd129304462fa3c98b6f3a4aec9c8c83b222123ed53bb8594758a",
    },
    "items": {
        "out/items.csv":
            "sha256:97c60c56989b48ed468f28b3cc2782cdefcc703a9c0d4e4cb8c5ebe7222c56a5",
        "out/failed-items.jsonl":
            "sha256:cb1d562f53e0ba021330be581d3a71a0c17cefdf022cb77411d8e6cf4293e43c",
    },
    "nearly-in-order": {
        "out/tickets.jsonl":
            "sha256:95a28258ad375fb75442e50193c59faf355f90afd64512b9633e4f7ebaebe351",
        "out/tickets.csv":
            "sha256:eae1225375c673470dad38c249c8b5c049713867a3e34ed5b0c99d722ccd8ead",
        "out/tickets.errors.jsonl":
            "sha256:2527afb94e520dd688addcee97761e8bb5b49c55d71eefecdca7932b9648e11a",
    },
    "shuffled": {
        "out/tickets.jsonl":
            "sha256:3f711beb208448cc22fa635ff631910dd4ac1f3c0e7c574c76579f53850b0c6d",
        "out/tickets.csv":
            "sha256:9e375b0bca1d644729db7c1960ace6e777feed476c759eeb42e67f7b39545f5c",
        "out/tickets.errors.jsonl":
            "sha256:5b4bf8ef801fc62bf026e70fa5772ca8a944e2e52e9d58e4f1a7fd321979fb32",
    },
    "two-files": {
        "out/tickets.jsonl":
            "sha256:9d992e819de22e4430d311c0d66a6e36d67c9122835fa51450c54b3e7925f3b6",
        "out/tickets.csv":
            "sha256:051d994b1bb7fb7b6efa45c33d318d4fa28bbe0af8ec768deb48583f33e77525",
        "out/tickets.errors.jsonl":
            "sha256:85bc8baf7d5c8fb01d87ce3f1272f241b18050a1d37b96cb28f148743539542e",
    },
}


def expected_outputs(directory: Path, results: list[Path]) -> dict[str, bytes]:
    """The outputs by a plain join: every result held in a dict, a later line winning."""
    [m] = load_directory(directory)
    found: dict[str, dict[str, Any]] = {}
    for path in results:
        for raw in path.read_bytes().splitlines():
            if raw.strip():
                value = orjson.loads(raw)
                if isinstance(value.get("key"), str):
                    found[value["key"]] = value
    renderer = Renderer(m)
    texts = {o.rel: io.StringIO(newline="") for o in m.declared_paths()}
    writers = {o.rel: csv.writer(texts[o.rel], lineterminator="\n") for o in m.outputs
               if o.format == "csv"}
    for o in m.outputs:
        if o.format == "csv":
            writers[o.rel].writerow([name for name, _ in o.columns])
    for req in renderer.requests():
        result = found.get(req.key)
        rhash = request_hash(m.provider, m.model, req.request_bytes)
        response = (result or {}).get("response")
        text, finish = response_text(response) if isinstance(response, dict) else (None, None)
        if result is None or "error" in result or text is None:
            texts[m.errors.rel].write(orjson.dumps(
                {"key": req.key, "request_hash": rhash,
                 "error": gemini_results._error_of(result)}).decode() + "\n")
            continue
        assert isinstance(response, dict)
        record = {"key": req.key, "text": text, "finish_reason": finish,
                  "usage": response.get("usageMetadata", {}), "request_hash": rhash,
                  "response": response}
        ctx = {"key": req.key, "index": req.index, "row": req.row.data, "vars": m.vars,
               "text": text, "finish_reason": finish, "usage": record["usage"],
               "request_hash": rhash, "response": response}
        for o, columns in zip(m.outputs, renderer.columns):
            if o.format == "csv":
                writers[o.rel].writerow([renderer.render_column(c, ctx, req.row) for c in columns])
            else:
                texts[o.rel].write(orjson.dumps(record).decode() + "\n")
    return {rel: text.getvalue().encode() for rel, text in texts.items()}


@pytest.mark.parametrize("case", sorted(CASES))
def test_outputs_are_the_bytes_the_old_join_wrote(tmp_path: Path, case: str) -> None:
    d = tmp_path / case
    results = CASES[case](d)
    [m] = load_directory(d)
    written = write_outputs(m, results, d / ".work")
    got = {o.rel: o.path.read_bytes() for o in m.declared_paths()}
    assert got == expected_outputs(d, results)
    assert {rel: digest(data) for rel, data in got.items()} == GOLDEN[case]
    assert written.outputs == GOLDEN[case]
    assert list((d / ".work").glob("*")) == []         # temp files removed


def test_counts_and_usage(tmp_path: Path) -> None:
    d = tmp_path / "two-files"
    results = case_two_files(d)
    [m] = load_directory(d)
    written = write_outputs(m, results, d / ".work")
    lines = [orjson.loads(x) for x in (d / "out/tickets.jsonl").read_bytes().splitlines()]
    errors = (d / "out/tickets.errors.jsonl").read_bytes().splitlines()
    assert (written.succeeded, written.failed) == (len(lines), len(errors))
    assert written.succeeded + written.failed == 1500
    assert written.unmatched == 2                       # stray-1 and stray-2, counted once each
    total = Usage()
    for line in lines:
        total += usage_of(line["usage"])
    assert written.usage == total
