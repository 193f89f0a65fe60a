"""runner.aligned against inputs chosen to make it differ from the join by hash: what it
gives must be the line the join by hash takes (the last success the packs hold for the
hash, read in the order given: runner.reuse.extract), or None."""

from __future__ import annotations

import hashlib
import itertools
import json
from pathlib import Path

import pytest
from conftest import ROWS_MANIFEST, write_manifest, write_rows
from test_aligned import answered, keys_file, packs_of, rhash, run, stored
from test_join_cores import Kept

from runner import aligned
from runner.aligned import Reused, align
from runner.join import Spooled
from runner.manifest import load_directory
from runner.outputs import write_outputs
from runner.reuse import extract
from runner.store import Store, open_store
from runner.store.pack import CODEC_ZSTD, ENTRY, OK, encode_head
from runner.store.writer import _seal


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return open_store(tmp_path / "store")


def by_hash(store: Store, packs: list[str], tmp_path: Path) -> dict[str, bytes]:
    """The line the join by hash takes for each hash: the last success extracted."""
    path = tmp_path / "extracted"
    extract(store, packs, path, successes=True)
    lines: dict[str, bytes] = {}
    with open(path, "rb") as f:
        for record in f:
            request, line = record.split(b"\t", 1)
            lines[request.decode()] = line
    return lines


def hash_with_top_nibble(nibble: int) -> str:
    for i in itertools.count():
        digest = hashlib.sha256(b"nibble %d" % i).hexdigest()
        if int(digest[0], 16) == nibble:
            return "sha256:" + digest
    raise AssertionError


def hand_made_pack(store: Store, lines: list[tuple[str, bytes]]) -> str:
    """A pack whose index lists its entries in the order given (PackBuilder sorts them by
    request hash), its lines as given (PackBuilder refuses a newline in one): a faulty
    writer's. Its name still vouches for every byte."""
    raw = bytearray()
    index = bytearray()
    for request, line in lines:
        index += ENTRY.pack(bytes.fromhex(request[7:]), 0, len(raw), len(line), OK)
        raw += line + b"\n"
    sealed, length, digest = _seal(bytes(raw))
    name, head = encode_head(CODEC_ZSTD, [(len(sealed), length, digest)], bytes(index))
    store.backend.write(f"packs/{name.split(':')[1]}.pack", head + sealed)
    return name


def test_a_pack_whose_index_is_out_of_order_hides_no_success_another_pack_holds(
        tmp_path: Path, store: Store) -> None:
    """Pack A lists H (top nibble 5) before Y (top nibble 1); pack B holds H too, with
    another line. Sliced a sixteenth at a time by bisection, A's H lands among the first
    sixteenth's keys and B's among the sixth's: the check that no two packs hold a success
    for one hash missed it, and the walk took the line of the pack whose first lines hold H,
    where the join by hash takes the last pack's."""
    h, y = hash_with_top_nibble(5), hash_with_top_nibble(1)
    a = hand_made_pack(store, [(h, b'{"key": "a", "n": 1}'), (y, b'{"key": "y", "n": 2}')])
    with store.writer() as w:
        w.add(h, b'{"key": "b", "n": 3}', True)
    packs = sorted([a, *w.packs])
    want = by_hash(store, packs, tmp_path)
    keys = tmp_path / "keys"
    keys.write_bytes(b'"r0"\t' + h.encode() + b'\n"r1"\t' + y.encode() + b"\n")

    join = align(store, packs, "gemini", keys, [], tmp_path / "aligned", "sha256:c")
    got = None if join is None else {request: line for _, _, request, line, _ in join}
    assert got is None or got == {h: want[h], y: want[y]}


def test_a_pack_starting_with_failures_sent_again_is_walked(
        tmp_path: Path, store: Store) -> None:
    """Rows 0 to 15 failed when the pack was written (a quota hit at the start), so they
    are sent again and their jobs answer them; the rest are reused. The pack is found by
    its first lines: its first successes, not its first lines of any kind (failures no
    request takes from the store), or no request finds it and the batch is joined by hash."""
    packs = packs_of(store, [list(range(40))], frozenset(range(16)))
    requests = [(f"r{i}", 1000 + i if i < 16 else i) for i in range(40)]
    got = run(tmp_path, store, packs, requests,
              [answered(f"r{i}", 1000 + i) for i in range(16)])
    assert got is not None
    assert [line for *_, line, _ in got] == [
        answered(f"r{i}", 1000 + i) + b"\n" if i < 16 else stored(i) + b"\n"
        for i in range(40)]


