"""Model names checked before anything is sent.

`validate` is offline: it knows the models of the shipped price table (`prices.json`) and
warns, without failing, about a name it does not know, suggesting the closest one, or saying
which provider's model it is (`gpt-4o` under provider gemini). `plan` (the command and the
library's) and `apply` make one check (`check_plan`): the model of each batch the plan submits
against its provider's own list (`Provider.list_models`: Gemini's and Anthropic's paged,
OpenAI's whole), kept under `.runner/models/` for a day (a name it lacks is looked for in a
list fetched anew, once a run, before it is refused); a model the provider does not list is
refused, naming the closest, before any job is created; a name the list holds a dated
snapshot of (Anthropic lists only `claude-haiku-4-5-20251001`) is its alias, and passes. A
list that cannot be fetched, or that holds no model at all, is a warning, not an error: the
provider refuses an unknown model at create anyway. OpenAI's fine-tuned models (`ft:...`) are
the account's own, and pass.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
import re
import stat
import time
from collections.abc import Callable, Iterable
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from .actions import SUBMITS, Plan
from .errors import ManifestError, ProviderError
from .fsutil import write_text

if TYPE_CHECKING:
    from .manifest import Manifest
    from .providers.clients import Clients

EXPIRY = 24 * 3600                      # seconds a provider's list is kept
KEPT_BYTES = 16 << 20                   # the most of a kept list read back: bigger, asked again
_NAMES = {"gemini": "a Gemini", "openai": "an OpenAI", "anthropic": "an Anthropic"}


@cache
def known(provider: str) -> tuple[str, ...]:
    """The models of `provider` the shipped price table lists."""
    table = json.loads(resources.files("runner").joinpath("prices.json").read_text("utf-8"))
    models = table.get("providers", {}).get(provider, {}).get("models", {})
    return tuple(sorted(models))


def _bare(model: str) -> str:
    return model.removeprefix("models/")


# the date a snapshot's id ends with: Anthropic's `-20251001`, OpenAI's `-2024-08-06`
_DATED = re.compile(r"-(?:\d{8}|\d{4}-\d{2}-\d{2})")
# what a snapshot adds to the name of its model: a date, or Gemini's version (`-001`)
_SNAPSHOT = re.compile(r"-(?:\d{8}|\d{4}-\d{2}-\d{2}|\d{3})")


def _listed(model: str, names: Iterable[str]) -> bool:
    """Whether `names` holds the model, the model it is a snapshot of (`gpt-4o-2024-08-06`,
    `claude-sonnet-4-5-20250929`, `gemini-2.0-flash-001`; not `gpt-4o-2`), or a dated
    snapshot of it: the model is then an alias (`claude-haiku-4-5`, `claude-3-5-haiku-latest`)
    of a snapshot the provider lists, as Anthropic's list holds only the dated ids."""
    alias = model.removesuffix("-latest")
    for name in names:
        rest = model.removeprefix(name)
        if rest == "" or (rest != model and _SNAPSHOT.fullmatch(rest)):
            return True
        dated = name.removeprefix(alias)
        if dated != name and _DATED.fullmatch(dated):
            return True
    return False


def _own(provider: str, model: str) -> bool:
    return provider == "openai" and model.startswith("ft:")


