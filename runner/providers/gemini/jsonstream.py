"""Reading one large JSON document from a file a value at a time, in bounded memory.

A finished Gemini batch sent inline answers with every response inside one JSON document (the
batch resource), tens or hundreds of megabytes of it. Parsed whole it costs ten times its size
in Python objects; this reader walks the document's objects and arrays by hand and parses only
the values the caller asks for, each by the json module's C scanner (`raw_decode`), one at a
time, from a buffer that holds the value being read and little more.

No dependency is added for it: an incremental parser such as ijson would build each value as
this does, but without a bound on a single value, and it reads numbers as Decimal. Here every
value is bounded (`most` characters): a hostile answer (one value of a gigabyte, nesting past
the interpreter's recursion limit, NaN, invalid UTF-8, a truncated document) is a ValueError
naming what went wrong, which the caller turns into one line.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any, TextIO

PIECE = 1 << 20                     # characters read at a time, at least
_SPACE = re.compile(r"[ \t\n\r]*")
_KINDS = {"{": "an object", "[": "an array", '"': "a string", "t": "a boolean",
          "f": "a boolean", "n": "null"}


class Malformed(ValueError):
    """The document is not JSON, is cut short, or holds a value over the bound."""


class _Constant(Exception):
    """NaN or Infinity, which Python's parser lets through and no JSON writer takes back."""


def _refuse(constant: str) -> Any:
    raise _Constant(constant)


_DECODER = json.JSONDecoder(parse_constant=_refuse)


class Reader:
    """A cursor over the JSON text in `source`. `peek` says what comes next, `members` and
    `elements` walk an object or an array, `value` parses the next value whole and `skip`
    passes over it (parsed, within the same bound, and dropped)."""

    def __init__(self, source: TextIO, most: int):
        self._source = source
        self._most = most
        self._buf = ""
        self._at = 0
        self._dropped = 0           # characters read and dropped before the buffer's start
        self._eof = False

    # -- the buffer ----------------------------------------------------------------------

    def _more(self, at_least: int = PIECE) -> bool:
        """Reads on, dropping what was read before the cursor; False at the end of the text."""
        if self._eof:
            return False
        try:
            piece = self._source.read(max(at_least, PIECE))
        except UnicodeDecodeError:
            raise Malformed("the answer is not UTF-8 text") from None
        if not piece:
            self._eof = True
            return False
        self._dropped += self._at
        self._buf = self._buf[self._at:] + piece
        self._at = 0
        return True

    def peek(self) -> str:
        """The next character that is not white space; "" at the end of the text."""
        while True:
            self._at = _SPACE.match(self._buf, self._at).end()  # type: ignore[union-attr]
            if self._at < len(self._buf) or not self._more():
                return self._buf[self._at:self._at + 1]

    def kind(self) -> str:
        """What the next value is, in words: "an object", "a number"…"""
        char = self.peek()
        if not char:
            raise Malformed("the answer ends too soon")
        if char in _KINDS:
            return _KINDS[char]
        if char == "-" or char.isascii() and char.isdigit():
            return "a number"
        # no value starts so (a byte order mark, a stray character): said as it is, not
        # called a number of the wrong kind
        raise Malformed(f"the answer holds {char!r} where a value was due")

    def _expect(self, char: str) -> None:
        if self.peek() != char:
            found = self.peek()
            raise Malformed(f"expected {char!r} at character {self._dropped + self._at}, found "
                            f"{found!r}" if found else f"the answer ends where {char!r} was due")
        self._at += 1

    # -- values --------------------------------------------------------------------------

    def value(self) -> Any:
        """The next value, parsed; it may take at most `most` characters."""
        self.peek()
        while True:
            try:
                value, end = _DECODER.raw_decode(self._buf, self._at)
            except _Constant as e:
                raise Malformed(f"the answer holds {e}, which JSON does not") from None
            except RecursionError:
                raise Malformed("the answer nests values too deeply") from None
            except json.JSONDecodeError:
                if self._grow():
                    continue
                raise Malformed("the answer is not valid JSON, or is cut short") from None
            except ValueError as e:     # an integer of more digits than Python converts
                raise Malformed(f"the answer holds a value Python refuses: {e}") from None
            if end - self._at > self._most:
                raise self._too_large()
            if end == len(self._buf) and self._grow():
                continue                # a number may go on in the next piece
            self._at = end
            return value

    def _grow(self) -> bool:
        """More text for a value that did not fit: as much again, so that reading a long
        value over again costs at most twice."""
        pending = len(self._buf) - self._at
        if pending > self._most:
            raise self._too_large()
        return self._more(pending)

    def _too_large(self) -> Malformed:
        return Malformed(f"a value in the answer is larger than {self._most >> 20} MiB")

    def skip(self) -> None:
        self.value()

    def members(self) -> Iterator[str]:
        """The keys of the object that comes next; after each, the caller reads (or skips)
        its value before asking for the next."""
        self._expect("{")
        if self.peek() == "}":
            self._at += 1
            return
        while True:
            if self.peek() != '"':
                self._expect('"')
            key = self.value()
            self._expect(":")
            yield key
            if self.peek() == ",":
                self._at += 1
                continue
            self._expect("}")
            return

    def elements(self) -> Iterator[None]:
        """Each element of the array that comes next, as a cue to read it."""
        self._expect("[")
        if self.peek() == "]":
            self._at += 1
            return
        while True:
            yield None
            if self.peek() == ",":
                self._at += 1
                continue
            self._expect("]")
            return
