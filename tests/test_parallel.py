"""A large JSONL rows file rendered across cores: the same bytes, hash, counts and errors as in
one process. The threshold and block size are shrunk so that a 1.3 MB file takes the path."""

from __future__ import annotations

import io
import json
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from conftest import write_manifest

from runner import parallel
from runner.blocks import Block, jsonl_blocks
from runner.desired import Rendered, render_into
from runner.errors import DataError, TemplateError
from runner.keyset import KeySet
from runner.manifest import load_directory
from runner.parallel import Parallel
from runner.render import Renderer
from runner.sources import read_rows

ONE = Parallel(workers=1)
CORES = Parallel(min_bytes=0, block_bytes=32 << 10, workers=2)
ROWS = 12_000

MANIFEST = """\
apiVersion: batch-runner/v1
kind: Batch
metadata: {name: big}
spec:
  provider: gemini
  model: gemini-2.5-flash
  rows: data/rows.jsonl
  key: "{{ row.id }}"
  request:
    contents:
      - role: user
        parts:
          - {text: "#{{ index }} {{ row.body }}"}
          - {text: "{% if row.n % 1000 == 7 %}{% include 'prompts/rare.j2' %}{% endif %}"}
  outputs:
    - path: out/big.jsonl
"""


def row(n: int, **extra: Any) -> str:
    return json.dumps({"id": f"k{n}", "n": n, "body": f"ticket {n} " + "lorem ipsum " * 6,
                       **extra})


def project(tmp_path: Path, lines: list[str]) -> Path:
    write_manifest(tmp_path, MANIFEST)
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts/rare.j2").write_text("rare row {{ row.n }}")
    (tmp_path / "data").mkdir()
    (tmp_path / "data/rows.jsonl").write_text("\n".join(lines) + "\n")
    return tmp_path


def rows_with_blanks() -> list[str]:
    """ROWS rows; some blocks hold blank and whitespace-only lines, which are no rows."""
    lines = []
    for n in range(ROWS):
        if n % 3001 == 5:
            lines += ["", "   \t", "\r"]
        lines.append(row(n))
    return lines


def render(tmp_path: Path, how: Parallel, only: set[str] | None = None
           ) -> tuple[Rendered, bytes]:
    [m] = load_directory(tmp_path)
    sink = io.BytesIO()
    return render_into(m, sink, only=only, parallel=how), sink.getvalue()


