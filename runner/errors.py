"""The errors a user can fix, one type per kind.

Every `RunnerError` is reported by the CLI as one line (`error: <message>`) and exit code 1.
Anything else that escapes is a bug and is reported as such. Messages name the file and, where
known, the place in it (line, row, key) so that a user can go straight to the spot.
"""

from __future__ import annotations


class RunnerError(Exception):
    """Base of every error the user can act on."""

    def __init__(self, message: str, *, path: object | None = None, where: str | None = None):
        self.path = str(path) if path is not None else None
        self.where = where
        super().__init__(message)

    def __str__(self) -> str:
        prefix = ""
        if self.path:
            prefix = self.path + (f":{self.where}" if self.where else "") + ": "
        elif self.where:
            prefix = f"{self.where}: "
        return prefix + str(self.args[0])


class ManifestError(RunnerError):
    """A manifest is not valid YAML, breaks the schema, or contradicts another manifest."""


class DataError(RunnerError):
    """A rows file is missing, unreadable or malformed, or its rows yield bad keys."""


class TemplateError(RunnerError):
    """A template does not compile or fails to render for a row."""


class LockfileError(RunnerError):
    """The lockfile is unreadable, invalid, from a newer version, or held by another run."""


class ProviderError(RunnerError):
    """The provider refused a call or kept failing after retries."""


class ResultsError(ProviderError):
    """A results file the provider served does not parse (`path` and `where` name the copy
    and its line)."""


class OutputError(RunnerError):
    """An output cannot be written where it was declared."""


class InputsChanged(RunnerError):
    """A rows file or template was edited while apply ran: what was sent is no longer what the
    files say, so nothing is built from them until a plan has shown the change."""

    def __init__(self, name: str, source: object):
        super().__init__(f"{name}: its requests changed while apply ran (a rows file or "
                         "template was edited); run apply again", path=source)


class BudgetError(RunnerError):
    """A batch would cost more than its spec.budget or apply --max-cost allows."""
