"""Validating a batch's input file, as the real service does while a batch is `validating`.

Each line must be `{"custom_id", "method": "POST", "url", "body"}` with a unique custom_id, a
url equal to the batch's endpoint, a body naming a model (the same one on every line) and not
asking to stream; the file holds 1 to 50,000 requests. Problems are reported the way the real
API reports them: the batch is created (HTTP 200), then ends `failed` with `errors.data[]`
entries naming a code, a message, the line (1-based) and the parameter at fault.

Validation runs when the batch is created (the input is read once, streamed), so that the
verdict is frozen with the batch; it is revealed when the batch's validation phase ends.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from runner.emulator.model import FailurePolicy
from runner.emulator.openai import echo
from runner.emulator.wire import JSON

MAX_REQUESTS = 50_000
MAX_ERRORS = 100  # a long list of errors says no more than its start


@dataclasses.dataclass(frozen=True)
class Verdict:
    """What validation found: the requests' count and model, how many of them the failure
    rule will fail, and the errors (none for a valid file)."""

    count: int
    model: str | None
    planned_failures: int
    errors: list[JSON]


def error(code: str, message: str, line: int | None = None, param: str | None = None) -> JSON:
    return {"code": code, "message": message, "param": param, "line": line}


def check(source: Path | None, endpoint: str, policy: FailurePolicy) -> Verdict:
    """Validate the input at `source` (None: the file could not be found) for `endpoint`."""
    if source is None:
        return Verdict(0, None, 0, [error(
            "invalid_request", "The input file could not be found.", param="input_file_id")])
    scan = _Scan(endpoint, policy)
    with source.open("rb") as lines:
        for number, raw in enumerate(lines, 1):
            if raw.strip():
                scan.line(number, raw)
            if len(scan.errors) >= MAX_ERRORS:
                break
    if not scan.errors and scan.count == 0:
        scan.errors.append(error("empty_file", "The batch input file is empty."))
    return Verdict(scan.count, scan.model, scan.failures, scan.errors[:MAX_ERRORS])


class _Scan:
    def __init__(self, endpoint: str, policy: FailurePolicy) -> None:
        self._endpoint = endpoint
        self._policy = policy
        self._seen: set[str] = set()
        self.count = 0
        self.failures = 0
        self.model: str | None = None
        self.errors: list[JSON] = []

    def line(self, number: int, raw: bytes) -> None:
        try:
            request = json.loads(raw)
        except ValueError:
            self.errors.append(error(
                "invalid_json_line", "This line is not parseable as valid JSON.", number))
            return
        problem = self._problem(request, number)
        if problem is not None:
            self.errors.append(problem)
            return
        self.count += 1
        if self.count > MAX_REQUESTS:
            self.errors.append(error(
                "too_many_tasks",
                f"The batch input file has more than the maximum of {MAX_REQUESTS:,} requests.",
                number))
            return
        body = request["body"]
        prompt = echo.prompt_of(self._endpoint, body)
        custom_id = request["custom_id"]
        if echo.failure(self._endpoint, body, prompt, self._policy, custom_id) is not None:
            self.failures += 1

    def _problem(self, request: Any, number: int) -> JSON | None:
        if not isinstance(request, dict):
            return error("invalid_request", "Each line must be a JSON object.", number)
        for name, kind, words in (("custom_id", str, "a string"), ("method", str, "a string"),
                                  ("url", str, "a string"), ("body", dict, "an object")):
            if name not in request:
                return error("missing_required_parameter",
                             f"Missing required parameter: '{name}'.", number, name)
            if not isinstance(request[name], kind):
                return error("invalid_request", f"'{name}' must be {words}.", number, name)
        if request["method"] != "POST":
            return error("invalid_request", "The method must be POST.", number, "method")
        if request["url"] != self._endpoint:
            return error("url_mismatch", f"The url {request['url']!r} does not match the batch's"
                         f" endpoint {self._endpoint!r}.", number, "url")
        body = request["body"]
        if body.get("stream"):
            return error("invalid_request", "Streaming is not supported in the Batch API.",
                         number, "body.stream")
        name = body.get("model")
        if not isinstance(name, str) or not name:
            return error("missing_required_parameter", "Missing required parameter: 'model'.",
                         number, "body.model")
        if self.model is None:
            self.model = name
        elif name != self.model:
            return error("model_mismatch", f"The model {name!r} differs from {self.model!r}, used"
                         " by the batch's earlier requests; a batch serves one model.",
                         number, "body.model")
        custom_id = request["custom_id"]
        if custom_id in self._seen:
            return error("duplicate_custom_id",
                         "The custom_id for this request is a duplicate of another request. The"
                         " custom_id parameter must be unique for each request in a batch.",
                         number, "custom_id")
        self._seen.add(custom_id)
        return None
