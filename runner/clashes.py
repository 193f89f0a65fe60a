"""No output may be a file the project reads, nor another output.

An output is written on every apply that downloads results: one that lands on an input (a
manifest, a rows file, an included template, a price table) changes what the next plan reads,
so every apply would render new requests and submit, and pay for, a new job. One on the
lockfile or under the state directory would corrupt the runner's own record.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import ManifestError
from .layout import LOCKFILE_NAME, PRICES_ENV, PRICES_FILE, STATE_DIR
from .resolve import Resolver, within

if TYPE_CHECKING:
    from .manifest import Manifest, Output


def check_outputs(project: Path, files: list[Path], manifests: list[Manifest],
                  resolve: Resolver) -> None:
    """No two outputs may be one file, and no output may overwrite an input or the runner's own
    files (the lockfile, its state directory, a manifest, a rows file, a price table).
    Included templates are known once rendered: see check_templates."""
    root = resolve(project)
    inputs = {resolve(p): f"the manifest {p.name}" for p in files}    # files of the project
    inputs.update({resolve(m.rows): f"the rows file of batch {m.name!r}"
                   for m in manifests if m.rows is not None})
    inputs[os.path.join(root, LOCKFILE_NAME)] = "the lockfile"
    inputs[resolve(project / PRICES_FILE)] = f"the price table {PRICES_FILE}"
    named = os.environ.get(PRICES_ENV)
    if named:
        inputs[resolve(Path(named).absolute())] = f"the price table named by ${PRICES_ENV}"
    state = os.path.join(root, STATE_DIR)
    paths: dict[str, tuple[Manifest, Output]] = {}
    for m in manifests:
        for out in m.declared_paths():
            key = resolve(out.path)
            if key in inputs:
                raise _clash(m, out, f"would overwrite {inputs[key]}")
            if within(key, state):
                raise _clash(m, out, f"is inside {STATE_DIR}/, which belongs to the runner")
            if os.path.dirname(key) == root and key.lower().endswith((".yaml", ".yml")):
                # every YAML file there is read as a manifest by the next run
                raise _clash(m, out, "would be read as a manifest (a .yaml or .yml file in "
                             "the manifest directory): put it in a sub-folder")
            if key in paths:
                other, first = paths[key]
                if other is not m:
                    raise _clash(m, out, f"is already written by batch {other.name!r} "
                                 f"({other.rel_source}:{first.line or other.line})")
                default = out is m.errors and m.document is not None \
                    and "errors" not in m.document.data["spec"]
                raise _clash(m, out, "is declared twice in this batch" + (
                    " (it is the default errors path: set spec.errors to another file)"
                    if default else ""))
            paths[key] = (m, out)


def check_templates(manifests: Sequence[Manifest],
                    templates: Mapping[str, Collection[str]]) -> None:
    """No output may overwrite a template a batch includes (`templates`: batch name to the
    names its render included). Includes are found by rendering (a template may choose one by
    row), so this runs once every batch has rendered, before anything is written: otherwise
    each apply would write the template anew, change the requests, and submit a paid job."""
    if not any(templates.values()):
        return
    resolve = Resolver()
    read: dict[str, tuple[str, str]] = {}
    for m in manifests:
        for name in sorted(templates.get(m.name, ())):
            read.setdefault(resolve(m.project / name), (name, m.name))
    for m in manifests:
        for out in m.declared_paths():
            hit = read.get(resolve(out.path))
            if hit is not None:
                raise _clash(m, out, f"would overwrite the template {hit[0]!r} included by "
                             f"batch {hit[1]!r}")


def _clash(m: Manifest, out: Output, problem: str) -> ManifestError:
    what = "errors path" if out is m.errors else "output path"
    return ManifestError(f"{what} {out.rel!r} {problem}", path=m.source,
                         where=str(out.line or m.line))
