"""Attacks on lease renewal after a lost answer, and on keeping a reused batch's own lines."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from test_store_lease import H, TimesOutOnce

from runner.store import Store, open_store


def test_a_renewal_lost_just_before_stop_does_not_keep_the_lease_after_release(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The renewer's last try wrote the next generation and its answer was lost; apply then
    stops it and releases the lease it knows (the generation before). That generation is no
    longer the newest, so the release found the lease 'lost' and left it: the lease stayed
    held by this finished run for its whole ttl, keeping every other run off."""
    from runner.apply import claim
    monkeypatch.setattr(claim, "RENEW", 0.3)
    backend = TimesOutOnce(open_store(tmp_path).backend)
    store = Store(backend)
    renewer = claim._Renewer(store, store.lease(H, "run-a", 30), 30)
    backend.armed = True        # the first renewal's answer is lost
    renewer.start()
    deadline = time.monotonic() + 10
    while backend.armed and time.monotonic() < deadline:
        time.sleep(0.01)
    renewer.stop()              # before its next try
    assert not renewer.lost
    store.release(renewer.lease)
    assert store.holder(H) is None
