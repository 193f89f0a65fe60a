"""Prices and token estimates: the table, its overrides, and the arithmetic of a cost range."""

from __future__ import annotations

import json
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import MINIMAL, write_manifest

from runner.costs import estimate_manifest
from runner.errors import PricesError
from runner.manifest import load_directory
from runner.pricetable import PriceTable, load_prices, parse_prices
from runner.pricing import (
    CostEstimate,
    Spent,
    Usage,
    actual_cost,
    budget_refusals,
    estimate_cost,
    money,
    spent,
)
from runner.providers.gemini import DIALECT as GEMINI
from runner.providers.gemini.results import usage_of
from runner.providers.gemini.tokens import MEDIA_TOKENS, output_bound, request_tokens
from runner.tokens import TokenEstimate, estimate_requests, text_tokens


def _total(metadata: list[dict[str, Any]]) -> Usage:
    """The usage of several Gemini responses, summed."""
    return sum((usage_of(md) for md in metadata), Usage())


FLASH_IN, FLASH_OUT = 0.30, 2.50      # gemini-2.5-flash, interactive, per million tokens


@pytest.fixture
def table() -> PriceTable:
    return load_prices(None, environ={})


# -- the table ---------------------------------------------------------------------------------


def test_packaged_table_is_dated_and_prices_the_current_models(table: PriceTable) -> None:
    for model in ("gemini-2.5-pro", "gemini-2.5-flash", "gemini-2.5-flash-lite",
                  "gemini-2.0-flash"):
        price = table.lookup(model)
        assert price is not None, model
        assert price.batch_discount == 0.5
        assert price.as_of.startswith("2026-") and price.origin == "runner/prices.json"
    pro = table.lookup("gemini-2.5-pro")
    assert pro is not None and pro.long_context is not None
    assert pro.long_context.input_per_million > pro.rates.input_per_million
    assert table.currency == "USD"


@pytest.mark.parametrize("model, entry", [
    ("gemini-2.5-flash", "gemini-2.5-flash"),
    ("models/gemini-2.5-flash", "gemini-2.5-flash"),
    ("gemini-2.5-flash-001", "gemini-2.5-flash"),
    ("gemini-2.5-flash-preview-09-2025", "gemini-2.5-flash"),
    ("gemini-2.5-flash-lite-preview-06-17", "gemini-2.5-flash-lite"),
    ("models/gemini-2.0-flash-lite-001", "gemini-2.0-flash-lite"),
    ("gemini-2.0-flash-001", "gemini-2.0-flash"),
    ("Gemini-2.5-Pro", "gemini-2.5-pro"),
    ("gemini-3.1-pro-preview-customtools", "gemini-3.1-pro-preview"),
])
def test_lookup_takes_the_longest_prefix_ending_at_a_dash(table: PriceTable, model: str,
                                                          entry: str) -> None:
    assert table.lookup(model) is table.models[entry]


@pytest.mark.parametrize("model", ["gemini-2.5-flashy", "llama-3-70b", "gemini", "",
                                   "models/"])
def test_unknown_model_has_no_price(table: PriceTable, model: str) -> None:
    assert table.lookup(model) is None
    assert estimate_cost(table, model, TokenEstimate(1, 10, 10)) is None
    assert actual_cost(table, model, Usage(10, 10)) is None


def test_prices_json_beside_the_manifests_overrides_whole_entries(tmp_path: Path) -> None:
    (tmp_path / "prices.json").write_text(json.dumps({
        "as_of": "2027-01-02", "currency": "USD",
        "models": {"gemini-2.5-flash": {"input_per_million": 0.2, "output_per_million": 2.0},
                   "models/my-tuned-model": {"input_per_million": 1, "output_per_million": 3,
                                             "batch_discount": 0.25}}}))
    table = load_prices(tmp_path, environ={})
    flash = table.lookup("gemini-2.5-flash-001")
    assert flash is not None
    assert (flash.rates.input_per_million, flash.as_of) == (0.2, "2027-01-02")
    assert flash.origin == str(tmp_path / "prices.json")
    tuned = table.lookup("my-tuned-model")
    assert tuned is not None and tuned.batch_discount == 0.25
    untouched = table.lookup("gemini-2.5-pro")
    assert untouched is not None and untouched.origin == "runner/prices.json"
    assert table.origins == ("runner/prices.json", str(tmp_path / "prices.json"))


