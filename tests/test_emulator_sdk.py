"""The official google-genai SDK, unchanged, against the emulator over real HTTP.

If these pass, code written for the real Gemini Batch API runs against the emulator: the
emulator speaks the wire protocol the SDK expects (both API versions), not just our client's.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from google import genai
from google.genai import errors, types

from runner.emulator import Emulator

MODEL = "gemini-2.5-flash"
LATENCY = 60.0  # emulator-clock seconds; the tests move the clock instead of sleeping


@pytest.fixture
def emu(tmp_path: Path) -> Iterator[Emulator]:
    with Emulator(tmp_path / "state", latency=LATENCY) as emulator:
        yield emulator


@pytest.fixture(params=["v1beta", "v1"])
def client(request: pytest.FixtureRequest, emu: Emulator) -> genai.Client:
    options = types.HttpOptions(base_url=emu.base_url, api_version=request.param)
    return genai.Client(api_key="test-key", http_options=options)


def advance(emu: Emulator, seconds: float) -> None:
    httpx.post(f"{emu.base_url}/_emulator/clock", json={"advance": seconds}).raise_for_status()


def state(client: genai.Client, name: str) -> str:
    job = client.batches.get(name=name)
    assert job.state is not None
    return job.state.value


PROMPTS = {
    "alpha": "Describe photosynthesis.",
    "beta": "Margherita ingredients?",
    "gamma": "Please EMULATOR_FAIL this one.",
    "delta": "Ünïcode prompt ✓",
}


def write_input(path: Path) -> Path:
    with path.open("w", encoding="utf-8") as out:
        for key, prompt in PROMPTS.items():
            request = {"contents": [{"parts": [{"text": prompt}], "role": "user"}]}
            out.write(json.dumps({"key": key, "request": request}) + "\n")
    return path


@pytest.mark.parametrize("mime_type", ["jsonl", "application/jsonl"])
def test_file_batch_round_trip(
    client: genai.Client, emu: Emulator, tmp_path: Path, mime_type: str
) -> None:
    source = write_input(tmp_path / "input.jsonl")
    uploaded = client.files.upload(
        file=str(source), config=types.UploadFileConfig(mime_type=mime_type, display_name="in")
    )
    assert uploaded.name is not None and re.fullmatch(r"files/[a-z0-9]{12}", uploaded.name)
    assert uploaded.size_bytes == source.stat().st_size
    assert uploaded.mime_type == mime_type and uploaded.display_name == "in"
    assert uploaded.state == types.FileState.ACTIVE
    assert client.files.get(name=uploaded.name).sha256_hash == uploaded.sha256_hash

    job = client.batches.create(
        model=MODEL, src=uploaded.name, config=types.CreateBatchJobConfig(display_name="file-job")
    )
    assert job.name is not None and re.fullmatch(r"batches/[a-z0-9]{36}", job.name)
    assert job.state == types.JobState.JOB_STATE_PENDING
    assert job.display_name == "file-job" and job.model == f"models/{MODEL}"

    advance(emu, LATENCY / 2)
    assert state(client, job.name) == "JOB_STATE_RUNNING"
    advance(emu, LATENCY)
    done = client.batches.get(name=job.name)
    assert done.state == types.JobState.JOB_STATE_SUCCEEDED and done.done
    assert done.end_time is not None and done.create_time is not None
    assert done.dest is not None and done.dest.file_name == f"files/batch-{job.name[8:]}"

    results = client.files.download(file=done.dest.file_name)
    streamed = tmp_path / "results.jsonl"
    client.files.download(file=done.dest.file_name, destination=str(streamed))
    assert streamed.read_bytes() == results

    lines = [json.loads(line) for line in results.decode().splitlines()]
    by_key = {line["key"]: line for line in lines}
    assert sorted(by_key) == sorted(PROMPTS)
    for key, prompt in PROMPTS.items():
        if "EMULATOR_FAIL" in prompt:
            assert by_key[key]["error"]["code"] == 3 and "response" not in by_key[key]
            continue
        response = types.GenerateContentResponse.model_validate(by_key[key]["response"])
        assert response.text == "echo: " + prompt
        assert response.model_version == MODEL


def test_inline_batch_results_map_to_their_requests(client: genai.Client, emu: Emulator) -> None:
    requests = [
        types.InlinedRequest(
            contents=[
                types.Content(parts=[types.Part(text="first")], role="user"),
                types.Content(parts=[types.Part(text="second")], role="user"),
            ],
            metadata={"key": "two-contents"},
            config=types.GenerateContentConfig(temperature=0.5, system_instruction="be brief"),
        ),
        types.InlinedRequest(contents="just text", metadata={"key": "plain"}),
        types.InlinedRequest(contents="EMULATOR_FAIL please", metadata={"key": "failing"}),
    ]
    job = client.batches.create(model=MODEL, src=requests, config={"display_name": "inline-job"})
    assert job.name is not None and job.state == types.JobState.JOB_STATE_PENDING
    advance(emu, LATENCY + 1)

    done = client.batches.get(name=job.name)
    assert done.state == types.JobState.JOB_STATE_SUCCEEDED
    assert done.dest is not None and done.dest.inlined_responses is not None
    by_key = {r.metadata["key"]: r for r in done.dest.inlined_responses if r.metadata}
    assert sorted(by_key) == ["failing", "plain", "two-contents"]

    two = by_key["two-contents"].response
    assert two is not None and two.text == "echo: first\nsecond"
    assert two.usage_metadata is not None
    assert two.usage_metadata.prompt_token_count == 3  # ceil(len("first\nsecond") / 4)
    assert two.usage_metadata.total_token_count == 3 + 5
    plain = by_key["plain"].response
    assert plain is not None and plain.text == "echo: just text"
    failing = by_key["failing"]
    assert failing.response is None and failing.error is not None and failing.error.code == 3


def test_list_walks_every_page(client: genai.Client, emu: Emulator) -> None:
    created = {
        client.batches.create(
            model=MODEL,
            src=[types.InlinedRequest(contents=f"n{i}")],
            config={"display_name": f"b{i}"},
        ).name
        for i in range(12)
    }
    pager = client.batches.list(config=types.ListBatchJobsConfig(page_size=5))
    assert len(pager.page) == 5
    listed = [job.name for job in pager]
    assert len(listed) == len(set(listed)) == 12 and set(listed) == created

    default = client.batches.list()
    assert len(default.page) == 10  # the default page size
    assert {job.name for job in default} == created


def test_cancel_then_delete(client: genai.Client, emu: Emulator) -> None:
    job = client.batches.create(model=MODEL, src=[types.InlinedRequest(contents="stop me")])
    assert job.name is not None
    advance(emu, LATENCY / 2)
    client.batches.cancel(name=job.name)
    assert state(client, job.name) == "JOB_STATE_CANCELLED"
    advance(emu, LATENCY)
    assert state(client, job.name) == "JOB_STATE_CANCELLED"  # a cancelled job stays so

    client.batches.delete(name=job.name)
    with pytest.raises(errors.ClientError) as missing:
        client.batches.get(name=job.name)
    assert missing.value.code == 404
    assert job.name not in {j.name for j in client.batches.list()}


def test_files_list_get_delete(client: genai.Client, tmp_path: Path) -> None:
    names: list[str] = []
    for i in range(3):
        path = tmp_path / f"f{i}.jsonl"
        path.write_text(f'{{"n": {i}}}\n')
        uploaded = client.files.upload(file=str(path), config={"mime_type": "application/jsonl"})
        assert uploaded.name is not None
        names.append(uploaded.name)
    assert {f.name for f in client.files.list(config={"page_size": 2})} == set(names)

    client.files.delete(name=names[0])
    with pytest.raises(errors.ClientError) as missing:
        client.files.get(name=names[0])
    assert missing.value.code == 404
    assert {f.name for f in client.files.list()} == set(names[1:])
