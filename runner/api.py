"""batch-runner as a library: every command of the CLI as a function.

    import runner
    plan = runner.plan("batches.d", emulator=True)
    outcome = runner.apply("batches.d", emulator=True)

Each function takes the manifest directory and either a `provider` (anything implementing
`runner.providers.base.Provider`, used for the manifests naming its provider, or the
`Clients` of `connect`) or `emulator=True`; otherwise each manifest's provider is reached
with the key from that provider's usual environment variables (GEMINI_API_KEY for Gemini).
Errors a user can fix raise a subclass of `RunnerError`.

A command that does more than one thing with a directory (`runner plan` prices the plan it
makes; `runner status` shows spending beside it) opens the Workspace once and calls the `*_of`
functions, which the functions here are made of, on it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from .actions import SUBMITS, Plan
from .apply import Options as Options  # the library's callers build them
from .apply import Outcome as Outcome
from .apply import apply_directory, now, prepare
from .cancel import cancel_batches
from .clashes import check_templates
from .costs import Costs, plan_costs
from .desired import record_for, render_recorded
from .errors import LockfileError, ManifestError
from .errors import RunnerError as RunnerError
from .identity import establish
from .lockfile import Lock
from .manifest import Manifest
from .models import check_plan
from .outputcheck import check_outputs
from .plan import plan as make_plan
from .pricing import Spent
from .progress import Progress
from .providers import registry
from .providers.base import Provider, RemoteJob
from .providers.clients import Clients
from .records import LockEntry
from .render import Renderer
from .runlock import held
from .states import Desired
from .status import BatchStatus, statuses
from .store.project import project_store, stored_packs
from .stream import Streams
from .tags import attempt_of, display_name
from .workspace import Workspace, observe

PathLike = str | os.PathLike[str]
# a client for the provider it names (`Provider.name`), or clients for several
Providers = Provider | Clients


@contextlib.contextmanager
def connect(directory: PathLike, *, emulator: bool = False) -> Iterator[Clients]:
    """The clients of the providers the directory's manifests name, each opened when first
    used: the real APIs, with keys from each provider's environment variables, or with
    `emulator` an emulator started in-process whose state lives under the directory's
    .runner/, so that a later run finds the jobs an earlier one made."""
    with Clients(Path(directory), emulator=emulator) as clients:
        yield clients


@contextlib.contextmanager
def _provider(directory: PathLike, provider: Providers | None, emulator: bool
              ) -> Iterator[Clients]:
    if isinstance(provider, Clients):
        yield provider
    else:
        given = {provider.name: provider} if provider is not None else {}
        with Clients(Path(directory), emulator=emulator, given=given) as clients:
            yield clients


def validate(directory: PathLike) -> dict[str, int]:
    """Loads and renders every manifest offline; returns each batch's request count."""
    return validate_of(Workspace.open(Path(directory)))


def validate_of(ws: Workspace) -> dict[str, int]:
    """`validate` of an open workspace."""
    if not ws.manifests:
        raise ManifestError("no manifests here (files ending in .yaml or .yml); name the "
                            "directory that holds them", path=ws.directory)
    counts, templates = {}, {}
    for m in ws.manifests:
        renderer = Renderer(m)
        counts[m.name] = sum(1 for _ in renderer.requests())
        check_outputs(m, renderer)
        templates[m.name] = renderer.used_templates
    check_templates(ws.manifests, templates)
    return counts


def render(directory: PathLike, name: str) -> Iterator[str]:
    """One batch's request lines (JSONL, without newlines), rendered as they are read."""
    ws = Workspace.open(Path(directory))
    try:
        m = ws.manifest(name)
    except KeyError:
        names = ", ".join(sorted(m.name for m in ws.manifests)) or "none"
        raise RunnerError(f"no batch named {name!r} (the batches: {names})",
                          path=directory) from None
    renderer = Renderer(m)
    return (renderer.line(request).decode() for request in renderer.requests())


def plan(directory: PathLike, *, provider: Providers | None = None, emulator: bool = False,
         max_attempts: int = 3, resubmit: Iterable[str] = ()) -> Plan:
    """What apply would do, and why. Reads the provider; changes nothing (but the provider's
    list of models, kept a day under .runner/models/). Raises ManifestError for a batch to
    submit whose model the provider does not list."""
    ws = Workspace.open(Path(directory))
    desired = ws.desired()                  # bad input fails before the provider is reached
    with _provider(directory, provider, emulator) as p:
        return plan_of(ws, desired, p, max_attempts=max_attempts, resubmit=resubmit)