def test_runner_prices_env_is_laid_over_the_directory_file(tmp_path: Path) -> None:
    (tmp_path / "prices.json").write_text(json.dumps({"models": {
        "gemini-2.5-flash": {"input_per_million": 0.2, "output_per_million": 2.0}}}))
    env_file = tmp_path / "negotiated.json"
    env_file.write_text(json.dumps({"models": {
        "gemini-2.5-flash": {"input_per_million": 0.1, "output_per_million": 1.0}}}))
    table = load_prices(tmp_path, environ={"RUNNER_PRICES": str(env_file)})
    flash = table.lookup("gemini-2.5-flash")
    assert flash is not None and flash.rates.input_per_million == 0.1
    with pytest.raises(PricesError, match="RUNNER_PRICES names .*missing.json, which is not a"):
        load_prices(tmp_path, environ={"RUNNER_PRICES": str(tmp_path / "missing.json")})


@pytest.mark.parametrize("text, message", [
    ('{"models": {', "not valid JSON"),
    ('[]', "a JSON object with a 'models' object"),
    ('{"models": {}, "modles": {}}', "unknown key 'modles'"),
    ('{"models": {"m": {"input_per_million": -1, "output_per_million": 1}}}',
     r"models.m.input_per_million: must be a number, 0 or more"),
    ('{"models": {"m": {"input_per_million": 1, "output_per_million": true}}}',
     r"models.m.output_per_million: must be a number"),
    ('{"models": {"m": {"input_per_million": 1, "output_per_million": 1, "batch_discount": 1}}}',
     "batch_discount: must be a number from 0 to below 1"),
    ('{"models": {"m": {"input_per_million": 1, "output_per_million": 1, "input": 2}}}',
     "models.m: unknown key 'input'"),
    (('{"models": {"m": {"input_per_million": 1, "output_per_million": 1, "long_context": '
      '{"input_per_million": 2}}}}'), "models.m.long_context.output_per_million"),
])
def test_a_malformed_table_is_refused_naming_the_place(text: str, message: str) -> None:
    with pytest.raises(PricesError, match=message) as e:
        parse_prices(text, "p.json")
    assert str(e.value).startswith("p.json")


def test_an_old_format_table_still_loads(tmp_path: Path) -> None:
    """The one format before providers were grouped: `models` at the top, with one `as_of`,
    `source` and `notes`, as users' override files were written."""
    (tmp_path / "prices.json").write_text(json.dumps({
        "as_of": "2026-01-02", "currency": "USD", "source": "our contract",
        "notes": ["negotiated"],
        "models": {"gemini-2.5-flash": {"input_per_million": 0.2, "output_per_million": 2.0,
                                        "batch_discount": 0.6, "note": "until June"},
                   "models/my-model": {"input_per_million": 1, "output_per_million": 2}}}))
    table = load_prices(tmp_path, environ={})
    flash, mine = table.lookup("gemini-2.5-flash-001"), table.lookup("my-model")
    assert flash is not None and mine is not None
    assert (flash.rates.input_per_million, flash.batch_discount, flash.as_of) == (
        0.2, 0.6, "2026-01-02")
    assert mine.as_of == "2026-01-02" and mine.origin == str(tmp_path / "prices.json")
    pro = table.lookup("gemini-2.5-pro")            # untouched: the packaged entry, its date
    assert pro is not None and (pro.as_of, pro.origin) == ("2026-11-23", "runner/prices.json")


def test_a_grouped_table_dates_each_group(tmp_path: Path) -> None:
    (tmp_path / "prices.json").write_text(json.dumps({
        "as_of": "2026-12-01",
        "models": {"top-model": {"input_per_million": 1, "output_per_million": 2}},
        "providers": {
            "gemini": {"as_of": "2026-12-24", "source": "invoice", "notes": ["n"],
                       "models": {"gemini-2.5-flash": {"input_per_million": 0.2,
                                                       "output_per_million": 2}}},
            "toy": {"models": {"toy-1": {"input_per_million": 1, "output_per_million": 1}}}}}))
    table = load_prices(tmp_path, environ={})
    dates = {m: p.as_of for m in ("top-model", "gemini-2.5-flash", "toy-1", "gemini-2.5-pro")
             if (p := table.lookup(m)) is not None}
    assert dates == {"top-model": "2026-12-01", "gemini-2.5-flash": "2026-12-24",
                     "toy-1": "2026-12-01", "gemini-2.5-pro": "2026-11-23"}


