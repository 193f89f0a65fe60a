"""The parse cache under .runner/: an unchanged manifest or lockfile is neither parsed nor
validated again, and the cache never hides an edit or an error.

Files younger than two seconds are not remembered (an edit within one timestamp tick could
keep the stamp); the `settled` fixture lifts that wait for the tests that are not about it.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import MINIMAL, write_manifest

import runner
from runner import lockfile, manifest, parsecache, statcache
from runner.emulator import Emulator
from runner.errors import ManifestError
from runner.manifest import load_directory
from runner.parsecache import ParseCache, salt
from runner.providers.gemini import GeminiProvider
from runner.workspace import Workspace

SECOND = MINIMAL.replace("name: tiny", "name: second").replace("out/tiny", "out/second")

# Two documents in one file, anchors, a merge key, flow and block style, a multi-line string.
TRICKY = """\
# yaml-language-server: $schema=../schemas/manifest.schema.json
apiVersion: batch-runner/v1
kind: Batch
metadata: {name: first-of-two}
spec:
  provider: gemini
  model: models/gemini-2.5-flash
  vars: &shared
    tone: dry
    words: 12
  items:
    - &row {id: a, q: "one"}
    - <<: *row
      id: b
    - id: c
      q: |
        three
        lines
  key: "{{ row.id }}"
  request:
    contents:
      - role: user
        parts: [{text: "{{ vars.tone }} {{ row.q }}"}]
  outputs:
    - path: out/frst.jsonl
    - path: out/first.csv
      columns: {id: "{{ key }}", text: "{{ text }}"}
---
apiVersion: batch-runner/v1
kind: Batch
metadata: {name: second-of-two}
spec:
  provider: gemini
  model: gemini-2.5-flash
  vars: {words: 12}
  items: [{id: x}]
  request: {contents: [{role: user, parts: [{text: "{{ vars.words }}"}]}]}
  outputs: [{path: out/two.jsonl}]
  errors: out/second-failures.jsonl
"""


@pytest.fixture
def settled(monkeypatch: pytest.MonkeyPatch) -> None:
    """Trust a file's stamp at once instead of two seconds after it was written."""
    monkeypatch.setattr(statcache, "_TRUST_AFTER_NS", -1)


