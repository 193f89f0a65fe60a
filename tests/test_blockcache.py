"""Rendered blocks kept between runs (runner.blockcache): a render that reads some back gives
byte for byte what rendering every row gives, renders again only the blocks an edit touched,
and never takes a block for what another manifest, template or row index would render."""

from __future__ import annotations

import io
import json
import os
import shutil
from array import array
from pathlib import Path

import pytest
from conftest import ROWS_MANIFEST, write_manifest

from runner import api, desired
from runner.blocks import jsonl_blocks
from runner.desired import Rendered, render_into, render_shards
from runner.emulator import Emulator
from runner.hashing import request_hash
from runner.manifest import load_directory
from runner.parallel import Parallel
from runner.render import Renderer
from runner.reuse import Reusable, prefix_of

CORES = Parallel(min_bytes=0, block_bytes=64 << 10, workers=2)
ROWS = 12_000

# conftest's big batch, its request's text to be filled in
MANIFEST = ROWS_MANIFEST.replace("Item {{ row.n }}: {{ row.body }}", "TEXT")
PLAIN = "{{ row.body }}"
INDEXED = "#{{ index }} {{ row.body }}"
INCLUDES = "{% if row.n == 7 %}{% include 'rare.j2' %}{% endif %}{{ row.body }}"


def line(n: int, body: str = "") -> str:
    return json.dumps({"id": f"k{n}", "n": n, "body": body or f"ticket {n} " + "lorem " * 8})


def project(d: Path, text: str = PLAIN, lines: list[str] | None = None) -> Path:
    write_manifest(d, MANIFEST.replace("TEXT", text))
    (d / "rare.j2").write_text("rare ")
    (d / "data").mkdir(exist_ok=True)
    rows(d, lines if lines is not None else [line(n) for n in range(ROWS)])
    return d


def rows(d: Path, lines: list[str]) -> None:
    (d / "data/rows.jsonl").write_text("\n".join(lines) + "\n")


def kept(d: Path) -> Parallel:
    return CORES._replace(kept=d / ".runner/render")


def names(d: Path) -> set[str]:
    return {p.name for p in (d / ".runner/render/big").glob("*.block")}


def render(d: Path, how: Parallel) -> tuple[Rendered, bytes]:
    [m] = load_directory(d)
    sink = io.BytesIO()
    return render_into(m, sink, parallel=how), sink.getvalue()


