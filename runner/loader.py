"""Where included templates come from: the project directory, and nowhere else.

Jinja loads an included template (`{% include 'prompts/x.j2' %}`) through this loader, which
refuses a name that leads out of the project before the file is opened, remembers which files
were used (they are part of a batch's spec hash) and under which name Jinja knows each, so
that an error inside one names its file and line.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import TracebackType

import jinja2

from .errors import TemplateError
from .resolve import Resolver, leaves


class Outside(Exception):
    """Internal: an included template's name leads out of the project directory."""

    def __init__(self, name: str, problem: str):
        super().__init__(problem)
        self.name = name


class TrackingLoader(jinja2.FileSystemLoader):
    """Loads included templates from the project directory and remembers which, for the spec
    hash, and under which file name, so that an error inside one can name its file and line.
    A name that leads out of the project (absolute, `..`, a symlink) is refused before the
    file is opened: a template that includes /proc/self/environ would otherwise quote it in
    the error its syntax causes. Jinja loads each file once, so this runs once per file."""

    def __init__(self, root: Path):
        super().__init__(str(root))
        self.root = root
        self.used: set[str] = set()
        self.files: dict[str, str] = {}    # file name as Jinja reports it -> template name
        self._resolve = Resolver()

    def get_source(self, environment: jinja2.Environment, template: str
                   ) -> tuple[str, str, Callable[[], bool]]:
        problem = leaves(self.root, template, self._resolve)
        if problem is not None:
            raise Outside(template, problem)
        try:
            result = super().get_source(environment, template)
        except UnicodeDecodeError as e:     # e.object holds the whole file's bytes
            raise TemplateError(f"not valid UTF-8 (byte {e.object[e.start]:#04x}); save the "
                                "template as UTF-8", path=self.root / template,
                                where=str(e.object.count(b"\n", 0, e.start) + 1)) from None
        self.used.add(template)
        self.files[result[1]] = template
        return result

    def place(self, tb: TracebackType | None) -> str:
        """' (in prompts/x.j2 line 3)' when the innermost template frame is an included file."""
        found = ""
        while tb is not None:
            name = self.files.get(tb.tb_frame.f_code.co_filename)
            if name is not None:
                found = f" (in {name} line {tb.tb_lineno})"
            tb = tb.tb_next
        return found
