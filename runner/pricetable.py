"""The price table: its format, the layers that override it, reading and checking it, and
finding a model's entry. What a batch costs at these prices is runner.pricing's.

The price table is data, not code: `runner/prices.json` ships with the runner, dated (`as_of`)
and naming its source, because prices change more often than the runner, and a plan's costs
and budget checks must follow from files a reviewer can read. Its models are grouped by
provider (`providers.<name>.models`), each group with its own `as_of`, `source` and
`notes`; a table may also list `models` at the top, dated by the top-level `as_of` (the one
format before providers were grouped, and still the short way to write an override). A user
overrides it without waiting for a release, in two layers, each replacing whole model entries
of the one below (an entry may add a model the runner does not know yet):

1. `prices.json` in the manifest directory: committed beside the manifests, so a price change
   is reviewed in the pull request whose plan it changes. Manifests are only `*.yaml`/`*.yml`
   files, so it is never read as one. Like every file of the project, it may not be a
   symlink that leads out of the directory.
2. the file named by the environment variable `RUNNER_PRICES`: negotiated prices kept out of
   the repository, or a one-off run. It may be anywhere (whoever sets the environment
   chooses it); as for any file, errors quote no more of it than a short excerpt.

Every cost is at the batch price: the interactive price times (1 - `batch_discount`), 0.5 for
Gemini's Batch Mode, OpenAI's Batch API and Anthropic's Message Batches. A request whose
prompt is over `LONG_PROMPT_TOKENS` is billed at the model's `long_context` price where it has
one. Recorded usage bills input read from the prompt cache at `cached_input_per_million` and
input written to it at `cache_write_per_million` where the entry has them (the input rate
otherwise); an estimate cannot know what will be cached, and prices all input as input.

Models are matched the way ids are written in manifests: a `models/` prefix is dropped, and a
versioned, dated or preview id (`gemini-2.5-flash-001`, `gemini-2.5-flash-preview-09-2025`,
`gpt-4o-2024-08-06`, `claude-sonnet-4-5-20250929`) takes the entry of its longest listed prefix
that ends at a dash, so `gpt-4o-mini-2024-07-18` takes `gpt-4o-mini`, not `gpt-4o`. A model
not in the table has no price (None): a plan says so and goes on; only a budget then refuses,
as it cannot be checked. OpenAI's fine-tuned models (`ft:gpt-4o-mini-2024-07-18:org::id`) are
among them: they are billed at rates of their own, not their base model's, so a user lists
each one by its id in `prices.json`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from .errors import EXCERPT, PricesError, clipped, excerpt
from .layout import PRICES_ENV, PRICES_FILE
from .resolve import Resolver, leaves

PACKAGED = "runner/prices.json"

_RATE_KEYS = ("input_per_million", "output_per_million")
_CACHE_KEYS = ("cached_input_per_million", "cache_write_per_million")
_RATE_NAMES = {*_RATE_KEYS, *_CACHE_KEYS}
_ENTRY_KEYS = _RATE_NAMES | {"batch_discount", "long_context", "note"}
_SECTION_KEYS = {"as_of", "source", "notes", "models"}
_TOP_KEYS = _SECTION_KEYS | {"currency", "providers"}


@dataclass(frozen=True)
class Rates:
    """Interactive prices per million tokens. Input read from the prompt cache, or written to
    it, has a rate of its own where the provider bills it apart (None: billed as input)."""

    input_per_million: float
    output_per_million: float
    cached_input_per_million: float | None = None
    cache_write_per_million: float | None = None

    def cost(self, input_tokens: int, output_tokens: int, cached: int = 0,
             written: int = 0) -> float:
        """The interactive price of `input_tokens`, `cached` of them read from the prompt cache
        and `written` into it, and `output_tokens`."""
        read = self.input_per_million if self.cached_input_per_million is None \
            else self.cached_input_per_million
        write = self.input_per_million if self.cache_write_per_million is None \
            else self.cache_write_per_million
        return ((input_tokens - cached - written) * self.input_per_million + cached * read
                + written * write + output_tokens * self.output_per_million) / 1_000_000


@dataclass(frozen=True)
class Price:
    """One model's interactive prices, and where they came from."""

    rates: Rates
    batch_discount: float = 0.5
    long_context: Rates | None = None     # for a request whose prompt is over LONG_PROMPT_TOKENS
    as_of: str = ""
    origin: str = ""

    def batch(self, input_tokens: int, output_tokens: int, *, cached: int = 0, written: int = 0,
              long: bool = False) -> float:
        """The batch price of these tokens (see Rates.cost); `long` for requests over the
        long-context tier."""
        rates = self.long_context if long and self.long_context is not None else self.rates
        return rates.cost(input_tokens, output_tokens, cached, written) * (1 - self.batch_discount)


@dataclass(frozen=True)
class PriceTable:
    models: Mapping[str, Price]
    currency: str = "USD"
    origins: tuple[str, ...] = ()

    def lookup(self, model: str) -> Price | None:
        """The price of `model`, by exact id or else its longest listed prefix ending at '-'."""
        wanted = model.removeprefix("models/").lower()
        if wanted in self.models:
            return self.models[wanted]
        prefixes = [m for m in self.models if wanted.startswith(m + "-")]
        return self.models[max(prefixes, key=len)] if prefixes else None

    def over(self, other: PriceTable) -> PriceTable:
        """This table with `other`'s entries laid over it, model by model."""
        if other.currency != self.currency:
            raise PricesError(f"prices are in {other.currency} but the table under them is in "
                              f"{self.currency}; an override must use the same currency",
                              path=other.origins[-1] if other.origins else None)
        return PriceTable({**self.models, **other.models}, self.currency,
                          self.origins + other.origins)


