"""The lockfile (`batches.lock` in the manifest directory): what was submitted and written.

It is committed to git, so its bytes are deterministic: batches sorted by name, keys sorted,
empty fields left out, one batch per block so that branches touching different batches merge
cleanly. It is replaced atomically, and a `RunLock` keeps two runs from interleaving.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import json
import os
import re
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Union

import jsonschema
import orjson
import yaml

from . import hashing
from .errors import LockfileError
from .fsutil import write_text
from .layout import LOCKFILE_NAME, STATE_DIR
from .manifest import validator
from .providers.base import JobState
from .yamlsrc import Document, read_documents

VERSION = 1
RESTORE = "fix it or restore it from git"   # the advice for a damaged lockfile


@dataclass
class Job:
    """The record of one remote job: the requests it holds, its tag, and what became of it."""

    content_hash: str
    requests: int
    display_name: str
    state: JobState
    input_file: str | None = None
    job: str | None = None
    submitted_at: str | None = None
    finished_at: str | None = None
    error: str | None = None


@dataclass
class Retry(Job):
    """A follow-up batch of the requests that failed in the jobs before it."""


@dataclass
class Shard(Job):
    """One job's worth of a batch too big for one job (see runner.shards), in input order."""

    attempts: int = 0


# The record of one remote job: a batch's own (when it is not split), a shard, or a follow-up.
Part = Union["LockEntry", Shard]
LIVE = frozenset({JobState.CREATING, JobState.PENDING, JobState.RUNNING})
# A split batch's own state, from its shards': the first of these that one of them is in.
_ROLL_UP = (JobState.FAILED, JobState.CANCELLED, JobState.EXPIRED, JobState.CREATING,
            JobState.PENDING, JobState.RUNNING)


@dataclass
class LockEntry:
    manifest: str
    spec_hash: str
    content_hash: str
    provider: str
    model: str
    requests: int
    display_name: str
    state: JobState
    inputs: dict[str, Any] = field(default_factory=dict)
    outputs_hash: str | None = None
    input_file: str | None = None
    job: str | None = None
    submitted_at: str | None = None
    finished_at: str | None = None
    attempts: int = 0
    error: str | None = None
    counts: dict[str, int] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)
    spent: dict[str, Any] | None = None
    retries: list[Retry] = field(default_factory=list)
    shards: list[Shard] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """A deep copy as plain data, empty fields left out (orjson copies a dataclass about
        thirty times faster than dataclasses.asdict)."""
        data: dict[str, Any] = orjson.loads(orjson.dumps(self))
        out = {k: v for k, v in data.items() if v not in (None, {}, [])}
        if self.shards:     # a split batch's jobs are its shards'
            out.pop("attempts", None)
        for records in ("retries", "shards"):
            if records in out:
                out[records] = [{k: v for k, v in r.items() if v is not None}
                                for r in out[records]]
        return out

    def roll_up(self) -> None:
        """A split batch's own state, from its shards': the least advanced one, a failure
        first (it needs the user), SUCCEEDED only when every shard is in."""
        if self.shards:
            states = {s.state for s in self.shards}
            self.state = next((s for s in _ROLL_UP if s in states), JobState.SUCCEEDED)

    def parts(self) -> list[LockEntry | Shard]:
        """The records of the batch's jobs: its shards, or itself when it is not split."""
        return list(self.shards) if self.shards else [self]

    @property
    def settled(self) -> bool:
        """Every part's job succeeded and its results were collected."""
        return all(p.job is not None and p.state == JobState.SUCCEEDED for p in self.parts())

    @property
    def open_retry(self) -> Retry | None:
        """The follow-up batch still to be collected, if any."""
        if self.retries and self.retries[-1].state in LIVE:
            return self.retries[-1]
        return None

    @property
    def current_job(self) -> str | None:
        """The job the batch is waiting on: an open follow-up's, else the main one."""
        retry = self.open_retry
        return retry.job if retry is not None else self.job


@dataclass
class Lock:
    batches: dict[str, LockEntry] = field(default_factory=dict)
    # each batch's text as last written, reused while its record is unchanged: apply saves
    # after every step, and rendering a thousand records each time would dominate
    _rendered: dict[str, tuple[dict[str, Any], str]] = field(
        default_factory=dict, repr=False, compare=False)

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
        where = ".".join(str(p) for p in at) or "top level"
        raise LockfileError(f"lockfile is invalid at {where}: {message[:160]}; {RESTORE}",
                            path=path, where=str(line))
    return Lock({name: entry_from(entry) for name, entry in doc["batches"].items()})


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


class RunLock:
    """An exclusive lock on a manifest directory, held for a whole run.

    It is an flock on a sidecar file, so the kernel releases it when the holder dies: a killed
    run never leaves a stale lock. The sidecar names the holder for the message a second run
    prints.
    """

    def __init__(self, directory: Path, timeout: float = 0.0):
        self.path = directory / STATE_DIR / "run.lock"
        self.timeout = timeout
        self._fd: int | None = None

    def __enter__(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as e:
                if e.errno not in (errno.EAGAIN, errno.EACCES):
                    os.close(fd)
                    raise
                if time.monotonic() >= deadline:
                    holder = self._holder(fd)
                    os.close(fd)
                    raise LockfileError(f"another run holds the lock ({holder}); wait for it or "
                                        "pass --lock-timeout SECONDS", path=self.path.parent.parent
                                        / LOCKFILE_NAME) from None
                time.sleep(0.2)
        info = {"pid": os.getpid(), "host": socket.gethostname(),
                "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        self._fd = fd
        return self

    @staticmethod
    def _holder(fd: int) -> str:
        with contextlib.suppress(OSError, ValueError):
            info = json.loads(os.pread(fd, 4096, 0) or b"{}")
            return f"pid {info['pid']} on {info['host']} since {info['since']}"
        return "holder unknown"

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


@contextlib.contextmanager
def held(directory: Path, timeout: float = 0.0) -> Iterator[None]:
    with RunLock(directory, timeout):
        yield