class Calls:
    """Counts the calls of a module function while passing them through."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, module: Any, name: str) -> None:
        self.args: list[tuple[Any, ...]] = []
        real: Callable[..., Any] = getattr(module, name)

        def spy(*args: Any, **kwargs: Any) -> Any:
            self.args.append(args)
            return real(*args, **kwargs)

        monkeypatch.setattr(module, name, spy)

    def __len__(self) -> int:
        return len(self.args)


@pytest.fixture
def parsed(monkeypatch: pytest.MonkeyPatch) -> dict[str, Calls]:
    """Spies on YAML parsing and schema validation of manifests, and on lockfile loading."""
    return {"yaml": Calls(monkeypatch, manifest, "read_documents"),
            "schema": Calls(monkeypatch, manifest, "schema_error"),
            "lockfile": Calls(monkeypatch, lockfile, "load")}


def project(tmp_path: Path) -> Path:
    d = tmp_path / "proj"
    write_manifest(d, MINIMAL, "a.yaml")
    write_manifest(d, TRICKY, "b.yaml")
    write_manifest(d, SECOND, "c.yml")
    return d


def plan_once(d: Path) -> Workspace:
    """What `plan` does before it asks the provider: load, then work out the desired state
    (which saves the caches)."""
    ws = Workspace.open(d)
    ws.desired()
    return ws


def same_size_edit(path: Path, old: str, new: str) -> None:
    """Rewrites the file in place with the same size and puts its mtime back, as `touch -r`
    or a careless tool would: only the ctime tells."""
    assert len(old) == len(new)
    before = path.stat()
    with open(path, "r+", encoding="utf-8") as f:
        text = f.read()
        assert old in text
        f.seek(0)
        f.write(text.replace(old, new, 1))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = path.stat()
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == \
        (before.st_size, before.st_mtime_ns, before.st_ino)


def everything(ws: Workspace) -> list[tuple[Any, ...]]:
    """What a loaded workspace says, lines included, to compare a cached load with a fresh one."""
    paths: list[list[str | int]] = [[], ["metadata", "name"], ["spec", "items", 1, "q"], ["spec", "items", 2, "q"],
             ["spec", "request", "contents", 0, "parts", 0, "text"], ["spec", "outputs", 1],
             ["spec", "errors"], ["spec", "vars", "tone"], ["spec", "nowhere", 3]]
    return [(m, m.document_hash, m.document.data if m.document else None,
             [m.line_of(p) for p in paths]) for m in ws.manifests]


def test_an_unchanged_directory_is_not_parsed_or_validated_again(
        tmp_path: Path, settled: None, parsed: dict[str, Calls]) -> None:
    d = project(tmp_path)
    first = plan_once(d)
    assert (len(parsed["yaml"]), len(parsed["schema"])) == (3, 4)    # b.yaml holds two
    assert (d / ".runner/manifests.cache").is_file()

    again = plan_once(d)
    assert (len(parsed["yaml"]), len(parsed["schema"])) == (3, 4)    # nothing more
    assert everything(again) == everything(first)
    assert [m.name for m in again.manifests] == ["tiny", "first-of-two", "second-of-two",
                                                 "second"]


def test_a_cached_load_says_what_a_fresh_one_says(
        tmp_path: Path, settled: None, parsed: dict[str, Calls]) -> None:
    d = project(tmp_path)
    plan_once(d)
    cached = Workspace.open(d)
    assert len(parsed["yaml"]) == 3
    assert everything(cached) == everything(Workspace(d, load_directory(d), cached.lock))


def test_a_same_size_edit_with_the_mtime_put_back_is_parsed_again(
        tmp_path: Path, settled: None, parsed: dict[str, Calls]) -> None:
    d = project(tmp_path)
    plan_once(d)
    same_size_edit(d / "a.yaml", "What is 1+1?", "What is 3+4?")
    ws = plan_once(d)
    assert [args[0].name for args in parsed["yaml"].args[3:]] == ["a.yaml"]
    tiny = ws.manifest("tiny")
    assert tiny.items is not None and tiny.items[0]["q"] == "What is 3+4?"


def test_a_file_replaced_with_the_same_size_and_times_is_parsed_again(
        tmp_path: Path, settled: None, parsed: dict[str, Calls]) -> None:
    d = project(tmp_path)
    plan_once(d)
    path = d / "c.yml"
    before = path.stat()
    replacement = d / "c.tmp"
    replacement.write_text(SECOND.replace("What is 2+2?", "What is 5+5?"))
    os.utime(replacement, ns=(before.st_atime_ns, before.st_mtime_ns))
    os.replace(replacement, path)       # a new inode, as an editor's atomic save gives
    ws = plan_once(d)
    assert [args[0].name for args in parsed["yaml"].args[3:]] == ["c.yml"]
    second = ws.manifest("second")
    assert second.items is not None and second.items[1]["q"] == "What is 5+5?"


# Edits to a.yaml that keep its size, and the file the error names.
BREAKAGES = [
    ("provider: gemini", "provider: gemimi", "a.yaml"),       # the schema
    ("kind: Batch", "kind:{Batch", "a.yaml"),                 # YAML syntax
    ('key: "{{ row.id }}"', 'model: "{{row.id}}"', "a.yaml"),  # a key given twice
    ("out/tiny.jsonl", "c.yml/ti.jsonl", "a.yaml"),           # under a file, not a folder
    ("out/tiny.jsonl", "out/frst.jsonl", "b.yaml"),           # another batch's output
]


@pytest.mark.parametrize(("old", "new", "named"), BREAKAGES)
def test_a_cached_manifest_made_invalid_fails_as_a_fresh_one_does(
        tmp_path: Path, settled: None, old: str, new: str, named: str) -> None:
    d = project(tmp_path)
    plan_once(d)
    cache = (d / ".runner/manifests.cache").read_bytes()
    same_size_edit(d / "a.yaml", old, new)
    with pytest.raises(ManifestError) as cached:
        Workspace.open(d)
    with pytest.raises(ManifestError) as fresh:
        load_directory(d)
    assert str(cached.value) == str(fresh.value)
    assert str(cached.value).startswith(str(d / named) + ":")
    assert (d / ".runner/manifests.cache").read_bytes() == cache


def test_an_output_path_taken_over_by_a_symlink_is_refused_from_the_cache(
        tmp_path: Path, settled: None, parsed: dict[str, Calls]) -> None:
    d = project(tmp_path)
    plan_once(d)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (d / "out").symlink_to(outside)             # the manifests are unchanged
    with pytest.raises(ManifestError, match="leaves the project directory through the "
                                            "symlink 'out'"):
        Workspace.open(d)
    assert len(parsed["yaml"]) == 3             # the check ran on the cached documents


@pytest.mark.parametrize("damage", ["garbage", "truncated", "edited", "directory", "empty"])
def test_a_damaged_cache_is_ignored_and_written_anew(
        tmp_path: Path, settled: None, parsed: dict[str, Calls], damage: str) -> None:
    d = project(tmp_path)
    first = plan_once(d)
    cache = d / ".runner/manifests.cache"
    text = cache.read_text()
    if damage == "garbage":
        cache.write_bytes(b"\x00\xff not a cache \n\t\t")
    elif damage == "truncated":
        cache.write_text(text[:len(text) // 2])
    elif damage == "edited":                    # well-formed, but not what was written
        cache.write_text(text.replace("What is 1+1?", "What is 9+9?"))
    elif damage == "directory":
        cache.unlink()
        cache.mkdir()
    else:
        cache.write_text("")

    again = plan_once(d)
    assert len(parsed["yaml"]) == 6             # everything parsed a second time
    assert everything(again) == everything(first)
    if damage == "directory":
        return                                  # cannot be replaced: planning goes on
    assert cache.read_text() == text            # written anew, as it was
    plan_once(d)
    assert len(parsed["yaml"]) == 6             # and used again


def test_values_come_back_as_stored_and_only_for_the_same_schema_and_format(
        tmp_path: Path, settled: None, monkeypatch: pytest.MonkeyPatch) -> None:
    f = tmp_path / "m.yaml"
    f.write_text("x")
    st = f.stat()
    value = {"a": [1, 2.5, -0.0, "é \u2028 \ud83d", None, True, 2**70, {"": []}]}
    written = ParseCache(tmp_path / "cache", salt({"type": "object"}))
    written.put("m.yaml", st, value)
    written.save()

    def stored(schema: Any) -> Any:
        return ParseCache(tmp_path / "cache", salt(schema)).get("m.yaml", st)

    assert stored({"type": "object"}) == value
    assert stored({"type": "object"}) is not stored({"type": "object"})    # a fresh copy
    assert stored({"type": "array"}) is None
    monkeypatch.setattr(parsecache, "FORMAT", parsecache.FORMAT + 1)
    assert stored({"type": "object"}) is None


def test_a_file_younger_than_two_seconds_is_not_remembered(
        tmp_path: Path, parsed: dict[str, Calls]) -> None:
    d = project(tmp_path)
    plan_once(d)
    plan_once(d)
    assert len(parsed["yaml"]) == 6             # just written: parsed each time
    old = time.time() - 10
    for f in d.glob("*.y*ml"):
        os.utime(f, (old, old))                 # the ctime stays fresh: still not trusted
    plan_once(d)
    assert len(parsed["yaml"]) == 9
    time.sleep(2.1)
    plan_once(d)                                # now old enough to be remembered
    assert len(parsed["yaml"]) == 12
    plan_once(d)
    assert len(parsed["yaml"]) == 12


def test_nothing_is_cached_when_a_later_step_fails(tmp_path: Path, settled: None) -> None:
    d = project(tmp_path)
    write_manifest(d, SECOND.replace("name: second", "name: broken")
                   .replace("out/second", "out/broken").replace("row.q", "row.nope"), "d.yaml")
    with pytest.raises(runner.TemplateError):
        plan_once(d)
    assert not (d / ".runner").exists()


def test_a_cached_lockfile_loads_as_the_file_does(
        tmp_path: Path, settled: None, parsed: dict[str, Calls]) -> None:
    d = project(tmp_path)
    with Emulator(tmp_path / "emu", latency=0) as emu:
        provider = GeminiProvider("k", emu.base_url)
        try:
            runner.apply(d, provider=provider, options=runner.Options(poll_base=0.05))
        finally:
            provider.close()
    lock_path = d / "batches.lock"
    assert set(lockfile.load(lock_path).batches) == {"tiny", "first-of-two", "second-of-two",
                                                      "second"}
    loads = len(parsed["lockfile"])
    plan_once(d)
    assert len(parsed["lockfile"]) == loads + 1
    cached = plan_once(d)
    assert len(parsed["lockfile"]) == loads + 1                  # from the cache
    assert cached.lock == lockfile.load(lock_path)

    same_size_edit(lock_path, "attempts: 1", "attempts: 2")      # valid: read anew
    edited = Workspace.open(d)
    assert edited.lock == lockfile.load(lock_path) != cached.lock
    assert sorted(e.attempts for e in edited.lock.batches.values()) == [1, 1, 1, 2]

    same_size_edit(lock_path, "state: SUCCEEDED", "state: SUCCEEDEX")
    with pytest.raises(runner.LockfileError) as from_workspace:
        Workspace.open(d)
    with pytest.raises(runner.LockfileError) as from_file:
        lockfile.load(lock_path)
    assert "lockfile is invalid" in str(from_workspace.value)
    assert str(from_workspace.value) == str(from_file.value)


def test_a_rows_file_removed_behind_a_cached_manifest_is_reported(
        examples: Path, settled: None, parsed: dict[str, Calls]) -> None:
    plan_once(examples)
    calls = len(parsed["yaml"])
    (examples / "data/products.jsonl").unlink()
    with pytest.raises(runner.DataError, match="spec.rows: rows file data/products.jsonl not "
                                               "found"):
        plan_once(examples)
    assert len(parsed["yaml"]) == calls         # the manifests came from the cache


def test_an_unchanged_example_directory_plans_the_same_from_the_cache(
        examples: Path, settled: None, parsed: dict[str, Calls]) -> None:
    first = plan_once(examples)
    calls = len(parsed["yaml"])
    again = plan_once(examples)
    assert len(parsed["yaml"]) == calls
    assert again.desired() == first.desired()
    shutil.rmtree(examples / ".runner")
    assert plan_once(examples).desired() == first.desired()
    assert len(parsed["yaml"]) == 2 * calls