@pytest.mark.parametrize("doc, message", [
    ({"providers": []}, "a 'models' object, or a 'providers' object"),
    ({"as_of": "x"}, "a 'models' object, or a 'providers' object"),
    ({"providers": {"openai": {"as_of": "x"}}},
     "providers.openai: must be an object with a 'models' object"),
    ({"providers": {"openai": {"models": {}, "currency": "EUR"}}},
     "providers.openai: unknown key 'currency'"),
    ({"providers": {"openai": {"models": {}, "as_of": 2026}}},
     "providers.openai.as_of: must be a string"),
    ({"models": {"m-1": {"input_per_million": 1, "output_per_million": 1}},
      "providers": {"x": {"models": {"M-1": {"input_per_million": 1, "output_per_million": 1}}}}},
     "providers.x.models: 'm-1' is listed twice"),
    ({"providers": {"x": {"models": {"m": {"input_per_million": 1, "output_per_million": 1,
                                           "cached_input_per_million": -1}}}}},
     r"providers.x.models.m.cached_input_per_million: must be a number, 0 or more"),
    ({"models": {"m": {"input_per_million": 1, "output_per_million": 1,
                       "cache_write_per_million": None}}},
     r"models.m.cache_write_per_million: must be a number"),
    ({"models": {"m": {"input_per_million": 1, "output_per_million": 1, "long_context": {
        "input_per_million": 2, "output_per_million": 2, "batch_discount": 0.5}}}},
     r"models.m.long_context: unknown key 'batch_discount'"),
])
def test_a_malformed_grouped_table_is_refused_naming_the_place(doc: object,
                                                                message: str) -> None:
    with pytest.raises(PricesError, match=message) as e:
        parse_prices(json.dumps(doc), "p.json")
    assert str(e.value).startswith("p.json")


def test_an_override_in_another_currency_is_refused(tmp_path: Path) -> None:
    (tmp_path / "prices.json").write_text(json.dumps({"currency": "EUR", "models": {}}))
    with pytest.raises(PricesError, match="in EUR but the table under them is in USD"):
        load_prices(tmp_path, environ={})


# -- estimates ---------------------------------------------------------------------------------


def test_estimate_is_input_only_low_and_full_output_high_at_half_price(table: PriceTable) -> None:
    tokens = TokenEstimate(requests=10, input_tokens=1_000_000, max_output_tokens=200_000,
                           largest_request=100_000)
    cost = estimate_cost(table, "gemini-2.5-flash", tokens)
    assert cost is not None
    assert cost.low == pytest.approx(FLASH_IN * 0.5)
    assert cost.high == pytest.approx(FLASH_IN * 0.5 + 0.2 * FLASH_OUT * 0.5)
    assert (cost.requests, cost.input_tokens, cost.max_output_tokens) == (10, 1_000_000, 200_000)
    assert cost.notes == () and not cost.counted
    assert cost.to_dict()["high"] == pytest.approx(0.4)


def test_estimate_without_an_output_bound_has_no_high(table: PriceTable) -> None:
    cost = estimate_cost(table, "gemini-2.5-flash", TokenEstimate(3, 4_000, None))
    assert cost is not None and cost.high is None
    assert cost.low == pytest.approx(4_000 * FLASH_IN / 1e6 * 0.5)


def test_a_request_over_200k_prices_the_high_bound_at_the_long_context_rate(
        table: PriceTable) -> None:
    tokens = TokenEstimate(2, 400_000, 1_000, largest_request=250_000)
    cost = estimate_cost(table, "gemini-2.5-pro", tokens)
    assert cost is not None and cost.high is not None
    assert cost.low == pytest.approx(0.4 * 1.25 * 0.5)          # lower bound: base rate
    assert cost.high == pytest.approx((0.4 * 2.5 + 0.001 * 15.0) * 0.5)
    assert any("200,000" in n for n in cost.notes)
    flash = estimate_cost(table, "gemini-2.5-flash", tokens)     # no long tier: no note
    assert flash is not None and flash.notes == ()


def test_a_share_of_an_estimate_prices_a_follow_up_of_failed_requests(
        table: PriceTable) -> None:
    cost = estimate_cost(table, "gemini-2.5-flash", TokenEstimate(10, 1_000, 500))
    assert cost is not None and cost.high is not None
    part = cost.share(3)
    assert (part.requests, part.input_tokens, part.max_output_tokens) == (3, 300, 150)
    assert part.low == pytest.approx(cost.low * 0.3)
    assert part.high == pytest.approx(cost.high * 0.3)
    unbounded = estimate_cost(table, "gemini-2.5-flash", TokenEstimate(10, 1_000, None))
    assert unbounded is not None and unbounded.share(3).high is None


