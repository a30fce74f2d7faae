"""What the endpoints under evaluation cost.

The endpoints themselves (`--endpoint NAME=URL[,model=…][,key_env=…][,price_in=…][,price_out=…]`)
are parsed by `agent_tracer.endpoints`, which `agent-tracer ui --endpoint` shares.

Prices come from `DEFAULT_PRICES` (list prices per 1K tokens, mid-2025; they change, so check
them), overridden by a `--prices FILE` (JSON or YAML: `{model: {input: USD, output: USD}}`, per
1K tokens) and by an endpoint's own price. A model is priced by its name or the longest known
prefix of it ("gpt-4o-2024-08-06" is priced as "gpt-4o").
"""

from __future__ import annotations

import json
from pathlib import Path

from agent_tracer.endpoints import Endpoint
from agent_tracer.errors import ConfigError

DEFAULT_PRICES: dict[str, tuple[float, float]] = {
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


def load_prices(path: str | Path | None) -> dict[str, tuple[float, float]]:
    """The default table, updated from a JSON or YAML price file."""
    prices = dict(DEFAULT_PRICES)
    if path is None:
        return prices
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read the price file {path}: {exc.strerror or exc}") from None
    if path.suffix in (".yaml", ".yml"):
        from trainer.train.config import read_yaml

        table = read_yaml(path)
    else:
        try:
            table = json.loads(text)
        except ValueError as exc:
            raise ConfigError(f"{path} is not JSON: {exc}") from None
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: expected {{model: {{input: USD, output: USD}}}} per 1K tokens")
    for model, price in table.items():
        try:
            prices[str(model)] = (float(price["input"]), float(price["output"]))
        except (TypeError, KeyError, ValueError):
            raise ConfigError(f"{path}: the price of {model} needs input and output, USD per 1K tokens") from None
    return prices


def price_of(
    endpoint: Endpoint, model: str | None, prices: dict[str, tuple[float, float]]
) -> tuple[float, float] | None:
    """(input, output) USD per 1K tokens for this endpoint's model, or None when unknown."""
    known = None
    if model:
        prefixes = [name for name in prices if model == name or model.startswith(name + "-")]
        if prefixes:
            known = prices[max(prefixes, key=len)]
    if endpoint.price_in is None and endpoint.price_out is None:
        return known
    default_in, default_out = known or (None, None)
    price_in = endpoint.price_in if endpoint.price_in is not None else default_in
    price_out = endpoint.price_out if endpoint.price_out is not None else default_out
    if price_in is None or price_out is None:  # one given, the other unknown: the same for both
        price_in = price_out = price_in if price_in is not None else price_out
    assert price_in is not None and price_out is not None  # one was given, or both known
    return price_in, price_out
