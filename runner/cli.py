"""The `runner` command: argument parsing and dispatch; the exit code is runner.report's.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
from pathlib import Path
from typing import Callable, Sequence

from . import __version__, api
from .apply import Options
from .display import plan_json, plan_markdown, plan_text, status_text
from .progress import Progress
from .report import Report
from .errors import RunnerError
from .plan import Plan
from .render import Renderer
from .workspace import Workspace

def _out(text: str) -> None:
    print(text, flush=True)


def _at_least(low: int) -> Callable[[str], int]:
    """An argparse type: a whole number of at least `low` (a negative count means nothing)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value
    return parse


def _non_negative(text: str) -> float:
    """An argparse type: an amount or a number of seconds, 0 or more."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number, 0 or more, got {text}")
    return value


def _seconds(env: str, default: float) -> float:
    value = os.environ.get(env)
    if not value:
        return default
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not seconds >= 0:
        raise RunnerError(f"{env} must be a number of seconds (got {value!r})")
    return seconds


def cmd_validate(args: argparse.Namespace, report: Report) -> None:
    counts = api.validate(args.directory)
    for name, count in counts.items():
        _out(f"ok  {name}  ({count} requests)")
    _out(f"{len(counts)} manifest(s) valid, {sum(counts.values())} requests.")


def cmd_render(args: argparse.Namespace, report: Report) -> None:
    ws = Workspace.open(Path(args.directory))
    try:
        m = ws.manifest(args.name)
    except KeyError:
        raise RunnerError(f"no batch named {args.name!r}", path=args.directory) from None
    for i, req in enumerate(Renderer(m).requests()):
        if args.limit is not None and i >= args.limit:
            break
        sys.stdout.write(req.line() + "\n")


def cmd_plan(args: argparse.Namespace, report: Report) -> None:
    fmt = "json" if args.json else args.format
    plan = api.plan(args.directory, emulator=args.emulator, max_attempts=args.max_attempts,
                    resubmit=args.resubmit)
    costs = api.costs(args.directory, plan, emulator=args.emulator,
                      count_tokens=args.count_tokens)
    if fmt == "json":
        _out(plan_json(plan, costs))
    elif fmt == "markdown":
        _out(plan_markdown(plan, args.directory, costs))
    else:
        _out(plan_text(plan, args.directory, costs))
    report.planned(changes=bool(plan.changes), failing=[a.name for a in plan.failing],
                   detailed_exitcode=args.detailed_exitcode)


def cmd_apply(args: argparse.Namespace, report: Report) -> None:
    if args.prune_outputs and not args.prune:
        raise RunnerError("--prune-outputs goes with --prune")
    options = Options(wait=not args.no_wait, timeout=args.timeout, prune=args.prune,
                      prune_outputs=args.prune_outputs, max_cost=args.max_cost,
                      max_jobs=args.max_jobs, take_over=args.take_over,
                      max_attempts=args.max_attempts, resubmit=frozenset(args.resubmit),
                      poll_base=_seconds("RUNNER_POLL_SECONDS", 2.0))
    progress = Progress.for_stream(sys.stdout, quiet=args.quiet)

    def show(plan: Plan) -> None:
        if not args.quiet:
            _out(plan_text(plan, args.directory) + "\n")

    try:
        outcome = api.apply(args.directory, emulator=args.emulator, options=options,
                            progress=progress, lock_timeout=args.lock_timeout, show_plan=show)
    finally:
        progress.close()
    if outcome.pending:
        progress.message(f"{len(outcome.pending)} batch(es) still running: "
                         f"{', '.join(outcome.pending)}; run apply again to collect them.")
    elif not outcome.failed:
        progress.message("Apply complete: every declared output is up to date.")
    report.batches_failed(outcome.failed)


def cmd_status(args: argparse.Namespace, report: Report) -> None:
    rows = api.status(args.directory, emulator=args.emulator)
    spent = api.spending(args.directory)
    if args.json:
        _out(json.dumps([dict(r.to_dict(), spent=spent[r.name].to_dict() if r.name in spent
                              else None) for r in rows], indent=2))
    else:
        _out(status_text(rows, spent))


def cmd_cancel(args: argparse.Namespace, report: Report) -> None:
    jobs = api.cancel(args.directory, args.names, emulator=args.emulator,
                      lock_timeout=args.lock_timeout, take_over=args.take_over)
    for job in jobs:
        _out(f"cancelled {job}")
    if not jobs:
        _out("nothing to cancel: no named batch has a running job")


def cmd_adopt(args: argparse.Namespace, report: Report) -> None:
    entry = api.adopt(args.directory, args.name, args.job, force=args.force,
                      emulator=args.emulator, lock_timeout=args.lock_timeout)
    _out(f"{args.name}: bound to {entry.job} ({entry.state.lower()}); apply collects it")


def cmd_forget(args: argparse.Namespace, report: Report) -> None:
    api.forget(args.directory, args.names, lock_timeout=args.lock_timeout)
    _out(f"forgot {', '.join(args.names)}: removed from the lockfile; remote jobs and outputs "
         "are untouched")


def cmd_emulator(args: argparse.Namespace, report: Report) -> None:
    from .emulator import Emulator

    emu = Emulator(Path(args.state_dir), host=args.host, port=args.port, latency=args.latency)
    emu.start()
    _out(f"Gemini emulator on {emu.base_url} (state in {args.state_dir}); point the runner at "
         f"it with GEMINI_BASE_URL={emu.base_url}; Ctrl-C stops it")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        emu.stop()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="runner", description="Declarative runner for LLM batch "
                                "APIs: manifests in, outputs and a lockfile out.")
    p.add_argument("--version", action="version", version=f"batch-runner {__version__}")
    p.add_argument("--verbose", action="store_true", help="show tracebacks for internal errors")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help: str, func: object, remote: bool = False
                ) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help, description=help)
        sp.set_defaults(func=func)
        sp.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS,
                        help="show tracebacks for internal errors")
        if name != "emulator":
            sp.add_argument("directory", metavar="DIR", help="the manifest directory")
        if remote:
            sp.add_argument("--emulator", action="store_true",
                            help="use the embedded local emulator instead of the real API")
        return sp

    command("validate", "check manifests, data and templates offline", cmd_validate)
    r = command("render", "print one batch's request lines (JSONL)", cmd_render)
    r.add_argument("--name", required=True, help="the batch's metadata.name")
    r.add_argument("--limit", type=_at_least(0), help="at most this many lines")
    pl = command("plan", "show what apply would do, and why", cmd_plan, remote=True)
    pl.add_argument("--format", choices=["text", "json", "markdown"], default="text",
                    help="markdown: a review-ready summary for a pull request")
    pl.add_argument("--json", action="store_true", help="the same as --format json")
    pl.add_argument("--count-tokens", action="store_true",
                    help="count input tokens with the provider's countTokens (one call per "
                    "request) instead of the offline estimate")
    pl.add_argument("--detailed-exitcode", action="store_true",
                    help="exit 0 when nothing would change, 2 when something would, 1 when "
                    "a batch failed (as apply would)")
    a = command("apply", "submit, wait, download and write outputs", cmd_apply, remote=True)
    a.add_argument("--no-wait", action="store_true", help="submit and record, then return")
    a.add_argument("--timeout", type=_non_negative,
                   help="stop waiting after SECONDS (exit 1)")
    a.add_argument("--prune", action="store_true",
                   help="for manifests that were deleted: cancel and delete their remote jobs "
                   "and drop them from the lockfile")
    a.add_argument("--prune-outputs", action="store_true",
                   help="with --prune, delete their recorded outputs too")
    a.add_argument("--lock-timeout", type=_non_negative, default=0.0,
                   help="wait up to SECONDS for another run to release the directory")
    a.add_argument("--quiet", action="store_true",
                   help="print only errors (no plan, no progress)")
    a.add_argument("--max-jobs", type=_at_least(1), metavar="N",
                   help="submit at most N jobs to be in flight at once, the rest as they "
                   "finish (default: the provider's limit, 100 for Gemini)")
    a.add_argument("--max-cost", type=_non_negative, metavar="AMOUNT",
                   help="refuse, before sending anything, if the batches to submit may cost "
                   "more than AMOUNT (price table currency, USD by default)")
    for sp in (pl, a):
        sp.add_argument("--max-attempts", type=_at_least(1), default=3,
                        help="submissions per batch before an expiring job is given up on")
        sp.add_argument("--resubmit", action="append", default=[], metavar="NAME",
                        help="submit a failed or cancelled batch again (repeatable)")
    s = command("status", "recorded versus remote state, one line per batch", cmd_status,
                remote=True)
    s.add_argument("--json", action="store_true")
    c = command("cancel", "cancel the running job of batches", cmd_cancel, remote=True)
    c.add_argument("names", nargs="+", metavar="NAME")
    for sp in (a, c):
        sp.add_argument("--take-over", type=Path, metavar="ORIGINAL",
                        help="in a copied project directory: cancel or delete jobs that the "
                        "directory it was copied from recorded (left alone otherwise)")
    ad = command("adopt", "bind an existing remote job to a batch (after a lost lockfile)",
                 cmd_adopt, remote=True)
    ad.add_argument("name", metavar="NAME")
    ad.add_argument("job", metavar="JOB", help="the job's name, batches/…")
    ad.add_argument("--force", action="store_true",
                    help="bind even if the job's tag or request count does not match")
    f = command("forget", "drop batches from the lockfile (remote jobs and outputs stay)",
                cmd_forget)
    f.add_argument("names", nargs="+", metavar="NAME")
    for sp in (c, ad, f):
        sp.add_argument("--lock-timeout", type=_non_negative, default=0.0,
                        help="wait up to SECONDS for another run to release the directory")
    e = command("emulator", "serve the local Gemini emulator", cmd_emulator)
    e.add_argument("--host", default="127.0.0.1")
    e.add_argument("--port", type=int, default=8089)
    e.add_argument("--state-dir", default=".runner/emulator")
    e.add_argument("--latency", type=float, default=2.0, help="seconds a job takes")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    report = Report()
    with report.guard(sys.stderr, verbose=args.verbose):
        args.func(args, report)
    return report.code


if __name__ == "__main__":
    sys.exit(main())
