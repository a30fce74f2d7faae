"""The price table (`agent_tracer.prices`): the lookup by model name, a price file over the
defaults and its one-line errors; and the UI's costs from tokens (`agent_tracer.ui.costs`)."""

from __future__ import annotations

import pytest

from agent_tracer.errors import ConfigError
from agent_tracer.prices import DEFAULT_PRICES, load_prices, price_of_model, tokens_cost
from agent_tracer.store.usage import ModelTokens
from agent_tracer.ui.costs import NO_TOKENS, Cost, total_cost, usage_cost, usd


@pytest.mark.parametrize(
    ("model", "price"),
    [
        ("gpt-4o", DEFAULT_PRICES["gpt-4o"]),
        ("gpt-4o-2024-08-06", DEFAULT_PRICES["gpt-4o"]),  # a dated name: its longest known prefix
        ("gpt-4o-mini-2024-07-18", DEFAULT_PRICES["gpt-4o-mini"]),  # not gpt-4o's price
        ("claude-opus-4-5-20251101", DEFAULT_PRICES["claude-opus-4-5"]),
        ("gpt-4orca", None),  # a prefix counts only before a "-"
        ("my-tuned-model", None),
        ("", None),
        (None, None),
    ],
)
def test_a_model_is_priced_by_its_name_or_longest_prefix(model, price):
    assert price_of_model(model, DEFAULT_PRICES) == price


def test_cost_is_input_tokens_at_the_input_price_plus_output_tokens_at_the_output_price():
    assert tokens_cost((0.0025, 0.01), 1000, 500) == pytest.approx(0.0075)
    assert tokens_cost(DEFAULT_PRICES["gpt-4o-mini"], 200, 10) == pytest.approx(0.000036)


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_a_price_file_adds_and_overrides_models(tmp_path, suffix):
    path = tmp_path / f"prices{suffix}"
    if suffix == ".json":
        path.write_text('{"my-tuned": {"input": 0.0001, "output": 0.0002}, "gpt-4o": {"input": 1, "output": 2}}')
    else:
        path.write_text("my-tuned: {input: 0.0001, output: 0.0002}\ngpt-4o:\n  input: 1\n  output: 2\n")
    prices = load_prices(path)
    assert price_of_model("my-tuned-v2", prices) == (0.0001, 0.0002)
    assert price_of_model("gpt-4o-2024-08-06", prices) == (1.0, 2.0)
    assert price_of_model("gpt-4o-mini", prices) == DEFAULT_PRICES["gpt-4o-mini"]  # the rest stays
    assert load_prices(None) == DEFAULT_PRICES and load_prices(None) is not DEFAULT_PRICES


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("bad.json", "{not json", "bad.json is not JSON: "),
        ("bad.yaml", "a: [unclosed", "bad.yaml is not valid YAML: "),
        ("list.json", "[1, 2]", "list.json: expected {model: {input: USD, output: USD}} per 1K tokens"),
        ("half.json", '{"m": {"input": 0.1}}', "half.json: the price of m needs input and output, USD per 1K tokens"),
        ("words.yaml", "m: {input: cheap, output: 1}", "words.yaml: the price of m needs input and output"),
        ("minus.json", '{"m": {"input": -1, "output": 1}}', "minus.json: the price of m cannot be negative"),
    ],
)
def test_a_bad_price_file_is_one_line_naming_it(tmp_path, name, text, message):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_prices(path)
    assert str(caught.value).startswith(str(path)) and message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_missing_price_file_is_named():
    with pytest.raises(ConfigError, match="cannot read the price file /no/such/prices.json"):
        load_prices("/no/such/prices.json")


def test_a_runs_cost_sums_priced_calls_and_says_why_the_others_are_not():
    known = ModelTokens("gpt-4o-2024-08-06", calls=2, input_tokens=2000, output_tokens=1000)
    tuned = ModelTokens("my-tuned", calls=1, input_tokens=1000, output_tokens=500)
    assert usage_cost(known, DEFAULT_PRICES).text == "$0.015"
    alone = usage_cost(tuned, DEFAULT_PRICES)
    assert (alone.text, alone.title) == ("–", "no price for model my-tuned: add it with --prices FILE (1 call)")
    both = total_cost([known, tuned], DEFAULT_PRICES)
    assert (both.usd, both.partial, both.text) == (pytest.approx(0.015), True, "≥ $0.015")
    assert both.title == "1 of 3 calls not priced: no price for model my-tuned: add it with --prices FILE (1 call)"
    counted = usage_cost(ModelTokens("gpt-4o", calls=3, input_tokens=1000, output_tokens=0, untokened=2), {})
    assert counted.text == "–"  # an empty table prices nothing
    untokened = usage_cost(
        ModelTokens("gpt-4o", calls=3, input_tokens=1000, output_tokens=0, untokened=2), DEFAULT_PRICES
    )
    assert (untokened.priced, untokened.unpriced, untokened.text) == (1, {NO_TOKENS: 2}, "≥ $0.0025")
    assert (Cost().text, Cost().title) == ("$0", "")  # a run without calls costs nothing


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0, "$0"),
        (0.0075, "$0.0075"),
        (0.000036, "$0.000036"),
        (0.01234, "$0.0123"),
        (0.5, "$0.5"),
        (1234.5, "$1,234.50"),
    ],
)
def test_dollars_read_to_three_significant_digits_below_one(value, text):
    assert usd(value) == text
