"""An attacker's read of the reuse index kept between runs (runner.indexcache), the lookups
made as the render writes (Lookup.rows), and gc's run lock."""

from __future__ import annotations

import json
import os
import shutil
import threading
from array import array
from pathlib import Path

import pytest
from conftest import MINIMAL, write_manifest
from test_indexcache import lookups, rhash
from test_indexcache import packs as made

from runner import indexcache
from runner.held import Lookup
from runner.manifest import load_directory
from runner.providers.registry import dialect_of
from runner.render import Renderer
from runner.reuse import Reusable, prefix_of
from runner.store import Store, open_store


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return open_store(tmp_path / "store")


def packs(store: Store, groups: list[range]) -> list[str]:
    return made(store, groups, failing=0)       # every request a success


def test_an_index_file_of_another_set_of_packs_renamed_is_not_read(
        store: Store, tmp_path: Path) -> None:
    """The file is named by a digest of its pack names, but its checksum does not cover
    them: a file of another set, copied under this set's name, read back whole and
    offered requests no pack of this set holds (and hid those it does)."""
    one = packs(store, [range(0, 200), range(200, 400)])
    two = packs(store, [range(1000, 1200), range(1200, 1400)])
    cache = tmp_path / "index"
    Reusable.load(store, one, cache=cache)
    [kept] = cache.iterdir()
    shutil.copyfile(kept, indexcache._path(cache, sorted(two)))
    want = lookups(Reusable.load(store, two), 1400)
    assert lookups(Reusable.load(store, two, cache=cache), 1400) == want


def test_an_index_file_whose_count_is_not_the_heads_is_not_read(
        store: Store, tmp_path: Path) -> None:
    """A whole file, checksum and all, holding other keys than the packs' heads (written by
    another version, or by hand): the heads are read anyway, and say how many there are."""
    names = sorted(packs(store, [range(0, 200), range(200, 400)]))
    cache = tmp_path / "index"
    want = lookups(Reusable.load(store, names), 1000)
    extra = sorted({prefix_of(rhash(i)) for i in range(0, 1000)})
    indexcache.write(cache, names, array("Q", extra), array("H", [0]) * len(extra))
    assert lookups(Reusable.load(store, names, cache=cache), 1000) == want


def test_a_fifo_in_place_of_the_index_file_does_not_hang(store: Store, tmp_path: Path
                                                          ) -> None:
    names = sorted(packs(store, [range(0, 50), range(50, 100)]))
    cache = tmp_path / "index"
    cache.mkdir()
    path = indexcache._path(cache, names)
    os.mkfifo(path)
    got: list[Reusable] = []
    t = threading.Thread(target=lambda: got.append(Reusable.load(store, names, cache=cache)),
                         daemon=True)
    t.start()
    t.join(10)
    hung = t.is_alive()
    if hung:        # let the reader go
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        os.close(fd)
        t.join(10)
    assert not hung, "reading the index cache blocked on a fifo"
    assert lookups(got[0], 100) == lookups(Reusable.load(store, names), 100)


@pytest.mark.parametrize("harm", ["directory", "dangling", "zero", "huge"])
def test_other_things_in_place_of_the_file_are_merged_again(
        store: Store, tmp_path: Path, harm: str) -> None:
    names = sorted(packs(store, [range(0, 50), range(50, 100)]))
    cache = tmp_path / "index"
    cache.mkdir()
    path = indexcache._path(cache, names)
    if harm == "directory":
        path.mkdir()
    elif harm == "dangling":
        path.symlink_to(tmp_path / "nowhere")
    elif harm == "zero":
        path.symlink_to("/dev/zero")
    else:
        path.write_bytes(indexcache.MAGIC + (1 << 63).to_bytes(8, "little") + b"\0" * 64)
    want = lookups(Reusable.load(store, names), 100)
    assert lookups(Reusable.load(store, names, cache=cache), 100) == want
    assert lookups(Reusable.load(store, names, cache=cache), 100) == want


# -- the lookups as the render writes, against cutting the rendered lines apart --------------

KEYS = ["plain", 'q"uote', "back\\slash\\", "é日本", "a b", "x" * 60, ',"params":',
        ',"request":', ',"method":"POST"', "tab\tnl\n", "%s%%", "__x"]


@pytest.mark.parametrize("provider", ["gemini", "openai", "anthropic"])
def test_lookups_as_rendered_are_those_of_the_rendered_lines(tmp_path: Path,
                                                             provider: str) -> None:
    body = MINIMAL.replace("provider: gemini", f"provider: {provider}")
    if provider != "gemini":
        body = body.replace("gemini-2.5-flash", "gpt-4o-mini" if provider == "openai"
                            else "claude-haiku-4-5").replace(
            'contents: [{role: user, parts: [{text: "{{ row.q }}"}]}]',
            'messages: [{role: user, content: "{{ row.q }}"}]'
            + ("\n    max_tokens: 20" if provider == "anthropic" else ""))
    body = body.replace('    - {id: a, q: "What is 1+1?"}\n    - {id: b, q: "What is 2+2?"}\n',
                        "").replace("  items:\n", "  rows: rows.jsonl\n")
    write_manifest(tmp_path, body)
    lines = []
    for n, k in enumerate(KEYS):
        lines += [json.dumps({"id": k, "q": f"question {n} %s \\"}), "", "  "]
    (tmp_path / "rows.jsonl").write_text("\n".join(lines) + "\n")
    [m] = load_directory(tmp_path)
    renderer = Renderer(m)
    framing = dialect_of(m).framing(m.endpoint)
    with open(tmp_path / "rows.jsonl", "rb") as f:
        raw = f.readlines()
    out: list[bytes] = []
    first = Lookup.of(m.provider, m.model, framing, None, True)
    add, done = first.rows()
    renderer.render_jsonl(raw, 0, 1, out.append, lambda k: None, add)
    data = b"".join(out)
    looked = done()
    held = [h for i, h in enumerate(looked.keys.split(b"\n")[:-1]) if i % 2]
    index = Reusable(["p"], [array("Q", sorted(prefix_of(h.split(b"\t")[1].decode())
                                               for h in held))])
    both = Lookup.of(m.provider, m.model, framing, index, True)
    add, done = both.rows()
    renderer.render_jsonl(raw, 0, 1, lambda b: None, lambda k: None, add)
    assert done() == both(data)
    assert looked == first(data)
    assert looked.keys.count(b"\n") == len(KEYS)


# -- store gc --yes and the run lock ---------------------------------------------------------

def test_gc_beside_a_run_says_a_way_out_it_takes(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """gc --yes beside a running apply refuses, saying "pass --lock-timeout SECONDS": store
    gc took no such flag (argparse's usage error, exit 2, when a user did as told)."""
    from runner import lockfile
    from runner.cli import main
    from runner.runlock import RunLock
    from runner.store.project import STORE_ENV

    monkeypatch.setenv(STORE_ENV, str(tmp_path / "shared"))
    project = tmp_path / "proj"
    project.mkdir()
    lockfile.save(lockfile.lock_path(project), lockfile.Lock())
    with RunLock(project):
        assert main(["store", "gc", str(project), "--min-age", "0", "--yes"]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "another run holds the lock" in err, err
        assert "--lock-timeout" in err
        assert main(["store", "gc", str(project), "--min-age", "0", "--yes",
                     "--lock-timeout", "0.3"]) == 1
        assert "another run holds the lock" in capsys.readouterr().err
    assert main(["store", "gc", str(project), "--min-age", "0", "--yes",
                 "--lock-timeout", "0.3"]) == 0
    assert main(["store", str(project), "--lock-timeout", "1"]) == 1
