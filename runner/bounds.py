"""How much one render of a template may make, and what each operation that can make more
than it was given would make, worked out before it runs (see runner.sandbox, which calls
these checks).

An operation is checked when its result can outgrow its operands: `'x' * 10**10`,
`'%9999999999s' % x`, `s.center(10**10)`, `s.replace('', t)`, `sep.join(items)`, a list
that holds one long string a thousand times and is then printed. The others (upper, trim,
sort, a slice) make at most a few times what they are given, which was itself bounded.
"""

from __future__ import annotations

import re
from collections.abc import Callable, ItemsView, KeysView, Mapping, ValuesView
from typing import Any

import jinja2
from jinja2.filters import make_attrgetter
from jinja2.utils import Namespace

MAX_TEXT = 10_000_000       # characters of one string a template makes
MAX_MADE = 40_000_000       # characters and list items made by one render, all together
MAX_ITEMS = 1_000_000       # items of one list a template makes
MAX_STEPS = 300_000         # steps of one render: a loop iteration, filter or include is one,
CALL_STEPS = 4              # a call (macro, method, function) four: it costs Jinja as much
MAX_BITS = 100_000          # bits of one integer a template computes
MAX_REQUEST = 40_000_000    # bytes of one rendered request, key included, however it is made


class TemplateLimit(Exception):
    """A template went over one of the bounds of one render."""


def need(size: int, what: str) -> None:
    """Refuses an operation before it runs if it would make more than MAX_TEXT."""
    if size > MAX_TEXT:
        raise TemplateLimit(f"{what} would make more than {MAX_TEXT:,} characters")


def too_many(items: int, what: str) -> None:
    if items > MAX_ITEMS:
        raise TemplateLimit(f"{what} would make a list of more than {MAX_ITEMS:,} items")


PLAIN = (str, bytes, int, float)     # printed as long as they are, or nearly


def printed(value: Any, indent: int = 0) -> int:
    """About how many characters str() (or JSON, with `indent`) makes of `value`, counting
    each value as often as it is held; stops counting once over MAX_TEXT."""
    total, stack = 0, [(value, 0)]
    while stack and total <= MAX_TEXT:
        v, depth = stack.pop()
        total += 1 + depth * indent
        if isinstance(v, (str, bytes)):
            total += len(v) + 2
        elif isinstance(v, Mapping):
            stack.extend((x, depth + 1) for pair in v.items() for x in pair)
        elif isinstance(v, (list, tuple, KeysView, ValuesView, ItemsView)):
            stack.extend((x, depth + 1) for x in v)
        elif isinstance(v, Namespace):
            stack.append((v._Namespace__attrs, depth + 1))
        else:
            total += 24
    return total


def printable(value: Any, what: str) -> None:
    """Refuses to print a value whose text would be over MAX_TEXT: a list may hold one
    long string many times over, in a few bytes."""
    if not isinstance(value, PLAIN):
        need(printed(value), what)


