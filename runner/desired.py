"""Desired state: each manifest hashed, rendered only when its inputs changed.

The spec hash covers what the user edits (the manifest document, the rows file, included
templates). When it equals the locked one, the locked content hashes (of the batch and of each
shard) still hold and rendering is skipped, which keeps `plan` fast on big data. Otherwise the
rows are rendered as a stream, cut into shards that fit a job, and hashed line by line.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import orjson

from .errors import InputsChanged
from .failures import allowance
from .hashing import ContentHasher, canonical, combine, digest
from .held import Held, KeysFile, Lookup
from .manifest import Manifest
from .parallel import PARALLEL, Parallel, render_jsonl, render_looked
from .providers.base import JobState
from .providers.dialect import Framing
from .providers.registry import dialect_of
from .records import LockEntry, Shard
from .render import Renderer
from .resolve import Resolver, leaves
from .reuse import Reusable
from .shards import ShardHash, Splitter
from .statcache import NO_CACHE, DigestCache, digest_or_none
from .states import Desired
from .tags import display_name
from .tokens import TokenEstimate, TokenTally


@dataclass(frozen=True)
class Rendered:
    content_hash: str
    requests: int
    templates: dict[str, str]
    shards: tuple[ShardHash, ...]       # one, the whole batch, when it fits a single job
    paths: tuple[Path, ...] = ()        # the shards' input files, when written
    tokens: TokenEstimate | None = None  # the requests' tokens, when tallied
    reused: int = 0                     # requests not in any shard: the store holds them
    reuse_packs: tuple[str, ...] = ()   # the packs holding their results
    keys: Path | None = None            # every request's key and hash, when written (held.py)


def _render(manifest: Manifest, emit: Callable[[bytes], None], parallel: Parallel,
            held: Held | None = None) -> tuple[int, dict[str, str]]:
    """Passes every request line to `emit`, in order, or with `held`, to it (which passes
    the lines the store does not hold to `emit`). A large JSONL rows file is rendered across
    cores (see runner.parallel), to the same bytes, and looked up there."""
    renderer = Renderer(manifest)
    rows = manifest.rows
    if held is not None:
        emit = held
    if rows is not None and rows.suffix.lower() == ".jsonl" and rows.is_file():
        count = render_jsonl(renderer, rows, emit, parallel) if held is None else \
            render_looked(renderer, rows, held.take, held.lookup, parallel)
    else:   # other formats, inline items, and a rows file that is missing (said at spec.rows)
        count = 0
        for req in renderer.requests():
            emit(renderer.line(req) + b"\n")
            count += 1
    return count, renderer.template_files()


def render_into(manifest: Manifest, sink: IO[bytes] | None = None,
                only: Collection[str] | None = None, parallel: Parallel = PARALLEL,
                sent: str | None = None) -> Rendered:
    """The requests as one stream, written to `sink` if given: with `only`, just those with
    these keys (a follow-up batch of failures, never split). With `sent`, the content hash of
    the batch as it was submitted: a follow-up resends the requests that were sent, so when
    the files render a different batch now, nothing is kept."""
    hasher = ContentHasher(manifest.provider, manifest.model)
    whole = ContentHasher(manifest.provider, manifest.model)
    kept = 0
    dialect = dialect_of(manifest)
    framing = dialect.framing(manifest.endpoint)

    def emit(lines: bytes) -> None:
        nonlocal kept
        whole.add(lines)
        if only is not None:
            lines = b"".join(line + b"\n" for line in lines.split(b"\n")[:-1]
                             if dialect.key_of_wire(orjson.loads(framing.split(line)[0])) in only)
        kept += lines.count(b"\n")
        hasher.add(lines)
        if sink is not None:
            sink.write(lines)

    _, templates = _render(manifest, emit, parallel)
    if sent is not None and whole.hexdigest() != sent:
        raise InputsChanged(manifest.name, manifest.source)
    content_hash = hasher.hexdigest()
    return Rendered(content_hash, kept, templates, (ShardHash(content_hash, kept),))


def render_shards(manifest: Manifest, directory: Path | None = None,
                  parallel: Parallel = PARALLEL, cuts: Sequence[int] = (),
                  tally: bool = False, reuse: Reusable | None = None) -> Rendered:
    """The batch cut into shards within its provider's limits (see runner.shards), or with
    `cuts`, as many requests a shard as an earlier render gave; with a `directory`, each
    shard's input file is written there as `<hash>.jsonl`, and every request's key and hash
    as `<hash>.keys` (runner.held); with `tally`, the requests' tokens are counted in the same
    pass. With `reuse`, the requests whose success it holds are in no shard (runner.reuse):
    the shards hold the requests to send, and a batch with nothing to send has none."""
    dialect = dialect_of(manifest)
    framing = dialect.framing(manifest.endpoint)
    limits = dialect.limits.capped(manifest.max_requests)
    reuse = reuse if reuse else None     # (the caller asks for none under reuse: false)
    splitter = Splitter(manifest.provider, manifest.model, limits, directory, manifest.source,
                        cuts, skips=reuse is not None)
    tokens = TokenTally(dialect, endpoint=manifest.endpoint) if tally else None
    emit = splitter.add if tokens is None else _tallying(framing, tokens, splitter.add)
    keys = None if directory is None else KeysFile(directory)
    held = None if reuse is None and keys is None else Held(
        Lookup.of(manifest.provider, manifest.model, framing, reuse, keys is not None), emit,
        splitter.skip, None if keys is None else keys.write)
    try:
        count, templates = _render(manifest, emit, parallel, held)
        shards = splitter.finish()
        keyed = None if keys is None else keys.finish(splitter.content_hash)
    except BaseException:
        splitter.abort()
        if keys is not None:
            keys.abort()
        raise
    if held is None or not held.count:
        return Rendered(splitter.content_hash, count, templates, tuple(shards),
                        tuple(splitter.paths), None if tokens is None else tokens.result(),
                        keys=keyed)
    assert reuse is not None
    paths: tuple[Path, ...] = tuple(splitter.paths)
    if shards[-1].requests == 0:        # nothing to send: no job, not one empty one
        for path in paths:
            path.unlink(missing_ok=True)
        shards, paths = [], ()
    return Rendered(splitter.content_hash, count, templates, tuple(shards), paths,
                    None if tokens is None else tokens.result(), held.count,
                    tuple(reuse.packs[i] for i in sorted(held.packs)), keyed)


def _tallying(framing: Framing, tally: TokenTally, emit: Callable[[bytes], None]
              ) -> Callable[[bytes], None]:
    """`emit`, counting the tokens of each request line it is given on the way."""
    loads, split = orjson.loads, framing.split

    def both(lines: bytes) -> None:
        for line in lines.split(b"\n")[:-1]:
            tally.add(loads(split(line)[1]))
        emit(lines)

    return both


def render_recorded(manifest: Manifest, directory: Path | None = None, cuts: Sequence[int] = (),
                    tally: bool = False, cache: DigestCache = NO_CACHE,
                    reuse: Reusable | None = None, kept: Path | None = None
                    ) -> tuple[dict[str, Any], Rendered]:
    """render_shards, with the spec inputs to record: digested before rendering, so that an
    edit made while it renders, or while the job runs, is seen by the next plan, not recorded
    as if it was sent. With `kept`, the folder where a big rows file's rendered blocks are
    kept between runs (runner.blockcache)."""
    inputs = spec_inputs(manifest, {}, cache)
    rendered = render_shards(manifest, directory, PARALLEL._replace(kept=kept), cuts, tally,
                             reuse)
    if rendered.templates:
        inputs["templates"] = rendered.templates
    return inputs, rendered


def spec_inputs(manifest: Manifest, templates: dict[str, str],
                cache: DigestCache = NO_CACHE) -> dict[str, Any]:
    inputs: dict[str, Any] = {"manifest": manifest.document_hash}
    if manifest.rows is not None:
        inputs["rows"] = digest_or_none(cache, manifest.rows)
    if templates:
        inputs["templates"] = dict(templates)
    return inputs


def spec_hash(inputs: dict[str, Any]) -> str:
    return combine([canonical(inputs)])


def outputs_hash(manifest: Manifest) -> str:
    decl = [[o.rel, o.format, list(map(list, o.columns))] for o in manifest.outputs]
    return digest(canonical({"outputs": decl, "errors": manifest.errors.rel}).encode())


def output_digests(manifest: Manifest, cache: DigestCache = NO_CACHE
                   ) -> dict[str, str | None]:
    return {o.rel: digest_or_none(cache, o.path) for o in manifest.declared_paths()}


def _recorded_templates(manifest: Manifest, entry: LockEntry, cache: DigestCache
                        ) -> dict[str, str] | None:
    """Current digests of the templates the last render included; None if one has gone, or
    if the lockfile names one outside the project (rendering then says what is wrong)."""
    out = {}
    resolve = Resolver()
    for name in entry.inputs.get("templates", {}):
        if leaves(manifest.project, name, resolve) is not None:
            return None
        found = digest_or_none(cache, manifest.project / name)
        if found is None:
            return None
        out[name] = found
    return out


Render = Callable[[Manifest], tuple[dict[str, Any], Rendered]]


def desire(manifest: Manifest, entry: LockEntry | None, cache: DigestCache = NO_CACHE,
           render: Render | None = None) -> Desired:
    """The manifest's desired state; renders (with `render`, which gives the spec inputs as
    they were before it rendered, and the render; by default streaming, nothing kept) only if
    inputs moved."""
    rendered: Rendered | None = None
    if entry is not None and entry.provider == manifest.provider and entry.model == manifest.model:
        templates = _recorded_templates(manifest, entry, cache)
        if templates is not None:
            inputs = spec_inputs(manifest, templates, cache)
            if spec_hash(inputs) == entry.spec_hash:
                shards = tuple(ShardHash(p.content_hash, p.requests) for p in entry.parts())
                rendered = Rendered(entry.content_hash, entry.requests, templates, shards,
                                    reused=entry.reused, reuse_packs=tuple(entry.reuse_packs))
    if rendered is None:
        inputs, rendered = render(manifest) if render is not None else \
            render_recorded(manifest, cache=cache)
    return Desired(
        name=manifest.name, manifest=manifest.rel_source, spec_hash=spec_hash(inputs),
        inputs=inputs, content_hash=rendered.content_hash, provider=manifest.provider,
        model=manifest.model, requests=rendered.requests, outputs_hash=outputs_hash(manifest),
        outputs=output_digests(manifest, cache), retry_failed=manifest.retry_failed,
        allowed_failures=allowance(manifest.allowed_failures, rendered.requests),
        errors_output=manifest.errors.rel,
        shards=rendered.shards, reused=rendered.reused, reuse_packs=rendered.reuse_packs)


_JOB_FIELDS = ("display_name", "state", "input_file", "job", "submitted_at", "finished_at",
               "attempts", "error", "inferred")


def record_for(m: Manifest, rendered: Rendered, inputs: dict[str, Any],
              old: LockEntry | None) -> LockEntry:
    """A new record of the batch as rendered: a part whose requests the old record holds
    keeps its job; the others are to be submitted."""
    recorded = {p.content_hash: p for p in old.parts()} if old is not None else {}

    def job_fields(shard: ShardHash) -> dict[str, Any]:
        part = recorded.get(shard.content_hash)
        if part is None:
            return dict(display_name=display_name(m.name, shard.content_hash),
                        state=JobState.CREATING)
        return {f: getattr(part, f) for f in _JOB_FIELDS}

    split = len(rendered.shards) > 1 or rendered.reused > 0
    own = dict(display_name=display_name(m.name, rendered.content_hash),
               state=JobState.CREATING if rendered.shards else JobState.SUCCEEDED) if split \
        else job_fields(rendered.shards[0])
    entry = LockEntry(manifest=m.rel_source, spec_hash=spec_hash(inputs), inputs=inputs,
                      content_hash=rendered.content_hash, provider=m.provider, model=m.model,
                      requests=rendered.requests, outputs_hash=outputs_hash(m),
                      reused=rendered.reused, reuse_packs=list(rendered.reuse_packs), **own)
    if split:
        entry.shards = [Shard(s.content_hash, s.requests, **job_fields(s))
                        for s in rendered.shards]
        if old is not None and any(p.content_hash in recorded for p in entry.shards):
            # follow-ups that fixed failures of shards kept still hold good results: the
            # outputs take each key's newest result, so a shard resubmitted since wins
            entry.retries = [r for r in old.retries if r.state == JobState.SUCCEEDED]
    return entry


def input_path(state_dir: Path, content_hash: str) -> Path:
    return state_dir / "inputs" / f"{content_hash.split(':', 1)[1]}.jsonl"
