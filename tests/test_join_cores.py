"""The join across cores (results spilled by a worker, JSONL lines formatted range by range by
workers: runner.join, runner.joinlines) writes the bytes one process writes, keeps the same lines
in the same order, counts the same, and fails the same way."""

from __future__ import annotations

import json
import multiprocessing
import os
import random
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest
from conftest import ROWS_MANIFEST, write_manifest, write_rows

from runner import join, joinapart, joinlines, rejoin
from runner.aligned import Reused
from runner.errors import ProviderError, StoreIncomplete
from runner.hashing import request_hash
from runner.join import Joined
from runner.manifest import load_directory
from runner.outputs import Written, write_outputs
from runner.providers.registry import dialect_of
from runner.render import Renderer
from runner.store.pack import OK, Head, head_length, open_block

# JSONL outputs only, the kind the join across cores writes
MANIFEST = ROWS_MANIFEST.replace(
    '    - path: out/big.csv\n      columns: {n: "{{ row.n }}", answer: "{{ text }}"}\n',
    "    - path: out/copy.jsonl\n")

ROWS = 3000


def result(key: str, i: int) -> dict[str, object]:
    if i % 97 == 0:
        return {"key": key, "error": {"code": 13, "message": f"failed {i}"}}
    if i % 89 == 0:
        return {"key": key, "response": {"promptFeedback": {"blockReason": "SAFETY"}}}
    return {"key": key, "response": {"candidates": [{"content": {"parts": [
        {"text": f"answer é {i}"}]}, "finishReason": "STOP"}],
        "usageMetadata": {"promptTokenCount": i, "candidatesTokenCount": 2}}}


@pytest.fixture
def project(tmp_path: Path) -> tuple[Path, list[Path]]:
    d = tmp_path / "p"
    write_manifest(d, MANIFEST)
    write_rows(d, ROWS, "lorem ipsum")
    keys = [f"r{i}" for i in range(ROWS) if i != 1234] + ["stray", "r5"]    # one lost
    random.Random(7).shuffle(keys)
    first = d / "a.jsonl"
    first.write_text("".join(json.dumps(result(k, int(k[1:]) if k[1:].isdigit() else 0))
                             + "\n" for k in keys))
    second = d / "b.jsonl"      # a follow-up: a later file wins
    second.write_text("".join(json.dumps(result(f"r{i}", i + 1)) + "\n"
                              for i in range(0, ROWS, 97)))
    return d, [first, second]


def run(d: Path, results: list[Path], cores: bool, monkeypatch: pytest.MonkeyPatch,
        stored: int | None = None, reused: Path | None = None
        ) -> tuple[Written, dict[str, bytes], list[object]]:
    monkeypatch.setattr(join, "BUCKET_BYTES", 20_000)       # several buckets and ranges
    monkeypatch.setattr(joinapart, "APART_BYTES", 0 if cores else 1 << 60)
    monkeypatch.setattr(joinlines, "MIN_REQUESTS", 0 if cores else 1 << 60)
    monkeypatch.setattr(joinlines, "PACK_BYTES", 100_000)     # several groups of ranges
    monkeypatch.setattr(joinlines, "_cpus", lambda: 2)
    monkeypatch.setattr(joinapart, "_cpus", lambda: 2)
    [m] = load_directory(d)
    kept = Kept()
    written = write_outputs(m, results, d / "work", stored=stored,
                            reused=None if reused is None else Reused(lambda _: reused),
                            keep=None if stored is not None else kept)
    assert list((d / "work").iterdir()) == []       # the temp files are removed
    assert (kept.packs > 2) == (cores and stored is None)     # packs of a few groups
    assert reused is None or reused.exists()
    return written, {o.rel: o.path.read_bytes() for o in m.declared_paths()}, kept.lines


class Kept:
    """The lines given to the store, as `add` takes them, whichever way they came."""

    def __init__(self) -> None:
        self.lines: list[object] = []
        self.packs = 0

    def add(self, request_hash: str, line: bytes, ok: bool) -> None:
        self.lines.append((request_hash, bytes(line), ok))

    def mark(self) -> int:
        return len(self.lines)

    def rewind(self, mark: int) -> None:
        del self.lines[mark:]

    def add_pack(self, name: str, data: bytes) -> None:
        """A pack's lines, in the order they were added (by their place in its blocks)."""
        self.packs += 1
        head = Head(name, data[:head_length(data)])
        raws = [open_block(b, data[b.offset:b.offset + b.stored], head.codec)
                for b in head.blocks]
        for request, block, offset, length, status in sorted(
                head.entries(), key=lambda e: (e[1], e[2])):
            self.add("sha256:" + request.hex(), raws[block][offset:offset + length],
                     status == OK)


