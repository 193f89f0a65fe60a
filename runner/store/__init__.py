"""The result store: every result line a provider returned, kept under its request hash.

A result received once need not be paid for again, on this machine or another: the store
keeps each line (a success or a per-request error, as the provider wrote it, usage included)
under the request hash of runner.hashing (`sha256` of `[provider, model, request]`), in packs.
It may be a directory (by default `DIR/.runner/store`, or a shared disk) or a bucket reached
through fsspec (`s3://`, `gs://`, `az://`; runner.store.remote). The lockfile will record the
packs that hold each batch's results; given those hashes, a fresh checkout reads exactly them.

Objects (runner.store.names):

    packs/<hex>.pack                    written once, whole, under the pack's hash
    leases/<content hex>/<gen>.json     one run at a time per content hash (runner.store.lease)
    claims/<content hex>/<tag hex>.json which job a run made for a content hash and its tag
                                        (runner.store.claims): the intent before the create,
                                        then the job; another clone adopts it

Pack format, version 1. Integers are little-endian; a pack is its head, then its blocks.

    head    fixed part (24 bytes)
              magic        8 bytes  89 'BRPACK' 0a
              version      u16      1
              codec        u8       2: zstd (RFC 8878), level 1; 1: zlib (RFC 1950), read
                                    only (packs written before zstd)
              flags        u8       0
              head length  u32      the whole head's bytes, this part included
              blocks       u32      B
              entries      u32      N
            block table, B x 48 bytes, in order
              offset       u64      from the start of the pack (the first is the head length;
                                    each follows the one before it, with no gap)
              stored       u32      its bytes as stored (compressed)
              raw          u32      its bytes once decompressed
              sha256       32 bytes of the stored bytes
            index, N x 45 bytes, sorted by request hash, each request once
              request      32 bytes the request hash's digest
              block        u32      the block holding the line
              offset       u32      where the line starts in the decompressed block
              length       u32      the line's bytes, without its newline
              status       u8       1: a successful answer; 0: a per-request error
    blocks  each a zstd frame (or zlib stream) of result lines, each ending in a newline (a
            block reads as JSONL once decompressed); lines the index does not point at may
            remain (a request added twice keeps one, a success over an error, else the later)

The pack's hash, and so its name, is the sha256 of its head. The head holds the sha256 of every
block, so the name vouches for every byte, and any part can be checked alone: a lookup reads
the head and the blocks it needs, not the pack; a full read checks every block, and that the
object ends where the last one does. A damaged or missing pack is a PackDamaged or PackMissing
(runner.errors) naming it, for the caller to fetch its results from the provider again.
A reader meeting another version or codec says a newer batch-runner wrote it.

Why zstd: compressing a million results' lines with zlib (level 1, about 110 MB/s a core)
took 8 of the CPU seconds of writing their outputs, the largest single step; zstd at level 1
is about 5x faster, reads 3x faster and makes packs smaller. It is a dependency
(`zstandard`) every machine sharing the store installs with batch-runner; packs written with
zlib before are still read. A batch-runner from before meets codec 2 as "a newer
batch-runner wrote it". Move to `compression.zstd` once Python 3.14 is the oldest supported.

What is guaranteed: a pack is visible whole or not at all (a rename on a path, one PUT on
object storage), and writing it again is harmless (same bytes, same name); a line returned was
checked against the pack's name; of two runs taking one lease, one wins, and only the holder
writes the claim (runner.apply.claim takes the lease before every create). docs/store.md says
more, for users.
"""

from __future__ import annotations

from .backends import Backend, PathBackend, Stat
from .lease import Lease
from .reader import Result
from .store import Collected, PackStat, Store, local_store, open_store
from .writer import PackWriter

__all__ = ["Backend", "Collected", "Lease", "PackStat", "PackWriter", "PathBackend", "Result",
           "Stat", "Store", "local_store", "open_store"]
