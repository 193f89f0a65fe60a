"""Object storage through fsspec: `s3://`, `gs://`, `az://` (s3fs, gcsfs, adlfs).

fsspec is the layer pandas, Dask and DVC use, so a bucket a team already reads from those
works here with the same settings. Each package is an optional extra, imported only when a
store URL names its scheme; a missing one is said in one line naming the extra to install.

Credentials never come from the project: each library's own chain finds them (for S3 the
AWS_* variables, ~/.aws, an instance role; for GCS application default credentials; for
Azure the AZURE_STORAGE_* variables or DefaultAzureCredential). A URL that carries a user or a
password is refused, so a secret cannot end up in a manifest directory committed to git.

The three operations that matter map onto one request each: a write is a single PUT (packs
stay under the 50 MB past which the libraries switch to multipart uploads), an exclusive create
is the same PUT made conditional (S3 `If-None-Match: *`, GCS `ifGenerationMatch=0`, Azure
`If-None-Match: *`), which every library exposes as `pipe_file(..., mode="create")` raising
FileExistsError when the name is taken.
"""

from __future__ import annotations

import datetime
import errno
import importlib
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from ..errors import StoreError
from .backends import Stat, check_name

# scheme -> the extra that provides it; extra -> the package it installs
SCHEMES = {"s3": "s3", "s3a": "s3", "gs": "gcs", "gcs": "gcs", "az": "azure", "abfs": "azure",
           "abfss": "azure"}
PACKAGES = {"s3": "s3fs", "gcs": "gcsfs", "azure": "adlfs"}
# how each library names an object's last change in a listing
_MODIFIED = ("LastModified", "last_modified", "mtime", "updated")


def scheme_of(location: str) -> str | None:
    """The URL scheme of a store location, or None for a plain path."""
    if "://" not in location:
        return None
    return location.split("://", 1)[0].lower()


def bucket_url(url: str) -> str:
    """`scheme://bucket/prefix`, checked and with its scheme in lower case: a URL whose
    meaning is not plain (credentials, a query string or fragment, fsspec's `::` chaining, no
    bucket, empty or dot segments in the prefix) is refused, naming no more of it than that."""
    scheme = scheme_of(url) or ""
    if SCHEMES.get(scheme) is None:
        raise StoreError(f"a store is a path or an s3://, gs:// or az:// URL, not "
                         f"{scheme}://", path=url.split("://", 1)[0] + "://...")
    parts = urlsplit(url)
    shown = f"{scheme}://{parts.hostname or ''}{parts.path.split('::', 1)[0]}"
    if parts.username or parts.password:
        raise StoreError("a store URL must not carry credentials: they come from the "
                         f"environment ({scheme}'s usual credential chain)", path=shown)
    prefix = parts.path.removeprefix("/")
    prefix = prefix[:-1] if prefix.endswith("/") else prefix
    if parts.query or parts.fragment or "?" in url or "#" in url or "::" in url:
        problem = "a query string, a fragment or a chained URL"
    elif not parts.netloc:
        problem = "no bucket"
    elif prefix and any(p in ("", ".", "..") for p in prefix.split("/")):
        problem = "an empty, '.' or '..' part in its prefix"
    else:
        return f"{scheme}://{parts.netloc}{'/' + prefix if prefix else ''}"
    raise StoreError(f"a store URL is {scheme}://bucket/prefix; this one has {problem}",
                     path=shown)


