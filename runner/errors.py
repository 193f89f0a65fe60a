"""The errors a user can fix, one type per kind.

Every `RunnerError` is reported by the CLI as one line (`error: <message>`) and exit code 1.
Anything else that escapes is a bug and is reported as such. Messages name the file and, where
known, the place in it (line, row, key) so that a user can go straight to the spot. They quote
what they read only in short excerpts (`excerpt`, `clipped`): a message is printed, logged and,
by the shipped pull-request workflow, posted as a comment, so it must never carry a file whole.

The tree (runner.report turns each into one line and exit 1):

    RunnerError
    ├── ManifestError        a manifest: YAML, schema, paths, clashes with another manifest
    ├── DataError            a rows file: missing, unreadable, malformed; bad or repeated keys
    ├── TemplateError        a template: does not compile, fails or passes a bound for a row
    ├── LockfileError        the lockfile: unreadable, invalid, newer; the run lock held
    ├── ProviderError        the provider refused, kept failing, timed out or answered wrongly
    │   ├── ResultsError     a results file it served does not parse (file and line)
    │   └── ResultsGone      a job's results are no longer kept (deleted, past retention)
    ├── OutputError          an output cannot be written where it was declared
    ├── InputsChanged        rows or templates edited while apply ran
    ├── PricesError          a price table is unreadable or malformed
    ├── BudgetError          a batch would cost more than its budget allows
    └── StoreError           the result store: unreachable, refused, or not set up (an extra)
        ├── PackMissing      a pack named by the lockfile is not in the store
        ├── PackDamaged      a pack's bytes are not those its hash names
        └── LeaseLost        a lease this run held was taken over by another

Control flow between the runner's own parts (an ambiguous create, a call past its deadline, a
malformed result that fails one request) uses private exceptions next to where they are raised;
they never reach the user as such.
"""

from __future__ import annotations

EXCERPT = 60     # characters of a value read from a file that a message may quote
DETAIL = 160     # characters of an explanation (an exception's text) that a message may carry


def excerpt(value: object, limit: int = EXCERPT) -> str:
    """A value read from a file, quoted as repr() does, cut to `limit` characters: enough to
    find the spot, never the whole of a file that holds something else (a key, a password)."""
    text = value if isinstance(value, str) else str(value)
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}... ({len(text):,} characters)"


def clipped(text: str, limit: int = DETAIL) -> str:
    """An explanation that may quote what it is about (a library's error text), cut short."""
    return text if len(text) <= limit else text[:limit] + "..."


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


class ResultsGone(ProviderError):
    """A job that ended with results whose results the provider no longer keeps: its files
    were deleted (OpenAI's) or its retention passed (Anthropic's 29 days). Apply plans the
    batch again as if the job were gone: sent again when its results were never received,
    lost (paid again only when asked) when they were."""

    def __init__(self, job: str, why: str):
        super().__init__(f"the results of {job} are no longer on the provider ({why})")
        self.job = job


class OutputError(RunnerError):
    """A file the runner writes (an output, the lockfile, its state under .runner/) cannot be
    written where it belongs: the path is taken, leads out of the project, or the disk
    refused."""


class InputsChanged(RunnerError):
    """A rows file or template was edited while apply ran: what was sent is no longer what the
    files say, so nothing is built from them until a plan has shown the change."""

    def __init__(self, name: str, source: object):
        super().__init__(f"{name}: its requests changed while apply ran (a rows file or "
                         "template was edited); run apply again", path=source)


class PricesError(RunnerError):
    """A price table is unreadable or malformed."""


class BudgetError(RunnerError):
    """A batch would cost more than its spec.budget or apply --max-cost allows."""


class StoreError(RunnerError):
    """The result store cannot be reached or refused a call, or its URL needs a package that
    is not installed (the message names the extra to install)."""


class PackMissing(StoreError):
    """A pack the caller named is not in the store: the results it held must come from the
    provider again (`pack` is its hash)."""

    def __init__(self, pack: str, location: str):
        self.pack = pack
        super().__init__(f"pack {pack} is not in the store; its results must be fetched "
                         "from the provider again", path=location)


class PackDamaged(StoreError):
    """A pack's bytes are not the ones its hash names (truncated, edited, replaced by another
    object): nothing read from it is used (`pack` is its hash, `reason` what was wrong)."""

    def __init__(self, pack: str, location: str, reason: str):
        self.pack = pack
        self.reason = reason
        super().__init__(f"pack {pack} is damaged ({reason}); its results must be fetched "
                         "from the provider again", path=location)


class StoreIncomplete(StoreError):
    """The packs a lockfile entry names lack results its outputs were written from (a
    `packs:` line edited by hand, or merged from another branch): nothing is written from
    them, and the results are fetched from the provider instead."""


class LeaseLost(StoreError):
    """A lease this run held was taken over (it expired before it was renewed): another run
    may now act on the same content hash."""
