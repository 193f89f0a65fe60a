"""Every fenced code block in the README and docs/ that can run, runs: a doc that goes stale
fails here.

- ```python: executed in a temporary directory holding a copy of the example project
  (`batches.d/`), as a reader would run it from the repository's root.
- ```yaml: a manifest (`apiVersion: batch-runner/v1`) passes `runner validate` in a copy of
  the example project with it as the only manifest (the data files it names that the examples
  do not have are made from FIXTURES); an excerpt of an example, headed by comment lines
  `# batches.d/<file>.yaml`, must be found in that file; any other YAML must parse.
- ```sh / ```bash / ```console: every `runner` command (joined by `&&`, or after `$ ` in a
  console block) runs in a copy of the example project and must exit 0; `python3 -m venv` and
  `pip install` are set-up, not run. Any other command makes the block fail until it is marked.
- ```json: parses.
- ```text: output or a diagram. Output marked `<!-- output of: <scenario> -->` before its fence
  is compared with what the runner prints in that scenario (OUTPUTS below): each line of the
  block, spaces collapsed and `…` standing for anything, is a line of the output, in order.

A block that cannot run is marked on the line before its fence with
`<!-- not run: <reason> -->`; it is reported as skipped with that reason. A fence without a
language fails: say what it holds.
"""
from __future__ import annotations

import json
import re
import shlex
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import EXAMPLES, REPO

from runner.cli import main
from runner.emulator import Emulator

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]

FENCE = re.compile(r"^(`{3,})([\w+-]*)\s*$")
NOT_RUN = re.compile(r"^<!--\s*not run:\s*(.+?)\s*-->$")
OUTPUT_OF = re.compile(r"^<!--\s*output of:\s*([\w-]+)\s*-->$")
EXCERPT_HEAD = re.compile(r"^# (batches\.d/[\w.-]+\.ya?ml)\b")

# Data files a documented manifest names that the example project does not have: a few rows
# with the columns its templates read.
FIXTURES = {
    "data/tickets.jsonl": "".join(json.dumps(r) + "\n" for r in [
        {"id": "t1", "body": "The export button crashes the app."},
        {"id": "t2", "body": "How do I change my password?"},
        {"id": "t3", "body": "Please add a dark mode."}]),
}

SHELLS = ("sh", "bash", "shell", "console")
SET_UP = (re.compile(r"^python3? -m venv\b"), re.compile(r"(^|/)pip3? install\b"))


@dataclass(frozen=True)
class Block:
    doc: str            # path from the repository's root
    line: int           # the opening fence's line, from 1
    lang: str
    text: str
    not_run: str | None
    output_of: str | None = None

    @property
    def id(self) -> str:
        return f"{self.doc}:{self.line}"


def blocks(path: Path) -> Iterator[Block]:
    """The fenced blocks of a markdown file, with the `not run` mark before each, if any."""
    lines = path.read_text().splitlines()
    doc = path.relative_to(REPO).as_posix()
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        start = i
        end = start + 1
        while end < len(lines) and lines[end].rstrip() != m.group(1):
            end += 1
        assert end < len(lines), f"{doc}:{start + 1}: the fence is never closed"
        before = next((ln.strip() for ln in reversed(lines[:start]) if ln.strip()), "")
        mark, output = NOT_RUN.match(before), OUTPUT_OF.match(before)
        yield Block(doc, start + 1, m.group(2).lower(), "\n".join(lines[start + 1:end]) + "\n",
                    mark.group(1) if mark else None, output.group(1) if output else None)
        i = end + 1


ALL = [b for path in DOCS for b in blocks(path)]


def test_blocks_found() -> None:
    """The scan sees the blocks it should: each kind these docs hold, README's first."""
    assert ALL[0].doc == "README.md"
    assert {"python", "yaml", "sh", "text"} <= {b.lang for b in ALL}
    assert {b.output_of for b in ALL} >= set(OUTPUTS)
    assert len(ALL) >= 15


# -- the project a block runs in, and the emulator its commands reach --------------------------

@pytest.fixture(scope="session")
def shared_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    """One emulator per worker, for the commands that do not say `--emulator`."""
    with Emulator(tmp_path_factory.mktemp("docs-emulator"), latency=0.1) as e:
        yield e


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
            shared_emulator: Emulator) -> Path:
    """A directory holding a clean copy of `batches.d/`, made the current directory, with every
    provider's key and endpoint pointing at the shared emulator."""
    shutil.copytree(EXAMPLES, tmp_path / "batches.d", ignore=shutil.ignore_patterns(
        ".runner", "results", "batches.lock"))
    monkeypatch.chdir(tmp_path)
    base = shared_emulator.base_url
    for key, url in (("GEMINI", base), ("OPENAI", base + "/openai/v1"),
                     ("ANTHROPIC", base + "/anthropic")):
        monkeypatch.setenv(f"{key}_API_KEY", "k")
        monkeypatch.setenv(f"{key}_BASE_URL", url)
    monkeypatch.setenv("RUNNER_POLL_SECONDS", "0.05")
    monkeypatch.setenv("RUNNER_EMULATOR_LATENCY", "0.2")      # `--emulator`'s jobs: 0.2 s, not 2
    monkeypatch.setenv("NO_COLOR", "1")
    return tmp_path


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str], where: str) -> str:
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 0, f"{where}: `runner {shlex.join(argv)}` exited {code}:\n{out}{err}"
    return out