def test_media_parts_are_noted(table: PriceTable) -> None:
    cost = estimate_cost(table, "gemini-2.5-flash", TokenEstimate(1, 300, 10, 300, 1))
    assert cost is not None and "1 media part(s)" in cost.notes[0]


def test_actual_cost_counts_thoughts_as_output(table: PriceTable) -> None:
    usage = _total([
        {"promptTokenCount": 1000, "candidatesTokenCount": 300, "thoughtsTokenCount": 200},
        {"prompt_token_count": 500, "candidates_token_count": 100},
        {},
    ])
    assert usage == Usage(input_tokens=1500, output_tokens=600)
    cost = actual_cost(table, "models/gemini-2.5-flash-001", usage)
    assert cost == pytest.approx((1500 * FLASH_IN + 600 * FLASH_OUT) / 1e6 * 0.5)


def test_actual_cost_bills_long_prompts_at_the_long_rate(table: PriceTable) -> None:
    usage = _total([{"promptTokenCount": 300_000, "candidatesTokenCount": 1_000},
                         {"promptTokenCount": 1_000, "candidatesTokenCount": 1_000}])
    assert usage == Usage(301_000, 2_000, 300_000, 1_000)
    cost = actual_cost(table, "gemini-2.5-pro", usage)
    assert cost == pytest.approx(((1_000 * 1.25 + 1_000 * 10) + (300_000 * 2.5 + 1_000 * 15))
                                 / 1e6 * 0.5)


def test_spent_prices_usage_and_round_trips_through_the_lockfile_form(
        table: PriceTable) -> None:
    record = spent(table, "gemini-2.5-flash", Usage(1_000_000, 0))
    as_of = table.models["gemini-2.5-flash"].as_of
    assert record.cost == pytest.approx(FLASH_IN * 0.5)
    assert (record.currency, record.prices_as_of) == ("USD", as_of)
    assert record.to_dict() == {"usage": {"input_tokens": 1_000_000, "output_tokens": 0},
                                "cost": 0.15, "currency": "USD", "prices_as_of": as_of}
    assert Spent.from_dict(record.to_dict()) == record
    unpriced = spent(table, "mystery-model", Usage(5, 5))
    assert unpriced.cost is None and "cost" not in unpriced.to_dict()
    assert Spent.from_dict(unpriced.to_dict()) == unpriced


CACHED = {"models": {
    "cached": {"input_per_million": 4, "output_per_million": 20, "cached_input_per_million": 0.4,
               "cache_write_per_million": 5, "long_context": {
                   "input_per_million": 8, "output_per_million": 30,
                   "cached_input_per_million": 0.8}},
    "plain": {"input_per_million": 4, "output_per_million": 20}}}


def test_cache_reads_and_writes_are_billed_at_their_own_rates() -> None:
    table = parse_prices(json.dumps(CACHED), "t.json")
    usage = Usage.of_request(100_000, 1_000, cached=60_000, written=20_000)
    assert usage == Usage(100_000, 1_000, cached_input_tokens=60_000, cache_write_tokens=20_000)
    assert actual_cost(table, "cached", usage) == pytest.approx(
        (20_000 * 4 + 60_000 * 0.4 + 20_000 * 5 + 1_000 * 20) / 1e6 * 0.5)
    # an entry without cache rates prices the cache's input as input
    assert actual_cost(table, "plain", usage) == pytest.approx((100_000 * 4 + 1_000 * 20)
                                                               / 1e6 * 0.5)


def test_a_long_request_bills_its_cache_at_the_long_rates() -> None:
    table = parse_prices(json.dumps(CACHED), "t.json")
    usage = Usage.of_request(300_000, 1_000, cached=200_000, written=10_000) \
        + Usage.of_request(10_000, 100, cached=5_000, written=1_000)
    assert usage == Usage(310_000, 1_100, 300_000, 1_000, 205_000, 11_000, 200_000, 10_000)
    long = 90_000 * 8 + 200_000 * 0.8 + 10_000 * 8 + 1_000 * 30   # no long write rate: input
    short = 4_000 * 4 + 5_000 * 0.4 + 1_000 * 5 + 100 * 20
    assert actual_cost(table, "cached", usage) == pytest.approx((long + short) / 1e6 * 0.5)