def test_across_cores_writes_and_keeps_what_one_process_does(
        project: tuple[Path, list[Path]], monkeypatch: pytest.MonkeyPatch) -> None:
    d, results = project
    one = run(d, results, False, monkeypatch)
    many = run(d, results, True, monkeypatch)
    assert many == one
    written, files, kept = many
    assert (written.succeeded + written.failed, written.unmatched, written.repeated) == \
        (ROWS, 1, 1)
    assert written.failed > 1 and len(kept) == ROWS - 1            # one request lost
    assert files["out/big.jsonl"] == files["out/copy.jsonl"]


def test_a_bad_line_fails_with_its_place_across_cores(
        project: tuple[Path, list[Path]], monkeypatch: pytest.MonkeyPatch) -> None:
    d, results = project
    with open(results[1], "a") as f:
        f.write("not json\n")
    with pytest.raises(ProviderError, match=r"b.jsonl:32: a results line is not valid JSON"):
        run(d, results, True, monkeypatch)
    assert not (d / "out").exists() or list((d / "out").iterdir()) == []


def test_stored_lines_across_cores(project: tuple[Path, list[Path]],
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    d, _ = project
    [m] = load_directory(d)
    renderer = Renderer(m)
    stored = d / "stored.tsv"
    with open(stored, "wb") as f:
        for i, req in enumerate(renderer.requests()):
            if i != 10:
                line = renderer.line(req)
                body = line.split(b',"request":', 1)[1][:-1]
                rhash = request_hash(m.provider, m.model, body)
                f.write(rhash.encode() + b"\t" + json.dumps(result(req.key, i)).encode()
                        + b"\n")
    one = run(d, [stored], False, monkeypatch, stored=1)
    assert run(d, [stored], True, monkeypatch, stored=1) == one
    with pytest.raises(StoreIncomplete):
        run(d, [stored], True, monkeypatch, stored=0)


@pytest.mark.parametrize("sizes", [[0, 5000], [3000, 1, 2999], [1], [6001], [2000, 2000, 2000]])
def test_halves_cut_the_results_at_a_line_end_once(tmp_path: Path, sizes: list[int]) -> None:
    """The two workers' halves of the results hold every line once, in order, whole."""
    paths = []
    for number, size in enumerate(sizes):
        path = tmp_path / f"{number}.jsonl"
        lines = [b"x" * (7 + i % 90) + b"\n" for i in range(size // 50)]
        path.write_bytes(b"".join(lines) + (b"tail" if size % 2 else b""))
        paths.append(path)
    halves = joinapart.halves(paths)

    def read(piece: joinapart.Piece) -> bytes:
        data = piece.path.read_bytes()
        return data[piece.start:piece.end]

    cut = [read(p) for p in halves[0]], [read(p) for p in halves[1]]
    joined = b"".join(b"".join(half) for half in cut)
    assert joined == b"".join(p.read_bytes() for p in paths)
    last = halves[0][-1] if halves[0] else None
    if last is not None and last.end is not None:      # cut at a line's end, or the file's
        assert cut[0][-1].endswith(b"\n") or last.end == last.path.stat().st_size
    whole = sum(p.stat().st_size for p in paths)
    assert abs(sum(map(len, cut[0])) - whole / 2) <= 100 or whole < 200


def _reuse_files(d: Path) -> tuple[Path, Path]:
    """A job's results for a third of the requests, by key, and the store's lines for the
    rest but one, by request hash (under other keys)."""
    [m] = load_directory(d)
    renderer = Renderer(m)
    sent = d / "sent.jsonl"
    stored = d / "stored.tsv"
    with open(sent, "w") as job, open(stored, "wb") as store:
        for i, req in enumerate(renderer.requests()):
            body = renderer.line(req).split(b',"request":', 1)[1][:-1]
            rhash = request_hash(m.provider, m.model, body)
            if i % 3 == 0:      # sent: the job answered it
                job.write(json.dumps(result(req.key, i + 7)) + "\n")
            elif i != 11:       # reused: the store holds a success under another key
                store.write(rhash.encode() + b"\t" + json.dumps(result(f"old-{i}", i)).encode()
                            + b"\n")
    return sent, stored


def test_a_reuse_join_across_cores_writes_what_one_process_does(
        project: tuple[Path, list[Path]], monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch that reused (runner.rejoin): some requests answered by its job's results, by
    key, the rest by the store's lines, by request hash, both joins shared by two workers."""
    d, _ = project
    sent, stored = _reuse_files(d)
    one = run(d, [sent], False, monkeypatch, reused=stored)
    many = run(d, [sent], True, monkeypatch, reused=stored)
    assert many == one
    written, files, _ = many
    assert written.succeeded + written.failed == ROWS and written.unmatched == 0
    first = files["out/big.jsonl"].splitlines()[0].decode()
    assert '"text":"answer é 7"' in first          # the job's answer, not the store's


class _LosingPool:
    """The workers' steps run here, the second share of each join dying after its first
    bucket, as a worker killed (out of memory, a full disk) would."""

    def run(self, work: Any, calls: list[tuple[Any, ...]]) -> list[Future[Any]]:
        futures: list[Future[Any]] = []
        for number, args in enumerate(calls):
            future: Future[Any] = Future()
            try:
                if work in (join.join_buckets, rejoin._join_routed) and number == 1:
                    work(args[0][:1], *args[1:])
                    raise RuntimeError("worker lost")
                future.set_result(work(*args))
            except Exception as e:  # noqa: BLE001 - as the pool's future holds it
                future.set_exception(e)
            futures.append(future)
        return futures

    def close(self) -> None:
        pass


def test_a_join_whose_worker_dies_is_done_again_here(
        project: tuple[Path, list[Path]], monkeypatch: pytest.MonkeyPatch) -> None:
    """A share whose worker died halfway is joined again in this process, from the bucket
    files, which the workers leave for it: the outputs are one process's."""
    d, results = project
    one = run(d, results, False, monkeypatch)
    monkeypatch.setattr(joinapart, "open_pool", _LosingPool)
    assert run(d, results, True, monkeypatch) == one
    reused = _reuse_files(d)
    monkeypatch.undo()
    alone = run(d, [reused[0]], False, monkeypatch, reused=reused[1])
    monkeypatch.setattr(joinapart, "open_pool", _LosingPool)
    assert run(d, [reused[0]], True, monkeypatch, reused=reused[1]) == alone


def test_a_worker_that_cannot_start_leaves_the_step_here(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Workers start on the first call given them: one that cannot (too many open files)
    makes a failed step, run again here, not a traceback."""
    pool = joinapart.Pool()

    def refuse(*args: object) -> object:
        raise OSError(24, "Too many open files")

    monkeypatch.setattr(pool._pool, "submit", refuse)
    try:
        assert not joinapart.done(pool.run(len, [("ab",)]))
        assert joinapart.each(pool, len, [("ab",), ("abc",)]) == [2, 3]
    finally:
        pool.close()


class _Requests:
    """A part of the join (joinlines.Part): requests `start` to `start + count`, each with
    its result line; one that `fails` in a worker process ("raise" or "die"), not here."""

    def __init__(self, start: int, count: int, fails: str = "") -> None:
        self.start, self.count, self.fails = start, count, fails

    def size(self) -> int:
        return 1

    def joined(self) -> list[Joined]:
        if self.fails and multiprocessing.parent_process() is not None:
            if self.fails == "die":
                os._exit(3)
            raise RuntimeError("in a worker only")
        return [(i, json.dumps(f"r{i}").encode(), f"sha256:{i:064x}",
                 json.dumps(result(f"r{i}", i)).encode() + b"\n", None)
                for i in range(self.start, self.start + self.count)]

    def remove(self) -> None:
        pass


@pytest.mark.parametrize("fails", ["", "raise", "die"])
@pytest.mark.parametrize("keeps", [True, False])
def test_slots_written_over_give_only_their_groups_lines(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fails: str, keeps: bool) -> None:
    """Each group writes over the slot files of the group workers + 1 before it: a shorter
    group leaves that group's tail in them, which no output gets, and a group formatted again
    here (its worker raised, or died and broke the pool) writes its slot over as well. The
    outputs, counts and kept lines are one process's."""
    d = tmp_path / "p"
    write_manifest(d, MANIFEST)
    write_rows(d, 10, "x")
    [m] = load_directory(d)
    monkeypatch.setattr(joinlines, "PACK_BYTES", 1)     # a group a part
    monkeypatch.setattr(joinlines, "_cpus", lambda: 2)  # 3 slots
    parts, start = [], 0
    for number, count in enumerate([400, 300, 350, 20, 5, 3, 200, 1, 0, 7, 2, 1, 1, 90, 2]):
        parts.append(_Requests(start, count, fails if number in (4, 9) else ""))
        start += count
    one: tuple[bytearray, bytearray, Kept] = (bytearray(), bytearray(), Kept())
    counts = joinlines.format_lines(
        dialect_of(m), [j for p in parts for j in _Requests(p.start, p.count).joined()],
        one[0].extend, one[1].extend, one[2] if keeps else None)
    many: tuple[bytearray, bytearray, Kept] = (bytearray(), bytearray(), Kept())
    (tmp_path / "w").mkdir()
    assert joinlines.format_ranges(parts, m, many[0].extend, many[1].extend,
                                   many[2] if keeps else None, tmp_path / "w") == counts
    assert many[:2] == one[:2] and one[1] and one[0]
    assert sorted(map(repr, many[2].lines)) == sorted(map(repr, one[2].lines))
