"""Attacks on the kept blocks (runner.blockcache): what a render reads besides a block's bytes
and its first row's index must be in its name, or a kept block must not be read back."""

from __future__ import annotations

import json
import struct
import zlib
from array import array
from pathlib import Path

import pytest
from test_blockcache import CORES, INDEXED, kept, line, project, render

from runner.blockcache import _HEAD, BlockCache, Kept
from runner.bounds import MAX_REQUEST
from runner.desired import render_shards
from runner.errors import DataError, TemplateError
from runner.hashing import request_hash
from runner.manifest import load_directory
from runner.render import Renderer
from runner.reuse import Reusable, prefix_of

BLOCK = 64 << 10


def _mark(text: str) -> bool:
    return zlib.crc32(text.encode()) & 63 == 0


def _lead() -> list[str]:
    """Rows of about 40 KB whose blocks end exactly after their last line: past half a block,
    no line but the last hits the mark."""
    out: list[str] = []
    size = n = pad = 0
    while size < 40_000:
        text = json.dumps({"id": f"lead{n}", "n": -1 - n, "body": "x" * 180})
        if size >= BLOCK // 2 - 400 and _mark(text):
            n += 1
            continue
        out.append(text)
        size += len(text) + 1
        n += 1
    while True:
        last = json.dumps({"id": f"lead{n}", "n": -1 - n, "body": "y" * pad})
        if _mark(last):
            return out + [last]
        pad += 1


def test_a_bom_kept_on_line_one_is_not_read_back_on_another_line(tmp_path: Path) -> None:
    """A BOM is allowed on line 1 alone: the block that held it first, kept, must not be read
    back once rows put before it move it down, where it is an invalid line."""
    d = project(tmp_path, lines=["\ufeff" + line(0)] + [line(n) for n in range(1, 12_000)])
    data = (d / "data/rows.jsonl").read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")
    render(d, kept(d))
    (d / "data/rows.jsonl").write_bytes(("\n".join(_lead()) + "\n").encode() + data)
    same_error(d)


def test_a_header_and_frame_that_lie_about_their_size_are_rendered_again(
        tmp_path: Path) -> None:
    """A kept file whose header and zstd frame both claim far more than its bytes could hold
    is not read back, and asks for no memory: its block is rendered again."""
    d = project(tmp_path)
    expected = render(d, kept(d))
    for path in (d / ".runner/render/big").glob("*.block"):
        magic, name, rows, _, _, _ = _HEAD.unpack(path.read_bytes()[:_HEAD.size])
        total = rows * 2 * MAX_REQUEST
        frame = struct.pack("<IBBQ", 0xFD2FB528, 0xC4, 0, total) + bytes(64)
        path.write_bytes(_HEAD.pack(magic, name, rows, total, 0, 0) + frame)
    assert render(d, kept(d)) == expected


def _edited(d: Path, at: dict[int, str]) -> None:
    lines = [at.get(n, line(n)) for n in range(12_000)]
    (d / "data/rows.jsonl").write_text("\n".join(lines) + "\n")


def test_a_key_repeated_in_a_rendered_block_of_a_kept_one_names_both_rows(
        tmp_path: Path) -> None:
    d = project(tmp_path)
    render(d, kept(d))
    _edited(d, {11_000: json.dumps({"id": "k5", "n": 5, "body": "again"})})
    assert "line 11001" in same_error(d)


def test_a_bad_row_among_kept_blocks_is_the_error_a_render_gives(tmp_path: Path) -> None:
    d = project(tmp_path)
    render(d, kept(d))
    for bad in ('{"id": "k9", "n": 9', '[1]', json.dumps({"n": 9, "body": "no id"})):
        _edited(d, {9_000: bad})
        same_error(d)


def test_a_state_folder_that_is_a_file_or_a_symlink_is_no_error(tmp_path: Path) -> None:
    d = project(tmp_path)
    expected = render(d, CORES)
    (d / ".runner").mkdir()
    (d / ".runner/render").write_text("not a folder")
    assert render(d, kept(d)) == expected
    (d / ".runner/render").unlink()
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "big").mkdir(parents=True)
    (elsewhere / "big/notes.txt").write_text("mine")
    (d / ".runner/render").symlink_to(elsewhere)
    assert render(d, kept(d)) == expected == render(d, kept(d))
    assert (elsewhere / "big/notes.txt").read_text() == "mine"


