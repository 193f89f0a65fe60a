"""OpenAI's cursor lists: `{"object": "list", "data", "first_id", "last_id", "has_more"}`.

A client asks for the page after an item by naming it (`after=<id>`; the SDK passes the id of
the last item it got, not `last_id`). The place of that item in the order is read from the id
itself (runner.emulator.openai.records), so a walk goes on even if the item was deleted
since. Items are ordered by creation time, newest first unless a list allows `order=asc`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from runner.emulator.openai.errors import OpenAiError, invalid
from runner.emulator.openai.records import created_of, is_id
from runner.emulator.wire import JSON

T = TypeVar("T")
SortKey = tuple[float, str]


def sort_key(record_id: str, created_at: float) -> SortKey:
    found = created_of(record_id)
    return (created_at if found is None else found), record_id


def limit_of(raw: str | None, default: int, maximum: int) -> int:
    """The `limit` query parameter, checked as the real API checks it."""
    if raw is None or raw == "":
        return default
    try:
        limit = int(raw)
    except ValueError:
        raise OpenAiError("INVALID_ARGUMENT", f"Invalid 'limit': expected an integer, but got"
                          f" {raw!r} instead.", param="limit", code="invalid_type") from None
    if limit < 1:
        raise OpenAiError("INVALID_ARGUMENT", f"Invalid 'limit': integer below minimum value."
                          f" Expected a value >= 1, but got {limit} instead.", param="limit",
                          code="integer_below_min_value")
    if limit > maximum:
        raise OpenAiError("INVALID_ARGUMENT", f"Invalid 'limit': integer above maximum value."
                          f" Expected a value <= {maximum}, but got {limit} instead.",
                          param="limit", code="integer_above_max_value")
    return limit


def order_of(raw: str | None) -> bool:
    """True for newest first (`order=desc`, the default)."""
    if raw in (None, "", "desc"):
        return True
    if raw == "asc":
        return False
    raise invalid(f"Invalid value for 'order': {raw!r}. Supported values are: 'asc' and 'desc'.",
                  "order", "invalid_value")


def page(
    items: Sequence[T],
    key: Callable[[T], SortKey],
    limit: int,
    after: str | None,
    lookup: Callable[[str], T | None],
    newest_first: bool = True,
) -> tuple[list[T], bool]:
    """One page of `items` after the item named `after`, and whether more follow."""
    ordered = sorted(items, key=key, reverse=newest_first)
    if after:
        if not is_id(after):
            raise invalid(f"Invalid 'after': {after!r} is not an id.", "after")
        known = lookup(after)
        found = created_of(after)
        if known is not None:
            mark = key(known)
        elif found is not None:
            mark = (found, after)
        else:
            raise invalid(f"Invalid 'after': no object has the id {after!r}.", "after")
        ordered = [item for item in ordered if (key(item) < mark) == newest_first
                   and key(item) != mark]
    return ordered[:limit], len(ordered) > limit


def listing(data: list[JSON], has_more: bool) -> JSON:
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": has_more,
    }
