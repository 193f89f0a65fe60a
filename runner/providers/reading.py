"""Typed reads of a provider's answers, trusting none of them.

Every field is checked for its JSON type before it is used, so that an answer of the wrong
shape (a numeric state, a count that is "many", a page that is an array) becomes one
ProviderError naming the job, or the call, and the field, never a crash or a wrong value.
Each provider's wire module builds on `Reader`.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from typing import Any

from ..errors import ProviderError

# RFC 3339 as providers write it: `Z` or an offset, 0 to 9 digits of fraction (and more)
_TIME = re.compile(r"([0-9]{4}-[0-9]{2}-[0-9]{2})[Tt ]([0-9]{2}:[0-9]{2}:[0-9]{2})"
                   r"(?:\.([0-9]+))?(?:[Zz]|([+-])([0-9]{2}):([0-9]{2}))")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
# An id that may go in a URL path as one segment, as OpenAI's and Anthropic's ids are
# (`batch_…`, `file-…`, `msgbatch_…`): nothing a path or a query could be made of.
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,199}")


def is_id(text: str) -> bool:
    """Whether `text` may be put in a URL path as one segment (a batch or file id)."""
    return _ID.fullmatch(text) is not None


def one_line(text: str, limit: int = 300) -> str:
    """Provider text made fit for a one-line message: no line breaks or control characters,
    at most `limit` characters."""
    text = _CONTROL.sub(" ", text).strip()
    return text if len(text) <= limit else text[:limit - 1] + "…"


def kind(value: object) -> str:
    """The JSON type of a value, as a message says it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array" if isinstance(value, list) else "an object"


class Reader:
    """Typed reads from one answer; every complaint names `whose` (a job, or the call whose
    answer it is) and the field, by its path in the answer."""

    def __init__(self, whose: str):
        self.whose = whose

    def wrong(self, path: str, value: object, expected: str) -> ProviderError:
        return ProviderError(f"{self.whose}: the provider sent {path} as {kind(value)}, "
                             f"expected {expected}")

    def mapping(self, value: object, path: str) -> dict[str, Any]:
        """An object, or {} when the field is absent (proto3 JSON omits empty fields)."""
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.wrong(path, value, "an object")
        return value

    def array(self, value: object, path: str) -> list[Any]:
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.wrong(path, value, "an array")
        return value

    def string(self, value: object, path: str) -> str | None:
        if value is None or isinstance(value, str):
            return value
        raise self.wrong(path, value, "a string")

    def ident(self, value: object, path: str) -> str | None:
        """An id (see `is_id`), or None when the field is absent."""
        text = self.string(value, path)
        if text is not None and not is_id(text):
            raise ProviderError(f"{self.whose}: the provider sent {path} "
                                f"{one_line(text, 80)!r}, which is not an id")
        return text

    def count(self, value: object, path: str) -> int:
        """An int64 counter: proto3 JSON writes it as a string of digits; 0 when absent."""
        if value is None:
            return 0
        if type(value) is int and value >= 0:
            return value
        if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 19:
            return int(value)       # an int64 has at most 19 digits (Python refuses 4,301)
        raise self.wrong(path, value, "a count")

    def time(self, value: object, path: str) -> str | None:
        """An RFC 3339 time as RFC 3339 UTC (`2026-01-02T03:04:05.123Z`); None if absent."""
        text = self.string(value, path)
        if text is None:
            return None
        found = _TIME.fullmatch(text)
        try:
            if found is None:
                raise ValueError(text)
            day, clock, fraction, sign, hours, minutes = found.groups()
            moment = datetime.strptime(f"{day}T{clock}", "%Y-%m-%dT%H:%M:%S")
            if sign is not None:
                offset = timedelta(hours=int(hours), minutes=int(minutes))
                moment = moment - offset if sign == "+" else moment + offset
        except (ValueError, OverflowError):
            raise ProviderError(f"{self.whose}: the provider sent {path} "
                                f"{one_line(text, 80)!r}, which is not an RFC 3339 time"
                                ) from None
        return moment.isoformat(timespec="seconds") + \
            (f".{fraction[:9]}" if fraction else "") + "Z"


def error_message(body: bytes, text: str) -> str:
    """The message of an error answer (`{"error": {"message"}}`), else the start of its text."""
    try:
        answer = json.loads(body)
    except ValueError:
        answer = None
    err = answer.get("error") if isinstance(answer, dict) else None
    if isinstance(err, dict) and err.get("message"):
        return one_line(str(err["message"]))
    return one_line(str(err) if err else text, 300 if err else 200)


def model_name(item: object, whose: str) -> str:
    """A model's id in an item of a provider's list of models (`id`, or Gemini's `name`);
    `whose` names the item in a complaint."""
    if isinstance(item, dict):
        for key in ("id", "name"):
            if isinstance(item.get(key), str):
                return str(item[key]).removeprefix("models/")
    raise ProviderError(f"{whose}: a listed model is {kind(item)}, expected an object with "
                        "an id")
