"""Carries out a plan through a provider, journaling every step in the lockfile.

The order that makes creation safe: the intent (state CREATING, with the content hash and the
displayName tag) is saved before the create call, and the job name right after it. A run killed
anywhere leaves either an entry that the next plan resolves by finding the tagged job, or
nothing submitted. A create whose answer was lost is resolved by looking for the tag, never by
a blind retry.

The parts, each with one job: `scheduler` (the run: the plan's actions, and planning a
batch again when one of its jobs ends), `slots` (the cap on jobs at once per provider, and the
submissions waiting for a slot), `polling` (fresh states, pauses within the time limit),
`journal` (every change of a lockfile record, saved), `submit` (rendering, the intent, the tag
search, creating, twins), `claim` (the store's lease on a content hash around its create, and
the claim naming the job made, for other clones), `collect` (results into outputs), `prune`
(removed manifests), `listing` (the provider's jobs), `worker` (what submit and collect share)
and `options` (what a run is asked, and its outcome).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

from ..actions import SUBMITS, Kind, Plan
from ..costs import check_budgets
from ..identity import establish
from ..models import check_plan
from ..plan import plan
from ..progress import Progress
from ..providers.clients import Clients
from ..runlock import held
from ..states import Desired
from ..store.project import project_store, reachable, stored_packs
from ..stream import Streams, sweep_dead
from ..sweep import sweep
from ..workspace import Workspace, merged, observe_each
from .journal import now
from .options import Options, Outcome
from .scheduler import Scheduler

__all__ = ["Options", "Outcome", "apply_directory", "now", "prepare"]


Prepared = tuple[Workspace, list[Desired], Streams]


def prepare(directory: Path, max_cost: float | None = None,
            report: Callable[[str], None] | None = None) -> Prepared:
    """The workspace and what it desires, each changed manifest rendered once (the stream
    the whole run shares: runner.stream), its tokens counted when a budget or `max_cost`
    needs them; bad input fails here, leaving nothing behind. `report` is told of a pack
    whose results cannot be reused (runner.reuse)."""
    ws = Workspace.open(directory)
    streams = Streams(spool=True, tally=max_cost is not None or any(
        m.budget is not None for m in ws.manifests))
    try:
        return ws, ws.desired(streams, report), streams
    except BaseException:
        streams.discard()
        raise


def apply_directory(directory: Path, clients: Clients, options: Options | None = None,
                    progress: Progress | None = None, *, lock_timeout: float = 0.0,
                    show_plan: Callable[[Plan], None] | None = None,
                    prepared: Prepared | None = None) -> Outcome:
    """Plans and applies a manifest directory under its run lock: the whole of `runner apply`.

    Manifests, data and templates are read and rendered before the run lock is taken, so
    bad input fails with nothing left behind (the input files rendered so far are removed).
    `prepared` passes in that work when the caller has already done it."""
    options = options or Options()
    first, desired, streams = prepared or prepare(directory, options.max_cost)
    try:
        with held(first.directory, lock_timeout), clients.time_limit(options.timeout):
            return _apply(first, desired, streams, clients, options, progress, show_plan)
    finally:
        streams.discard()       # the input files rendered this run


def _apply(first: Workspace, desired: list[Desired], streams: Streams, clients: Clients,
           options: Options, progress: Progress | None,
           show_plan: Callable[[Plan], None] | None) -> Outcome:
    """apply_directory under the run lock."""
    ws = first.reloaded()               # the lockfile again: another run may have saved
    if ws.lock != first.lock:
        desired = ws.desired(streams, None if progress is None else progress.error)
    identity = establish(ws.directory, ws.lock, options.take_over)
    sweep(ws.state_dir, ws.lock, [ws.lock_path, *(o.path for m in ws.manifests
                                                   for o in m.declared_paths())])
    sweep_dead()                    # input files of killed runs, in the temporary directory
    store = project_store(ws.directory)
    reachable(store)
    stored = stored_packs(store, ws.lock, desired)
    # a batch restored from the store is not asked about: its jobs may be long deleted
    observed = observe_each(clients, ws.lock, desired, stored)
    actions = plan(desired, ws.lock, merged(observed.values()),
                   max_attempts=options.max_attempts,
                   resubmit=options.resubmit, prune=options.prune, stored=stored)
    actions = check_plan(actions, ws.manifests, clients, ws.state_dir)    # nothing sent yet
    streams.release({a.name for a in actions.actions if not {p.kind for p in (a, *a.parts)}
                     & {*SUBMITS, Kind.WAIT, Kind.ADOPT, Kind.DOWNLOAD}})
    if show_plan is not None:
        show_plan(actions)
    check_budgets(ws, actions, options.max_cost, streams)
    progress = progress or Progress(io.StringIO(), tty=False, quiet=True)
    return Scheduler(ws, clients, options, progress, desired, observed, identity,
                     streams, store).run(actions)
