"""The layering holds: no import cycles among the runner's modules, and the core names no
provider (it reaches them through runner.providers.registry only)."""

from __future__ import annotations

import ast
from pathlib import Path

RUNNER = Path(__file__).resolve().parent.parent / "runner"


def _module(path: Path) -> str:
    parts = path.relative_to(RUNNER.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module(p): p for p in RUNNER.rglob("*.py")}


def _top_level_imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The runner modules `name` imports when it is imported: module-level statements only
    (not inside functions, nor under `if TYPE_CHECKING:`)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            if isinstance(node, (ast.If, ast.Try)):
                visit(node.body)
                visit(node.orelse)
                for handler in getattr(node, "handlers", []):
                    visit(handler.body)
            elif isinstance(node, ast.Import):
                found.update(a.name for a in node.names if a.name in known)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 \
                        else package
                    base = f"{anchor}.{base}" if base else anchor
                submodules = {f"{base}.{a.name}" for a in node.names} & known
                found.update(submodules)
                if base in known and len(submodules) < len(node.names):
                    found.add(base)     # a name defined by the module (or package) itself

    visit(ast.parse(path.read_text(encoding="utf-8")).body)
    found.discard(name)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _top_level_imports(name, path, known) for name, path in modules.items()}


def test_no_import_cycles() -> None:
    graph = _graph()
    state: dict[str, int] = {}      # 1: on the current path, 2: done
    stack: list[str] = []

    def walk(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt):] + [nxt]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                walk(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            walk(node)


def test_the_core_names_no_provider() -> None:
    """Outside runner.providers and runner.emulator, nothing imports a provider's package:
    adding a provider is a package and a registry line."""
    graph = _graph()
    providers = {n for n in graph if n.startswith("runner.providers.")
                 and n.count(".") >= 3}                         # runner.providers.<name>.*
    providers |= {n for n in graph if n.count(".") == 2 and n.startswith("runner.providers.")
                  and (RUNNER / "providers" / n.rsplit(".", 1)[1]).is_dir()}
    offenders = {name: sorted(graph[name] & providers) for name in graph
                 if not name.startswith(("runner.providers", "runner.emulator"))
                 and graph[name] & providers}
    assert providers, "no provider package found"
    assert offenders == {}
