"""The providers a manifest may name, one line each: `spec.provider` -> its package.

A package exposes `DIALECT` (see `runner.providers.dialect`). Adding a provider means adding
its package and its line here; nothing else in the core names a provider. Packages are
imported when a manifest first names them, so a run pays only for the providers it uses.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Protocol

from .dialect import Dialect

PROVIDERS: Mapping[str, str] = {
    "anthropic": "runner.providers.anthropic",
    "gemini": "runner.providers.gemini",
    "openai": "runner.providers.openai",
}


def names() -> list[str]:
    return sorted(PROVIDERS)


def dialect(name: str) -> Dialect:
    """The dialect of a provider by its name; KeyError for a name no package has."""
    found: Dialect = importlib.import_module(PROVIDERS[name]).DIALECT
    return found


class Names(Protocol):
    @property
    def provider(self) -> str: ...


def dialect_of(named: Names) -> Dialect:
    """The dialect of the provider a manifest (or anything naming one) names."""
    return dialect(named.provider)