def plan_of(ws: Workspace, desired: list[Desired], clients: Clients, *,
            max_attempts: int = 3, resubmit: Iterable[str] = ()) -> Plan:
    """`plan` of an open workspace and what it desires (`ws.desired()`), the model of each
    batch it submits checked against the provider's list (a ManifestError if unknown)."""
    stored = stored_packs(project_store(ws.directory), ws.lock, desired)
    observed = observe(clients, ws.lock, desired, stored)   # not of batches restored from it
    found = make_plan(desired, ws.lock, observed, max_attempts=max_attempts,
                      resubmit=frozenset(resubmit), stored=stored)
    return check_plan(found, ws.manifests, clients, ws.state_dir)


def apply(directory: PathLike, *, provider: Providers | None = None, emulator: bool = False,
          options: Options | None = None, progress: Progress | None = None,
          lock_timeout: float = 0.0, show_plan: Callable[[Plan], None] | None = None
          ) -> Outcome:
    """Carries out the plan: submit, wait (unless options.wait is False), write outputs.
    `progress` is told each event (silent by default); `show_plan` gets the plan before
    anything is done. Raises BudgetError, naming the batch, before sending anything over
    budget, and ManifestError for a model the provider does not list."""
    prepared = prepare(Path(directory), (options or Options()).max_cost,     # bad input first
                       None if progress is None else progress.error)
    with _provider(directory, provider, emulator) as p:
        return apply_directory(Path(directory), p, options, progress, lock_timeout=lock_timeout,
                               show_plan=show_plan, prepared=prepared)


def costs(directory: PathLike, plan: Plan, *, provider: Providers | None = None,
          count_tokens: bool = False, emulator: bool = False) -> Costs:
    """The estimated cost range of each batch the plan submits, at the batch price. With
    count_tokens, input tokens come from the provider's countTokens, one call per request."""
    if not _submits(plan):
        return {}                           # nothing to price: spare reading the manifests
    ws = Workspace.open(Path(directory))
    if not count_tokens:
        return costs_of(ws, plan)
    with _provider(directory, provider, emulator) as p:
        return costs_of(ws, plan, counter=p)


def costs_of(ws: Workspace, plan: Plan, *, counter: Clients | None = None,
             streams: Streams | None = None) -> Costs:
    """`costs` in an open workspace; with a `counter`, input tokens come from each
    provider's countTokens; otherwise from `streams` (the one rendering of each manifest
    that `ws.desired(streams)` made), when given."""
    if not _submits(plan):
        return {}                           # nothing to price: not even the price table
    if counter is None:
        return plan_costs(ws, plan, streams=streams)
    return plan_costs(ws, plan, lambda m: lambda request: counter[m.provider].count_tokens(
        m.model, request))


def _submits(plan: Plan) -> bool:
    return any(a.kind in SUBMITS for a in plan.actions)


def spending(directory: PathLike) -> dict[str, Spent]:
    """What each finished batch used and cost, as the lockfile recorded it."""
    return spending_of(Workspace.open(Path(directory)).lock)


def spending_of(lock: Lock) -> dict[str, Spent]:
    """`spending` as a loaded lockfile records it."""
    return {name: Spent.from_dict(e.spent) for name, e in lock.batches.items() if e.spent}


def status(directory: PathLike, *, provider: Providers | None = None,
           emulator: bool = False) -> list[BatchStatus]:
    """Each batch's sync (lockfile and outputs against the manifest) and health (the job)."""
    ws = Workspace.open(Path(directory))
    desired = ws.desired()                  # bad input fails before the provider is reached
    with _provider(directory, provider, emulator) as p:
        return status_of(ws, desired, p)


def status_of(ws: Workspace, desired: list[Desired], clients: Clients) -> list[BatchStatus]:
    """`status` of an open workspace and what it desires (`ws.desired()`)."""
    observed = observe(clients, ws.lock, desired)
    remote: dict[str, RemoteJob | None] = dict(observed.jobs)
    for entry in ws.lock.batches.values():
        if entry.provider not in registry.PROVIDERS:
            continue        # a record of a provider this runner does not know: not asked
        jobs = {p.job for p in entry.parts()} | {entry.current_job}
        for job in sorted(j for j in jobs - set(remote) if j):
            remote[job] = clients[entry.provider].get_job(job)
    stored = stored_packs(project_store(ws.directory), ws.lock, desired)
    return statuses(make_plan(desired, ws.lock, observed, stored=stored), ws.lock, remote,
                    {d.name: d for d in desired})