# -- each kind of block -------------------------------------------------------------------------

def run_python(block: Block, capsys: pytest.CaptureFixture[str]) -> None:
    code = compile(block.text, block.id, "exec")
    exec(code, {"__name__": "__doc_block__"})
    capsys.readouterr()


def is_excerpt(part: Any, whole: Any) -> bool:
    """Whether `part` is found in `whole`: each key of a mapping with a matching value, lists
    item by item, anything else equal."""
    if isinstance(part, dict):
        return isinstance(whole, dict) and all(
            k in whole and is_excerpt(v, whole[k]) for k, v in part.items())
    if isinstance(part, list):
        return (isinstance(whole, list) and len(part) == len(whole)
                and all(is_excerpt(p, w) for p, w in zip(part, whole, strict=True)))
    return bool(part == whole)


def check_excerpts(block: Block) -> None:
    """Each section headed `# batches.d/<file>` is found in that file, from its root or from
    its `spec`."""
    sections: list[tuple[str, list[str]]] = []
    for ln in block.text.splitlines():
        head = EXCERPT_HEAD.match(ln)
        if head:
            sections.append((head.group(1), []))
        elif sections:
            sections[-1][1].append(ln)
    for name, body in sections:
        part = yaml.safe_load("\n".join(body))
        assert isinstance(part, dict), f"{block.id}: the excerpt of {name} is not a mapping"
        whole = yaml.safe_load((REPO / name).read_text())
        assert is_excerpt(part, whole) or is_excerpt(part, whole.get("spec")), (
            f"{block.id}: this excerpt is not what {name} says")


