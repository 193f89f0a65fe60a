"""Partial responses: Google's `fields` system parameter and its `X-Goog-FieldMask` header.

Every method of the Generative Language API takes the standard system parameters (its
discovery document lists `fields`, "Selector specifying which fields to include in a partial
response", for each one), as all of Google's APIs do: `fields=name,metadata(state,batchStats)`
answers with those fields only. A client that polls a batch sent inline asks for its state
without its answers, which are megabytes; the emulator honours the mask the same way, and skips
reading the answers from disk when the mask leaves them out.

Syntax: paths separated by commas; `a.b` or `a/b` for a field of a field; `a(b,c)` for several
fields of one; `*` for every field. A repeated field applies its sub-mask to each element. An
`@type` stays beside the fields chosen of an `Any` (the `metadata` and `response` of an
Operation), which JSON cannot do without.
"""

from __future__ import annotations

import re
from typing import Any

from runner.emulator.messages import Request
from runner.emulator.wire import ApiError

Mask = dict[str, "Mask | None"]
"""A parsed mask: each field chosen, and what of it (None: all of it)."""

_TOKEN = re.compile(r"\s*(?:([A-Za-z_@$][A-Za-z0-9_]*|\*)|([.,/()]))")
MAX_MASK = 4096


def requested(request: Request) -> Mask | None:
    """The mask a request asks for (the `fields` or `$fields` parameter, else the header), or
    None for the whole answer; a mask that does not parse is the caller's error (HTTP 400)."""
    text = request.query.get("fields") or request.query.get("$fields") \
        or request.headers.get("X-Goog-FieldMask")
    if text is None or not text.strip() or text.strip() == "*":
        return None
    return parse(text)


def parse(text: str) -> Mask:
    if len(text) > MAX_MASK:
        raise _invalid(text, "too long")
    tokens = _tokens(text)
    mask, at = _paths(tokens, 0, text)
    if at != len(tokens):
        raise _invalid(text, f"unexpected {tokens[at]!r}")
    return mask


def _tokens(text: str) -> list[str]:
    tokens, at = [], 0
    while at < len(text):
        found = _TOKEN.match(text, at)
        if found is None:
            if text[at:].strip():
                raise _invalid(text, f"unexpected {text[at]!r}")
            break
        tokens.append(found.group(1) or found.group(2))
        at = found.end()
    return tokens


def _paths(tokens: list[str], at: int, text: str) -> tuple[Mask, int]:
    """Paths separated by commas, up to a `)` or the end."""
    mask: Mask = {}
    while True:
        at = _path(tokens, at, mask, text)
        if at < len(tokens) and tokens[at] == ",":
            at += 1
            continue
        return mask, at


def _path(tokens: list[str], at: int, into: Mask, text: str) -> int:
    """One path (`a.b(c,d)`), merged into `into`."""
    if at >= len(tokens) or tokens[at] in ".,/()":
        raise _invalid(text, "a field name is missing")
    name = tokens[at]
    at += 1
    if at < len(tokens) and tokens[at] in "./":
        sub: Mask = {}
        at = _path(tokens, at + 1, sub, text)
    elif at < len(tokens) and tokens[at] == "(":
        sub, at = _paths(tokens, at + 1, text)
        if at >= len(tokens) or tokens[at] != ")":
            raise _invalid(text, "a parenthesis is not closed")
        at += 1
    else:
        into[name] = None
        return at
    _merge(into, name, sub)
    return at


def _merge(into: Mask, name: str, sub: Mask) -> None:
    if name in into and into[name] is None:
        return                              # all of it was asked for already
    have = into.get(name)
    if have is None:
        into[name] = sub
        return
    for key, value in sub.items():
        if value is None:
            have[key] = None
        else:
            _merge(have, key, value)


def apply(mask: Mask | None, value: Any) -> Any:
    """`value` with only the fields `mask` chooses; objects left empty stay, as `{}`."""
    if mask is None:
        return value
    if isinstance(value, list):
        return [apply(mask, item) for item in value]
    if not isinstance(value, dict):
        return value
    if "*" in mask:
        return {key: apply(mask.get(key, mask["*"]), item) for key, item in value.items()}
    kept = {key: apply(mask[key], item) for key, item in value.items() if key in mask}
    if "@type" in value and kept:
        kept = {"@type": value["@type"], **kept}
    return kept


def wants(mask: Mask | None, *path: str) -> bool:
    """Whether the answer under `mask` holds anything at `path` (to skip building it)."""
    for name in path:
        if mask is None:
            return True
        if name not in mask and "*" not in mask:
            return False
        mask = mask.get(name, mask.get("*"))
    return True


def whole(mask: Mask | None, *path: str) -> bool:
    """Whether the answer under `mask` shows the value at `path` whole, or not at all: then
    it may be written as it is stored, unparsed."""
    for name in path:
        if mask is None:
            return True
        if name not in mask and "*" not in mask:
            return True
        mask = mask.get(name, mask.get("*"))
    return mask is None


def check(mask: Mask | None, fields: frozenset[str]) -> None:
    """A mask naming a top-level field the answer's message does not have is refused, as the
    real API refuses it (HTTP 400)."""
    for name in mask or {}:
        if name != "*" and name not in fields:
            raise ApiError("INVALID_ARGUMENT", f"Invalid field selection {name}")


def _invalid(text: str, why: str) -> ApiError:
    return ApiError("INVALID_ARGUMENT", f"Invalid FieldMask '{text[:200]}': {why}.")