PROVIDERS = {
    "anthropic": """\
apiVersion: batch-runner/v1
kind: Batch
metadata: {name: big}
spec:
  provider: anthropic
  model: claude-sonnet-4-5
  rows: data/rows.jsonl
  key: "{{ row.id }} é{{ row.n % 3 }}"
  request:
    max_tokens: 10
    messages: [{role: user, content: "{{ row.body }}"}]
  outputs:
    - path: out/big.jsonl
""",
    "openai": """\
apiVersion: batch-runner/v1
kind: Batch
metadata: {name: big}
spec:
  provider: openai
  model: gpt-4o-mini
  rows: data/rows.jsonl
  key: "{{ row.id }}\\t\\"q\\""
  request:
    messages: [{role: user, content: "{{ row.body }}"}]
  outputs:
    - path: out/big.jsonl
""",
}


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
def test_kept_blocks_give_the_lookups_and_keys_of_mapped_keys(tmp_path: Path,
                                                             provider: str) -> None:
    """Keys sent as another custom_id (Anthropic) or escaped in JSON: the keys file and the
    lookups made from kept blocks' hashes are the ones a render makes."""
    d = project(tmp_path)
    (d / "m.yaml").write_text(PROVIDERS[provider])
    [m] = load_directory(d)
    renderer = Renderer(m)
    hashes = [request_hash(m.provider, m.model, renderer.framing.split(renderer.line(r))[1])
              for r in renderer.requests()]
    held = [h for n, h in enumerate(hashes) if n % 5 == 1]
    index = Reusable(["pack-a"], [array("Q", sorted(prefix_of(h) for h in held))])
    made: list[tuple[object, ...]] = []
    for how in (CORES, kept(d), kept(d)):
        r = render_shards(m, d / f"out{len(made)}", how, reuse=index)
        assert r.keys is not None
        made.append((r.content_hash, r.shards, r.reused, r.keys.read_bytes(),
                     [p.read_bytes() for p in r.paths]))
    assert made[0][2] == len(held) and made[1] == made[0] == made[2]


def test_blocks_of_blank_lines_and_blank_lines_moving_rows_down(tmp_path: Path) -> None:
    """Blocks holding no row, and blank lines put first (every line number moves, no row
    index does) under a template that reads `index`: as rendering every row gives."""
    blanks = ["", "   ", "\t"] * 40_000
    lines = [line(n) for n in range(6_000)] + blanks + [line(n) for n in range(6_000, 9_000)]
    d = project(tmp_path, INDEXED, lines)
    expected = render(d, CORES)
    assert render(d, kept(d)) == expected == render(d, kept(d))
    (d / "data/rows.jsonl").write_text("\n".join(["", " "] * 500 + lines) + "\n")
    assert render(d, kept(d)) == render(d, CORES)
    (d / "data/rows.jsonl").write_text("\n".join(blanks[:30_000]) + "\n")
    same_error(d)


def test_blocks_pruned_by_another_render_as_this_one_reads_them_are_rendered_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another render of the manifest (another version of it) prunes the folder between this
    render's cuts and its reads: a miss, never a wrong or torn block."""
    d = project(tmp_path)
    expected = render(d, kept(d))
    get = BlockCache.get

    def pruned_first(self: BlockCache, name: str, rows: int) -> Kept | None:
        self.prune({name} if int(name[:2], 16) % 2 else set())
        return get(self, name, rows)
    monkeypatch.setattr(BlockCache, "get", pruned_first)
    assert render(d, kept(d)) == expected == render(d, kept(d))


def same_error(d: Path) -> str:
    """The error a render reading kept blocks raises, which must be the one a render of every
    row raises, with its file and place; its message."""
    with pytest.raises((DataError, TemplateError)) as plain:
        render(d, CORES)
    with pytest.raises((DataError, TemplateError)) as read:
        render(d, kept(d))
    assert str(read.value) == str(plain.value)
    assert (read.value.path, read.value.where) == (plain.value.path, plain.value.where)
    return str(read.value)


def test_prune_goes_past_what_it_cannot_remove(tmp_path: Path) -> None:
    """A folder named like a block (nothing removes it) does not keep the stale blocks after
    it: the folder holds the last render's blocks and that folder alone."""
    d = project(tmp_path)
    render(d, kept(d))
    folder = d / ".runner/render/big"
    (folder / "0000.block").mkdir()
    stale = {f"{n:04x}.block" for n in range(1, 60)}   # listed before and after the folder
    for name in stale:
        (folder / name).write_bytes(b"stale")
    render(d, kept(d))
    after = {p.name for p in folder.glob("*.block")}
    assert "0000.block" in after and not after & stale