def test_usage_refuses_more_cached_tokens_than_the_prompt() -> None:
    with pytest.raises(ValueError, match="12 cached input tokens of a prompt of 10"):
        Usage.of_request(10, 1, cached=8, written=4)


def test_usage_round_trips_through_the_lockfile_form() -> None:
    assert Usage(10, 5).to_dict() == {"input_tokens": 10, "output_tokens": 5}
    long = Usage(300_010, 5, 300_000, 2)
    assert Usage.from_dict(long.to_dict()) == long
    assert Usage.from_dict({}) == Usage()
    cached = Usage.of_request(300_000, 10, cached=200_000) + Usage.of_request(100, 1, written=50)
    assert cached.to_dict() == {"input_tokens": 300_100, "output_tokens": 11,
                                "long_input_tokens": 300_000, "long_output_tokens": 10,
                                "cached_input_tokens": 200_000, "cache_write_tokens": 50,
                                "long_cached_input_tokens": 200_000}
    assert Usage.from_dict(cached.to_dict()) == cached
    before_caching = {"input_tokens": 5, "output_tokens": 3, "long_input_tokens": 0}
    assert Usage.from_dict(before_caching) == Usage(5, 3)


def _cost(name: str, low: float, high: float | None) -> CostEstimate:
    return CostEstimate(name, 1, 1, 1, low, high, "USD", "2026-11-23",
                        bound_setting="generationConfig.maxOutputTokens")


def test_budget_refusals_name_the_batch() -> None:
    costs = {"a": _cost("a", 1.0, 3.0), "b": _cost("b", 0.5, None), "c": None,
             "d": _cost("d", 0.1, 0.2)}
    refusals = budget_refusals(costs, {"a": 2.0, "b": 10.0, "c": 1.0, "d": 1.0, "gone": 0.0},
                               max_cost=None)
    assert refusals == [
        "a: may cost up to $3.00, over its spec.budget of $2.00",
        ("b: spec.budget is $10.00 but the cost has no upper bound; set "
         "generationConfig.maxOutputTokens"),
        ("c: its model has no price in the price table, so spec.budget cannot be checked; add "
         "the model to prices.json"),
    ]


def test_max_cost_is_checked_against_the_sum_of_upper_bounds() -> None:
    costs = {"a": _cost("a", 1.0, 3.0), "d": _cost("d", 0.1, 0.25)}
    assert budget_refusals(costs, {}, max_cost=3.25) == []
    assert budget_refusals(costs, {}, max_cost=3.0) == [
        "the batches to submit may cost up to $3.25 (a $3.00, d $0.2500), over --max-cost $3.00"]
    assert budget_refusals({**costs, "b": _cost("b", 0.5, None)}, {}, max_cost=100) == [
        "b: --max-cost cannot be checked: no upper bound; set generationConfig.maxOutputTokens"]
    assert budget_refusals({}, {}, max_cost=0) == []


@pytest.mark.parametrize("amount, text", [(0, "$0.0000"), (0.00001, "<$0.0001"),
                                          (0.01234, "$0.0123"), (1.5, "$1.50"),
                                          (12345.678, "$12,345.68")])
def test_money(amount: float, text: str) -> None:
    assert money(amount) == text
    assert money(1.5, "EUR") == "1.50 EUR"


# -- offline token estimate --------------------------------------------------------------------


@pytest.mark.parametrize("text, tokens", [
    ("", 0), ("abcd", 1), ("abcde", 2), ("What is 1+1?", 3),
    ("日本語", 3),                 # CJK: one a character
    ("привет", 3),                 # other scripts: two characters a token
    ("café au lait", 3),           # Latin-1 letters count as Latin
    ("hi 世界", 3),                # 3 Latin (0.75) + 2 CJK (2) -> 2.75 -> 3
])
def test_text_tokens(text: str, tokens: int) -> None:
    assert text_tokens(text) == tokens


def test_request_tokens_count_system_instruction_tools_and_media() -> None:
    request: dict[str, Any] = {
        "systemInstruction": {"parts": [{"text": "x" * 40}]},
        "contents": [{"role": "user", "parts": [
            {"text": "y" * 8},
            {"inlineData": {"mimeType": "image/png", "data": "AAAA" * 1000}},
            {"fileData": {"fileUri": "https://example/f", "mimeType": "application/pdf"}},
            {"functionResponse": {"name": "f", "response": {"ok": 1}}},
        ]}],
        "tools": [{"functionDeclarations": [{"name": "f"}]}],
    }
    tokens, media = request_tokens(request)
    function_json = '{"functionResponse":{"name":"f","response":{"ok":1}}}'
    tools_json = '[{"functionDeclarations":[{"name":"f"}]}]'
    assert media == 2
    assert tokens == 10 + 2 + 2 * MEDIA_TOKENS + text_tokens(function_json) \
        + text_tokens(tools_json)


