"""Model names: validate warns offline about a name it does not know; plan (the command and the
library's) and apply refuse the model of a batch to submit that the provider's list (served by
the emulator, kept a day under .runner/models/) does not hold, and warn and go on when the list
cannot be fetched; the official SDKs' models.list() walk the emulator's lists."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest
from conftest import write_manifest
from google import genai
from google.genai import types

import runner
from runner import api
from runner.actions import Kind
from runner.cli import main
from runner.emulator import Emulator
from runner.emulator import models as emulator_models
from runner.emulator.models import MODELS
from runner.errors import ManifestError
from runner.models import EXPIRY, known, offline_warning
from runner.providers.base import Provider
from runner.providers.gemini import GeminiProvider

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
    listed["models"].append("only-this-one")    # a kept list is used while it is fresh
    kept.write_text(json.dumps(listed))
    manifest(tmp_path, provider, "only-this-one")
    assert main(["plan", str(tmp_path), "--emulator"]) == 0
    listed["fetched_at"] -= EXPIRY + 1          # and asked for again once it is older
    kept.write_text(json.dumps(listed))
    assert main(["plan", str(tmp_path), "--emulator"]) == 1


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


@pytest.mark.parametrize(("provider", "model", "closest"), [
    ("gemini", "gemini-2.5-flsh", "gemini-2.5-flash"),
    ("openai", "gpt-4o-mni", "gpt-4o-mini"),
    ("anthropic", "claude-haiku-4.5", "claude-haiku-4-5")])
def test_apply_refuses_a_model_the_provider_does_not_list(
        tmp_path: Path, provider: str, model: str, closest: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    manifest(tmp_path, provider, model)
    assert main(["apply", str(tmp_path), "--emulator"]) == 1
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [
        f"error: {tmp_path / 'm.yaml'}:6: spec.model: {provider} has no model {model!r} "
        f"(did you mean {closest!r}?); nothing was submitted"]
    assert not (tmp_path / "batches.lock").exists()
    assert not (tmp_path / "out").exists()
    with api.connect(tmp_path, emulator=True) as clients:
        assert list(clients[provider].list_jobs()) == []


def test_the_librarys_plan_refuses_a_model_the_provider_does_not_list(
        tmp_path: Path) -> None:
    manifest(tmp_path, "openai", "gpt-4o-mni")
    with pytest.raises(ManifestError) as e:
        runner.plan(tmp_path, emulator=True)
    assert (e.value.path, e.value.where) == (str(tmp_path / "m.yaml"), "6")
    assert str(e.value) == (f"{tmp_path / 'm.yaml'}:6: spec.model: openai has no model 'gpt-4o-mni' (did you mean "
                            "'gpt-4o-mini'?); nothing was submitted")


def test_only_the_batches_to_submit_are_checked(tmp_path: Path) -> None:
    """A model the provider no longer lists does not hold up a batch that is up to date: it
    is not sent again, so there is nothing to check (and nothing to pay for)."""
    manifest(tmp_path, "gemini", "gemini-2.5-flash")
    assert runner.apply(tmp_path, emulator=True).exit_code == 0
    kept = tmp_path / ".runner" / "models" / "gemini-emulator.json"
    listed = json.loads(kept.read_text())
    kept.write_text(json.dumps({**listed, "models": ["gemini-3.5-flash"]}))   # retired
    plan = runner.plan(tmp_path, emulator=True)
    assert [a.kind for a in plan.actions] == [Kind.NOTHING] and not plan.warnings
    assert runner.apply(tmp_path, emulator=True).exit_code == 0


class _Unlisted:
    """The emulator's Gemini API, but for its list of models, asked of a port where nothing
    listens: a provider whose list cannot be fetched."""

    def __init__(self, real: Provider, dead: Provider):
        self._real, self._dead = real, dead

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def list_models(self) -> Iterator[str]:
        return self._dead.list_models()


def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_list_that_cannot_be_fetched_does_not_block_apply(tmp_path: Path) -> None:
    manifest(tmp_path, "gemini", "gemini-2.5-flash")
    dead = GeminiProvider("k", f"http://127.0.0.1:{_dead_port()}", max_attempts=1)
    shown: list[runner.Plan] = []
    with api.connect(tmp_path, emulator=True) as real:
        provider = _Unlisted(real["gemini"], dead)
        plan = runner.plan(tmp_path, provider=provider)
        outcome = runner.apply(tmp_path, provider=provider, show_plan=shown.append)
    dead.close()
    for p in (plan, *shown):
        [warning] = p.warnings
        assert warning.startswith("gemini's list of models could not be fetched (list "
                                  "models"), warning
        assert warning.endswith("; the model of m is not checked before submitting")
    assert [a.kind for a in plan.actions] == [Kind.CREATE]
    assert outcome.exit_code == 0 and (tmp_path / "out/m.jsonl").exists()
    assert not (tmp_path / ".runner" / "models").exists()      # nothing kept of a failure


def test_an_alias_passes_when_the_provider_lists_only_its_dated_snapshot(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Anthropic's /v1/models lists dated ids (`claude-haiku-4-5-20251001`), not the aliases
    the price table and the examples use (`claude-haiku-4-5`, `claude-3-5-haiku-latest`): an
    alias of a listed snapshot is a model the provider has; a shorter name is not."""
    monkeypatch.setitem(MODELS, "anthropic", ("claude-haiku-4-5-20251001",
                                              "claude-3-5-haiku-20241022",
                                              "claude-sonnet-4-5-20250929"))
    for model in ("claude-haiku-4-5", "claude-3-5-haiku-latest", "claude-sonnet-4-5-20250929"):
        manifest(tmp_path, "anthropic", model)
        assert main(["plan", str(tmp_path), "--emulator"]) == 0, capsys.readouterr().err
    manifest(tmp_path, "anthropic", "claude-haiku-4")
    assert main(["plan", str(tmp_path), "--emulator"]) == 1
    assert "anthropic has no model 'claude-haiku-4'" in capsys.readouterr().err


