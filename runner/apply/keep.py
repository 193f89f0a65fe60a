"""The result store's side of writing outputs: every result line joined to a request goes
into the store as the outputs are written, and outputs are rebuilt from the store's lines.

Crash safety comes from the order: the packs are written (whole, under their hashes) before
the lockfile names them, so a record never names a pack that was not written; a run killed
between leaves packs no record names, which `runner store gc` removes. Memory stays bounded:
lines stream into the PackWriter and, to rebuild, out of the packs into a file on disk that
the join reads as it reads a provider's results.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from ..errors import PackDamaged, PackMissing, StoreError, StoreIncomplete
from ..manifest import Manifest
from ..outputs import Keep, Written
from ..reuse import extract
from ..store import Store

# writes a batch's outputs from results files, giving each joined line to `keep` when set
WriteOutputs = Callable[[Sequence[Path], Keep | None], Written]


def write_keeping(store: Store, write: WriteOutputs, results: Sequence[Path]
                  ) -> tuple[Written, list[str]]:
    """The outputs written from `results`, every line also put in the store; the packs that
    hold them, in the order written (the same for the same results on a machine of as many
    cores: runner.joinlines cuts them where its groups end). An error leaves the
    packs written so far unnamed: nothing records them."""
    with store.writer() as writer:
        written = write(results, writer)
    return written, list(writer.packs)


def rebuild(store: Store, packs: Sequence[str], write: WriteOutputs, workdir: Path,
            report: Callable[[str], None], reused: Sequence[str] = ()) -> Written | None:
    """The outputs written from the store's lines in `packs` and the successes in `reused`
    (the packs of the requests the batch reused; see reuse.extract), found by request hash,
    or None when a pack is missing or damaged, or the packs lack results the outputs were
    written from (StoreIncomplete, see write_outputs): the caller fetches the results from
    the provider, which puts them in the store again. A pack of `reused` alone missing or
    damaged is raised (PackMissing, PackDamaged): the provider's results do not hold those.
    Outputs are replaced atomically, so a pack found damaged halfway through leaves the old
    ones."""
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "stored.tsv"
    try:
        extract(store, packs, path, reused=reused)
        written = write([path], None)
    except (PackMissing, PackDamaged, StoreIncomplete) as e:
        if isinstance(e, (PackMissing, PackDamaged)) and e.pack not in packs:
            raise       # a pack it reused: the provider never answered those (the caller says)
        report(f"{e}; fetching them from the provider")
        return None
    finally:
        path.unlink(missing_ok=True)
    # the packs reused hold other batches' lines (and lines its own packs hold again), which
    # no request takes or which repeat a hash: not results that carried an unknown key
    return replace(written, unmatched=0, repeated=0) if reused else written


def earlier(store: Store, packs: Sequence[str], workdir: Path, name: str,
            report: Callable[[str], None], reused: Sequence[str] = ()) -> Path | None:
    """The store's lines in `packs`, after the successes in `reused` (as for `rebuild`; each
    block checked against the pack's hash) in a file for the join, when a job's results came
    in after the packs were written: the jobs' results they hold need not be fetched from the
    provider again, which may no longer have them (a fresh clone has no copy). None when a
    pack is missing or damaged, said through `report` (naming the batch): the caller fetches
    every job's results instead; a pack of `reused` alone is raised, as for `rebuild`."""
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / f"earlier-{name}.tsv"
    try:
        extract(store, packs, path, reused=reused)
        return path
    except (PackMissing, PackDamaged) as e:
        path.unlink(missing_ok=True)
        if e.pack not in packs:
            raise       # a pack it reused, as for `rebuild`
        report(f"{name}: {e}")
        return None


def reuse_gone(m: Manifest, e: PackMissing | PackDamaged) -> StoreError:
    """A pack holding results the batch reused is missing or damaged: the provider's results
    hold only the requests sent, so the outputs stay as they were, with what to do."""
    if isinstance(e, PackMissing):      # plan says the batch is lost, and what to do
        return StoreError(f"{m.name}: {e}, which holds results it reuses; run plan to see "
                          "what to do", path=m.source)
    # plan cannot tell (it does not read the packs' blocks): say here what to do
    return StoreError(f"{m.name}: {e}, which holds results it reuses; point RUNNER_STORE at a "
                      f"store that holds them undamaged, or runner forget {m.name} and apply "
                      "to send them all again", path=m.source)
