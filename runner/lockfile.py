"""The lockfile (`batches.lock` in the manifest directory): what was submitted and written.

It is committed to git, so its bytes are deterministic: batches sorted by name, keys sorted,
empty fields left out, one batch per block so that branches touching different batches merge
cleanly. It is replaced atomically, and a `RunLock` (runner.runlock) keeps two runs from
interleaving. The records it holds are in runner.records; this module reads, checks and writes
the file.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from . import hashing
from .errors import LockfileError, excerpt
from .fsutil import write_text
from .layout import LOCKFILE_NAME
from .providers.base import JobState
from .records import Job, LockEntry, Retry, Shard
from .schema_check import validator
from .tags import epoch
from .yamllines import Document
from .yamlsrc import read_documents

VERSION = 1
RESTORE = "fix it or restore it from git"   # the advice for a damaged lockfile


@dataclass
class Lock:
    batches: dict[str, LockEntry] = field(default_factory=dict)
    # each batch's text as last written, reused while its record is unchanged: apply saves
    # after every step, and rendering a thousand records each time would dominate
    _rendered: dict[str, tuple[dict[str, Any], str]] = field(
        default_factory=dict, repr=False, compare=False)

    def records(self, provider: str) -> Iterator[Job | LockEntry]:
        """The record of every job of the provider's batches (parts and follow-ups)."""
        for entry in self.batches.values():
            if entry.provider == provider:
                yield from entry.parts()
                yield from entry.retries

    def to_text(self) -> str:
        head = {"version": VERSION,
                "hashing": {"algorithm": hashing.ALGORITHM, "recipe": hashing.RECIPE}}
        parts = []
        for name in sorted(self.batches):
            self.batches[name].roll_up()
            data = self.batches[name].to_dict()
            cached = self._rendered.get(name)
            if cached is None or cached[0] != data:
                cached = (data, _block(name, data, 1))
                self._rendered[name] = cached
            parts.append(cached[1])
        header = "# Written by batch-runner: commit it beside the manifests; do not edit by hand.\n"
        # version and hashing first, so that a reader (or an older runner) sees them at once;
        # everything below is sorted, so the bytes depend on the content alone
        return (header + "".join(_block(k, v, 0) for k, v in head.items())
                + ("batches:\n" + "".join(parts) if parts else "batches: {}\n"))


def _block(key: str, value: Any, depth: int) -> str:
    """Block-style YAML for the lockfile's shapes (mappings, lists of mappings, scalars),
    written directly: PyYAML's emitter takes seconds for a lockfile of a thousand batches,
    and apply saves it after every step."""
    pad = "  " * depth
    if isinstance(value, dict):
        if not value:
            return f"{pad}{_scalar(key)}: {{}}\n"
        return f"{pad}{_scalar(key)}:\n" + "".join(
            _block(k, value[k], depth + 1) for k in sorted(value))
    if isinstance(value, list):
        if not value:
            return f"{pad}{_scalar(key)}: []\n"
        items = []
        for item in value:
            if isinstance(item, dict):
                lines = "".join(_block(k, item[k], depth + 1) for k in sorted(item))
                items.append(f"{pad}- " + lines[len(pad) + 2:])
            else:
                items.append(f"{pad}- {_scalar(item)}\n")
        return f"{pad}{_scalar(key)}:\n" + "".join(items)
    return f"{pad}{_scalar(key)}: {_scalar(value)}\n"


_PLAIN = re.compile(r"[A-Za-z_/.][A-Za-z0-9_/.:@+-]*(?<!:)")
# characters YAML does not read back as written inside a double-quoted scalar
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ufeff\ufffe\uffff\ud800-\udfff]")


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        text = repr(value)
        # YAML 1.1 reads 1e-05 as a string: its floats need a dot and a signed exponent
        mantissa, e, exponent = text.partition("e")
        if e and "." not in mantissa:
            text = f"{mantissa}.0e{exponent}"
        return text
    text = str(value)
    if _PLAIN.fullmatch(text) and _resolves_to_str(text):
        return text
    # a double-quoted YAML scalar; escapes (\uXXXX) wherever a raw character would not
    # survive the round trip
    return json.dumps(text, ensure_ascii=bool(_UNSAFE.search(text)))