@pytest.fixture(scope="module", autouse=True)
def fork_server(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Starts the fork server once, so that each test's workers start in milliseconds and
    render most blocks (this process renders blocks itself until they have started)."""
    render(project(tmp_path_factory.mktemp("warm"), [row(n) for n in range(1000)]), CORES)


class Here:
    """What this process rendered itself: blocks while the workers started, and runs to the
    end of the file (the single-process path, or what follows a block a worker failed on)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.blocks: list[Block] = []
        self.in_process: list[object] = []
        block, in_process = parallel._render_block, parallel._in_process

        def spy_block(*args: Any) -> Any:
            self.blocks.append(args[2])
            return block(*args)

        def spy_in_process(*args: Any) -> Any:
            self.in_process.append(args[6:])     # where it starts
            return in_process(*args)
        monkeypatch.setattr(parallel, "_render_block", spy_block)
        monkeypatch.setattr(parallel, "_in_process", spy_in_process)


@pytest.fixture
def here(monkeypatch: pytest.MonkeyPatch) -> Here:
    return Here(monkeypatch)


def test_across_cores_gives_the_same_bytes_hash_and_templates(tmp_path: Path,
                                                              here: Here) -> None:
    project(tmp_path, rows_with_blanks())
    single, single_bytes = render(tmp_path, ONE)
    assert here.in_process and single.requests == ROWS    # one process: from the start
    here.in_process.clear()
    cores, cores_bytes = render(tmp_path, CORES)
    assert not here.in_process, "a worker failed and this process rendered in its place"
    blocks = list(jsonl_blocks(tmp_path / "data/rows.jsonl", CORES.block_bytes))
    # this process renders blocks too while the workers start; how many depends on the
    # machine's load, so only that the workers rendered some is asserted
    assert len(here.blocks) < len(blocks), "the workers rendered no block"
    assert cores_bytes == single_bytes
    assert cores == single
    assert list(cores.templates) == ["prompts/rare.j2"]
    for i, line in enumerate(cores_bytes.splitlines()):   # index counts rows, not lines
        record = json.loads(line)
        text = record["request"]["contents"][0]["parts"][0]["text"]
        assert record["key"] == f"k{i}" and text.startswith(f"#{i} ticket {i} ")


def test_only_keeps_the_requested_keys(tmp_path: Path, here: Here) -> None:
    project(tmp_path, rows_with_blanks())
    only = {f"k{n}" for n in (3, 4_000, 11_999)}
    single, single_bytes = render(tmp_path, ONE, only)
    here.in_process.clear()
    cores, cores_bytes = render(tmp_path, CORES, only)
    assert not here.in_process
    assert (cores, cores_bytes) == (single, single_bytes)
    assert cores.requests == 3


def test_duplicate_key_across_blocks_names_both_lines(tmp_path: Path) -> None:
    lines = rows_with_blanks()
    lines[-1] = row(ROWS - 1, id="k12")
    project(tmp_path, lines)
    total = len(lines)
    message = (rf"duplicate key 'k12' at data/rows.jsonl line {total} \(first at "
               r"data/rows.jsonl line 16\)")
    for how in (ONE, CORES):
        with pytest.raises(DataError, match=message):
            render(tmp_path, how)


def test_error_in_a_later_block_names_its_line(tmp_path: Path, here: Here) -> None:
    lines = rows_with_blanks()
    lines[9_000] = json.dumps({"id": "x", "n": 1})     # no body
    project(tmp_path, lines)
    errors = []
    for how in (ONE, CORES):
        here.in_process.clear()
        here.blocks.clear()
        with pytest.raises(TemplateError) as e:
            render(tmp_path, how)
        errors.append(str(e.value))
    # from a worker, then rendered again here to name its line; or, the workers slow to start
    # under load, rendered here meanwhile (as test_bad_json_in_a_later_block_names_its_line)
    assert here.in_process or any(b.first_line <= 9_001 < b.first_line + b.lines
                                  for b in here.blocks)
    assert errors[0] == errors[1]
    assert "data/rows.jsonl line 9001: undefined variable in " \
           "spec.request.contents[0].parts[0].text" in errors[0]
    assert errors[0].startswith(str(tmp_path / "m.yaml") + ":13: ")


def test_bad_json_in_a_later_block_names_its_line(tmp_path: Path, here: Here) -> None:
    lines = rows_with_blanks()
    lines[7_345] = '{"id": "x",'
    project(tmp_path, lines)
    errors = []
    for how in (ONE, CORES):
        here.in_process.clear()
        here.blocks.clear()
        with pytest.raises(DataError, match=r"rows\.jsonl:7346: invalid JSON") as e:
            render(tmp_path, how)
        errors.append(str(e.value))
    # across cores, the bad block failed in a worker and was rendered again here to name its
    # line; or, the workers slow to start (the machine's load decides), this process
    # rendered it itself meanwhile
    assert here.in_process or any(b.first_line <= 7_346 < b.first_line + b.lines
                                  for b in here.blocks)
    assert errors[0] == errors[1]


def test_a_file_of_blank_lines_has_no_rows(tmp_path: Path) -> None:
    project(tmp_path, ["   "] * 50_000)
    with pytest.raises(DataError, match=r"spec.rows: data/rows.jsonl has no rows"):
        render(tmp_path, CORES)


ODD_FILES = [
    "\ufeff" + "".join(row(n) + "\n" for n in range(300)),                 # BOM, then rows
    "".join(row(n) + ("\r\n" if n % 2 else "\n") for n in range(300)),    # CRLF, mixed
    "\n\n" + "".join(row(n) + "\n\n \n" for n in range(300)) + row(300),  # blanks, no final \n
    row(0, body="x" * 5000) + "\n" + "".join(row(n) + "\n" for n in range(1, 300)),  # long
]


@pytest.mark.parametrize("text", ODD_FILES)
def test_block_paths_render_what_requests_gives(tmp_path: Path, text: str) -> None:
    project(tmp_path, [])
    (tmp_path / "data/rows.jsonl").write_bytes(text.encode())
    [m] = load_directory(tmp_path)
    renderer = Renderer(m)
    expected = b"".join(renderer.line(req) + b"\n" for req in renderer.requests())
    for how in (ONE, Parallel(min_bytes=0, block_bytes=1024, workers=2)):
        assert render(tmp_path, how)[1] == expected


@pytest.mark.parametrize("text", ODD_FILES)
def test_blocks_count_lines_and_rows(tmp_path: Path, text: str) -> None:
    path = tmp_path / "r.jsonl"
    path.write_bytes(text.encode())
    rows = list(read_rows(path))
    blocks = list(jsonl_blocks(path, 1024))
    assert len(blocks) > 1 and blocks[0].start == 0
    assert sum(b.rows for b in blocks) == len(rows)
    for before, after in pairwise(blocks):
        assert after.first_row == before.first_row + before.rows
        assert after.first_line == before.first_line + before.lines
    data = path.read_bytes()
    lines = [(r.index, int(r.where.split()[1])) for r in rows]
    for b in blocks:
        assert b.start == 0 or data[b.start - 1:b.start] == b"\n"
        inside = [i for i, line in lines if b.first_line <= line < b.first_line + b.lines]
        assert len(inside) == b.rows and inside[:1] in ([], [b.first_row])


def test_key_set_finds_a_repeat_among_many() -> None:
    keys = KeySet()
    keys.update(f"k{n}" for n in range(100_000))
    assert keys.repeated() == set()
    keys.add("k500")
    assert keys.repeated() == {hash("k500")}


def test_lookups_across_cores_take_aside_what_one_process_does(tmp_path: Path,
                                                                here: Here) -> None:
    """The store's lookups run in the render workers (runner.held): the same requests taken
    aside, in the same shards, the same packs noted, as when this process looks them up."""
    from array import array

    from runner.desired import render_shards
    from runner.hashing import request_hash
    from runner.reuse import Reusable, prefix_of

    project(tmp_path, rows_with_blanks())
    [m] = load_directory(tmp_path)
    renderer = Renderer(m)
    hashes = [request_hash(m.provider, m.model, renderer.framing.split(renderer.line(r))[1])
              for r in renderer.requests()]
    # runs of held and sent requests, of every length, in two packs
    held = [h for n, h in enumerate(hashes) if (n // 7) % 3 or n % 11 == 0]
    index = Reusable(["pack-a", "pack-b"],
                     [array("Q", sorted(prefix_of(h) for h in held[0::2])),
                      array("Q", sorted(prefix_of(h) for h in held[1::2]))])
    single = render_shards(m, parallel=ONE, reuse=index)
    assert here.in_process and not here.blocks
    here.in_process.clear()
    across = render_shards(m, parallel=CORES, reuse=index)
    assert not here.in_process, "a worker failed and this process rendered in its place"
    blocks = list(jsonl_blocks(tmp_path / "data/rows.jsonl", CORES.block_bytes))
    assert len(here.blocks) < len(blocks), "the workers rendered no block"
    assert single.reused == across.reused == len(held)
    assert single.reuse_packs == across.reuse_packs == ("pack-a", "pack-b")
    assert single.content_hash == across.content_hash
    assert single.shards == across.shards
    assert sum(s.requests for s in across.shards) == ROWS - len(held)
