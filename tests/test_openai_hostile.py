"""The OpenAI client against the emulator's hostile faults (runner.emulator.openai.hostile):
each answer of the wrong shape is one error naming the field, a result line of the wrong
shape fails its own request in the errors output, the key quoted back never shows, and list
pages that repeat or never end stop."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import write_manifest
from test_openai_e2e import CHAT

from runner.cli import main
from runner.emulator import Emulator
from runner.errors import ProviderError
from runner.providers.openai import OpenAIProvider

KEY = "sk-hostile-0123456789"


@pytest.fixture
def emu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    with Emulator(tmp_path / "emu", latency=0.3) as e:
        monkeypatch.setenv("OPENAI_API_KEY", KEY)
        monkeypatch.setenv("OPENAI_BASE_URL", e.base_url + "/openai/v1")
        monkeypatch.setenv("RUNNER_POLL_SECONDS", "0.05")
        yield e


@pytest.fixture
def client(emu: Emulator) -> Iterator[OpenAIProvider]:
    provider = OpenAIProvider(KEY, emu.base_url + "/openai/v1", max_attempts=2)
    yield provider
    provider.close()


@pytest.fixture
def submitted(tmp_path: Path, emu: Emulator) -> Path:
    """A project whose chat batch has been created (and is still running)."""
    d = tmp_path / "proj"
    write_manifest(d, CHAT, "chat.yaml")
    assert main(["apply", str(d), "--no-wait", "--quiet"]) == 0
    return d


@pytest.mark.parametrize(("fault", "words"), [
    ("state", "sent status as a number"),
    ("request-count", "sent request_counts.total as a string"),
    ("page", "sent the page as an array"),
    ("operation", "sent the batch as a string")])
def test_a_listed_batch_of_the_wrong_shape_names_the_field(
        submitted: Path, emu: Emulator, client: OpenAIProvider, fault: str, words: str) -> None:
    emu.faults = replace(emu.faults, wrong_types=fault)
    with pytest.raises(ProviderError, match=words):
        list(client.list_jobs())


def test_an_output_file_id_that_is_an_array_names_the_field(
        submitted: Path, emu: Emulator, capsys: pytest.CaptureFixture[str]) -> None:
    emu.faults = replace(emu.faults, wrong_types="response")
    capsys.readouterr()
    assert main(["apply", str(submitted), "--quiet"]) == 1
    assert "sent output_file_id as an array, expected a string" in capsys.readouterr().err
    emu.faults = replace(emu.faults, wrong_types="")
    assert main(["apply", str(submitted), "--quiet"]) == 0


def test_an_uploaded_file_that_is_a_string_names_the_field(
        tmp_path: Path, emu: Emulator, client: OpenAIProvider) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text('{"custom_id":"a"}\n')
    emu.faults = replace(emu.faults, wrong_types="file")
    with pytest.raises(ProviderError, match="sent the file as a string, expected an object"):
        client.upload_file(path, "tag-1")


@pytest.mark.parametrize(("fault", "words"), [
    ("candidates", "response.body.choices is a string, expected an array"),
    ("parts", "response.body.choices[0].message is a string, expected an object")])
def test_a_result_line_of_the_wrong_shape_fails_its_request(
        tmp_path: Path, emu: Emulator, fault: str, words: str) -> None:
    d = tmp_path / "proj"
    write_manifest(d, CHAT, "chat.yaml")
    emu.faults = replace(emu.faults, wrong_types=fault)
    assert main(["apply", str(d), "--quiet"]) == 1        # 6 failed, none allowed
    errors = [json.loads(x) for x in (d / "out/chat.errors.jsonl").read_text().splitlines()]
    assert len(errors) == 6 and all(words in e["error"]["message"] for e in errors)
    assert (d / "out/chat.jsonl").read_text() == ""


def test_the_key_quoted_back_never_shows(emu: Emulator, client: OpenAIProvider) -> None:
    emu.faults = replace(emu.faults, echo_key=True)
    with pytest.raises(ProviderError) as caught:
        client.create_job("gpt-4o-mini", "tag-1", input_file="file-x",
                          endpoint="/v1/moderations")       # a 400, quoting the key
    assert KEY not in str(caught.value) and "[API key: ***]" in str(caught.value)


@pytest.mark.parametrize("fault", ["repeat_page_token", "endless_pages"])
def test_list_pages_that_never_end_stop(submitted: Path, emu: Emulator,
                                        client: OpenAIProvider, fault: str) -> None:
    emu.faults = replace(emu.faults, repeat_page_token=fault == "repeat_page_token",
                         endless_pages=fault == "endless_pages")
    with pytest.raises(ProviderError, match="paging would never end"):
        list(client.list_jobs())
    with pytest.raises(ProviderError, match="paging would never end"):
        client.find_file("no-such-tag")
