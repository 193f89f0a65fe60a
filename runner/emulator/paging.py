"""List pagination shared by batches and files: newest first, opaque resumable tokens.

A page token names the last item of the previous page rather than a position, so items
created or deleted between two page requests neither repeat nor vanish from the walk.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from typing import TypeVar

from runner.emulator.wire import ApiError

DEFAULT_PAGE_SIZE = 10
MAX_PAGE_SIZE = 100

T = TypeVar("T")
SortKey = tuple[float, str]


def page_size(raw: str | None) -> int:
    if not raw:
        return DEFAULT_PAGE_SIZE
    try:
        size = int(raw)
    except ValueError:
        raise ApiError("INVALID_ARGUMENT", f"Invalid pageSize {raw!r}") from None
    return DEFAULT_PAGE_SIZE if size <= 0 else min(size, MAX_PAGE_SIZE)


def paginate(
    items: Sequence[T], key: Callable[[T], SortKey], size: int, token: str | None
) -> tuple[list[T], str | None]:
    """One page of `items`, newest (largest key) first, and the token for the next page."""
    ordered = sorted(items, key=key, reverse=True)
    if token:
        after = _decode(token)
        ordered = [item for item in ordered if key(item) < after]
    chosen = ordered[:size]
    more = len(ordered) > size
    return chosen, _encode(key(chosen[-1])) if more else None


def _encode(key: SortKey) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(key)).encode()).decode()


def _decode(token: str) -> SortKey:
    try:
        created, name = json.loads(base64.urlsafe_b64decode(token.encode()))
        if isinstance(created, (int, float)) and isinstance(name, str):
            return float(created), name
    except (ValueError, TypeError, binascii.Error):
        pass
    raise ApiError("INVALID_ARGUMENT", "Invalid page token")
