"""The price table's OpenAI and Anthropic groups: what they cover, how dated ids find their
entry (and fine-tuned ones do not), each group's date, the prompt-cache rates as shipped, and a
plan that prices an OpenAI batch end to end."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import write_manifest

from runner.cli import main
from runner.emulator import Emulator
from runner.pricetable import PriceTable, load_prices
from runner.pricing import Usage, actual_cost, estimate_cost, spent
from runner.tokens import TokenEstimate

OPENAI = ("gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini", "gpt-4.1-nano", "o3", "o4-mini",
          "gpt-5", "gpt-5-mini", "gpt-5-nano", "gpt-5.4", "gpt-5.5", "gpt-5.6-sol", "gpt-6-sol",
          "text-embedding-3-small", "text-embedding-3-large")
ANTHROPIC = ("claude-opus-4-5", "claude-opus-4-8", "claude-opus-5-5", "claude-sonnet-4-5",
             "claude-sonnet-4-6", "claude-sonnet-5-5", "claude-haiku-4-5", "claude-haiku-5-5",
             "claude-3-5-haiku")


@pytest.fixture
def table() -> PriceTable:
    return load_prices(None, environ={})


def test_openai_and_anthropic_models_are_priced_at_half_with_their_own_date(
        table: PriceTable) -> None:
    for model in OPENAI + ANTHROPIC:
        price = table.lookup(model)
        assert price is not None, model
        assert price.batch_discount == 0.5 and price.origin == "runner/prices.json"
        assert price.as_of == "2026-11-25", model
    gemini = table.lookup("gemini-2.5-flash")
    assert gemini is not None and gemini.as_of == "2026-11-23"     # the Gemini group's own date


def test_the_packaged_table_names_a_source_and_a_date_for_each_provider() -> None:
    doc = json.loads(Path(__file__).parent.parent.joinpath("runner/prices.json").read_text())
    assert "models" not in doc and set(doc["providers"]) == {"gemini", "openai", "anthropic"}
    for name, group in doc["providers"].items():
        assert group["as_of"].startswith("2026-") and group["source"], name
    assert "genai-prices 0.2.3" in doc["providers"]["openai"]["source"]
    assert "genai-prices 0.2.3" in doc["providers"]["anthropic"]["source"]


@pytest.mark.parametrize("model, entry", [
    ("gpt-4o-2024-08-06", "gpt-4o"),
    ("gpt-4o-2024-11-20", "gpt-4o"),
    ("gpt-4o-2024-05-13", "gpt-4o-2024-05-13"),      # an older snapshot at its own price
    ("gpt-4o-mini", "gpt-4o-mini"),                  # not gpt-4o: the longest prefix wins
    ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
    ("gpt-4.1-mini-2025-04-14", "gpt-4.1-mini"),
    ("gpt-4.1-2025-04-14", "gpt-4.1"),
    ("o3-2025-04-16", "o3"),
    ("o3-mini-2025-01-31", "o3-mini"),
    ("o4-mini-2025-04-16", "o4-mini"),
    ("gpt-5-2025-08-07", "gpt-5"),
    ("gpt-5-nano-2025-08-07", "gpt-5-nano"),
    ("gpt-5.4-2026-03-05", "gpt-5.4"),               # a dot is not a dash: not gpt-5's price
    ("gpt-5.4-mini-2026-03-17", "gpt-5.4-mini"),
    ("GPT-5.6-Sol-2026-08-21", "gpt-5.6-sol"),
    ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
    ("claude-haiku-4-5-20251001", "claude-haiku-4-5"),
    ("claude-opus-4-5-20251101", "claude-opus-4-5"),
    ("claude-opus-4-1-20250805", "claude-opus-4"),
    ("claude-opus-4-20250514", "claude-opus-4"),
    ("claude-sonnet-4-20250514", "claude-sonnet-4"),
    ("claude-3-5-haiku-20241022", "claude-3-5-haiku"),
    ("claude-3-5-haiku-latest", "claude-3-5-haiku"),
])
def test_dated_ids_take_their_models_entry(table: PriceTable, model: str, entry: str) -> None:
    assert table.lookup(model) is table.models[entry]


def test_prices_that_differ_within_a_family_stay_apart(table: PriceTable) -> None:
    def rate(model: str) -> float:
        price = table.lookup(model)
        assert price is not None, model
        return price.rates.input_per_million

    assert rate("gpt-4o-mini-2024-07-18") < rate("gpt-4o-2024-08-06") < rate("gpt-4o-2024-05-13")
    assert rate("gpt-5.4") != rate("gpt-5")
    assert rate("claude-opus-4-1") == 15 and rate("claude-opus-4-5") == 5


@pytest.mark.parametrize("model", ["ft:gpt-4o-mini-2024-07-18:acme::9aBcD", "ft:gpt-4o:acme::x",
                                   "gpt-3.5-turbo", "claude-2.1", "gpt-5.3"])
def test_fine_tuned_and_unlisted_models_have_no_price(table: PriceTable, model: str) -> None:
    assert table.lookup(model) is None


def test_a_fine_tuned_model_is_priced_by_its_own_entry(tmp_path: Path) -> None:
    ft = "ft:gpt-4o-mini-2024-07-18:Acme::9aBcD"
    (tmp_path / "prices.json").write_text(json.dumps({"as_of": "2026-12-01", "models": {
        ft: {"input_per_million": 0.3, "output_per_million": 1.2}}}))
    price = load_prices(tmp_path, environ={}).lookup(ft)
    assert price is not None and price.rates.input_per_million == 0.3
    assert price.batch(1_000_000, 0) == pytest.approx(0.15)


# -- prompt caching --------------------------------------------------------------------------


def test_anthropic_cache_reads_and_writes_are_billed_at_their_rates(table: PriceTable) -> None:
    usage = Usage.of_request(100_000, 1_000, cached=60_000, written=20_000)
    cost = actual_cost(table, "claude-sonnet-4-5-20250929", usage)
    # 20,000 uncached at 3.00, 60,000 read at 0.30 (0.1x), 20,000 written at 3.75 (1.25x)
    assert cost == pytest.approx((20_000 * 3 + 60_000 * 0.3 + 20_000 * 3.75 + 1_000 * 15)
                                 / 1e6 * 0.5)
    uncached = actual_cost(table, "claude-sonnet-4-5", Usage.of_request(100_000, 1_000))
    assert cost is not None and uncached is not None and cost < uncached


def test_openai_cached_input_is_discounted_only_where_the_batch_rate_is_published(
        table: PriceTable) -> None:
    usage = Usage.of_request(1_000_000, 0, cached=800_000)
    assert actual_cost(table, "gpt-5-2025-08-07", usage) == pytest.approx(
        (200_000 * 1.25 + 800_000 * 0.125) / 1e6 * 0.5)
    # no batch cached-input rate published for gpt-4.1: priced as input, never under
    assert actual_cost(table, "gpt-4.1", usage) == pytest.approx(2.0 * 0.5)


def test_a_finished_anthropic_batch_records_its_cached_usage_and_cost(
        table: PriceTable) -> None:
    usage = Usage.of_request(150_000, 10_000, cached=90_000, written=15_000)
    record = spent(table, "claude-haiku-4-5-20251001", usage)
    assert record.cost == pytest.approx(
        (45_000 * 1.0 + 90_000 * 0.1 + 15_000 * 1.25 + 10_000 * 5.0) / 1e6 * 0.5)
    assert record.prices_as_of == "2026-11-25"
    assert type(record).from_dict(record.to_dict()) == record


def test_an_estimate_prices_all_input_as_input(table: PriceTable) -> None:
    cost = estimate_cost(table, "claude-haiku-4-5", TokenEstimate(2, 1_000_000, 1_000))
    assert cost is not None and cost.prices_as_of == "2026-11-25"
    assert cost.low == pytest.approx(1.0 * 0.5)
    assert cost.high == pytest.approx((1.0 + 0.001 * 5.0) * 0.5)


# -- a plan of an OpenAI batch ----------------------------------------------------------------

CHAT = """\
apiVersion: batch-runner/v1
kind: Batch
metadata: {name: chat}
spec:
  provider: openai
  model: gpt-4o-mini-2024-07-18
  items:
    - {id: a, q: "What is 1+1?"}
    - {id: b, q: "Name a colour"}
  key: "{{ row.id }}"
  request:
    messages:
      - {role: user, content: "{{ row.q }}"}
    max_completion_tokens: 100000
  outputs:
    - path: out/chat.jsonl
"""


@pytest.fixture
def emu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    with Emulator(tmp_path / "emu") as e:
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test-key-0123456789")
        monkeypatch.setenv("OPENAI_BASE_URL", e.base_url + "/openai/v1")
        monkeypatch.delenv("RUNNER_PRICES", raising=False)
        yield e


def test_a_plan_prices_an_openai_batch(tmp_path: Path, emu: Emulator,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    d = tmp_path / "proj"
    write_manifest(d, CHAT, "chat.yaml")
    assert main(["plan", str(d), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    [action] = doc["actions"]
    cost = action["estimated_cost"]
    assert cost is not None and doc["estimated_cost"]["unpriced"] == []
    assert (cost["model"], cost["prices_as_of"], cost["max_output_tokens"]) == (
        "gpt-4o-mini-2024-07-18", "2026-11-25", 200_000)
    assert cost["high"] == pytest.approx(
        (cost["input_tokens"] * 0.15 + 200_000 * 0.6) / 1e6 * 0.5, abs=1e-6)
    assert not any("no price" in w for w in doc["warnings"])
    assert main(["plan", str(d)]) == 0
    text = capsys.readouterr().out
    assert "prices as of 2026-11-25" in text and "no price" not in text
