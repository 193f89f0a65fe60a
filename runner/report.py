"""What a command found and what went wrong, and the one exit code that follows from it.

A run's events are recorded here, its findings by the command (`plan`, `apply`) and what
escapes the command by `Report.guard`, and `code` alone turns them into the exit code, so that
the documented codes hold for every command at once:

- 0: success;
- 1: an error the user can fix (one line on stderr), or a batch that failed, lost its results
  or ended with more failed requests than it allows; with `plan --detailed-exitcode`, also a
  batch that would keep `apply` at 1;
- 2: `plan --detailed-exitcode` found changes;
- 3: a bug in batch-runner;
- 130: interrupted.

A usage error (an unknown flag, a meaningless number) never gets here: argparse exits 2 on it
before a command starts.
"""

from __future__ import annotations

import contextlib
import traceback
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TextIO

from .errors import RunnerError

SUCCESS, FAILURE, CHANGES, INTERNAL_ERROR, INTERRUPTED = 0, 1, 2, 3, 130


@dataclass
class Report:
    """One command's events; `code` is the exit code they add up to."""

    failed: list[str] = field(default_factory=list)     # batches this run left failed
    failing: list[str] = field(default_factory=list)    # batches a plan found failed
    changes: bool = False                               # a plan found something to do
    detailed_exitcode: bool = False     # the exit code tells what the plan found
    error: bool = False                 # an error the user can fix, or the output went away
    interrupted: bool = False
    internal_error: bool = False

    @property
    def code(self) -> int:
        if self.interrupted:
            return INTERRUPTED
        if self.internal_error:
            return INTERNAL_ERROR
        if self.error or self.failed or (self.detailed_exitcode and self.failing):
            return FAILURE
        if self.detailed_exitcode and self.changes:
            return CHANGES
        return SUCCESS

    def batches_failed(self, names: Sequence[str]) -> None:
        """Batches that `apply` left failed, lost or over their allowed failures."""
        self.failed.extend(names)

    def planned(self, *, changes: bool, failing: Sequence[str], detailed_exitcode: bool
                ) -> None:
        """What a plan found. It decides the exit code only when asked (--detailed-exitcode),
        for a CI job to tell "nothing to do" from "something to apply" or "someone must act"."""
        self.changes, self.detailed_exitcode = changes, detailed_exitcode
        self.failing.extend(failing)

    @contextlib.contextmanager
    def guard(self, err: TextIO, *, verbose: bool) -> Iterator[None]:
        """Runs a command, recording what escapes it as an event with one line on `err`:
        an error the user can fix, an interruption, or a bug (its traceback only when
        `verbose`, since a user cannot act on one)."""
        try:
            yield
        except RunnerError as e:
            self.error = True
            print(f"error: {e}", file=err)
        except KeyboardInterrupt:
            self.interrupted = True
            print("interrupted; run the same command again to resume", file=err)
        except BrokenPipeError:     # the reader of the output went away: nobody to tell
            self.error = True
        except OSError as e:        # the disk or the system refused: full, read-only, no access
            self.error = True
            where = f": {e.filename}" if e.filename else ""
            print(f"error: {e.strerror or e}{where}", file=err)
        except Exception as e:      # a bug: one line, and the traceback only when asked for
            self.internal_error = True
            if verbose:
                traceback.print_exc(file=err)
            print(f"internal error (a bug in batch-runner): {type(e).__name__}: {e}; rerun "
                  "with --verbose for the traceback", file=err)