def _closest(model: str, names: Iterable[str]) -> str:
    close = difflib.get_close_matches(model, sorted(names), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def offline_warning(provider: str, model: str) -> str | None:
    """What `validate` says of a model it does not know, or None."""
    bare = _bare(model)
    if _own(provider, bare) or not known(provider) or _listed(bare, known(provider)):
        return None
    for other, article in _NAMES.items():
        if other != provider and _listed(bare, known(other)):
            return (f"{model!r} is {article} model, not {_NAMES.get(provider, provider)} "
                    f"one (spec.provider is {provider})")
    return (f"{model!r} is not {_NAMES.get(provider, provider)} model this runner knows"
            f"{_closest(bare, known(provider))}; plan checks it against the provider's list")


class Catalogue:
    """Each provider's list of models, fetched once a day (`EXPIRY`) and kept under the
    state directory; `fetch(provider)` asks the provider."""

    def __init__(self, state_dir: Path, fetch: Callable[[str], list[str]], *,
                 tag: str = "", now: Callable[[], float] = time.time):
        self._dir, self._fetch, self._tag, self._now = state_dir / "models", fetch, tag, now
        self._fetched: set[str] = set()     # the providers asked in this run

    def models(self, provider: str, *, anew: bool = False) -> list[str]:
        """The provider's list: the one kept, while it is fresh, unless `anew`."""
        path = self._dir / f"{provider}{self._tag}.json"
        try:
            if anew:
                raise OSError("asked for anew")
            kept = json.loads(_read_kept(path))
            models = kept["models"]
            if 0 <= self._now() - float(kept["fetched_at"]) < EXPIRY and \
                    isinstance(models, list) and models and \
                    all(isinstance(m, str) for m in models):
                return list(models)
        except (OSError, ValueError, KeyError, TypeError):
            pass                        # none kept, too old or unreadable: ask again
        models = sorted({_bare(m) for m in self._fetch(provider)})
        if not models:                  # no key may use no model: a provider (or a proxy)
            raise ProviderError(        # that answers so is not to refuse every batch
                "list models: the provider listed no model at all")
        self._fetched.add(provider)
        self._dir.mkdir(parents=True, exist_ok=True)
        write_text(path, json.dumps({"fetched_at": self._now(), "models": models}) + "\n")
        return models

    def check(self, provider: str, model: str, *, source: object, where: str) -> None:
        """Raises ManifestError naming the closest model when the provider lists no
        `model`. A name the kept list lacks is looked for in a list fetched anew (once a
        run): a model released, or a key changed, since the list was kept is not refused."""
        bare = _bare(model)
        if _own(provider, bare):
            return
        listed = self.models(provider)
        if not _listed(bare, listed) and provider not in self._fetched:
            listed = self.models(provider, anew=True)
        if not _listed(bare, listed):
            raise ManifestError(f"spec.model: {provider} has no model {model!r}"
                                f"{_closest(bare, listed)}; nothing was submitted",
                                path=source, where=where)


def _read_kept(path: Path) -> bytes:
    """A kept list's bytes: a regular file of at most KEPT_BYTES, not through a link (to a
    file elsewhere, to /dev/zero, to a FIFO); OSError for anything else."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_size > KEPT_BYTES:
            raise OSError(f"{path}: not a list of models the runner kept")
        return f.read(KEPT_BYTES + 1)


def check_plan(plan: Plan, manifests: Iterable[Manifest], clients: Clients,
               state_dir: Path) -> Plan:
    """The model of every batch `plan` submits, checked against its provider's list (kept a
    day under `state_dir`): what `plan` and `apply` do before anything is sent. A model the
    provider does not list raises ManifestError naming the manifest, its `spec.model` line and
    the closest name. A provider whose list cannot be fetched leaves its models unchecked and
    the returned plan says so in a warning."""
    submits = {a.name for a in plan.actions if any(p.kind in SUBMITS for p in (a, *a.parts))}
    catalogue = Catalogue(state_dir, lambda provider: list(clients[provider].list_models()),
                          tag="-emulator" if clients.emulator else "")
    failed: dict[str, str] = {}             # provider -> why its list could not be had
    unchecked: dict[str, list[str]] = {}    # provider -> the batches left unchecked
    for m in sorted((m for m in manifests if m.name in submits), key=lambda m: m.name):
        if m.provider not in failed:
            try:
                catalogue.check(m.provider, m.model, source=m.source,
                                where=str(m.line_of(["spec", "model"])))
                continue
            except ProviderError as e:
                failed[m.provider] = str(e)
        unchecked.setdefault(m.provider, []).append(m.name)
    if not failed:
        return plan
    warnings = tuple(f"{provider}'s list of models could not be fetched ({failed[provider]}); "
                     f"the model of {', '.join(names)} is not checked before submitting"
                     for provider, names in unchecked.items())
    return dataclasses.replace(plan, warnings=plan.warnings + warnings)
