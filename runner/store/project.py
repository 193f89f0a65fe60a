"""Which store a manifest directory uses, and which of its packs the store holds.

Three places, the first found wins:

1. `RUNNER_STORE` (a path or URL), for one run: a CI job pointing at the team's bucket, a
   test pointing at a scratch copy;
2. `.batch-runner.yaml` in the manifest directory, a document `kind: Store` with a `url:` and
   `options:` (settings for the filesystem that are not secrets: an endpoint, a region). It is
   versioned in git beside the manifests, so every clone uses the same store. A dotfile, as
   `.pre-commit-config.yaml` is, because every `*.yaml` beside it is read as a manifest;
3. the project's own store under `.runner/store`, so one machine reuses its results at once.

A relative path is relative to the manifest directory, whichever place names it. Credentials
never come from here: open_store refuses a URL or an option that carries one.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..errors import StoreError
from ..freshness import outputs_reason
from ..lockfile import Lock
from ..states import Desired
from ..yamlsrc import read_documents
from .names import pack_object
from .remote import scheme_of
from .store import Store, local_store, open_store

STORE_ENV = "RUNNER_STORE"
STORE_FILE = ".batch-runner.yaml"
_KEYS = {"kind", "url", "options"}


def project_store(directory: Path) -> Store:
    """The store of a manifest directory (see the module docstring). StoreError for a store
    file or a location that is not right, naming it."""
    location = os.environ.get(STORE_ENV, "").strip()
    options: dict[str, Any] | None = None
    if not location:
        declared = declared_store(directory)
        if declared is None:
            return local_store(directory)
        location, options = declared
    store = open_store(location, options)   # refuses what is not a path or a plain URL
    if scheme_of(location) is None and not os.path.isabs(location):
        return open_store(Path(directory, location))
    return store


def declared_store(directory: Path) -> tuple[str, dict[str, Any] | None] | None:
    """The url and options `.batch-runner.yaml` declares, None when there is no such file."""
    path = directory / STORE_FILE
    if not path.is_file():
        return None
    docs = [d.data for d in read_documents(path, StoreError, utf8_advice="save it as UTF-8")]
    stores = [d for d in docs if isinstance(d, dict) and d.get("kind") == "Store"]
    if len(stores) != 1:
        raise StoreError(f"{STORE_FILE} holds {len(stores)} documents of kind: Store; it "
                         "declares one, with url: (a path or an s3://, gs://, az:// URL)",
                         path=path)
    [doc] = stores
    unknown = sorted(str(k) for k in doc if k not in _KEYS)
    url, options = doc.get("url"), doc.get("options")
    if unknown:
        problem = f"unknown key {unknown[0]!r} (it takes kind, url and options)"
    elif not isinstance(url, str) or not url.strip():
        problem = "url: is missing or not a string"
    elif options is not None and not isinstance(options, dict):
        problem = "options: is not a mapping"
    else:
        return url.strip(), options
    raise StoreError(f"the store it declares is not right: {problem}", path=path)


def reachable(store: Store) -> None:
    """Asks the store one question (is a pack that no one writes there?), so that a store
    that cannot be reached stops apply before anything is sent rather than after a job was
    paid for: StoreError naming the store."""
    store.backend.modified(pack_object("sha256:" + "0" * 64))


def stored_packs(store: Store, lock: Lock, desired: Iterable[Desired]) -> frozenset[str]:
    """The packs the store holds of those named by the batches whose outputs must be written
    again (the packs of their results, and of the results they reused): the plan restores
    those from the store, not the provider. Only they are asked
    about, so a plan with nothing to restore does not reach the store."""
    wanted = [p for w in desired if (e := lock.batches.get(w.name)) is not None
              and (e.packs or e.reuse_packs) and outputs_reason(e, w) is not None
              for p in (*e.packs, *e.reuse_packs)]
    return held(store, wanted) if wanted else frozenset()


def held(store: Store, packs: Iterable[str]) -> frozenset[str]:
    """Those of `packs` the store has (a listing's worth of questions: one stat each). Their
    bytes are checked when they are read; a pack here may still turn out damaged then."""
    return frozenset(p for p in set(packs) if store.backend.modified(pack_object(p)) is not None)
