"""The names of what the runner keeps in a manifest directory, in one place: the loaders of
manifests, the lockfile and the price table all need them, and none may import another just
for a name."""

from __future__ import annotations

LOCKFILE_NAME = "batches.lock"      # what was submitted and written; committed
STATE_DIR = ".runner"               # local state: caches, downloads, the run lock; not committed
PRICES_FILE = "prices.json"         # a price table beside the manifests overrides the shipped one
PRICES_ENV = "RUNNER_PRICES"        # ... and the file this names overrides both