def parse_prices(text: str, origin: str) -> PriceTable:
    """A price table from JSON text; `origin` names the file in messages and in each price."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise PricesError(f"not valid JSON: {e.msg}", path=origin, where=str(e.lineno)) from None
    if not isinstance(doc, dict) or not ("models" in doc or "providers" in doc) \
            or not isinstance(doc.get("models", {}), dict) \
            or not isinstance(doc.get("providers", {}), dict):
        raise PricesError("a price table is a JSON object with a 'models' object, or a "
                          "'providers' object of such groups", path=origin)
    unknown = sorted(set(doc) - _TOP_KEYS)
    if unknown:
        raise PricesError(f"unknown key {excerpt(unknown[0])} (allowed: "
                          f"{', '.join(sorted(_TOP_KEYS))})", path=origin)
    currency, as_of = doc.get("currency", "USD"), doc.get("as_of", "")
    if not isinstance(currency, str) or not currency or not isinstance(as_of, str):
        raise PricesError("'currency' and 'as_of' must be strings", path=origin)
    models = _models(doc.get("models", {}), "models", origin, as_of)
    for provider, group in doc.get("providers", {}).items():
        where = f"providers.{clipped(provider, EXCERPT)}"
        if not isinstance(group, dict) or not isinstance(group.get("models"), dict):
            raise PricesError(f"{where}: must be an object with a 'models' object", path=origin)
        unknown = sorted(set(group) - _SECTION_KEYS)
        if unknown:
            raise PricesError(f"{where}: unknown key {excerpt(unknown[0])} (allowed: "
                              f"{', '.join(sorted(_SECTION_KEYS))})", path=origin)
        if not isinstance(group.get("as_of", as_of), str):
            raise PricesError(f"{where}.as_of: must be a string", path=origin)
        listed = _models(group["models"], f"{where}.models", origin, group.get("as_of", as_of))
        twice = sorted(set(listed) & set(models))
        if twice:
            raise PricesError(f"{where}.models: {excerpt(twice[0])} is listed twice in one "
                              "table; keep one entry", path=origin)
        models.update(listed)
    return PriceTable(models, currency, (origin,))


def _models(entries: Mapping[str, Any], where: str, origin: str, as_of: str
            ) -> dict[str, Price]:
    return {name.removeprefix("models/").lower(): _price(entry, f"{where}.{clipped(name, EXCERPT)}",
                                                          origin, as_of)
            for name, entry in entries.items()}


def _price(entry: Any, where: str, origin: str, as_of: str) -> Price:
    if not isinstance(entry, dict):
        raise PricesError(f"{where}: must be an object", path=origin)
    discount = entry.get("batch_discount", 0.5)
    if not _amount(discount) or discount >= 1:
        raise PricesError(f"{where}.batch_discount: must be a number from 0 to below 1 (the "
                          "fraction taken off the interactive price)", path=origin)
    long = entry.get("long_context")
    return Price(_rates(entry, where, origin, _ENTRY_KEYS), float(discount),
                 None if long is None else _rates(long, f"{where}.long_context", origin),
                 as_of, origin)


def _rates(entry: Any, where: str, origin: str, allowed: Collection[str] = _RATE_NAMES
           ) -> Rates:
    if not isinstance(entry, dict):
        raise PricesError(f"{where}: must be an object", path=origin)
    unknown = sorted(set(entry) - set(allowed))
    if unknown:
        raise PricesError(f"{where}: unknown key {excerpt(unknown[0])} (allowed: "
                          f"{', '.join(sorted(allowed))})", path=origin)
    for key in (*_RATE_KEYS, *(k for k in _CACHE_KEYS if k in entry)):
        if not _amount(entry.get(key)):
            raise PricesError(f"{where}.{key}: must be a number, 0 or more (price per million "
                              "tokens)", path=origin)
    cached, write = (None if entry.get(key) is None else float(entry[key]) for key in _CACHE_KEYS)
    return Rates(float(entry["input_per_million"]), float(entry["output_per_million"]),
                 cached, write)


def _amount(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0


def _read(path: Path) -> PriceTable:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        why = e.strerror if isinstance(e, OSError) else "not valid UTF-8"
        raise PricesError(f"cannot read price table: {why}", path=path) from None
    return parse_prices(text, str(path))


def packaged() -> PriceTable:
    return parse_prices(resources.files("runner").joinpath("prices.json")
                        .read_text(encoding="utf-8"), PACKAGED)


def load_prices(directory: Path | None = None,
                environ: Mapping[str, str] = os.environ) -> PriceTable:
    """The packaged table, under `DIR/prices.json` if there is one, under `$RUNNER_PRICES`."""
    table = packaged()
    if directory is not None and (directory / PRICES_FILE).is_file():
        problem = leaves(directory, PRICES_FILE, Resolver())
        if problem is not None:
            raise PricesError(f"{problem}; keep the price table in the directory",
                              path=directory / PRICES_FILE)
        table = table.over(_read(directory / PRICES_FILE))
    named = environ.get(PRICES_ENV)
    if named:
        if not Path(named).is_file():
            raise PricesError(f"{PRICES_ENV} names {named}, which is not a file")
        table = table.over(_read(Path(named)))
    return table
