"""Model names: validate warns offline about a name it does not know, plan refuses a model the
provider's list (served by the emulator, kept a day under .runner/models/) does not hold, and
the official SDKs' models.list() walk the emulator's lists."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import anthropic
import openai
import pytest
from conftest import write_manifest
from google import genai
from google.genai import types

from runner.cli import main
from runner.emulator import Emulator
from runner.emulator.models import MODELS
from runner.models import EXPIRY, known, offline_warning

MANIFEST = """\
apiVersion: batch-runner/v1
kind: Batch
metadata: {{name: m}}
spec:
  provider: {provider}
  model: {model}
  items: [{{id: a}}]
  key: "{{{{ row.id }}}}"
  request: {request}
  outputs: [{{path: out/m.jsonl}}]
"""
REQUESTS = {"gemini": "{contents: [{parts: [{text: hi}]}]}",
            "openai": "{messages: [{role: user, content: hi}]}",
            "anthropic": "{max_tokens: 5, messages: [{role: user, content: hi}]}"}


def manifest(tmp_path: Path, provider: str, model: str) -> None:
    write_manifest(tmp_path, MANIFEST.format(provider=provider, model=model,
                                             request=REQUESTS[provider]))


@pytest.fixture
def emu(tmp_path: Path) -> Iterator[Emulator]:
    with Emulator(tmp_path / "state") as emulator:
        yield emulator


@pytest.mark.parametrize(("provider", "model", "words"), [
    ("gemini", "gemini-2.5-flsh", "'gemini-2.5-flsh' is not a Gemini model this runner knows "
                                  "(did you mean 'gemini-2.5-flash'?)"),
    ("gemini", "gpt-4o", "'gpt-4o' is an OpenAI model, not a Gemini one"),
    ("anthropic", "claude-haiku-4.5", "'claude-haiku-4.5' is not an Anthropic model this "
                                       "runner knows (did you mean 'claude-haiku-4-5'?)")])
def test_validate_warns_about_a_model_it_does_not_know(
        tmp_path: Path, provider: str, model: str, words: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    manifest(tmp_path, provider, model)
    assert main(["validate", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert f"warning: {tmp_path / 'm.yaml'}:6: spec.model: {words}" in err, err


@pytest.mark.parametrize(("provider", "model"), [
    ("gemini", "models/gemini-2.5-flash"), ("openai", "gpt-4o-2024-08-06"),
    ("openai", "ft:gpt-4o-mini-2024-07-18:acme::abc123"), ("anthropic", "claude-haiku-4-5")])
def test_known_and_fine_tuned_models_pass_offline(provider: str, model: str) -> None:
    assert offline_warning(provider, model) is None


def test_plan_refuses_a_model_the_provider_does_not_list(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest(tmp_path, "gemini", "gemini-2.5-flsh")
    assert main(["plan", str(tmp_path), "--emulator"]) == 1
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [
        f"error: {tmp_path / 'm.yaml'}:6: spec.model: gemini has no model 'gemini-2.5-flsh' "
        "(did you mean 'gemini-2.5-flash'?); nothing was submitted"]
    assert not (tmp_path / "batches.lock").exists()


@pytest.mark.parametrize("provider", ["gemini", "openai", "anthropic"])
def test_plan_keeps_the_list_a_day(tmp_path: Path, provider: str,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    manifest(tmp_path, provider, known(provider)[0])
    assert main(["plan", str(tmp_path), "--emulator"]) == 0
    kept = tmp_path / ".runner" / "models" / f"{provider}-emulator.json"
    listed = json.loads(kept.read_text())
    assert listed["models"] == sorted(known(provider))
    listed["models"] = ["only-this-one"]        # a kept list is used while it is fresh
    kept.write_text(json.dumps(listed))
    assert main(["plan", str(tmp_path), "--emulator"]) == 1
    listed["fetched_at"] -= EXPIRY + 1          # and asked for again once it is older
    kept.write_text(json.dumps(listed))
    assert main(["plan", str(tmp_path), "--emulator"]) == 0


def test_the_sdks_list_the_emulators_models(emu: Emulator) -> None:
    for version in ("v1beta", "v1"):
        client = genai.Client(api_key="k", http_options=types.HttpOptions(
            base_url=emu.base_url, api_version=version))
        names = [m.name for m in client.models.list(config={"page_size": 3})]
        assert names == [f"models/{name}" for name in known("gemini")]
    oai = openai.OpenAI(api_key="k", base_url=emu.base_url + "/openai/v1", max_retries=0)
    assert sorted(m.id for m in oai.models.list()) == sorted(known("openai"))
    claude = anthropic.Anthropic(api_key="k", base_url=emu.base_url + "/anthropic",
                                 max_retries=0)
    assert [m.id for m in claude.models.list(limit=4)] == list(known("anthropic"))


@pytest.mark.parametrize("provider", ["gemini", "openai", "anthropic"])
def test_the_emulator_offers_the_models_the_price_table_knows(provider: str) -> None:
    """Written out in the emulator (a server apart from the runner's core), kept the same:
    every model the examples and the docs may name is one the emulator lists."""
    assert set(MODELS[provider]) == set(known(provider))
