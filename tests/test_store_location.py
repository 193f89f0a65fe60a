"""Where a store is: a location that is not what it seems (a URL missing its slashes, a
query string, fsspec's chaining, a file URL naming another host) is refused rather than read
another way, and credentials never come from a location or the options beside it."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.errors import StoreError
from runner.store import open_store


@pytest.mark.parametrize("where", [
    "s3:bucket/results",            # a URL missing its slashes is not a local folder "s3:"
    "s3:/bucket/results",
    "gs:bucket",
    "file://fileserver/share/store",    # a file URL naming another host
    "s3://bucket/results?sig=s3cr3t",   # a query string (a SAS-like token) is not a prefix
    "s3://bucket/results#part",
    "s3://bucket/results::file:///tmp/elsewhere",   # fsspec's chaining
    "s3://",
    "s3:///results",
    "s3://bucket/../elsewhere",
    "s3://bucket//results",
])
def test_a_store_location_that_is_not_what_it_seems_is_refused(
        where: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(StoreError) as e:
        open_store(where)
    assert "s3cr3t" not in str(e.value)
    assert list(tmp_path.iterdir()) == []       # nothing created locally


@pytest.mark.parametrize("options", [{"secret": "s3cr3t"}, {"key": "s3cr3t"},
                                     {"client_kwargs": {"aws_secret_access_key": "s3cr3t"}},
                                     {"token": "s3cr3t"}])
def test_a_store_option_that_is_a_credential_is_refused(options: dict[str, object]) -> None:
    """A project's store options are committed to git: credentials never go there."""
    with pytest.raises(StoreError, match="must not carry credentials") as e:
        open_store("s3://bucket/results", options)
    assert "s3cr3t" not in str(e.value)


def test_odd_but_plain_locations_are_read_as_they_are_meant(tmp_path: Path) -> None:
    assert open_store(f"file://{tmp_path}/a").location == f"{tmp_path}/a"
    assert open_store(f"file://localhost{tmp_path}/b").location == f"{tmp_path}/b"
    assert open_store("S3://bucket/results").location == "s3://bucket/results"
    assert open_store(str(tmp_path / "with:colon")).location == f"{tmp_path}/with:colon"
