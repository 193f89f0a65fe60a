"""Keys as Anthropic's `custom_id` takes them, and back.

A custom_id must match `^[a-zA-Z0-9_-]{1,64}$`; a manifest's key is any non-empty string. So:

- a key that already matches, and does not start with MARKER, is sent as it is (the common
  case costs nothing, and the provider's console shows the keys people wrote);
- any other key is sent as MARKER followed by the base64url of its UTF-8 bytes, without
  padding. base64url's alphabet (A-Z, a-z, 0-9, `-`, `_`) is exactly what custom_id allows, so
  the result always matches; a key that starts with MARKER is encoded too, so that a custom_id
  starting with MARKER always means "encoded" and the mapping is reversible;
- a key whose custom_id would pass 64 characters (a plain key over 64, or one whose encoding
  is: 46 bytes of UTF-8 at most) cannot be sent: ValueError, saying why and what fits.

`key_of_wire` reverses it exactly, and refuses a custom_id that no key maps to (a non-canonical
base64 tail, bytes that are not UTF-8), so that two custom_ids never stand for one key.
"""

from __future__ import annotations

import base64
import re

MARKER = "__"
MAX = 64
_ALPHABET = re.compile(r"[A-Za-z0-9_-]+")


def wire_key(key: str) -> str:
    """The custom_id `key` is sent as; raises ValueError when none fits."""
    if len(key) <= MAX and _ALPHABET.fullmatch(key) and not key.startswith(MARKER):
        return key
    try:
        data = key.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("it holds a character that is not valid Unicode (a lone surrogate)"
                         ) from None
    wire = MARKER + base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")
    if len(wire) <= MAX:
        return wire
    if _ALPHABET.fullmatch(key) is None:
        raise ValueError(f"Anthropic's custom_id holds only A-Z, a-z, 0-9, '_' and '-', so "
                         f"this key is sent encoded, which takes {len(wire)} characters, more "
                         f"than the {MAX} it may have (a key of other characters fits in 46 "
                         f"bytes of UTF-8, this one has {len(data)}); make spec.key shorter, "
                         "or use only those characters")
    if len(key) > MAX:
        raise ValueError(f"it is {len(key)} characters long, and Anthropic's custom_id holds "
                         f"at most {MAX}; make spec.key shorter")
    raise ValueError(f"it starts with {MARKER!r}, which marks an encoded key, and encoded it "
                     f"takes {len(wire)} characters, more than the {MAX} a custom_id may "
                     "have; make spec.key shorter, or start it otherwise")


def key_of_wire(wire: str) -> str:
    """The key a custom_id stands for; raises ValueError for one no key is sent as."""
    if not wire.startswith(MARKER):
        return wire
    body = wire[len(MARKER):]
    try:    # base64 and UTF-8 errors are ValueErrors, as is a key that fits no custom_id
        key = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode("utf-8")
        canonical = wire_key(key) == wire   # not a non-canonical tail, nor a plain key
    except ValueError:
        canonical = False
    if not canonical:
        raise ValueError(f"custom_id {wire!r} is not one the runner sent")
    return key
