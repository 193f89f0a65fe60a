"""The result store under attack, on a directory and on moto's S3 server: races between runs
at the worst moment, hostile objects and names, and results that must not cost memory per
request (store locations: tests/test_store_location.py). A race is staged by running a real second run's step inside the
first's, between two of its calls to the store (`Between`), on the real backends."""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
import s3server

from runner.errors import StoreError
from runner.store import Lease, Store, open_store
from runner.store.backends import Backend, Stat
from runner.store.names import PACKS, generation_object, pack_object

BUCKET = "hostile-tests"
H = "sha256:" + "cd" * 32


class Between:
    """A real backend that runs `step` once, right after the first call `when` picks has
    done its work: another run acting between two of this run's calls."""

    def __init__(self, inner: Backend, when: Callable[[str, str], bool],
                 step: Callable[[], object]):
        self.inner, self.location = inner, inner.location
        self._when, self._step, self.done = when, step, False

    def _after(self, call: str, name: str) -> None:
        if not self.done and self._when(call, name):
            self.done = True
            self._step()

    def write(self, name: str, data: bytes) -> None:
        self.inner.write(name, data)

    def create(self, name: str, data: bytes) -> bool:
        return self.inner.create(name, data)

    def read(self, name: str, start: int = 0, end: int | None = None) -> bytes:
        data = self.inner.read(name, start, end)
        self._after("read", name)
        return data

    def list(self, folder: str) -> list[Stat]:
        found = self.inner.list(folder)
        self._after("list", folder)
        return found

    def folders(self, folder: str) -> tuple[str, ...]:
        return self.inner.folders(folder)

    def modified(self, name: str) -> float | None:
        return self.inner.modified(name)

    def delete(self, name: str) -> None:
        self.inner.delete(name)


def test_a_late_create_of_a_cleared_generation_does_not_make_two_holders(
        location: str) -> None:
    """Run B finds generation 1 stale and goes to create 2; before it does, run A takes the
    lease (2) and renews it (3), which clears 2 away. B's create of 2 then succeeds, on a
    name that is free again: B must still see that A holds the lease."""
    plain = open_store(location)
    assert plain.lease(H, "dead-run", 0.01).held
    time.sleep(0.05)
    holder_a: list[object] = []

    def run_a() -> None:
        taken = plain.lease(H, "run-a", 60)
        assert taken.held and taken.generation == 2
        holder_a.append(plain.renew(taken, 60))

    b = Store(Between(plain.backend, lambda call, name: call == "read"
                      and name.endswith("00000000000000000001.json"), run_a))
    seen = b.lease(H, "run-b", 60)
    assert holder_a, "run A did not run between B's look and B's create"
    assert not seen.held and seen.holder == "run-a", seen
    now = plain.holder(H)
    assert now is not None and now.holder == "run-a"


