"""OpenAI batches: create, observe, list, cancel. (There is no delete, as in the real API.)

Create checks the request as the real API does (HTTP 400 for a bad endpoint, window or
metadata), validates the input file, and freezes the batch's fate: its validation verdict
and the outcome and result shape chosen from the faults in force then. Reads derive the
phase from the clock (runner.emulator.openai.lifecycle) and settle a batch found ended
(runner.emulator.openai.settle).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from runner.emulator.clock import Clock
from runner.emulator.faults import Faults
from runner.emulator.model import FailurePolicy
from runner.emulator.openai import lifecycle, listing, validate
from runner.emulator.openai.disk import Disk
from runner.emulator.openai.echo import ENDPOINTS
from runner.emulator.openai.errors import OpenAiError, invalid, not_found
from runner.emulator.openai.lifecycle import Phase, phase
from runner.emulator.openai.records import (
    CANCELLED,
    CANCELLING,
    COMPLETED,
    EXPIRED,
    FAILED,
    FINALIZING,
    IN_PROGRESS,
    VALIDATING,
    BatchRecord,
    batch_id,
    is_id,
)
from runner.emulator.openai.settle import Settler
from runner.emulator.store import remove

# Endpoints the real Batch API accepts; the emulator answers those in echo.ENDPOINTS.
KNOWN_ENDPOINTS = ("/v1/responses", "/v1/chat/completions", "/v1/embeddings", "/v1/completions",
                   "/v1/moderations", "/v1/images/generations", "/v1/images/edits", "/v1/videos")
MAX_METADATA = 16
MAX_KEY = 64
MAX_VALUE = 512
MIN_EXPIRY, MAX_EXPIRY = 3600, 30 * 24 * 3600


@dataclasses.dataclass(frozen=True)
class Observation:
    """A batch as one read saw it: its record, its phase, and when."""

    record: BatchRecord
    phase: Phase
    now: float


class Batches:
    def __init__(self, disk: Disk, clock: Clock, latency: float) -> None:
        self._disk = disk
        self._clock = clock
        self._latency = latency
        self._settler = Settler(disk, clock)

    def create(self, body: Mapping[str, Any], faults: Faults) -> Observation:
        input_file_id = _required_str(body, "input_file_id")
        endpoint = _required_str(body, "endpoint")
        if endpoint not in KNOWN_ENDPOINTS:
            raise invalid(f"Invalid value: {endpoint!r}. Supported values are: "
                          + ", ".join(repr(e) for e in KNOWN_ENDPOINTS) + ".",
                          "endpoint", "invalid_value")
        if endpoint not in ENDPOINTS:
            raise invalid(f"The emulator answers batches for {', '.join(ENDPOINTS)} only, not"
                          f" {endpoint}.", "endpoint", "invalid_value")
        window = _required_str(body, "completion_window")
        if window != "24h":
            raise invalid(f"Invalid value: {window!r}. Supported values are: '24h'.",
                          "completion_window", "invalid_value")
        metadata = _metadata(body.get("metadata"))
        expires_after = _output_expiry(body.get("output_expires_after"))
        now = self._clock.now()
        new_id = batch_id(now)
        while self._disk.batches.exists(new_id):
            new_id = batch_id(now)
        policy = FailurePolicy(faults.request_error_rate, faults.seed)
        verdict = self._validate(new_id, input_file_id, endpoint, policy)
        if verdict.errors:
            remove(self._disk.batch_input(new_id))
        outcome = FAILED if verdict.errors or faults.fail else (
            EXPIRED if faults.expire else COMPLETED)
        record = BatchRecord(
            id=new_id, endpoint=endpoint, input_file_id=input_file_id, completion_window=window,
            metadata=metadata, created_at=now, latency=self._latency, outcome=outcome,
            request_count=verdict.count, planned_failures=verdict.planned_failures,
            model=verdict.model, errors=verdict.errors or None,
            error_rate=faults.request_error_rate, seed=faults.seed,
            shuffle=faults.shuffle_results, output_expires_after=expires_after,
        )
        self._disk.batches.put(record)
        # The create answer is the batch as submitted, even with zero latency.
        return Observation(record, Phase(VALIDATING, now), now)

    def _validate(self, new_id: str, input_file_id: str, endpoint: str,
                  policy: FailurePolicy) -> validate.Verdict:
        file = self._disk.files.get(input_file_id) if is_id(input_file_id) else None
        if file is None:
            return validate.check(None, endpoint, policy)
        if file.purpose != "batch":
            return validate.Verdict(0, None, 0, [validate.error(
                "invalid_request", f"The input file must have purpose 'batch', not"
                f" {file.purpose!r}.", param="input_file_id")])
        try:
            self._disk.keep_input(new_id, input_file_id)
        except FileNotFoundError:  # deleted meanwhile
            return validate.check(None, endpoint, policy)
        return validate.check(self._disk.batch_input(new_id), endpoint, policy)

    def get(self, batch_id: str) -> Observation:
        """The batch and its current phase, settling it first if it has just ended."""
        record = self._disk.batches.get(batch_id)
        if record is None:
            raise not_found("batch", batch_id, "batch_id")
        return self._observe(record)

    def page(self, limit: int, after: str | None) -> tuple[list[Observation], bool]:
        chosen, more = listing.page(
            self._disk.batches.all(), lambda r: listing.sort_key(r.id, r.created_at), limit,
            after, self._disk.batches.get)
        return [self._observe(record) for record in chosen], more

    def cancel(self, batch_id: str) -> Observation:
        """Start cancelling an unfinished batch; cancelling one already cancelled (or on its
        way) answers it as it is."""
        seen = self.get(batch_id)
        if seen.phase.status in (CANCELLING, CANCELLED):
            return seen
        with self._disk.lock(f"batches/{batch_id}"):
            record = self._disk.batches.get(batch_id)
            if record is None:
                raise not_found("batch", batch_id, "batch_id")
            now = self._clock.now()
            current = phase(record, now)
            if current.done:
                raise invalid(f"Cannot cancel a batch with status '{current.status}'.")
            if current.status != CANCELLING:
                record = dataclasses.replace(record, cancelling_at=now)
                self._disk.batches.put(record)
        return Observation(record, phase(record, now), now)

    def close(self) -> None:
        """Stop background production (it resumes on a later read) and wait for it."""
        self._settler.close()

    def _observe(self, record: BatchRecord) -> Observation:
        now = self._clock.now()
        current = phase(record, now)
        if current.done and record.status is None:
            settled = self._settler.settle(record, current)
            if settled is None:  # its files are still being produced
                return Observation(record, _producing(record, now), now)
            record, current = settled, phase(settled, now)
        return Observation(record, current, now)


def _producing(record: BatchRecord, now: float) -> Phase:
    """How a batch whose files are being produced in the background reads meanwhile."""
    if record.cancelling_at is not None:
        return Phase(CANCELLING, record.cancelling_at)
    times = lifecycle.timeline(record)
    if times.expiring:
        return Phase(IN_PROGRESS, times.validated)
    return Phase(FINALIZING, times.ran)


def _required_str(body: Mapping[str, Any], name: str) -> str:
    value = body.get(name)
    if value is None:
        raise invalid(f"Missing required parameter: '{name}'.", name,
                      "missing_required_parameter")
    if not isinstance(value, str):
        raise invalid(f"Invalid type for '{name}': expected a string, but got"
                      f" {_json_type(value)} instead.", name, "invalid_type")
    return value


def _metadata(value: Any) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise invalid(f"Invalid type for 'metadata': expected an object, but got"
                      f" {_json_type(value)} instead.", "metadata", "invalid_type")
    if len(value) > MAX_METADATA:
        raise invalid(f"Invalid 'metadata': too many properties. Expected an object with at most"
                      f" {MAX_METADATA} properties, but got an object with {len(value)}"
                      " properties instead.", "metadata", "object_above_max_properties")
    for key, item in value.items():
        if len(key) > MAX_KEY:
            raise invalid(f"Invalid 'metadata': string too long. Expected a key with maximum"
                          f" length {MAX_KEY}, but got a key with length {len(key)} instead.",
                          "metadata", "string_above_max_length")
        if not isinstance(item, str):
            raise invalid(f"Invalid type for 'metadata.{key}': expected a string, but got"
                          f" {_json_type(item)} instead.", f"metadata.{key}", "invalid_type")
        if len(item) > MAX_VALUE:
            raise invalid(f"Invalid 'metadata.{key}': string too long. Expected a string with"
                          f" maximum length {MAX_VALUE}, but got a string with length"
                          f" {len(item)} instead.", f"metadata.{key}", "string_above_max_length")
    return dict(value)


def _output_expiry(value: Any) -> int | None:
    """`output_expires_after` ({"anchor": "created_at", "seconds"}) as seconds, if given."""
    if value is None:
        return None
    anchor = value.get("anchor") if isinstance(value, dict) else None
    seconds = value.get("seconds") if isinstance(value, dict) else None
    if anchor != "created_at" or not isinstance(seconds, int) or isinstance(seconds, bool) \
            or not MIN_EXPIRY <= seconds <= MAX_EXPIRY:
        raise OpenAiError("INVALID_ARGUMENT", "Invalid 'output_expires_after': expected"
                          " {'anchor': 'created_at', 'seconds': 3600 to 2592000}.",
                          param="output_expires_after", code="invalid_value")
    return seconds


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return "null" if value is None else "a string"