def _entry(ws: Workspace, name: str) -> LockEntry:
    entry = ws.lock.batches.get(name)
    if entry is None:
        raise LockfileError(f"no batch named {name!r} in the lockfile", path=ws.lock_path)
    return entry


def cancel(directory: PathLike, names: Iterable[str], *, provider: Providers | None = None,
           emulator: bool = False, lock_timeout: float = 0.0,
           take_over: PathLike | None = None) -> list[str]:
    """Cancels the running jobs of each named batch (every shard's, when it is split) and
    records them; returns the jobs cancelled.
    The batch then stays as it is until `apply --resubmit NAME`. In a copied directory, the
    jobs the original recorded are refused unless `take_over` names the original."""
    first = Workspace.open(Path(directory))     # bad input fails before the run lock is taken
    with held(first.directory, lock_timeout):
        ws = first.reloaded()                   # the lockfile as the last run left it
        entries = {name: _entry(ws, name) for name in names}
        identity = establish(ws.directory, ws.lock,
                             Path(take_over) if take_over is not None else None)
        with _provider(directory, provider, emulator) as p:
            p.follow(ws.lock.records)
            cancelled = cancel_batches(ws, entries, p, identity)
    return cancelled


def adopt(directory: PathLike, name: str, job: str, *, force: bool = False,
          provider: Providers | None = None, emulator: bool = False,
          lock_timeout: float = 0.0) -> LockEntry:
    """Binds an existing remote job to a batch (after a lost lockfile). Refuses a job whose
    displayName tag or request count does not match the manifest's, unless forced."""
    path = Path(directory)
    first = Workspace.open(path)                # bad input fails before the run lock is taken
    try:
        m: Manifest = first.manifest(name)
    except KeyError:
        raise RunnerError(f"no manifest declares a batch named {name!r}", path=path) from None
    inputs, rendered = render_recorded(m)
    if len(rendered.shards) > 1:
        raise RunnerError(f"batch {name!r} is split into {len(rendered.shards)} shards, each its "
                          "own job; apply finds an existing job of each shard by its "
                          "displayName tag by itself")
    tag = display_name(name, rendered.content_hash)
    with held(first.directory, lock_timeout), _provider(directory, provider, emulator) as p:
        remote = p[m.provider].get_job(job)
        if remote is None:
            raise RunnerError(f"job {job!r} not found on the provider")
        problems = []
        if not registry.dialect(m.provider).tags_jobs:     # nothing to check but its size
            remote = dataclasses.replace(remote, display_name=tag)
        attempt = attempt_of(name, rendered.content_hash, remote.display_name)
        if attempt is None:
            problems.append(f"its displayName {remote.display_name!r} does not carry the "
                            f"manifest's tag {tag!r} (the requests differ)")
        if remote.total and remote.total != rendered.requests:
            problems.append(f"it has {remote.total} requests, the manifest renders "
                            f"{rendered.requests}")
        if problems and not force:
            raise RunnerError(f"refusing to adopt {job} for {name}: {'; '.join(problems)}; "
                              "pass --force to bind it anyway")
        ws = first.reloaded()                   # the lockfile as the last run left it
        entry = record_for(m, rendered, inputs, None)
        entry.display_name, entry.state, entry.job = remote.display_name, remote.state, \
            remote.name
        entry.submitted_at, entry.attempts = remote.create_time or now(), attempt or 1
        entry.input_file = remote.input_file
        ws.lock.batches[name] = entry
        ws.save_lock()
    return entry


def forget(directory: PathLike, names: Iterable[str], *, lock_timeout: float = 0.0
           ) -> list[str]:
    """Drops batches from the lockfile, leaving their remote jobs and outputs alone; returns
    those it dropped. A batch the lockfile does not hold is already forgotten, which is not an
    error: the command is safe to run again."""
    first = Workspace.open(Path(directory))     # bad input fails before the run lock is taken
    with held(first.directory, lock_timeout):
        ws = first.reloaded()                   # the lockfile as the last run left it
        dropped = [name for name in dict.fromkeys(names) if name in ws.lock.batches]
        for name in dropped:
            del ws.lock.batches[name]
        if dropped:
            ws.save_lock()
    return dropped