_DIGITS = re.compile(r"\d+")
_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[#0 +\-]*(\*|\d*)(?:\.(\*|\d*))?")


def spec_numbers(spec: str) -> int:
    """The sum of the widths and precisions in a format spec: what they may pad to."""
    return sum(int(d) if len(d) < 12 else MAX_TEXT + 1 for d in _DIGITS.findall(spec))


# -- operators --------------------------------------------------------------------------

def _percent(fmt: Any, args: Any) -> None:
    """`fmt % args` (and the format filter): its widths, with `*` taken from args."""
    if not isinstance(fmt, (str, bytes)):
        return
    text = fmt if isinstance(fmt, str) else fmt.decode("latin-1")
    widths = sum(spec_numbers(m.group(0)) for m in _PERCENT_SPEC.finditer(text))
    if "*" in text:
        widths += sum(a for a in (args if isinstance(args, tuple) else (args,))
                      if isinstance(a, int))
    need(len(text) + widths + printed(args), "'%'")


def _times(left: Any, right: Any) -> None:
    if isinstance(left, int) and isinstance(right, int):
        if left.bit_length() + right.bit_length() > MAX_BITS:
            raise TemplateLimit(f"'*' would make a number of more than {MAX_BITS:,} bits")
        return
    seq, n = (left, right) if isinstance(right, int) else (right, left)
    if isinstance(n, int) and isinstance(seq, (str, bytes)):
        need(len(seq) * n, "'*'")
    elif isinstance(n, int) and isinstance(seq, (list, tuple)):
        too_many(len(seq) * n, "'*'")


def _power(left: Any, right: Any) -> None:
    if isinstance(left, int) and isinstance(right, int) and abs(left) > 1 \
            and left.bit_length() * right > MAX_BITS:
        raise TemplateLimit(f"'**' would make a number of more than {MAX_BITS:,} bits")


def _plus(left: Any, right: Any) -> None:
    if isinstance(left, (str, bytes)) and isinstance(right, (str, bytes)):
        need(len(left) + len(right), "'+'")
    elif isinstance(left, (list, tuple)) and isinstance(right, (list, tuple)):
        too_many(len(left) + len(right), "'+'")


BINOPS: dict[str, Callable[[Any, Any], None]] = {
    "*": _times, "**": _power, "+": _plus, "%": _percent}


# -- str, bytes and int methods; a check may return (x,): call with x as the first argument --

def _width(s: Any, width: Any = 0, *_: Any, **__: Any) -> None:
    if isinstance(width, int):
        need(width, "padding")


def _expandtabs(s: Any, tabsize: Any = 8) -> None:
    if isinstance(tabsize, int):
        need(len(s) + s.count("\t" if isinstance(s, str) else b"\t") * tabsize, "expandtabs()")


def _replace(s: Any, old: Any = "", new: Any = "", count: Any = -1) -> None:
    if isinstance(old, (str, bytes)) and isinstance(new, (str, bytes)) \
            and isinstance(count, int):
        n = s.count(old) if old else len(s) + 1
        n = n if count < 0 else min(n, count)
        need(len(s) + n * max(len(new) - len(old), 0), "replace()")


def _join(sep: Any, items: Any = ()) -> tuple[Any, ...]:
    """Draws the items once, counting, and hands them on as a list."""
    drawn, size = [], 0
    for item in items:
        drawn.append(item)
        size += len(sep) + (len(item) if isinstance(item, (str, bytes)) else 0)
        need(size, "join()")
    return (drawn,)


def _translate(s: Any, table: Any = None) -> None:
    values = table.values() if isinstance(table, Mapping) else \
        table if isinstance(table, (list, tuple)) else ()
    longest = max((len(v) for v in values if isinstance(v, (str, bytes))), default=1)
    need(len(s) * max(longest, 1), "translate()")


def _to_bytes(n: Any, length: Any = 1, *_: Any, **__: Any) -> None:
    if isinstance(length, int):
        need(length, "to_bytes()")


METHODS: dict[str, Callable[..., tuple[Any, ...] | None]] = {
    "center": _width, "ljust": _width, "rjust": _width, "zfill": _width,
    "expandtabs": _expandtabs, "replace": _replace, "join": _join, "translate": _translate,
    "to_bytes": _to_bytes}


# -- filters: a check takes the environment, then the filter's arguments; it may return (x,)
#    to call the filter with x in place of its value

# Filters that never turn a list or mapping into text, or that measure what they print
# themselves (join, pprint, tojson): the others (string, upper, format...) print their
# arguments, which must be printable within the bound.
KEEPS_VALUES = frozenset({
    "abs", "attr", "batch", "count", "d", "default", "dictsort", "first", "float", "groupby",
    "int", "items", "join", "last", "length", "list", "map", "max", "min", "pprint", "reject",
    "rejectattr", "reverse", "round", "select", "selectattr", "slice", "sort", "sum", "tojson",
    "unique"})


def _filter_join(env: jinja2.Environment, value: Any, d: Any = "", attribute: Any = None
                 ) -> tuple[Any, ...] | None:
    """Draws the items once (they are made already, and counted) and measures them."""
    drawn = value if type(value) is list else list(value)
    size = len(str(d)) * len(drawn)
    if attribute is None and set(map(type, drawn)) <= {str}:     # the usual case, in C
        size += sum(map(len, drawn))
    else:
        get = make_attrgetter(env, attribute) if attribute is not None else None
        for item in drawn if get is None else map(get, drawn):
            size += len(item) if type(item) is str else printed(item)
    need(size, "the filter 'join'")
    return None if drawn is value else (drawn,)


def _filter_sum(env: jinja2.Environment, iterable: Any, attribute: Any = None, start: Any = 0
                ) -> tuple[Any, ...]:
    drawn = list(iterable)
    if isinstance(start, (list, tuple)):
        too_many(len(start) + sum(len(x) for x in drawn if isinstance(x, (list, tuple))),
                 "the filter 'sum'")
    return (drawn,)


def _filter_indent(env: jinja2.Environment, s: Any, width: Any = 4, *_: Any, **__: Any
                   ) -> None:
    pad = width if isinstance(width, int) else len(str(width))
    text = str(s)
    need(len(text) + (text.count("\n") + 1) * pad, "the filter 'indent'")


def _filter_wordwrap(env: jinja2.Environment, s: Any, width: Any = 79,
                     break_long_words: Any = True, wrapstring: Any = None, *_: Any, **__: Any
                     ) -> None:
    text = str(s)
    lines = len(text) // max(width, 1) + 1 if isinstance(width, int) else len(text)
    need(len(text) + lines * len(str(wrapstring or "\n")), "the filter 'wordwrap'")


def _filter_urlize(env: jinja2.Environment, value: Any, trim_url_limit: Any = None,
                   nofollow: Any = False, target: Any = None, rel: Any = None,
                   *_: Any, **__: Any) -> None:
    text = str(value)
    extra = 64 + len(str(target or "")) + len(str(rel or ""))
    need(len(text) * 2 + (text.count(" ") + 1) * extra, "the filter 'urlize'")


def _filter_lists(name: str) -> Callable[..., None]:
    def check(env: jinja2.Environment, value: Any, count: Any = 0, *_: Any, **__: Any) -> None:
        if isinstance(count, int):
            too_many(count, f"the filter {name!r}")
    return check


def _filter_tojson(env: jinja2.Environment, value: Any, indent: Any = None) -> None:
    pad = indent if isinstance(indent, int) else len(indent) if isinstance(indent, str) else 0
    need(printed(value, pad), "the filter 'tojson'")


def _filter_pprint(env: jinja2.Environment, value: Any) -> None:
    need(printed(value, 1), "the filter 'pprint'")


def _filter_center(env: jinja2.Environment, value: Any, width: Any = 80) -> None:
    _width(value, width)


def _filter_format(env: jinja2.Environment, value: Any, *args: Any, **kwargs: Any) -> None:
    _percent(str(value), kwargs or args)


def _filter_replace(env: jinja2.Environment, s: Any, old: Any = "", new: Any = "",
                    count: Any = None) -> None:
    _replace(str(s), str(old), str(new), -1 if count is None else count)


FILTERS: dict[str, Callable[..., tuple[Any, ...] | None]] = {
    "join": _filter_join, "sum": _filter_sum, "indent": _filter_indent,
    "wordwrap": _filter_wordwrap, "urlize": _filter_urlize, "tojson": _filter_tojson,
    "pprint": _filter_pprint, "center": _filter_center, "format": _filter_format,
    "replace": _filter_replace, "batch": _filter_lists("batch"),
    "slice": _filter_lists("slice")}