@lru_cache(maxsize=4096)
def _resolves_to_str(text: str) -> bool:
    """Whether YAML reads `text` unquoted as the same string (not true, null, 1e3, ...)."""
    tag: str = yaml.resolver.Resolver().resolve(  # type: ignore[no-untyped-call]
        yaml.ScalarNode, text, (True, False))
    return tag == "tag:yaml.org,2002:str"


def lock_path(directory: Path) -> Path:
    return directory / LOCKFILE_NAME


def load(path: Path) -> Lock:
    """The lockfile at `path`, or an empty one if there is none. Never resets a bad one."""
    if not path.exists():
        return Lock()
    docs = read_documents(path, LockfileError, utf8_advice=RESTORE, yaml_advice=RESTORE)
    if len(docs) != 1 or not isinstance(docs[0].data, dict):
        where = str(docs[1].line_of([]) if len(docs) > 1 else docs[0].line_of([]) if docs else 1)
        raise LockfileError(f"lockfile must be one YAML mapping; {RESTORE}", path=path,
                            where=where)
    missing = [k for k in ("version", "hashing", "batches") if k not in docs[0].data]
    if missing:     # a file that ends early lacks what comes after the cut
        end = docs[0].node.end_mark
        last = end.line + (1 if end.column else 0)
        raise LockfileError(f"lockfile ends without {' and '.join(map(repr, missing))} "
                            f"(truncated?); {RESTORE}", path=path, where=str(last))
    return _parse(path, docs[0])


def _parse(path: Path, lockdoc: Document) -> Lock:
    doc = lockdoc.data
    version = doc.get("version")
    if isinstance(version, int) and version > VERSION:
        raise LockfileError(f"lockfile version {version} was written by a newer batch-runner "
                            f"(this one reads version {VERSION}); upgrade batch-runner", path=path,
                            where=str(lockdoc.line_of(["version"])))
    hashing_doc = doc.get("hashing")
    recipe = hashing_doc.get("recipe") if isinstance(hashing_doc, dict) else None
    if isinstance(recipe, int) and recipe > hashing.RECIPE:
        raise LockfileError(f"lockfile uses hash recipe {recipe} from a newer batch-runner; "
                            "upgrade batch-runner", path=path,
                            where=str(lockdoc.line_of(["hashing", "recipe"])))
    check = validator("lockfile.schema.json")
    error = None if check.is_valid(doc) else jsonschema.exceptions.best_match(
        check.iter_errors(doc))
    if error is not None:
        at = list(error.absolute_path)
        line = lockdoc.line_of(at)
        message = error.message
        if error.validator == "additionalProperties" and isinstance(error.instance, dict) \
                and isinstance(error.schema, dict):
            known = error.schema.get("properties", {})
            key = str(next(k for k in error.instance if k not in known))
            message, line = f"unknown key {key!r}", lockdoc.key_line(at, key)
        if error.validator == "pattern" and str(at[-1]).endswith("_at"):
            message = f"{excerpt(error.instance)} is not a UTC time such as 2026-11-25T10:00:00Z"
        where = ".".join(str(p) for p in at) or "top level"
        raise LockfileError(f"lockfile is invalid at {where}: {message[:160]}; {RESTORE}",
                            path=path, where=str(line))
    lock = Lock({name: entry_from(entry) for name, entry in doc["batches"].items()})
    _check_times(path, lockdoc)
    _check_jobs_named_once(path, lockdoc)
    _check_reused(path, lockdoc)
    _check_packs_jobs(path, lockdoc)
    return lock


def _records_at(doc: dict[str, Any]) -> Iterator[tuple[list[str | int], dict[str, Any]]]:
    """Every record of the (validated) lockfile data with its path: each batch, its shards
    and its follow-ups."""
    for name, entry in doc["batches"].items():
        yield ["batches", name], entry
        for kind in ("shards", "retries"):
            for i, record in enumerate(entry.get(kind, [])):
                yield ["batches", name, kind, i], record