def test_a_store_that_ignores_exclusive_creates_gives_no_lease(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """An S3-compatible service that ignores If-None-Match lets two runs create the same
    generation: both would hold the lease. Taking one must refuse such a store."""
    with s3server.running(ignoring_conditions=True) as endpoint:
        for name, value in s3server.environment(endpoint).items():
            monkeypatch.setenv(name, value)
        url = f"s3://{BUCKET}/{uuid.uuid4().hex}"
        plain = open_store(url)
        plain.backend.fs.mkdir(BUCKET)  # type: ignore[attr-defined]
        taken: list[Lease] = []
        b = Store(Between(plain.backend, lambda call, name: call == "list",
                          lambda: taken.append(plain.lease(H, "run-a", 60))))
        with pytest.raises(StoreError, match="does not refuse"):
            seen = b.lease(H, "run-b", 60)
            assert not (seen.held and taken and taken[0].held), (seen, taken)


def test_a_long_holder_name_does_not_make_its_own_lease_unreadable(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    mine = store.lease(H, "host-" + "x" * 5_000, 60)
    assert mine.held
    assert store.renew(mine, 60).held           # not LeaseLost: it is still ours
    holder = store.holder(H)
    assert holder is not None and holder.holder.startswith("host-xxx")
    assert not store.lease(H, "other", 60).held


def test_a_holder_name_read_from_the_store_cannot_drive_a_terminal(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    store.backend.create(generation_object(H, 1), orjson.dumps(
        {"holder": "\x1b]0;pwned\x07\x1b[2Jrun-x\r\n", "token": "t", "ttl": 60}))
    seen = store.lease(H, "run-a", 60)
    assert not seen.held and seen.holder == "?]0;pwned??[2Jrun-x??"


def test_gc_leaves_a_pack_written_again_between_its_look_and_its_delete(
        location: str) -> None:
    """An old pack no lockfile names is written again, same bytes, by a run that will record
    it, just after gc listed the packs: gc must not delete what that run just wrote."""
    plain = open_store(location)

    def write_it() -> list[str]:
        with plain.writer() as w:
            for i in range(200):
                w.add("sha256:" + hashlib.sha256(b"%d" % i).hexdigest(), b'{"i":%d}' % i, True)
        return w.packs

    [pack] = write_it()
    time.sleep(3.2)         # the pack is now older than gc's min_age (S3 times are seconds)
    again: list[list[str]] = []
    gc = Store(Between(plain.backend, lambda call, name: call == "list" and name == PACKS,
                       lambda: again.append(write_it())))
    gc.gc(set(), dry_run=False, min_age=2.0)
    assert again == [[pack]]
    assert [p.pack for p in plain.packs()] == [pack]
    assert sum(1 for _ in plain.results([pack])) == 200


def test_store_tests_see_no_cloud_credentials_of_the_machine() -> None:
    """tests/conftest.py clears every cloud credential variable and turns off the metadata
    services, so nothing here can reach a real bucket with the real credentials of whoever
    runs the suite."""
    cloud = [n for n in os.environ
             if n.startswith(("AWS_", "AZURE_", "GOOGLE_")) and n != "AWS_EC2_METADATA_DISABLED"]
    assert cloud == [] and os.environ.get("AWS_EC2_METADATA_DISABLED") == "true"
    assert os.environ.get("NO_GCE_CHECK") == "True"


def test_a_fifo_under_an_object_name_is_refused_not_waited_on(tmp_path: Path) -> None:
    """On a shared disk anyone who can write there can put a FIFO under a pack's or a lease's
    name: a read must not block on it for ever."""
    store = open_store(tmp_path)
    with store.writer() as w:
        w.add(H, b'{"a":1}', True)
    [pack] = w.packs
    generation = tmp_path / "leases" / H[7:] / "00000000000000000001.json"
    generation.parent.mkdir(parents=True)
    for path in (tmp_path / pack_object(pack), generation):
        path.unlink(missing_ok=True)
        os.mkfifo(path)
    outcome: list[BaseException] = []
    calls: list[Callable[[], object]] = [lambda: list(store.results([pack])),
                                         lambda: store.lease(H, "run-a", 60)]
    for call in calls:
        def run(call: Callable[[], object] = call) -> None:
            try:
                call()
            except BaseException as e:
                outcome.append(e)
        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        thread.join(10)
        if thread.is_alive():       # let it go: open the FIFOs' other ends
            for path in (tmp_path / pack_object(pack), generation):
                with contextlib.suppress(OSError):      # ENXIO: nobody waits on it
                    os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
            pytest.fail("a read blocked on a FIFO")
    assert [type(e) for e in outcome] == [StoreError, StoreError]
    assert all("not a regular file" in str(e) for e in outcome)


MEMORY = textwrap.dedent("""
    import hashlib, resource, sys
    from runner.store import open_store
    store, n = open_store(sys.argv[1]), int(sys.argv[3])
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if sys.argv[2] == "write":
        with store.writer() as w:
            for i in range(n):
                w.add("sha256:" + hashlib.sha256(b"%d" % i).hexdigest(), b'{"i":%d}' % i, True)
    else:
        assert sum(1 for _ in store.results(p.pack for p in store.packs())) == n
    print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) // 1024)
""")


def test_memory_does_not_grow_with_the_number_of_short_results(tmp_path: Path) -> None:
    """Short result lines put many entries in a pack: neither the writer nor the reader may
    hold a Python object per entry of a whole pack (each step in a process of its own)."""
    grew = [int(subprocess.run([sys.executable, "-c", MEMORY, str(tmp_path), step, "400000"],
                               capture_output=True, text=True, check=True,
                               timeout=300).stdout)
            for step in ("write", "read")]
    assert grew[0] < 60 and grew[1] < 60, grew


BOMB = textwrap.dedent("""
    import hashlib, resource, sys, zlib, zstandard
    from runner.errors import PackDamaged
    from runner.store import open_store
    from runner.store.names import pack_object
    from runner.store.pack import CODEC_ZLIB, CODEC_ZSTD, ENTRY, encode_head
    store = open_store(sys.argv[1])
    codec = int(sys.argv[2])
    stored = zlib.compress(bytes(64 << 20), 9) if codec == CODEC_ZLIB else \
        zstandard.ZstdCompressor(level=19).compress(bytes(64 << 20))     # 64 MB of zeros
    request = hashlib.sha256(b"bomb").digest()
    pack, head = encode_head(codec, [(len(stored), 100, hashlib.sha256(stored).digest())],
                             ENTRY.pack(request, 0, 0, 10, 1))
    store.backend.write(pack_object(pack), head + stored)
    del stored
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    try:
        list(store.results([pack]))
    except PackDamaged as e:
        print(e.reason)
    print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) // 1024)
""")


@pytest.mark.parametrize("codec", [1, 2])
def test_a_block_that_decompresses_to_far_more_than_its_head_says_is_not_held(
        tmp_path: Path, codec: int) -> None:
    """A pack named by its hash can still be hostile (a lockfile edited to name it): a block
    of a few KB whose head says 100 bytes, and that decompresses to 64 MB, is refused without
    being decompressed whole, zlib (packs of before) or zstd, whose frame header states the
    64 MB its one-shot call would allocate."""
    out = subprocess.run([sys.executable, "-c", BOMB, str(tmp_path), str(codec)],
                         capture_output=True,
                         text=True, check=True, timeout=120).stdout.splitlines()
    assert out[0] == "a block does not decompress to its stated length"
    assert int(out[1]) < 16, out


def test_packs_written_with_zlib_before_zstd_are_still_read(tmp_path: Path) -> None:
    """Packs were zlib before zstd: a store written then reads on, line for line, and the
    writer now makes zstd packs."""
    import zlib

    from runner.store.pack import CODEC_ZLIB, CODEC_ZSTD, ENTRY, FIXED, encode_head
    store = open_store(tmp_path)
    lines = [b'{"key":"a","response":{}}', b'{"key":"b","error":{"code":3}}']
    raw = b"".join(line + b"\n" for line in lines)
    stored = zlib.compress(raw, 1)
    hashes = sorted(hashlib.sha256(line).digest() for line in lines)
    spots = {hashlib.sha256(lines[0]).digest(): (0, len(lines[0]), 1),
             hashlib.sha256(lines[1]).digest(): (len(lines[0]) + 1, len(lines[1]), 0)}
    index = b"".join(ENTRY.pack(h, 0, *spots[h]) for h in hashes)
    old, head = encode_head(CODEC_ZLIB, [(len(stored), len(raw),
                                          hashlib.sha256(stored).digest())], index)
    store.backend.write(pack_object(old), head + stored)
    got = {(r.request_hash, r.ok, r.line) for r in store.results([old])}
    assert got == {("sha256:" + hashlib.sha256(lines[0]).hexdigest(), True, lines[0]),
                   ("sha256:" + hashlib.sha256(lines[1]).hexdigest(), False, lines[1])}
    with store.writer() as writer:
        writer.add("sha256:" + "ab" * 32, lines[0], True)
    [new] = writer.packs
    data = store.backend.read(pack_object(new), 0, FIXED.size)
    assert FIXED.unpack(data)[2] == CODEC_ZSTD
    [result] = store.results([new])
    assert result.line == lines[0]