def validate_manifest(block: Block, project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The manifest, alone in a copy of the example project, passes `runner validate`."""
    d = project / "batches.d"
    for manifest in d.glob("*.yaml"):
        manifest.unlink()
    (d / "doc.yaml").write_text(block.text)
    for rel, text in FIXTURES.items():
        if not (d / rel).exists() and rel in block.text:
            (d / rel).parent.mkdir(parents=True, exist_ok=True)
            (d / rel).write_text(text)
    out = run_cli(["validate", str(d)], capsys, block.id)
    name = yaml.safe_load(block.text)["metadata"]["name"]
    assert name in out, f"{block.id}: validate did not report {name}:\n{out}"


def check_yaml(block: Block, project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if EXCERPT_HEAD.match(block.text):
        check_excerpts(block)
        return
    docs = list(yaml.safe_load_all(block.text))
    assert docs and all(doc is not None for doc in docs), f"{block.id}: empty YAML"
    if len(docs) == 1 and isinstance(docs[0], dict) and docs[0].get("apiVersion", "").startswith(
            "batch-runner/"):
        validate_manifest(block, project, capsys)


def commands(block: Block) -> list[list[str]]:
    """The `runner` commands of a shell block, set-up left out; any other command fails."""
    lines = block.text.splitlines()
    if block.lang == "console":
        lines = [ln[2:] for ln in lines if ln.startswith("$ ")]
    found: list[list[str]] = []
    for ln in lines:
        ln = ln.strip()
        if not ln or ln.startswith("#"):
            continue
        for part in ln.split("&&"):
            part = part.strip()
            if any(s.search(part) for s in SET_UP):
                continue
            argv = shlex.split(part)
            assert Path(argv[0]).name == "runner", (
                f"{block.id}: `{part}` is not a runner command; run it here or mark the block "
                f"<!-- not run: why -->")
            found.append(argv[1:])
    assert found, f"{block.id}: no runner command to run"
    return found


def _collapse(line: str) -> str:
    return " ".join(line.split())


def shows(doc: str, actual: str) -> bool:
    """Whether each non-blank line of `doc` is a line of `actual`, in order, spaces collapsed
    and `…` standing for anything."""
    have = iter([_collapse(ln) for ln in actual.splitlines()])
    for ln in filter(None, map(_collapse, doc.splitlines())):
        pattern = re.compile(".*".join(map(re.escape, ln.split("…"))))
        if not any(pattern.fullmatch(h) for h in have):
            return False
    return True


def plan_after_edits(where: str, capsys: pytest.CaptureFixture[str], *options: str) -> str:
    """The README's walk-through: the quickstart's apply, a product's title edited, a result
    deleted, then plan (with `options`)."""
    run_cli(["apply", "batches.d/", "--emulator", "--quiet"], capsys, where)
    products = Path("batches.d/data/products.jsonl")
    rows = products.read_text().splitlines()
    first = json.loads(rows[0])
    first["title"] = "New " + first["title"]
    products.write_text("\n".join([json.dumps(first), *rows[1:]]) + "\n")
    Path("batches.d/results/review-sentiment.csv").unlink()
    return run_cli(["plan", "batches.d/", "--emulator", *options], capsys, where)


def misspelt(name: str, right: str, wrong: str) -> Callable[[str, pytest.CaptureFixture[str]], str]:
    """`runner validate batches.d/` with `right` misspelt `wrong` in batches.d/<name>: it exits
    1 and says why on stderr."""
    def scenario(where: str, capsys: pytest.CaptureFixture[str]) -> str:
        path = Path("batches.d") / name
        text = path.read_text()
        assert right in text, f"{where}: {path} no longer holds {right!r}"
        path.write_text(text.replace(right, wrong))
        code = main(["validate", "batches.d/"])
        out, err = capsys.readouterr()
        assert code == 1, f"{where}: validate exited {code}:\n{out}{err}"
        return err
    return scenario


OUTPUTS: dict[str, Callable[[str, pytest.CaptureFixture[str]], str]] = {
    "plan-after-edits": plan_after_edits,
    "plan-json-after-edits": lambda where, capsys: plan_after_edits(where, capsys, "--json"),
    "validate-txt": misspelt("review-sentiment-openai.yaml", "{{ text | trim }}",
                             "{{ txt | trim }}"),
    "validate-maxoutputtoken": misspelt("review-topics.yaml", "maxOutputTokens:",
                                        "maxOutputToken:"),
}


def run_shell(block: Block, capsys: pytest.CaptureFixture[str]) -> None:
    for argv in commands(block):
        run_cli(argv, capsys, block.id)


@pytest.mark.parametrize("block", ALL, ids=[b.id for b in ALL])
def test_block(block: Block, request: pytest.FixtureRequest,
               capsys: pytest.CaptureFixture[str]) -> None:
    assert block.lang, (f"{block.id}: a fence without a language; say what it holds "
                        "(```text for output or a diagram)")
    if block.not_run is not None:
        pytest.skip(f"not run: {block.not_run}")
    match block.lang:
        case "python":
            request.getfixturevalue("project")
            run_python(block, capsys)
        case "yaml" | "yml":
            check_yaml(block, request.getfixturevalue("project"), capsys)
        case lang if lang in SHELLS:
            request.getfixturevalue("project")
            run_shell(block, capsys)
        case "json":
            json.loads(block.text)
        case "text" if block.output_of is not None:
            assert block.output_of in OUTPUTS, f"{block.id}: no scenario {block.output_of!r}"
            request.getfixturevalue("project")
            actual = OUTPUTS[block.output_of](block.id, capsys)
            assert shows(block.text, actual), (
                f"{block.id}: the runner prints something else now:\n{actual}")
        case "text":
            pytest.skip("text: output or a diagram, nothing to run")
        case _:
            pytest.fail(f"{block.id}: no way to run a ```{block.lang} block; run it here or "
                        "mark it <!-- not run: why -->")


def test_not_run_marks_say_why() -> None:
    """A block left unrun says why, in a few words at least, and few blocks are left unrun."""
    marked = [b for b in ALL if b.not_run is not None]
    for b in marked:
        assert len(b.not_run or "") >= 10, f"{b.id}: say why it is not run"
    runnable = [b for b in ALL if b.lang != "text"]
    assert len(marked) * 3 <= len(runnable), [b.id for b in marked]


def test_shell_split() -> None:
    """Set-up is left out of a shell block, and the runner's command kept with its options."""
    b = Block("x.md", 1, "sh", "python3 -m venv .venv && .venv/bin/pip install -e . && "
              ".venv/bin/runner apply batches.d/ --emulator\n", None)
    assert commands(b) == [["apply", "batches.d/", "--emulator"]]
    c = Block("x.md", 1, "console", "$ runner plan batches.d/\nPlan: 1 to submit\n", None)
    assert commands(c) == [["plan", "batches.d/"]]
    with pytest.raises(AssertionError, match="not a runner command"):
        commands(Block("x.md", 1, "sh", "curl https://example.com\n", None))


def test_shows() -> None:
    actual = "error: /tmp/x/batches.d/m.yaml:3: bad\n  a    b\nlast\n"
    assert shows("error: …/batches.d/m.yaml:3: bad\n\na b\n", actual)
    assert not shows("error: …/batches.d/m.yaml:4: bad\n", actual)
    assert not shows("a b\nerror: …\n", actual)             # out of order


def test_excerpt_match() -> None:
    whole = {"spec": {"a": 1, "b": [{"c": 2, "d": 3}]}}
    assert is_excerpt({"spec": {"b": [{"c": 2}]}}, whole)
    assert not is_excerpt({"spec": {"b": [{"c": 3}]}}, whole)
    assert not is_excerpt({"spec": {"e": 1}}, whole)

