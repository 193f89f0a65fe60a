"""The `runner` command: argument parsing, output and exit codes; the work is elsewhere.

Exit codes: 0 success; 1 a user-fixable error (one line on stderr) or a batch that failed;
2 `plan --detailed-exitcode` with changes; 3 a bug in batch-runner; 130 interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import threading
import traceback
from pathlib import Path
from typing import Iterator, Sequence

from . import __version__
from .apply import Options, apply_directory, prepare
from .display import plan_json, plan_text, status_rows, status_text
from .errors import RunnerError
from .plan import Plan
from .plan import plan as make_plan
from .providers.base import Provider
from .providers.gemini import GeminiProvider, api_key_from_env
from .render import Renderer
from .workspace import Workspace, observe

EMULATOR_KEY = "emulator-local-key"


def _out(text: str) -> None:
    print(text, flush=True)


def _tuning() -> dict[str, int]:
    """Size knobs, mostly for tests that need a file upload without 20 MB of data."""
    out = {}
    for env, arg in (("RUNNER_INLINE_LIMIT", "inline_limit"), ("RUNNER_UPLOAD_CHUNK", "chunk_size")):
        value = os.environ.get(env)
        if value:
            if not value.isdigit() or int(value) <= 0:
                raise RunnerError(f"{env} must be a positive number of bytes (got {value!r})")
            out[arg] = int(value)
    return out


@contextlib.contextmanager
def provider_for(ws: Workspace, use_emulator: bool) -> Iterator[Provider]:
    """The Gemini provider, or one talking to an emulator started in-process whose state lives
    under the directory's .runner/, so that a later run finds the jobs an earlier one made."""
    if use_emulator:
        from .emulator import Emulator

        latency = float(os.environ.get("RUNNER_EMULATOR_LATENCY", "2"))
        with Emulator(ws.state_dir / "emulator", latency=latency) as emu:
            provider = GeminiProvider(EMULATOR_KEY, emu.base_url, **_tuning())
            try:
                yield provider
            finally:
                provider.close()
        return
    provider = GeminiProvider(api_key_from_env() or "", **_tuning())
    try:
        yield provider
    finally:
        provider.close()


def cmd_validate(args: argparse.Namespace) -> int:
    ws = Workspace.open(Path(args.directory))
    total = 0
    for m in ws.manifests:
        count = sum(1 for _ in Renderer(m).requests())
        total += count
        _out(f"ok  {m.name}  ({m.rel_source}, {count} requests)")
    _out(f"{len(ws.manifests)} manifest(s) valid, {total} requests.")
    return 0


def cmd_render(args: argparse.Namespace) -> int:
    ws = Workspace.open(Path(args.directory))
    try:
        m = ws.manifest(args.name)
    except KeyError:
        raise RunnerError(f"no batch named {args.name!r}", path=args.directory) from None
    for i, req in enumerate(Renderer(m).requests()):
        if args.limit is not None and i >= args.limit:
            break
        sys.stdout.write(req.line() + "\n")
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    ws = Workspace.open(Path(args.directory))
    desired = ws.desired()
    with provider_for(ws, args.emulator) as provider:
        observed = observe(provider, ws.lock, desired)
    plan = make_plan(desired, ws.lock, observed, max_attempts=args.max_attempts,
                     resubmit=frozenset(args.resubmit))
    _out(plan_json(plan) if args.json else plan_text(plan, args.directory))
    if args.detailed_exitcode and plan.changes:
        return 2
    return 0


def cmd_apply(args: argparse.Namespace) -> int:
    directory = Path(args.directory)
    ws, desired = prepare(directory)    # bad input fails here, before the emulator starts
    options = Options(wait=not args.no_wait, timeout=args.timeout, prune=args.prune,
                      max_attempts=args.max_attempts, resubmit=frozenset(args.resubmit),
                      poll_base=float(os.environ.get("RUNNER_POLL_SECONDS", "2")))

    def show(plan: Plan) -> None:
        if not args.quiet:
            _out(plan_text(plan, args.directory) + "\n")

    with provider_for(ws, args.emulator) as provider:
        outcome = apply_directory(directory, provider, options, _out,
                                  lock_timeout=args.lock_timeout, show_plan=show,
                                  prepared=(ws, desired))
    if outcome.pending:
        _out(f"{len(outcome.pending)} batch(es) still running: {', '.join(outcome.pending)}; "
             "run apply again to collect them.")
    elif not outcome.failed:
        _out("Apply complete: every declared output is up to date.")
    return outcome.exit_code


def cmd_status(args: argparse.Namespace) -> int:
    ws = Workspace.open(Path(args.directory))
    remote = {}
    with provider_for(ws, args.emulator) as provider:
        for entry in ws.lock.batches.values():
            if entry.job:
                remote[entry.job] = provider.get_job(entry.job)
    rows = status_rows(ws, remote)
    _out(json.dumps(rows, indent=2) if args.json else status_text(rows))
    return 0


def cmd_emulator(args: argparse.Namespace) -> int:
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
    return 0


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
    r.add_argument("--limit", type=int, help="at most this many lines")
    pl = command("plan", "show what apply would do, and why", cmd_plan, remote=True)
    pl.add_argument("--json", action="store_true", help="machine-readable plan")
    pl.add_argument("--detailed-exitcode", action="store_true",
                    help="exit 0 when nothing would change, 2 when something would")
    a = command("apply", "submit, wait, download and write outputs", cmd_apply, remote=True)
    a.add_argument("--no-wait", action="store_true", help="submit and record, then return")
    a.add_argument("--timeout", type=float, help="stop waiting after SECONDS (exit 1)")
    a.add_argument("--prune", action="store_true",
                   help="drop lockfile entries of deleted manifests (cancelling live jobs)")
    a.add_argument("--lock-timeout", type=float, default=0.0,
                   help="wait up to SECONDS for another run to release the directory")
    a.add_argument("--quiet", action="store_true", help="do not print the plan first")
    for sp in (pl, a):
        sp.add_argument("--max-attempts", type=int, default=3,
                        help="submissions per batch before an expiring job is given up on")
        sp.add_argument("--resubmit", action="append", default=[], metavar="NAME",
                        help="submit a failed or cancelled batch again (repeatable)")
    s = command("status", "recorded versus remote state, one line per batch", cmd_status,
                remote=True)
    s.add_argument("--json", action="store_true")
    e = command("emulator", "serve the local Gemini emulator", cmd_emulator)
    e.add_argument("--host", default="127.0.0.1")
    e.add_argument("--port", type=int, default=8089)
    e.add_argument("--state-dir", default=".runner/emulator")
    e.add_argument("--latency", type=float, default=2.0, help="seconds a job takes")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
        return code
    except RunnerError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 1
    except Exception as e:  # a bug: one line, and the traceback only when asked for
        if args.verbose:
            traceback.print_exc()
        print(f"internal error (a bug in batch-runner): {type(e).__name__}: {e}; rerun with "
              "--verbose for the traceback", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