def test_an_edited_row_renders_its_blocks_again_and_the_rest_are_read_back(
        tmp_path: Path) -> None:
    d = project(tmp_path)
    first = render(d, kept(d))
    assert first == render(d, CORES)
    before = names(d)
    assert len(before) > 20
    edited = [line(n) for n in range(ROWS)]
    edited[ROWS // 2] = line(ROWS // 2, "a body much longer than it was " * 5)
    rows(d, edited)
    again = render(d, kept(d))
    assert again == render(d, CORES) != first
    after = names(d)
    # the cuts are made by content: the edit's block and perhaps the next are new, the
    # others are read back; the folder keeps the blocks of the last render alone
    assert 1 <= len(after - before) <= 3 and len(before - after) == len(after - before)
    assert render(d, kept(d)) == again and names(d) == after


def test_rows_moved_under_a_template_that_reads_index_are_rendered_again(
        tmp_path: Path) -> None:
    """Inserting a row first gives every later row another index: a template that reads it
    renders every block again; one that does not reads them back."""
    for text, new in ((INDEXED, "most"), (PLAIN, "few")):
        d = project(tmp_path / text.count("index").__str__(), text)
        render(d, kept(d))
        before = names(d)
        rows(d, [line(ROWS, "first")] + [line(n) for n in range(ROWS)])
        assert render(d, kept(d)) == render(d, CORES)
        fresh = len(names(d) - before)
        assert fresh > len(before) // 2 if new == "most" else fresh <= 3


def test_templates_that_include_files_keep_nothing(tmp_path: Path) -> None:
    d = project(tmp_path, INCLUDES)
    assert render(d, kept(d)) == render(d, CORES)
    assert not (d / ".runner/render").exists()


def test_another_template_or_model_is_another_block(tmp_path: Path) -> None:
    d = project(tmp_path)
    render(d, kept(d))
    manifest = d / "m.yaml"
    for old, new in (("{{ row.body }}", "{{ row.body }}!"), ("2.5-flash", "2.5-pro")):
        manifest.write_text(manifest.read_text().replace(old, new))
        assert render(d, kept(d)) == render(d, CORES)


def test_a_damaged_or_misplaced_block_is_rendered_again(tmp_path: Path) -> None:
    d = project(tmp_path)
    expected = render(d, kept(d))
    folder = d / ".runner/render/big"
    files = sorted(folder.glob("*.block"))
    flipped = bytearray(files[0].read_bytes())
    flipped[-40] ^= 0x20
    files[0].write_bytes(bytes(flipped))
    files[1].write_bytes(files[1].read_bytes()[:-10])
    files[2].write_bytes(files[3].read_bytes())     # another block's file under its name
    files[4].unlink()
    os.mkfifo(files[4])                             # a fifo is not waited on
    files[5].write_bytes(b"")
    assert render(d, kept(d)) == expected
    assert render(d, kept(d)) == expected
    assert all(f.is_file() and f.stat().st_size > 100 for f in files[:6])


def test_kept_blocks_give_the_lookups_and_keys_a_render_gives(tmp_path: Path) -> None:
    """The store's lookups and the keys file, made from blocks read back, as rendered: from
    the requests' hashes kept with them, or hashed again when a render without lookups kept
    the blocks."""
    d = project(tmp_path)
    [m] = load_directory(d)
    renderer = Renderer(m)
    hashes = [request_hash(m.provider, m.model, renderer.framing.split(renderer.line(r))[1])
              for r in renderer.requests()]
    held = [h for n, h in enumerate(hashes) if (n // 7) % 3]
    index = Reusable(["pack-a"], [array("Q", sorted(prefix_of(h) for h in held))])
    made: list[tuple[object, ...]] = []

    def looked(how: Parallel) -> None:
        r = render_shards(m, d / f"out{len(made)}", how, reuse=index)
        assert r.keys is not None
        made.append((r.content_hash, r.shards, r.reused, r.requests, r.keys.read_bytes(),
                     [p.read_bytes() for p in r.paths]))

    looked(CORES)
    render(d, kept(d))      # kept without their hashes
    looked(kept(d))
    shutil.rmtree(d / ".runner/render")
    looked(kept(d))         # kept with their hashes
    looked(kept(d))
    assert made[0][2] == len(held)
    assert all(m == made[0] for m in made)


def test_cuts_after_an_edit_fall_where_they_fell(tmp_path: Path) -> None:
    """Blocks end at line ends chosen by their bytes: after a row grows, the blocks past it
    hold the same bytes as before, where cuts by size would all move."""
    path = tmp_path / "r.jsonl"
    lines = [line(n) for n in range(ROWS)]
    path.write_text("\n".join(lines) + "\n")

    def pieces() -> set[bytes]:
        data = path.read_bytes()
        return {data[b.start:b.start + b.size] for b in jsonl_blocks(path, 64 << 10)}

    before = pieces()
    lines[100] = line(100, "longer " * 30)
    path.write_text("\n".join(lines) + "\n")
    after = pieces()
    assert len(after - before) <= 3 and len(after) > 20


def test_plan_keeps_a_big_batch_s_blocks_in_the_state_folder(
        emu: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Through the workspace: apply keeps them in .runner/render/, and after an edit the
    outputs hold the edited row's answer as a render of every row would."""
    monkeypatch.setattr(desired, "PARALLEL", CORES)
    d = project(tmp_path / "p")
    assert api.apply(d).exit_code == 0
    before = names(d)
    assert len(before) > 20
    edited = [line(n) for n in range(ROWS)]
    edited[10] = line(10, "edited")
    rows(d, edited)
    assert api.apply(d).exit_code == 0
    out = [json.loads(x) for x in (d / "out/big.jsonl").read_text().splitlines()]
    assert len(out) == ROWS and "edited" in json.dumps(out[10])
    assert 1 <= len(names(d) - before) <= 3
