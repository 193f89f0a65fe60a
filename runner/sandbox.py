"""The Jinja2 environment templates render in: sandboxed, bounded and deterministic.

Jinja2's sandbox keeps templates away from Python internals and caps `range` at 100,000
items, but lets a template make values of any size: `{{ 'x' * 10**10 }}`, `'%9999999999s'`,
`s.center(10**10)`, `[s] * 10**6 | join`, a string doubled in a loop, a loop inside a loop
inside a loop. Each takes all memory or runs for hours, where a mistake should be an error
naming the file, row and field. So, per render of one template (limits in runner.bounds):

- nothing may make a string of more than MAX_TEXT characters: every operation that can make
  more than it was given (`*`, `**`, `%`, `+`, `~`, the filters and methods that pad, repeat,
  join or format, printing a value that holds another many times) is checked before it runs,
  and the output as it is joined;
- all it makes together (strings and lists, counted as they are made) stays within MAX_MADE,
  so that many values within the bound cannot add up to one beyond it;
- loop iterations, calls and includes together stay within MAX_STEPS, which bounds time
  (a count, not a clock, so that a template passes or fails the same on every machine).

Going over a bound raises TemplateLimit. Templates must also give the same requests on every
run, or every apply would see changed requests and submit a new job: `lipsum()` and the
`random` filter are refused when a template compiles, and subtracting dict keys (a set,
whose order changes with the process's hash seed) gives a list in the left operand's order.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import jinja2
import orjson
from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.sandbox import (
    ImmutableSandboxedEnvironment,
    SandboxedEscapeFormatter,
    SandboxedFormatter,
)
from markupsafe import Markup

from .bounds import (
    BINOPS,
    CALL_STEPS,
    FILTERS,
    KEEPS_VALUES,
    MAX_MADE,
    MAX_STEPS,
    MAX_TEXT,
    METHODS,
    PLAIN,
    TemplateLimit,
    need,
    printable,
    printed,
    spec_numbers,
)

# what would make the same template render differently from one run to the next
CHANCE_FILTERS = frozenset({"random"})
CHANCE_GLOBALS = frozenset({"lipsum"})
NOT_THE_SAME = "a template must give the same requests on every run"

__all__ = ["BoundedSandbox", "TemplateLimit"]


class _Generator(CodeGenerator):
    """Jinja's code generator with the hooks the bounds need: each loop draws its items
    through `environment.loop_items`, `~` joins through `environment.join_text`, and what
    would not render the same twice fails to compile."""

    def visit_For(self, node: nodes.For, frame: Frame) -> None:
        node.iter = nodes.Call(nodes.EnvironmentAttribute("loop_items"), [node.iter], [],
                               None, None, lineno=node.lineno)
        super().visit_For(node, frame)

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.join_text((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")

    def visit_Filter(self, node: nodes.Filter, frame: Frame) -> None:
        if node.name in CHANCE_FILTERS:
            self.fail(f"the filter {node.name!r} is not available: {NOT_THE_SAME}",
                      node.lineno)
        super().visit_Filter(node, frame)

    def visit_Name(self, node: nodes.Name, frame: Frame) -> None:
        if node.ctx == "load" and node.name in CHANCE_GLOBALS:
            self.fail(f"{node.name}() is not available: {NOT_THE_SAME}", node.lineno)
        super().visit_Name(node, frame)


class _Template(jinja2.Template):
    def render(self, *args: Any, **kwargs: Any) -> str:
        """Renders with fresh counts: the bounds are per render of one template."""
        self.environment.start()        # type: ignore[attr-defined]
        return super().render(*args, **kwargs)


class BoundedSandbox(ImmutableSandboxedEnvironment):
    """ImmutableSandboxedEnvironment with the bounds and the determinism described above."""

    code_generator_class = _Generator
    template_class = _Template
    intercepted_binops = frozenset({*BINOPS, "-"})

    def __init__(self, **options: Any):
        super().__init__(**options)
        for name in CHANCE_GLOBALS:
            self.globals.pop(name, None)
        self.filters["fromjson"] = fromjson
        self.filters = {name: _guarded(self, name, f) for name, f in self.filters.items()
                        if name not in CHANCE_FILTERS}
        self.finalize = self._finalize
        self.start()

    def start(self) -> None:
        self._steps = self._made = 0

    def step(self, steps: int = 1) -> None:
        self._steps += steps
        if self._steps > MAX_STEPS:
            raise TemplateLimit(f"more than {MAX_STEPS:,} steps (loop iterations, calls, "
                                "includes) in one render: a loop in a loop in a loop?")

    def charge(self, value: Any) -> None:
        """Counts what an operation made against MAX_MADE."""
        if isinstance(value, (str, bytes, list, tuple, dict)):
            self._made += len(value)
            if self._made > MAX_MADE:
                raise TemplateLimit(f"the template makes more than {MAX_MADE:,} characters "
                                    "and items in all in one render")

    # -- what the compiled templates call ---------------------------------------------------

    def _finalize(self, value: Any) -> Any:
        if not isinstance(value, PLAIN):
            need(printed(value), "printing a value")
        return value

    def concat(self, pieces: Iterable[str]) -> str:
        """The output of a template, macro or block, joined as it is bounded."""
        out: list[str] = []
        append, size = out.append, 0
        for piece in pieces:
            size += len(piece)
            if size > MAX_TEXT:
                raise TemplateLimit(f"the output would be more than {MAX_TEXT:,} characters")
            append(piece)
        return "".join(out)

    def join_text(self, pieces: tuple[Any, ...]) -> str:
        for piece in pieces:
            printable(piece, "'~'")
        text = self.concat(str(p) for p in pieces)
        self.charge(text)
        return text

    def loop_items(self, items: Iterable[Any]) -> Iterator[Any]:
        for item in items:
            self.step()
            yield item

    def get_template(self, *args: Any, **kwargs: Any) -> jinja2.Template:
        self.step()
        return super().get_template(*args, **kwargs)

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        __self.step(CALL_STEPS)
        owner = getattr(__obj, "__self__", None)
        if isinstance(owner, (str, bytes, int)):
            check = METHODS.get(getattr(__obj, "__name__", ""))
            if check is not None:
                first = check(owner, *args, **kwargs)
                if first is not None:
                    args = (*first, *args[1:])
        result = super().call(__context, __obj, *args, **kwargs)
        __self.charge(result)
        return result

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        check = BINOPS.get(operator)
        if check is not None:
            check(left, right)
        result = self.binop_table[operator](left, right)
        if isinstance(result, (set, frozenset)):    # dict keys minus others: keep an order
            result = [x for x in left if x in result]
        self.charge(result)
        return result

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        """str.format and format_map as Jinja sandboxes them, through a formatter that bounds
        each field before formatting it."""
        if super().wrap_str_format(value) is None:
            return None
        owner = value.__self__
        formatter = _EscapeFormatter(self, escape=owner.escape) if isinstance(owner, Markup) \
            else _Formatter(self)
        kind: type[str] = type(owner)

        def wrapper(*args: Any, **kwargs: Any) -> str:
            if value.__name__ != "format_map":
                return kind(formatter.vformat(owner, args, kwargs))
            if kwargs or len(args) != 1:
                raise TypeError("format_map() takes exactly one argument")
            return kind(formatter.vformat(owner, (), args[0]))
        return functools.update_wrapper(wrapper, value)


class _Bounded(SandboxedFormatter):
    def format_field(self, value: Any, format_spec: str) -> Any:
        printable(value, "str.format")
        need(spec_numbers(format_spec), "str.format")
        text = super().format_field(value, format_spec)
        self._env.charge(text)      # type: ignore[attr-defined]
        return text


class _Formatter(_Bounded):
    pass


class _EscapeFormatter(_Bounded, SandboxedEscapeFormatter):
    pass


def fromjson(value: Any) -> Any:
    """The `fromjson` filter: the value a JSON text holds; None for text that is not JSON."""
    try:
        return orjson.loads(value if isinstance(value, (str, bytes)) else str(value))
    except orjson.JSONDecodeError:
        return None


def _guarded(env: BoundedSandbox, name: str, f: Callable[..., Any]) -> Callable[..., Any]:
    """A filter that counts as a step, is checked before it runs, and is charged for what it
    makes. Filters that take the context or the environment first keep it first. On the
    render path of every templated row, so the counting is inlined, and a filter without a
    check does not pay for one."""
    skip = 1 if getattr(f, "jinja_pass_arg", None) is not None else 0
    check = FILTERS.get(name)
    prints = name not in KEEPS_VALUES
    what = f"the filter {name!r}"
    sized = (str, bytes, list, tuple, dict)

    def counted(result: Any) -> Any:
        env._steps += 1
        if env._steps > MAX_STEPS:
            env.step(0)
        if isinstance(result, sized):
            env._made += len(result)
            if env._made > MAX_MADE:
                env.charge(())
        return result

    def printable(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        for arg in args[skip:] if skip else args:   # not the context a filter may take first
            if not isinstance(arg, PLAIN):
                need(printed(arg), what)
        for arg in kwargs.values():
            if not isinstance(arg, PLAIN):
                need(printed(arg), what)

    def checked(*args: Any, **kwargs: Any) -> Any:
        if prints:
            printable(args, kwargs)
        assert check is not None
        first = check(env, *args[skip:], **kwargs)
        if first is not None:
            args = (*args[:skip], *first, *args[skip + 1:])
        return counted(f(*args, **kwargs))

    def printing(*args: Any, **kwargs: Any) -> Any:
        printable(args, kwargs)
        return counted(f(*args, **kwargs))

    def keeping(*args: Any, **kwargs: Any) -> Any:
        return counted(f(*args, **kwargs))

    guarded = checked if check is not None else printing if prints else keeping
    return functools.wraps(f)(guarded)