class FsspecBackend:
    """A bucket (and prefix) reached through fsspec."""

    def __init__(self, url: str, options: Mapping[str, Any] | None = None):
        url = bucket_url(url)
        _no_secrets(options or {}, url)
        scheme = scheme_of(url) or ""
        extra = SCHEMES[scheme]
        package = PACKAGES[extra]
        try:
            fsspec = importlib.import_module("fsspec")
            importlib.import_module(package)
        except ImportError:
            raise StoreError(f"a store at {scheme}:// needs {package}: "
                             f"pip install 'batch-runner[{extra}]'", path=url) from None
        self.location = url
        try:
            # a filesystem of its own: fsspec's shared instances do not survive a fork
            self.fs, root = fsspec.url_to_fs(url, skip_instance_cache=True,
                                             **dict(options or {}))
        except (OSError, ValueError) as e:
            raise StoreError(f"cannot open the store: {e}", path=url) from None
        self.root = str(root).rstrip("/")
        # what a call may fail with: the file-like errors, and the network's
        self._errors: tuple[type[BaseException], ...] = (OSError, *_transport_errors(extra))

    def _path(self, name: str) -> str:
        return f"{self.root}/{check_name(name)}"

    def _failed(self, name: str, step: str, e: BaseException) -> StoreError:
        text = str(e).splitlines()[0] if str(e) else type(e).__name__
        return StoreError(f"{name}: {step}: {text[:160]}", path=self.location)

    def write(self, name: str, data: bytes) -> None:
        try:
            self.fs.pipe_file(self._path(name), data)
        except self._errors as e:
            raise self._failed(name, "writing it", e) from None

    def create(self, name: str, data: bytes) -> bool:
        try:
            self.fs.pipe_file(self._path(name), data, mode="create")
        except FileExistsError:
            return False
        except self._errors as e:
            # S3 answers 409 to a conditional write racing another on the same name: the
            # name may or may not be taken now, which is what False tells the caller to check
            if "ConditionalRequestConflict" in str(e):
                return False
            raise self._failed(name, "creating it", e) from None
        return True

    def read(self, name: str, start: int = 0, end: int | None = None) -> bytes:
        path = self._path(name)
        try:
            data: bytes = self.fs.cat_file(path, start=start, end=end)
            return data
        except FileNotFoundError:
            raise
        except OSError as e:
            # a range starting at or past the end is refused (HTTP 416): say "no bytes"
            if e.errno == errno.EINVAL and self._size(path) <= start:
                return b""
            raise self._failed(name, "reading it", e) from None
        except self._errors as e:
            raise self._failed(name, "reading it", e) from None

    def _size(self, path: str) -> int:
        try:
            return int(self.fs.size(path))
        except self._errors:
            return -1

    def list(self, folder: str) -> list[Stat]:
        path = self._path(folder)
        try:
            self.fs.invalidate_cache(path)      # listings are cached; a lease needs today's
            items = self.fs.ls(path, detail=True)
        except FileNotFoundError:
            return []
        except self._errors as e:
            raise self._failed(folder, "listing it", e) from None
        found = []
        for item in items:
            if item.get("type") != "file":
                continue
            name = str(item["name"]).rstrip("/")
            if not name.startswith(path + "/") or not _plain(name[len(path) + 1:]):
                continue
            found.append(Stat(f"{folder}/{name[len(path) + 1:]}", int(item.get("size") or 0),
                              self._when(folder, name, item)))
        return found

    def folders(self, folder: str) -> tuple[str, ...]:
        path = self._path(folder)
        try:
            self.fs.invalidate_cache(path)
            items = self.fs.ls(path, detail=True)
        except FileNotFoundError:
            return ()
        except self._errors as e:
            raise self._failed(folder, "listing it", e) from None
        return tuple(f"{folder}/{name[len(path) + 1:]}" for item in items
                     if item.get("type") == "directory"
                     and (name := str(item["name"]).rstrip("/")).startswith(path + "/")
                     and _plain(name[len(path) + 1:]))

    def modified(self, name: str) -> float | None:
        path = self._path(name)
        try:
            self.fs.invalidate_cache(path)
            item = self.fs.info(path)
        except FileNotFoundError:
            return None
        except self._errors as e:
            raise self._failed(name, "reading its time", e) from None
        return self._when(name, path, item)

    def _when(self, name: str, path: str, item: Mapping[str, Any]) -> float:
        """An object's time from its listing entry, else asked for; a store that does not
        say is an error, never a guess (leases and gc depend on it)."""
        when = _modified(item)
        if when is None:
            try:
                when = _modified({"modified": self.fs.modified(path)})
            except NotImplementedError:
                when = None
            except self._errors as e:
                raise self._failed(name, "reading an object's time", e) from None
        if when is None:
            raise StoreError(f"{name}: the store does not say when its objects were "
                             "written, which leases and gc need", path=self.location)
        return when

    def delete(self, name: str) -> None:
        try:
            self.fs.rm_file(self._path(name))
        except FileNotFoundError:
            pass
        except self._errors as e:
            raise self._failed(name, "removing it", e) from None


def _plain(part: str) -> bool:
    """Whether a listed child's name is one part of an object name (check_name): a bucket
    takes any key, `..` and empty parts included, and one such child, handed back as a
    name, would be refused by every call after (gc walks whatever a listing holds). Only
    the store's own names are acted on, so the others are not listed."""
    return part not in ("", ".", "..") and "/" not in part


# the options through which s3fs, gcsfs, adlfs and botocore take a credential
SECRETS = frozenset({"key", "secret", "token", "password", "session_token", "account_key",
                     "sas_token", "credential", "credentials", "client_secret",
                     "connection_string", "aws_access_key_id", "aws_secret_access_key",
                     "aws_session_token"})


def _no_secrets(options: Mapping[str, Any], url: str, depth: int = 0) -> None:
    """Refuses a credential among a store's options (a project's options are committed to
    git), at any depth (client_kwargs, config_kwargs), naming the option, not its value."""
    for name, value in options.items():
        if str(name).lower() in SECRETS:
            raise StoreError(f"a store's options must not carry credentials ({name!s:.40}): "
                             "they come from the environment", path=url)
        if isinstance(value, Mapping) and depth < 4:
            _no_secrets(value, url, depth + 1)


def _modified(item: Mapping[str, Any]) -> float | None:
    """An object's last change, in seconds since the epoch, from a listing's entry; None
    when the entry does not say."""
    for key in (*_MODIFIED, "modified"):
        value = item.get(key)
        if isinstance(value, datetime.datetime):
            if value.tzinfo is None:
                value = value.replace(tzinfo=datetime.timezone.utc)
            return value.timestamp()
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            try:
                return datetime.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
            except ValueError:
                continue
    return None


def _transport_errors(extra: str) -> tuple[type[BaseException], ...]:
    """What each library raises when the network or the service fails outside OSError."""
    found: list[type[BaseException]] = []
    for module, name in {"s3": [("botocore.exceptions", "BotoCoreError"),
                                ("aiohttp", "ClientError")],
                         "gcs": [("google.auth.exceptions", "GoogleAuthError"),
                                 ("aiohttp", "ClientError")],
                         "azure": [("azure.core.exceptions", "AzureError"),
                                   ("aiohttp", "ClientError")]}[extra]:
        try:
            found.append(getattr(importlib.import_module(module), name))
        except (ImportError, AttributeError):
            continue
    return tuple(found)
