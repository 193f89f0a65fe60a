"""Records as the wire shows them: batches as google.longrunning Operations, File resources.

Shapes follow real transcripts: output appears in `metadata.output` (which the SDK reads) and
again in the top-level `response`; `done` appears only once true; counters are int64 strings
with zeros omitted; the `@type` names say `v1main` whatever the URL version.
"""

from __future__ import annotations

from runner.emulator.gemini.lifecycle import EXPIRY, Observation, Phase
from runner.emulator.gemini.protojson import int64
from runner.emulator.gemini.records import SUCCEEDED, BatchRecord, FileRecord
from runner.emulator.wire import JSON, timestamp

_TYPE_PREFIX = "type.googleapis.com/google.ai.generativelanguage.v1main."
BATCH_TYPE = _TYPE_PREFIX + "GenerateContentBatch"
OUTPUT_TYPE = _TYPE_PREFIX + "GenerateContentBatchOutput"


def operation(seen: Observation) -> JSON:
    """The Operation for a job as a read saw it."""
    record, phase, inline = seen.record, seen.phase, seen.inline
    metadata: JSON = {"@type": BATCH_TYPE, "model": f"models/{record.model}"}
    if record.display_name:
        metadata["displayName"] = record.display_name
    if record.input_file:
        metadata["inputConfig"] = {"fileName": record.input_file}
    output: JSON | None = None
    if phase.state == SUCCEEDED:
        if record.output_file:
            output = {"responsesFile": record.output_file}
        else:
            output = {"inlinedResponses": {"inlinedResponses": inline or []}}
        metadata["output"] = output
    metadata["createTime"] = timestamp(record.create_time)
    if phase.done:
        metadata["endTime"] = timestamp(phase.since)
    metadata["updateTime"] = timestamp(phase.since)
    metadata["batchStats"] = _stats(record, phase)
    metadata["state"] = phase.state
    metadata["name"] = record.name
    if record.priority:
        metadata["priority"] = int64(record.priority)
    result: JSON = {"name": record.name, "metadata": metadata}
    if phase.done:
        result["done"] = True
        if output is not None:
            result["response"] = {"@type": OUTPUT_TYPE, **output}
        elif record.error is not None:
            result["error"] = record.error
    return result


def _stats(record: BatchRecord, phase: Phase) -> JSON:
    """Counters, zeros omitted; requests of a job that did not succeed count as pending."""
    if phase.state == SUCCEEDED:
        counts = {
            "requestCount": record.request_count,
            "successfulRequestCount": record.succeeded,
            "failedRequestCount": record.failed,
        }
    else:
        counts = {
            "requestCount": record.request_count,
            "pendingRequestCount": record.request_count,
        }
    return {name: int64(value) for name, value in counts.items() if value}


def file_resource(record: FileRecord, base_url: str, version: str) -> JSON:
    resource: JSON = {"name": record.name}
    if record.display_name:
        resource["displayName"] = record.display_name
    resource["mimeType"] = record.mime_type
    if record.size_bytes:
        resource["sizeBytes"] = int64(record.size_bytes)
    resource["createTime"] = timestamp(record.create_time)
    resource["updateTime"] = timestamp(record.create_time)
    resource["expirationTime"] = timestamp(record.create_time + EXPIRY)
    resource["sha256Hash"] = record.sha256
    resource["uri"] = f"{base_url}/{version}/{record.name}"
    if record.source == "GENERATED":
        resource["downloadUri"] = f"{base_url}/download/{version}/{record.name}:download?alt=media"
    resource["state"] = "ACTIVE"
    resource["source"] = record.source
    return resource
