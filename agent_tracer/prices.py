"""What a model's tokens cost: the price table, a price file over it, and the lookup by model name.

Prices are US dollars per 1,000 tokens, input and output apart. `DEFAULT_PRICES` holds list prices
(mid-2025; they change, so check them); a price file (`--prices FILE`, JSON or YAML:
`{model: {input: USD, output: USD}}` per 1K tokens) adds models and overrides them. A model is
priced by its name or the longest known prefix of it followed by "-" ("gpt-4o-2024-08-06" is
priced as "gpt-4o"); a self-hosted or tuned model is unknown unless the file prices it.

The web UI prices recorded calls with it (`agent_tracer.ui.costs`), and `agent-tracer eval`
prices its endpoints (`trainer.evaluate.endpoints`). Standard library and PyYAML only.
"""

from __future__ import annotations

import json
from pathlib import Path

from agent_tracer.errors import ConfigError

Prices = dict[str, tuple[float, float]]
"""Model → (input, output) US dollars per 1K tokens."""

DEFAULT_PRICES: Prices = {
    "gpt-5": (0.00125, 0.01),
    "gpt-5-mini": (0.00025, 0.002),
    "gpt-5-nano": (0.00005, 0.0004),
    "gpt-4.1": (0.002, 0.008),
    "gpt-4.1-mini": (0.0004, 0.0016),
    "gpt-4.1-nano": (0.0001, 0.0004),
    "gpt-4o": (0.0025, 0.01),
    "gpt-4o-mini": (0.00015, 0.0006),
    "o3": (0.002, 0.008),
    "o3-mini": (0.0011, 0.0044),
    "o4-mini": (0.0011, 0.0044),
    "claude-opus-4": (0.015, 0.075),
    "claude-opus-4-5": (0.005, 0.025),
    "claude-sonnet-4": (0.003, 0.015),
    "claude-3-7-sonnet": (0.003, 0.015),
    "claude-3-5-haiku": (0.0008, 0.004),
    "claude-haiku-4-5": (0.001, 0.005),
    "gemini-2.5-pro": (0.00125, 0.01),
    "gemini-2.5-flash": (0.0003, 0.0025),
}
"""Model → (input, output) US dollars per 1K tokens: list prices, mid-2025."""

PRICE_FILE_SHAPE = "{model: {input: USD, output: USD}} per 1K tokens"
PRICES_HELP = f"Price table, JSON or YAML: {PRICE_FILE_SHAPE}, over the defaults."
"""The help of every `--prices FILE` option."""


def load_prices(path: str | Path | None) -> Prices:
    """The default table, updated from a JSON or YAML price file (`.yaml`/`.yml`: YAML, else
    JSON); `ConfigError` with one line naming the file when it cannot be read or used."""
    prices = dict(DEFAULT_PRICES)
    if path is None:
        return prices
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read the price file {path}: {exc.strerror or exc}") from None
    if path.suffix in (".yaml", ".yml"):
        import yaml

        try:
            table = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    else:
        try:
            table = json.loads(text)
        except ValueError as exc:
            raise ConfigError(f"{path} is not JSON: {exc}") from None
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: expected {PRICE_FILE_SHAPE}")
    for model, price in table.items():
        try:
            prices[str(model)] = (float(price["input"]), float(price["output"]))
        except (TypeError, KeyError, ValueError):
            raise ConfigError(f"{path}: the price of {model} needs input and output, USD per 1K tokens") from None
        if min(prices[str(model)]) < 0:
            raise ConfigError(f"{path}: the price of {model} cannot be negative")
    return prices


def price_of_model(model: str | None, prices: Prices) -> tuple[float, float] | None:
    """(input, output) USD per 1K tokens of `model`: its own entry or its longest priced prefix
    followed by "-"; None when the table knows neither."""
    if not model:
        return None
    found = prices.get(model)
    if found is not None:
        return found
    prefixes = [name for name in prices if model.startswith(name + "-")]
    return prices[max(prefixes, key=len)] if prefixes else None


def tokens_cost(price: tuple[float, float], input_tokens: int, output_tokens: int) -> float:
    """US dollars for these tokens at `price` (per 1K tokens)."""
    return input_tokens / 1000 * price[0] + output_tokens / 1000 * price[1]