def test_a_failure_at_one_packs_start_does_not_hide_the_success_at_anothers(
        tmp_path: Path, store: Store) -> None:
    """Request 3 failed in the pack of rows 0 to 19 and succeeded in a follow-up's pack of
    its own, named after it: the request finds the pack that holds its success."""
    with store.writer(block_bytes=300) as w:
        for i in range(20):
            w.add(rhash(i), stored(i), i != 3)
    [first] = w.packs
    for attempt in itertools.count():       # a follow-up's pack named after the first
        with store.writer() as w:
            w.add(rhash(3), stored(3)[:-1] + b', "attempt": %d}' % attempt, True)
        [follow_up] = w.packs
        if follow_up > first:
            break
    packs = [first, follow_up]
    want = by_hash(store, packs, tmp_path)
    got = run(tmp_path, store, packs, [(f"r{i}", i) for i in range(20)], [])
    assert got is not None and [line for *_, line, _ in got] == [want[rhash(i)]
                                                              for i in range(20)]


MANIFEST = ROWS_MANIFEST.replace(
    '    - path: out/big.csv\n      columns: {n: "{{ row.n }}", answer: "{{ text }}"}\n', "")


def gemini(key: str, i: int) -> bytes:
    return json.dumps({"key": key, "response": {"candidates": [{"content": {"parts": [
        {"text": f"answer {i}"}]}, "finishReason": "STOP"}]}}).encode()


def both_ways(tmp_path: Path, store: Store, packs: list[str], rows: int,
              monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """write_outputs of `rows` requests reused from `packs`, walked and joined by hash: the
    Written, the files and the lines kept, or the exception."""
    d = tmp_path / "p"
    write_manifest(d, MANIFEST)
    write_rows(d, rows, "x")
    [m] = load_directory(d)
    keys = keys_file(tmp_path / "keys", [(f"r{i}", i) for i in range(rows)])
    got: list[object] = []
    for results_bytes in (aligned.RESULTS_BYTES, -1):
        monkeypatch.setattr(aligned, "RESULTS_BYTES", results_bytes)

        def lines(path: Path) -> Path:
            extract(store, packs, path, successes=True)
            return path

        kept = Kept()
        try:
            written = write_outputs(m, [], tmp_path / "work", spooled=Spooled(keys, "sha256:c"),
                                    keep=kept, reused=Reused(lines, store, tuple(packs)))
            got.append((written, {o.rel: o.path.read_bytes() for o in m.declared_paths()},
                        kept.lines))
        except Exception as e:  # noqa: BLE001 - what is raised is compared
            got.append((type(e), str(e)))
    return got


@pytest.mark.parametrize("line", [b"", gemini("r1", 1) + b"\n" + gemini("r2", 99)],
                         ids=["empty", "two-lines"])
def test_a_stored_line_empty_or_of_two_lines_is_left_to_the_join_by_hash(
        tmp_path: Path, store: Store, monkeypatch: pytest.MonkeyPatch, line: bytes) -> None:
    """A pack (of a writer other than PackBuilder, which refuses a newline) holds an empty
    line, or a line with a newline in it, for request 1. The join by hash takes an empty
    line as none (request 1 failed) and stops at a line of two (a ValueError); the walk
    wrote it into the aligned file as it came, then read b"\\n" as a result (a
    JSONDecodeError), or the line of two as two lines: request 2 took the second (another
    answer) and request 3 request 2's line, written without a word."""
    requests = [(rhash(i), gemini(f"r{i}", i) if i != 1 else line) for i in range(4)]
    packs = [hand_made_pack(store, sorted(requests, key=lambda r: r[0]))]
    walked, by_hash_ = both_ways(tmp_path, store, packs, 4, monkeypatch)
    assert walked == by_hash_
