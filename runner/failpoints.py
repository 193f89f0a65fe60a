"""Named crash points for the kill-point tests.

`RUNNER_FAILPOINT=<name>` makes the process kill itself with SIGKILL the first time it reaches
that point, exactly like a power cut or an OOM kill: no cleanup, no finally blocks, no flush.
Unset (always, outside the tests), `hit()` is one dictionary lookup.

Every provider's client has the points it has a step for, at the same moment of that step:
after-create-sent in the one place every create goes through (runner.providers.calls), the
upload and download points in each client's transfers. Anthropic uploads nothing, so it never
reaches during-upload.
"""

from __future__ import annotations

import os
import signal

ENV = "RUNNER_FAILPOINT"

POINTS = (
    "after-intent",          # CREATING recorded, nothing sent
    "during-upload",         # the input file's first chunk (or piece) sent, not all of it
    "after-create-sent",     # create reached the server, its answer not yet read
    "after-job-recorded",    # job name saved in the lockfile
    "while-polling",         # first poll answered
    "during-download",       # part of the results file written
    "after-outputs",         # outputs renamed into place, lockfile not yet updated
)


def hit(name: str) -> None:
    if os.environ.get(ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
