"""The `runner` command line: it parses the arguments and calls the function of
runner.commands they name with their values; runner.report decides the exit code."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from . import __version__
from .apply import Options
from .commands.adopt import adopt
from .commands.apply import apply
from .commands.cancel import cancel
from .commands.emulator import emulator
from .commands.forget import forget
from .commands.plan import plan
from .commands.render import render
from .commands.status import status
from .commands.store import gc as store_gc
from .commands.store import show as store_show
from .commands.validate import validate
from .errors import RunnerError
from .report import Report


def _whole(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: a whole number from `low` to `high` (a negative count means nothing,
    and neither does a port past 65535)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        if high is not None and value > high:
            raise argparse.ArgumentTypeError(f"must be at most {high}, got {value}")
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


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="runner", description="Declarative runner for LLM batch "
                                "APIs: manifests in, outputs and a lockfile out.")
    p.add_argument("--version", action="version", version=f"batch-runner {__version__}")
    p.add_argument("--verbose", action="store_true", help="show tracebacks for internal errors")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help: str, remote: bool = False) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help, description=help)
        sp.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS,
                        help="show tracebacks for internal errors")
        if name != "emulator":
            sp.add_argument("directory", metavar="DIR", help="the manifest directory")
        if remote:
            sp.add_argument("--emulator", action="store_true",
                            help="use the embedded local emulator instead of the real API")
        return sp

    command("validate", "check manifests, data and templates offline")
    r = command("render", "print one batch's request lines (JSONL)")
    r.add_argument("--name", required=True, help="the batch's metadata.name")
    r.add_argument("--limit", type=_whole(0), help="at most this many lines")
    pl = command("plan", "show what apply would do, and why", remote=True)
    pl.add_argument("--format", choices=["text", "json", "markdown"], default="text",
                    help="markdown: a review-ready summary for a pull request")
    pl.add_argument("--json", action="store_true", help="the same as --format json")
    pl.add_argument("--count-tokens", action="store_true",
                    help="count input tokens with the provider's countTokens (one call per "
                    "request) instead of the offline estimate")
    pl.add_argument("--detailed-exitcode", action="store_true",
                    help="exit 0 when nothing would change, 2 when something would, 1 when "
                    "a batch failed (as apply would)")
    a = command("apply", "submit, wait, download and write outputs", remote=True)
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
    a.add_argument("--max-jobs", type=_whole(1), metavar="N",
                   help="submit at most N jobs to be in flight at once on each provider, the "
                   "rest as they finish (default: each provider's limit, 100 for Gemini)")
    a.add_argument("--max-cost", type=_non_negative, metavar="AMOUNT",
                   help="refuse, before sending anything, if the batches to submit may cost "
                   "more than AMOUNT (price table currency, USD by default)")
    for sp in (pl, a):
        sp.add_argument("--max-attempts", type=_whole(1), default=3,
                        help="submissions per batch before an expiring job is given up on")
        sp.add_argument("--resubmit", action="append", default=[], metavar="NAME",
                        help="submit a failed or cancelled batch again (repeatable)")
    s = command("status", "recorded versus remote state, one line per batch", remote=True)
    s.add_argument("--json", action="store_true")
    c = command("cancel", "cancel the running job of batches", remote=True)
    c.add_argument("names", nargs="+", metavar="NAME")
    for sp in (a, c):
        sp.add_argument("--take-over", type=Path, metavar="ORIGINAL",
                        help="in a copied project directory: cancel or delete jobs that the "
                        "directory it was copied from recorded (left alone otherwise)")
    ad = command("adopt", "bind an existing remote job to a batch (after a lost lockfile)",
                 remote=True)
    ad.add_argument("name", metavar="NAME")
    ad.add_argument("job", metavar="JOB", help="the job's name, batches/…")
    ad.add_argument("--force", action="store_true",
                    help="bind even if the job's tag or request count does not match")
    f = command("forget", "drop batches from the lockfile (remote jobs and outputs stay)")
    f.add_argument("names", nargs="+", metavar="NAME")
    for sp in (c, ad, f):
        sp.add_argument("--lock-timeout", type=_non_negative, default=0.0,
                        help="wait up to SECONDS for another run to release the directory")
    st = sub.add_parser("store", help="what the result store holds per batch; gc removes "
                        "the packs no lockfile entry names", description="runner store DIR: "
                        "what the result store holds per batch. runner store gc DIR: remove "
                        "the packs no entry of DIR's lockfile names, leases expired over an "
                        "hour ago and claims of jobs no entry names (a dry run unless --yes)")
    st.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS,
                    help="show tracebacks for internal errors")
    st.add_argument("action", nargs="?", choices=["gc"], help="gc: remove unnamed packs")
    st.add_argument("directory", metavar="DIR", help="the manifest directory")
    st.add_argument("--yes", "--delete", action="store_true", dest="delete",
                    help="with gc: remove them (without it, only say what would go)")
    st.add_argument("--min-age", type=_non_negative, metavar="DAYS",
                    help="with gc: leave packs and claims younger than DAYS (default 7; "
                    "claims never under 3): another clone may have written them for a "
                    "lockfile not yet committed")
    st.add_argument("--lock-timeout", type=_non_negative, metavar="SECONDS",
                    help="with gc --yes: wait up to SECONDS for another run to release the "
                    "directory")
    e = command("emulator", "serve the local emulator of the providers' batch APIs")
    e.add_argument("--host", default="127.0.0.1")
    e.add_argument("--port", type=_whole(0, 65535), default=8089,
                   help="0: any free port (the first line names it)")
    e.add_argument("--state-dir", default=".runner/emulator")
    e.add_argument("--latency", type=_non_negative, default=2.0, help="seconds a job takes")
    return p


def run(args: argparse.Namespace, report: Report) -> None:
    """Calls the command that `args` name with the values of its flags."""
    out = sys.stdout
    match args.command:
        case "validate":
            validate(args.directory, out=out)
        case "render":
            render(args.directory, args.name, limit=args.limit, out=out)
        case "plan":
            plan(args.directory, emulator=args.emulator, max_attempts=args.max_attempts,
                 resubmit=args.resubmit, count_tokens=args.count_tokens,
                 format="json" if args.json else args.format,
                 detailed_exitcode=args.detailed_exitcode, out=out, report=report)
        case "apply":
            if args.prune_outputs and not args.prune:
                raise RunnerError("--prune-outputs goes with --prune")
            options = Options(wait=not args.no_wait, timeout=args.timeout, prune=args.prune,
                              prune_outputs=args.prune_outputs, max_cost=args.max_cost,
                              max_jobs=args.max_jobs, take_over=args.take_over,
                              max_attempts=args.max_attempts,
                              resubmit=frozenset(args.resubmit),
                              poll_base=_seconds("RUNNER_POLL_SECONDS", 2.0))
            apply(args.directory, options, emulator=args.emulator,
                  lock_timeout=args.lock_timeout, quiet=args.quiet, out=out, report=report)
        case "status":
            status(args.directory, emulator=args.emulator, as_json=args.json, out=out)
        case "cancel":
            cancel(args.directory, args.names, emulator=args.emulator,
                   lock_timeout=args.lock_timeout, take_over=args.take_over, out=out)
        case "adopt":
            adopt(args.directory, args.name, args.job, force=args.force, emulator=args.emulator,
                  lock_timeout=args.lock_timeout, out=out)
        case "forget":
            forget(args.directory, args.names, lock_timeout=args.lock_timeout, out=out)
        case "store" if args.action == "gc":
            store_gc(args.directory, delete=args.delete, min_age_days=args.min_age,
                     lock_timeout=args.lock_timeout or 0.0, out=out)
        case "store":
            if args.delete or args.min_age is not None or args.lock_timeout is not None:
                raise RunnerError("--yes, --min-age and --lock-timeout go with runner store gc")
            store_show(args.directory, out=out)
        case "emulator":
            emulator(args.state_dir, host=args.host, port=args.port, latency=args.latency,
                     out=out)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    report = Report()
    with report.guard(sys.stderr, verbose=args.verbose):
        run(args, report)
    return report.code


if __name__ == "__main__":
    sys.exit(main())
