"""The resolver a directory load uses: the same answers as Path.resolve(), remembered."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

from runner.resolve import Resolver, folders_down_to, within


def _real(path: Path) -> str:
    return str(path.resolve())


def test_resolver_agrees_with_pathlib(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "out" / "deep").mkdir(parents=True)
    (root / "file").write_text("x")
    (tmp_path / "outside").mkdir()
    (root / "link-out").symlink_to(tmp_path / "outside")
    (root / "link-in").symlink_to(root / "out")
    (root / "dangling").symlink_to(root / "missing")
    (root / "loop-a").symlink_to(root / "loop-b")
    (root / "loop-b").symlink_to(root / "loop-a")
    (root / "rel").symlink_to("out/deep")
    resolve = Resolver()

    def outcome(work: Callable[[], str]) -> Any:
        try:
            return work()
        except Exception as e:      # a symlink loop: the same kind of error either way
            return type(e)

    for rel in ["", "out", "out/x.jsonl", "out/deep/../x", "out/../../x", "file/x", "file",
                "link-out/x", "link-in/x", "link-in/deep/../y", "dangling", "dangling/x",
                "missing/more/x", "rel/x", "rel/../x", "./out//x", "link-in", "loop-a/x",
                "loop-a", ".."]:
        path = root / rel
        expected = outcome(functools.partial(_real, path))
        for _ in range(2):      # the second time from what was remembered
            assert outcome(functools.partial(resolve, path)) == expected, rel


def test_within_and_folders_down_to() -> None:
    assert within("/a/b", "/a") and within("/a", "/a") and within("/x", "/")
    assert not within("/ab", "/a") and not within("/a", "/a/b")
    assert folders_down_to("/p/out/deep/x.jsonl", "/p") == ["/p", "/p/out", "/p/out/deep"]
    assert folders_down_to("/p/x.jsonl", "/p") == ["/p"]
    assert folders_down_to("/x.jsonl", "/") == ["/"]