@pytest.mark.parametrize("provider", ["gemini", "openai", "anthropic"])
def test_an_empty_list_is_a_list_that_could_not_be_had(
        tmp_path: Path, provider: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A provider (or a proxy in front of it) that lists no model at all has not told the
    truth about the key's models: it must not refuse every batch, nor be kept for a day."""
    monkeypatch.setitem(MODELS, provider, ())
    manifest(tmp_path, provider, known(provider)[0])
    plan = runner.plan(tmp_path, emulator=True)
    [warning] = plan.warnings
    assert warning.startswith(f"{provider}'s list of models could not be fetched"), warning
    assert [a.kind for a in plan.actions] == [Kind.CREATE]
    assert not (tmp_path / ".runner" / "models").exists()


@pytest.mark.parametrize("models", ['"gemini-2.5-flash"', '{"gemini-2.5-flash": 1}', "[]"])
def test_a_kept_list_of_the_wrong_shape_is_asked_for_again(tmp_path: Path, models: str) -> None:
    """A kept list edited by hand into a string (read letter by letter), an object or an empty
    list is not a list of models: fetched again, not used to refuse the batch."""
    manifest(tmp_path, "gemini", "gemini-2.5-flash")
    kept = tmp_path / ".runner" / "models" / "gemini-emulator.json"
    kept.parent.mkdir(parents=True)
    kept.write_text(f'{{"fetched_at": {time.time()}, "models": {models}}}')
    assert runner.plan(tmp_path, emulator=True).warnings == ()
    assert json.loads(kept.read_text())["models"] == sorted(known("gemini"))


def test_a_kept_list_that_is_a_symlink_is_not_followed(tmp_path: Path) -> None:
    """.runner/models/ is the runner's own: a link there (to a file elsewhere, to /dev/zero) is
    not read; the list is fetched again and written in its place, the target left alone."""
    manifest(tmp_path, "gemini", "gemini-2.5-flash")
    elsewhere = tmp_path / "elsewhere.json"
    text = json.dumps({"fetched_at": time.time(), "models": ["only-this-one"]})
    elsewhere.write_text(text)
    kept = tmp_path / ".runner" / "models" / "gemini-emulator.json"
    kept.parent.mkdir(parents=True)
    kept.symlink_to(elsewhere)
    assert runner.plan(tmp_path, emulator=True).warnings == ()
    assert elsewhere.read_text() == text and not kept.is_symlink()


@pytest.mark.parametrize(("provider", "model"), [
    ("openai", "gpt-4o-mini-2"), ("gemini", "gemini-2.5-flash-9"),
    ("anthropic", "claude-sonnet-4-5-2")])
def test_a_listed_name_and_any_digits_is_not_a_snapshot(
        tmp_path: Path, provider: str, model: str, capsys: pytest.CaptureFixture[str]) -> None:
    """A snapshot's id ends with a date (`-2024-08-06`, `-20250929`) or Gemini's version
    (`-001`); a listed name with a stray digit after it is a model the provider does not
    have, refused before anything is sent."""
    manifest(tmp_path, provider, model)
    assert main(["plan", str(tmp_path), "--emulator"]) == 1
    assert f"{provider} has no model {model!r}" in capsys.readouterr().err


def test_a_model_the_kept_list_lacks_is_asked_of_the_provider_before_refusing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A model released since the list was kept this morning, or one the key newly set may
    use, is not refused for the rest of the day: a name the kept list lacks is checked
    against a list fetched anew, which is kept in its place."""
    manifest(tmp_path, "gemini", "gemini-2.5-flash")
    assert runner.plan(tmp_path, emulator=True).warnings == ()
    monkeypatch.setitem(MODELS, "gemini", (*MODELS["gemini"], "gemini-9-flash"))
    manifest(tmp_path, "gemini", "gemini-9-flash")
    assert [a.kind for a in runner.plan(tmp_path, emulator=True).actions] == [Kind.CREATE]
    kept = tmp_path / ".runner" / "models" / "gemini-emulator.json"
    assert "gemini-9-flash" in json.loads(kept.read_text())["models"]
    manifest(tmp_path, "gemini", "gemini-9-flsh")           # still refused, once fetched
    with pytest.raises(ManifestError, match="did you mean 'gemini-9-flash'"):
        runner.plan(tmp_path, emulator=True)


def test_plan_json_names_the_jobs_of_an_up_to_date_split_batch(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 13 item 6: plan --json names the job of an up-to-date batch; a split batch's
    is a job per shard, which the lockfile records."""
    write_manifest(tmp_path, MANIFEST.format(provider="gemini", model="gemini-2.5-flash",
                                             request=REQUESTS["gemini"])
                   .replace("items: [{id: a}]", "items: [{id: a}, {id: b}]\n  max_requests: 1"))
    assert runner.apply(tmp_path, emulator=True).exit_code == 0
    capsys.readouterr()
    assert main(["plan", str(tmp_path), "--emulator", "--json"]) == 0
    [action] = json.loads(capsys.readouterr().out)["actions"]
    assert action["kind"] == "nothing"
    named = {action["job_name"]} | {p["job_name"] for p in action["parts"]}
    assert len(named - {None}) == 2, action


@pytest.mark.parametrize("answer", [{"data": None}, {"data": "gpt-4o"}, {"data": {"id": 1}},
                                    {"data": [None]}, [], "models"])
def test_an_openai_list_of_the_wrong_shape_is_a_warning_not_a_traceback(
        tmp_path: Path, answer: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """What a proxy in front of OpenAI may answer to GET /v1/models: a list that is not one is
    a list that could not be had, with the usual warning, never a TypeError."""
    monkeypatch.setattr(emulator_models, "openai", lambda: answer)
    manifest(tmp_path, "openai", "gpt-4o-mini")
    plan = runner.plan(tmp_path, emulator=True)
    [warning] = plan.warnings
    assert warning.startswith("openai's list of models could not be fetched (list models"), \
        warning
    assert not (tmp_path / ".runner" / "models").exists()