def _check_times(path: Path, lockdoc: Document) -> None:
    """Times that are real dates: for a provider that keeps no tag, a record's submitted_at
    is how its job is recognised (runner.recognise), so one that is not a time is refused
    rather than read as none. A time in the future is not refused: an intent's is put past
    the provider's clock, which may run ahead of ours."""
    for at, record in _records_at(lockdoc.data):
        for key in ("submitted_at", "finished_at"):
            value = record.get(key)
            if value is None:
                continue
            if epoch(value) is None:
                where = ".".join(map(str, [*at, key]))
                raise LockfileError(f"lockfile {where} is not a real date and time "
                                    f"({excerpt(value)}); {RESTORE}",
                                    path=path, where=str(lockdoc.line_of([*at, key])))


def _check_jobs_named_once(path: Path, lockdoc: Document) -> None:
    """One job is one record's: two records naming it (a bad merge, a record copied by hand)
    would write one job's answers into two batches' outputs."""
    named: dict[str, list[str | int]] = {}
    for at, record in _records_at(lockdoc.data):
        job = record.get("job")
        if not isinstance(job, str) or (at[2:3] == [] and record.get("shards")):
            continue
        first = named.setdefault(job, at)
        if first is not at:
            raise LockfileError(
                f"lockfile names job {job} for both {'.'.join(map(str, first))} and "
                f"{'.'.join(map(str, at))}; one job answers one record: keep it where it "
                f"belongs and remove the other's job line, or {RESTORE}",
                path=path, where=str(lockdoc.line_of([*at, "job"])))


def _check_reused(path: Path, lockdoc: Document) -> None:
    """A batch that reused results sends the rest in its shards: the two add up to its
    requests, and the packs it reused from are named. Otherwise requests would be written from
    nowhere (an error line each) or sent twice."""
    for name, entry in lockdoc.data["batches"].items():
        reused = entry.get("reused", 0)
        if not reused:
            continue
        sent = sum(s["requests"] for s in entry.get("shards", []))
        if sent + reused != entry["requests"] or not entry.get("reuse_packs"):
            problem = "names no reuse_packs" if sent + reused == entry["requests"] else \
                f"has {sent} requests in its shards and {reused} reused, not {entry['requests']}"
            raise LockfileError(f"lockfile batches.{name} {problem}; {RESTORE}", path=path,
                                where=str(lockdoc.line_of(["batches", name, "reused"])))


def _check_packs_jobs(path: Path, lockdoc: Document) -> None:
    """`packs_jobs` says which jobs' results the packs hold, and those are read from the
    packs instead of the provider (runner.apply.collect): beside packs, and never a job of
    the batch whose results have not come in (its requests would be written from the
    packs' older lines). A name no record has any more (a shard submitted again since) is
    left: nothing reads it."""
    for name, entry in lockdoc.data["batches"].items():
        named = entry.get("packs_jobs")
        if not named:
            continue
        at = ["batches", name, "packs_jobs"]
        if not entry.get("packs"):
            raise LockfileError(f"lockfile batches.{name} names packs_jobs but no packs; "
                                f"{RESTORE}", path=path, where=str(lockdoc.line_of(at)))
        waiting = {r.get("job") for r in (entry, *entry.get("shards", []),
                                          *entry.get("retries", []))
                   if r.get("state") != JobState.SUCCEEDED.value}
        for i, job in enumerate(named):
            if job in waiting:
                raise LockfileError(f"lockfile batches.{name}.packs_jobs names {excerpt(job)}, "
                                    "a job of the batch whose results have not come in; "
                                    f"{RESTORE}", path=path,
                                    where=str(lockdoc.line_of([*at, i])))


def entry_from(data: dict[str, Any]) -> LockEntry:
    """A batch's record from its validated lockfile data: states read as JobState, once."""
    fields = {f.name for f in dataclasses.fields(LockEntry)}
    entry = LockEntry(**_typed({k: v for k, v in data.items()
                                if k in fields and k not in ("retries", "shards")}))
    entry.retries = [Retry(**_typed(r)) for r in data.get("retries", [])]
    entry.shards = [Shard(**_typed(r)) for r in data.get("shards", [])]
    return entry


def _typed(record: dict[str, Any]) -> dict[str, Any]:
    return {**record, "state": JobState(record["state"])}


def save(path: Path, lock: Lock) -> None:
    write_text(path, lock.to_text())