@pytest.mark.parametrize("config, bound", [
    ({}, None), ({"temperature": 0}, None), ({"maxOutputTokens": 64}, 64),
    ({"maxOutputTokens": "64"}, 64), ({"maxOutputTokens": 64.0}, 64),
    ({"maxOutputTokens": 64, "candidateCount": 3}, 192), ({"maxOutputTokens": "many"}, None),
])
def test_output_bound(config: dict[str, Any], bound: int | None) -> None:
    assert output_bound({"contents": [], "generationConfig": config}) == bound


def test_one_request_without_a_bound_unbounds_the_batch() -> None:
    bounded = {"contents": [], "generationConfig": {"maxOutputTokens": 10}}
    est = estimate_requests(GEMINI, [bounded, {"contents": []}, bounded])
    assert (est.requests, est.max_output_tokens) == (3, None)
    assert estimate_requests(GEMINI, [bounded, bounded]).max_output_tokens == 20


def test_estimate_manifest_renders_the_minimal_manifest(tmp_path: Path) -> None:
    write_manifest(tmp_path, MINIMAL)
    (manifest,) = load_directory(tmp_path)
    est = estimate_manifest(manifest)
    # "What is 1+1?" and "What is 2+2?": 12 characters each, 3 tokens each
    assert est == TokenEstimate(requests=2, input_tokens=6, max_output_tokens=None,
                                largest_request=3, media_parts=0, counted=False,
                                bound_setting="generationConfig.maxOutputTokens")


def test_estimate_manifest_takes_each_requests_templated_bound(tmp_path: Path) -> None:
    write_manifest(tmp_path, MINIMAL.replace(
        "    - {id: a, q: \"What is 1+1?\"}\n    - {id: b, q: \"What is 2+2?\"}\n",
        "    - {id: a, q: \"What is 1+1?\", max: 100}\n    - {id: b, q: \"Why?\", max: 7}\n",
    ).replace("  outputs:", "    generationConfig: {maxOutputTokens: \"{{ row.max }}\"}\n"
                            "  outputs:"))
    (manifest,) = load_directory(tmp_path)
    est = estimate_manifest(manifest)
    assert (est.requests, est.input_tokens, est.max_output_tokens) == (2, 4, 107)


def test_a_counter_replaces_the_offline_rule(tmp_path: Path) -> None:
    write_manifest(tmp_path, MINIMAL)
    (manifest,) = load_directory(tmp_path)
    seen = []

    def count(request: Any) -> int:
        seen.append(request["contents"][0]["parts"][0]["text"])
        return 11

    est = estimate_manifest(manifest, count)
    assert seen == ["What is 1+1?", "What is 2+2?"]
    assert (est.input_tokens, est.largest_request, est.counted) == (22, 11, True)


def test_estimating_is_constant_memory() -> None:
    def requests(n: int) -> Iterator[dict[str, Any]]:
        for i in range(n):
            yield {"contents": [{"parts": [{"text": f"request number {i} " * 20}]}],
                   "generationConfig": {"maxOutputTokens": 5}}

    tracemalloc.start()
    try:
        est = estimate_requests(GEMINI, requests(50_000))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert est.requests == 50_000 and est.max_output_tokens == 250_000
    assert peak < 256 * 1024, f"peak {peak} bytes: the requests are being kept"



def test_a_tally_sums_what_adding_usages_sums() -> None:
    """The join sums usage in place (Tally): the same totals as adding Usage objects, long
    prompts and cache reads and writes counted in their own fields."""
    from runner.usage import Tally
    usages = [Usage.of_request(10 + i % 7, 3 + i % 5) for i in range(200)]
    usages += [Usage.of_request(300_000, 40), Usage.of_request(50, 9, cached=20),
               Usage.of_request(250_000, 2, cached=100_000, written=5)]
    tally, total = Tally(), Usage()
    for u in usages:
        tally.add(u)
        total += u
    assert tally.total() == total
    assert total.long_input_tokens == 550_000 and total.cached_input_tokens == 100_020
    with pytest.raises(ValueError, match="cached input tokens"):
        Usage.of_request(5, 1, cached=6)
