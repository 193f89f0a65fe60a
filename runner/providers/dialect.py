"""What differs between batch APIs, as the core sees it: one `Dialect` per provider package.

The core (manifests, rendering, hashing, the plan, apply, outputs, prices) never reads a
provider's JSON itself. It asks the manifest's dialect, found by name in the registry
(`runner.providers.registry`), for what a request may hold, how an input line is written, how
a result line is read, how many tokens a request may take, the limits of one job and how to
reach the API. Everything here is pure: no call leaves the process except through the client
a dialect's `connect` builds, which implements `runner.providers.base.Provider`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from ..limits import Limits
from ..usage import Usage
from .base import Provider
from .reading import kind

# The key of a failed request's error that marks it unfinished: its job ran out of time (it
# expired) before running it. The core sends such requests again by itself, as it does a job
# that expired without results, while a failure of the request itself waits for retry_failed.
UNFINISHED = "unfinished"


def provider_error(error: Mapping[str, Any]) -> dict[str, Any]:
    """An error object as the provider wrote it, for the errors output, without the runner's
    own mark: a provider must not be able to call its failure unfinished (and so have it sent
    again past spec.retry_failed)."""
    return {k: v for k, v in error.items() if k != UNFINISHED}


class Answer(NamedTuple):
    """A successful result, read: what every output is made of, whatever the provider. (A
    named tuple: a join makes one a response, and a frozen dataclass's __init__ cost as much
    as reading the response.)"""

    text: str
    finish_reason: str | None
    usage: Usage                    # typed, for the lockfile's record of what was spent
    usage_raw: Mapping[str, Any]    # as the provider wrote it, for the outputs' `usage`
    response: Mapping[str, Any]     # the provider's whole response, for the outputs' `response`


@dataclass(frozen=True)
class JsonAnswer:
    """A request that declares its answer JSON: the JSON Schema the answer must match (None:
    any JSON will do), and the path of the declaration in the request, for messages."""

    schema: Mapping[str, Any] | None
    at: tuple[str, ...]


class Malformed(ValueError):
    """A result whose response is not shaped as the API says: its request fails, saying which
    field, rather than the whole batch (or a wrong value slipping into the outputs)."""

    def __init__(self, field: str, value: object, expected: str):
        super().__init__(f"{field} is {kind(value)}, expected {expected}")


@dataclass(frozen=True)
class Endpoint:
    """Where a client finds its API: the default base URL, the environment variables a user
    sets for the key and a base URL (the provider's own names, so that a team's existing
    environment works), and where the embedded emulator serves this API."""

    base_url: str
    key_env: tuple[str, ...]
    base_url_env: str | None = None
    emulator_prefix: str = ""


class Dialect(Protocol):
    """One provider's batch API, as the core needs it (see the module docstring)."""

    # read-only attributes (a dialect is a frozen dataclass, shared by every run)
    @property
    def name(self) -> str:
        """As a manifest's `spec.provider` says it."""
        ...

    @property
    def limits(self) -> Limits:
        """What one job accepts: drives shards and inline sends."""
        ...

    @property
    def endpoint(self) -> Endpoint: ...

    @property
    def expiry(self) -> str:
        """How long a job may run before the provider expires it, for messages."""
        ...

    @property
    def output_bound_setting(self) -> str:
        """The request setting that caps output tokens, for messages."""
        ...

    @property
    def model_hint(self) -> str:
        """What a model id looks like, for messages."""
        ...

    @property
    def endpoints(self) -> tuple[str, ...]:
        """The endpoints a manifest may send its requests to (`spec.endpoint`), the default
        first; () for a provider with one kind of request."""
        ...

    @property
    def tags_jobs(self) -> bool:
        """Whether a job carries the runner's tag (`RemoteJob.display_name`) on the
        provider. A provider that keeps none (Anthropic) has its jobs recognised from the
        lockfile's intents instead (runner.recognise)."""
        ...

    @property
    def maps_keys(self) -> bool:
        """Whether a key is sent as another string (`wire_key`): False spares the call."""
        ...

    def framing(self, endpoint: str | None) -> Framing:
        """How an input line is written around the key and the request."""
        ...

    def request_schema(self, endpoint: str | None) -> Mapping[str, Any]:
        """The JSON schema of a manifest's `spec.request` (for requests to `endpoint`)."""
        ...

    def wire_key(self, key: str) -> str:
        """The key as the provider is sent it, where the provider restricts keys: a
        deterministic, reversible mapping (`key_of_wire`); raises ValueError saying why a
        key cannot be sent."""
        ...

    def key_of_wire(self, wire: str) -> str:
        """The key a key as sent (`wire_key`) stands for."""
        ...

    def model_id(self, model: str) -> str:
        """A model as the manifest names it, in the form the runner records and prices."""
        ...

    def body(self, request: Mapping[str, Any], model: str) -> dict[str, Any]:
        """The manifest's request as the body a line carries (some APIs want the model in
        it). Applied to the template before rendering, so it costs nothing per request."""
        ...

    def result_key(self, result: Mapping[str, Any]) -> object:
        """The key a result line answers (None when it has none)."""
        ...

    def read_result(self, result: Mapping[str, Any] | None) -> Answer | dict[str, Any]:
        """A result line's Answer when it succeeded; otherwise the error to record for its
        request (the provider's, none at all, or a result not shaped as the API says, naming
        the field), with `UNFINISHED: True` for a request its job expired before running.
        Never raises for a result of the wrong shape."""
        ...

    def usage(self, raw: Mapping[str, Any]) -> Usage:
        """Usage as one response reports it; raises ValueError naming a bad field."""
        ...

    def json_answer(self, request: Mapping[str, Any], endpoint: str | None
                    ) -> JsonAnswer | None:
        """Whether a request (as a line carries it) asks for a JSON answer, and with which
        schema, converted to JSON Schema; None when it asks for text."""
        ...

    def sample_result(self, key: str, text: str, model: str, endpoint: str | None
                      ) -> dict[str, Any]:
        """A successful result line answering `text`, with every field a real one has: what
        validate renders the output templates against before anything is sent."""
        ...

    def request_tokens(self, request: Mapping[str, Any], endpoint: str | None
                       ) -> tuple[int, int]:
        """(estimated input tokens, media parts counted at a flat rate) of one request sent
        to `endpoint` (the manifest's; None for a provider with one kind of request): which
        fields are prompt depends on the kind of request, which its keys alone do not always
        tell (OpenAI's Responses and Embeddings requests may both be `{model, input}`)."""
        ...

    def output_bound(self, request: Mapping[str, Any], endpoint: str | None) -> int | None:
        """The most output tokens one request sent to `endpoint` may produce; None when it
        sets no bound (0 for a request that produces none, such as an embedding)."""
        ...

    def connect(self, api_key: str, base_url: str | None, tuning: Mapping[str, int]
                ) -> Provider:
        """A client of this API (the HTTP edge); `tuning` holds size knobs for tests."""
        ...


@dataclass(frozen=True)
class Framing:
    """An input line's bytes around the key's JSON and the request's: `prefix KEY middle
    REQUEST suffix`, without a newline. The key ends at the first `middle`: inside a JSON
    string a quote is always escaped, and `middle` starts with one."""

    prefix: bytes
    middle: bytes
    suffix: bytes = b"}"

    def line(self, key_json: bytes, request: bytes) -> bytes:
        """One input line (without its newline)."""
        return self.prefix + key_json + self.middle + request + self.suffix

    def format(self) -> bytes:
        """`line` as a %-format of (key's JSON, request), for the render loop's hot path."""
        parts = (self.prefix, self.middle, self.suffix)
        return b"%s".join(p.replace(b"%", b"%%") for p in parts)

    def split(self, line: bytes) -> tuple[bytes, bytes]:
        """An input line (without its newline) back into its key's JSON and its request's
        bytes, without parsing the request."""
        start = len(self.prefix)
        middle = line.index(self.middle, start)
        return line[start:middle], line[middle + len(self.middle):len(line) - len(self.suffix)]
